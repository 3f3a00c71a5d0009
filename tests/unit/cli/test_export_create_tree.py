"""export, create --export, tree and trace print what flux prints for the same objects."""

from __future__ import annotations

import argparse
from typing import Any, ClassVar, cast

import pytest

from fluxd.apply.inventory import ObjectRef
from fluxd.cli import kinds, parser
from fluxd.cli.creating import render_created
from fluxd.cli.exporting import clean, clean_secret, render
from fluxd.cli.failures import CommandError, UsageError
from fluxd.cli.session import Session
from fluxd.cli.terminal import Terminal
from fluxd.cli.tracing import Node, _targets, draw, go_time, report
from fluxd.kube.client import Kube

SHA = "16cfcc0b9066b3234dda29927ac1c19860d9663f"


def args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


def test_export_keeps_what_a_user_writes_in_flux_order() -> None:
    live = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "apps",
            "namespace": "flux-system",
            "uid": "0a1b",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["finalizers.fluxcd.io"],
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"team": "web"},
        },
        "spec": {
            "interval": "10m",
            "path": "./apps",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
        },
        "status": {"lastAppliedRevision": f"main@sha1:{SHA}"},
    }
    assert render([clean(live)]) == (
        "---\n"
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        "metadata:\n"
        "  labels:\n"
        "    team: web\n"
        "  name: apps\n"
        "  namespace: flux-system\n"
        "spec:\n"
        "  interval: 10m\n"
        "  path: ./apps\n"
        "  prune: false\n"
        "  sourceRef:\n"
        "    kind: GitRepository\n"
        "    name: repo\n"
    )


def test_exported_credentials_keep_only_data_and_type() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "auth", "namespace": "apps", "uid": "x", "labels": {"a": "b"}},
        "data": {"password": "cHc="},
        "type": "Opaque",
    }
    assert clean_secret(secret) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "auth", "namespace": "apps"},
        "data": {"password": "cHc="},
        "type": "Opaque",
    }


@pytest.mark.parametrize(
    ("argv", "spec"),
    [
        pytest.param(
            ["create", "source", "git", "app", "--url=https://git.example/app", "--tag=v1"],
            {"interval": "1m0s", "ref": {"tag": "v1"}, "url": "https://git.example/app"},
            id="git-tag",
        ),
        pytest.param(
            [
                "create",
                "source",
                "git",
                "app",
                "--url=ssh://git@host/app",
                "--branch=main",
                "--commit=abc",
                "--interval=1h30m",
                "--secret-ref=auth",
            ],
            {
                "interval": "1h30m0s",
                "ref": {"commit": "abc", "branch": "main"},
                "url": "ssh://git@host/app",
                "secretRef": {"name": "auth"},
            },
            id="git-commit-on-branch",
        ),
        pytest.param(
            [
                "create",
                "ks",
                "app",
                "--source=GitRepository/repo.infra",
                "--path=./deploy",
                "--prune",
                "--wait",
                "--depends-on=infra/base,db",
                "--target-namespace=web",
            ],
            {
                "interval": "1m0s",
                "path": "./deploy",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": "infra"},
                "targetNamespace": "web",
                "wait": True,
                "timeout": "2m0s",
                "dependsOn": [{"name": "base", "namespace": "infra"}, {"name": "db"}],
            },
            id="kustomization",
        ),
        pytest.param(
            [
                "create",
                "receiver",
                "hook",
                "--type=gitea",
                "--secret-ref=token",
                "--resource=GitRepository/app",
                "--event=push",
            ],
            {
                "events": ["push"],
                "resources": [{"kind": "GitRepository", "name": "app"}],
                "secretRef": {"name": "token"},
                "type": "gitea",
            },
            id="receiver",
        ),
    ],
)
def test_create_builds_the_object_flux_builds(argv: list[str], spec: dict[str, object]) -> None:
    parsed = args(*argv, "--export")
    created = render_created(parsed.kind, parsed, "apps")
    assert created["spec"] == spec
    assert created["metadata"] == {
        "name": argv[3] if argv[1] == "source" else argv[2],
        "namespace": "apps",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["create", "source", "git", "app", "--url=https://h/a"],
            "a Git ref is required",
            id="no-ref",
        ),
        pytest.param(
            ["create", "source", "git", "app", "--url=ftp://h/a", "--branch=m"],
            "scheme 'ftp'",
            id="scheme",
        ),
        pytest.param(
            ["create", "ks", "app", "--source=repo", "--path=deploy"],
            "path must begin with ./",
            id="path",
        ),
        pytest.param(["create", "ks", "Bad_Name", "--source=repo"], "is invalid", id="name"),
        pytest.param(
            ["create", "receiver", "hook", "--type=gitea", "--secret-ref=t"],
            "atleast one resource",
            id="resources",
        ),
    ],
)
def test_create_refuses_what_flux_refuses(argv: list[str], message: str) -> None:
    parsed = args(*argv)
    with pytest.raises(UsageError, match=message):
        render_created(parsed.kind, parsed, "apps")


def test_tree_draws_nested_kustomizations_like_flux() -> None:
    def ref(kind: str, name: str, namespace: str = "apps", group: str = "") -> ObjectRef:
        return ObjectRef(namespace=namespace, name=name, group=group, kind=kind)

    root = Node(ref("Kustomization", "root", group="kustomize.toolkit.fluxcd.io"))
    nested = Node(ref("Kustomization", "infra", group="kustomize.toolkit.fluxcd.io"))
    nested.children = [
        Node(ref("Namespace", "cert-manager", namespace="")),
        Node(ref("Secret", "tls")),
    ]
    root.children = [
        Node(ref("Deployment", "web", group="apps")),
        nested,
        Node(ref("ConfigMap", "c")),
    ]
    assert draw(root) == (
        "Kustomization/apps/root\n"
        "├── Deployment/apps/web\n"
        "├── Kustomization/apps/infra\n"
        "│   ├── Namespace/cert-manager\n"
        "│   └── Secret/apps/tls\n"
        "└── ConfigMap/apps/c\n"
    )


def test_trace_report_has_flux_layout() -> None:
    when = "2026-03-01T10:20:30Z"
    text = report(
        obj={"kind": "Deployment", "metadata": {"name": "web", "namespace": "apps"}},
        kustomization={
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"path": "./apps", "targetNamespace": "apps"},
            "status": {
                "lastAppliedRevision": f"main@sha1:{SHA}",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": when,
                        "message": f"Applied revision: main@sha1:{SHA}",
                    }
                ],
            },
        },
        repository={
            "metadata": {"name": "repo", "namespace": "flux-system"},
            "spec": {"url": "https://git.example/app", "ref": {"branch": "main"}},
            "status": {
                "artifact": {"revision": f"main@sha1:{SHA}"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "lastTransitionTime": when,
                        "message": "auth failed",
                    }
                ],
            },
        },
    )
    assert text.splitlines() == [
        "",
        "Object:          Deployment/web",
        "Namespace:       apps",
        "Status:          Managed by Flux",
        "---",
        "Kustomization:   apps",
        "Namespace:       flux-system",
        "Target:          apps",
        "Path:            ./apps",
        f"Revision:        main@sha1:{SHA}",
        "Status:          Last reconciled at 2026-03-01 10:20:30 +0000 UTC",
        f"Message:         Applied revision: main@sha1:{SHA}",
        "---",
        "GitRepository:   repo",
        "Namespace:       flux-system",
        "URL:             https://git.example/app",
        "Branch:          main",
        f"Revision:        main@sha1:{SHA}",
        "Status:          Last reconciliation failed at 2026-03-01 10:20:30 +0000 UTC",
        "Message:         auth failed",
    ]
    assert go_time("2026-03-01T12:20:30+02:00") == "2026-03-01 10:20:30 +0000 UTC"


def test_get_takes_a_label_selector() -> None:
    assert args("get", "ks", "-l", "team=web").label_selector == "team=web"
    assert (
        args("get", "sources", "git", "--label-selector", "a in (b)").label_selector == "a in (b)"
    )
    assert args("get", "sources").label_selector == ""
    assert args("get", "all").kinds == kinds.ALL


class DiscoveryOnly:
    """The API server's discovery documents, all ``trace`` asks before it reads an object."""

    documents: ClassVar[dict[str, dict[str, Any]]] = {
        "/apis": {"groups": [{"preferredVersion": {"groupVersion": "apps/v1"}}]},
        "/api/v1": {
            "resources": [
                {
                    "name": "configmaps",
                    "singularName": "configmap",
                    "kind": "ConfigMap",
                    "shortNames": ["cm"],
                    "namespaced": True,
                },
                {"name": "pods/log", "kind": "Pod"},
            ]
        },
        "/apis/apps/v1": {
            "resources": [
                {
                    "name": "deployments",
                    "singularName": "deployment",
                    "kind": "Deployment",
                    "shortNames": ["deploy"],
                    "namespaced": True,
                }
            ]
        },
    }

    async def request(self, method: str, path: str) -> dict[str, Any]:
        return self.documents[path]


def session() -> Session:
    return Session(
        kube=cast(Kube, DiscoveryOnly()), terminal=Terminal(), namespace="apps", timeout=5.0
    )


@pytest.mark.parametrize(
    ("argv", "targets"),
    [
        pytest.param(
            ["deployment", "web", "api"],
            [("apps/v1", "Deployment", "web"), ("apps/v1", "Deployment", "api")],
            id="words",
        ),
        pytest.param(["pod/x", "cm/redis"], None, id="unknown-kind"),
        pytest.param(
            ["deploy/web", "cm/redis"],
            [("apps/v1", "Deployment", "web"), ("v1", "ConfigMap", "redis")],
            id="slashes",
        ),
        pytest.param(["ConfigMaps", "c"], [("v1", "ConfigMap", "c")], id="plural-any-case"),
    ],
)
async def test_trace_names_objects_as_kubectl_does(
    argv: list[str], targets: list[tuple[str, str, str]] | None
) -> None:
    parsed = args("trace", *argv)
    if targets is None:
        with pytest.raises(CommandError, match='doesn\'t have a resource type "pod"'):
            await _targets(session(), parsed)
    else:
        assert await _targets(session(), parsed) == targets


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["web", "--kind=Deployment"], id="kind-alone"),
        pytest.param(["deployment"], id="no-name"),
        pytest.param(["deployment/web", "api"], id="mixed"),
    ],
)
async def test_trace_refuses_half_a_reference(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        await _targets(session(), args("trace", *argv))
