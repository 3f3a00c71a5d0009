"""fluxd create, export, tree, trace and get -l against the daemon, as a user runs them.

A GitRepository and a Kustomization are created from flags (the command waits
for the daemon to make them Ready); the repository's ``outer`` path applies a
ConfigMap and a second Kustomization, ``inner``, which applies another. ``tree``
draws both levels, ``trace`` finds the inner ConfigMap's owners, ``export``
prints what was created so that it applies unchanged.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.cli import fluxd, table
from tests.support.daemon import Fluxd
from tests.support.flux import condition, git_repository_path, kustomization_path

USER, TOKEN = "git", "s3cret-token"
SOURCE = "app"


def repository_files(namespace: str) -> dict[str, str | bytes | None]:
    inner = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "inner", "namespace": namespace},
        "spec": {
            "interval": "10m",
            "path": "./inner",
            "prune": True,
            "targetNamespace": namespace,
            "sourceRef": {"kind": "GitRepository", "name": SOURCE},
        },
    }
    return {
        "outer/kustomization.yaml": "resources:\n  - config.yaml\n  - inner.yaml\n",
        "outer/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: outer-config\n"
        "data:\n  level: outer\n",
        "outer/inner.yaml": yaml.safe_dump(inner),
        "inner/kustomization.yaml": "resources:\n  - config.yaml\n",
        "inner/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inner-config\n"
        "data:\n  level: inner\n",
    }


@dataclass
class Setup:
    daemon: Fluxd
    watched: str
    git: GitServer
    url: str


@pytest.fixture(scope="module")
def setup(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    watched = f"cli-more-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(watched)
    with GitServer(username=USER, password=TOKEN) as git:
        git.create_repo("team/app.git")
        git.commit("team/app.git", repository_files(watched))
        daemon = Fluxd(
            cluster,
            tmp_path_factory.mktemp("fluxd-cli-more"),
            extra_args=[
                "--lease-name=cli-more-tests",
                f"--watch-namespaces={watched}",
                "--max-retry-delay=5s",
                "--restarter=false",
            ],
        ).start()
        try:
            yield Setup(daemon, watched, git, git.url("team/app.git"))
        finally:
            api = cluster.api
            for path in (
                kustomization_path(watched, "outer"),
                git_repository_path(watched, SOURCE),
            ):
                api.delete(path)
            wait_for(
                lambda: api.get_or_none(kustomization_path(watched, "outer")) is None,
                timeout=60,
                what="the Kustomization finalized",
            )
            assert daemon.stop() == 0, daemon.log_tail()
            api.delete(f"/api/v1/namespaces/{watched}")


@pytest.fixture(scope="module")
def created(cluster: Cluster, setup: Setup) -> Setup:
    """The Secret, GitRepository and Kustomization, made with ``fluxd create``."""
    ns = ["-n", setup.watched, "--timeout=150s"]
    made = fluxd(
        cluster, "create", "secret", "git", "app-auth", f"--url={setup.url}", "-u", USER,
        "-p", TOKEN, *ns,
    )  # fmt: skip
    assert made.code == 0, made.err
    source = fluxd(
        cluster, "create", "source", "git", SOURCE, f"--url={setup.url}", "--branch=main",
        "--secret-ref=app-auth", "--interval=10m", "--label=team=web", *ns,
    )  # fmt: skip
    assert source.code == 0, source.err
    assert source.lines[-1].startswith("✔ fetched revision: main@sha1:"), source.err
    outer = fluxd(
        cluster, "create", "kustomization", "outer", f"--source=GitRepository/{SOURCE}",
        "--path=./outer", "--prune", "--interval=10m", f"--target-namespace={setup.watched}", *ns,
    )  # fmt: skip
    assert outer.code == 0, outer.err
    assert outer.lines[-1].startswith("✔ applied revision main@sha1:"), outer.err
    return setup


def test_create_writes_what_the_daemon_reconciles(api: Api, created: Setup) -> None:
    secret = api.get(f"/api/v1/namespaces/{created.watched}/secrets/app-auth")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "username": USER,
        "password": TOKEN,
    }
    repository = api.get(git_repository_path(created.watched, SOURCE))
    assert repository["spec"]["interval"] == "10m0s"
    assert repository["metadata"]["labels"] == {"team": "web"}
    assert (condition(repository) or {}).get("status") == "True"
    config = api.get(f"/api/v1/namespaces/{created.watched}/configmaps/outer-config")
    assert config["data"] == {"level": "outer"}


def test_get_label_selector_keeps_matching_objects(cluster: Cluster, created: Setup) -> None:
    ns = ["-n", created.watched]
    selected = fluxd(cluster, "get", "sources", "git", "-l", "team=web", *ns)
    assert selected.code == 0, selected.err
    assert [row[0] for row in table(selected.out)] == ["NAME", SOURCE]
    other = fluxd(cluster, "get", "sources", "git", "--label-selector", "team=db", *ns)
    assert other.out == ""
    assert other.lines == [f"✗ no GitRepository objects found in namespace '{created.watched}'"]


def test_export_prints_what_create_made(cluster: Cluster, api: Api, created: Setup) -> None:
    exported = fluxd(
        cluster, "export", "source", "git", SOURCE, "--with-credentials", "-n", created.watched
    )
    assert exported.code == 0, exported.err
    documents = list(yaml.safe_load_all(exported.out))
    assert [d["kind"] for d in documents] == ["GitRepository", "Secret"]
    source, secret = documents
    assert source["metadata"] == {
        "labels": {"team": "web"},
        "name": SOURCE,
        "namespace": created.watched,
    }
    live = api.get(git_repository_path(created.watched, SOURCE))
    assert source["spec"] == live["spec"]
    assert "status" not in source
    assert base64.b64decode(secret["data"]["password"]).decode() == TOKEN

    offline = fluxd(
        cluster, "create", "kustomization", "outer", f"--source=GitRepository/{SOURCE}",
        "--path=./outer", "--prune", "--interval=10m", f"--target-namespace={created.watched}",
        "--export", "-n", created.watched,
    )  # fmt: skip
    every = fluxd(cluster, "export", "kustomization", "--all", "-n", created.watched)
    assert every.code == 0, every.err
    by_name = {d["metadata"]["name"]: d for d in yaml.safe_load_all(every.out)}
    assert set(by_name) == {"inner", "outer"}
    # What create --export printed is what export prints back, apart from the server's defaults.
    written = yaml.safe_load(offline.out)
    assert {k: by_name["outer"]["spec"][k] for k in written["spec"]} == written["spec"]


def test_tree_draws_the_nested_kustomization(cluster: Cluster, api: Api, created: Setup) -> None:
    wait_for(
        lambda: (
            (condition(api.get(kustomization_path(created.watched, "inner"))) or {}).get("status")
            == "True"
        ),
        timeout=90,
        what="the inner Kustomization Ready",
    )
    drawn = fluxd(cluster, "tree", "kustomization", "outer", "-n", created.watched)
    assert drawn.code == 0, drawn.err
    ns = created.watched
    assert drawn.out.splitlines() == [
        f"Kustomization/{ns}/outer",
        f"├── ConfigMap/{ns}/outer-config",
        f"└── Kustomization/{ns}/inner",
        f"    └── ConfigMap/{ns}/inner-config",
        "",
    ]
    compact = fluxd(cluster, "tree", "ks", "outer", "--compact", "-n", ns)
    assert compact.out.splitlines() == [
        f"Kustomization/{ns}/outer",
        f"└── Kustomization/{ns}/inner",
        "",
    ]


def test_trace_names_the_kustomization_and_source(
    cluster: Cluster, api: Api, created: Setup
) -> None:
    ns = created.watched
    wait_for(
        lambda: api.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/inner-config"),
        timeout=90,
        what="the inner ConfigMap",
    )
    traced = fluxd(
        cluster, "trace", "inner-config", "--kind=ConfigMap", "--api-version=v1", "-n", ns
    )
    assert traced.code == 0, traced.err
    fields = [
        tuple(part.strip() for part in line.split(":", 1)) for line in traced.out.splitlines()
    ]
    assert ("Object", "ConfigMap/inner-config") in fields
    assert ("Kustomization", "inner") in fields
    assert ("Path", "./inner") in fields
    assert ("GitRepository", SOURCE) in fields
    assert ("Branch", "main") in fields

    # kubectl's resource words, as flux trace takes them
    assert fluxd(cluster, "trace", "cm/inner-config", "-n", ns).out == traced.out
    assert fluxd(cluster, "trace", "configmap", "inner-config", "-n", ns).out == traced.out

    unmanaged = fluxd(
        cluster, "trace", "kube-root-ca.crt", "--kind=ConfigMap", "--api-version=v1", "-n", ns
    )
    assert unmanaged.code == 1
    assert unmanaged.lines == ["✗ object not managed by Flux"]


def test_create_receiver_prints_its_webhook(cluster: Cluster, api: Api, created: Setup) -> None:
    ns = created.watched
    token = fluxd(
        cluster, "create", "secret", "git", "hook-token", f"--url={created.url}",
        "--bearer-token=t0ken", "-n", ns,
    )  # fmt: skip
    assert token.code == 0, token.err
    api.merge_patch(
        f"/api/v1/namespaces/{ns}/secrets/hook-token", {"stringData": {"token": "t0ken"}}
    )
    made = fluxd(
        cluster, "create", "receiver", "gitea", "--type=gitea", "--secret-ref=hook-token",
        f"--resource=GitRepository/{SOURCE}", "--event=push", "-n", ns,
    )  # fmt: skip
    assert made.code == 0, made.err
    path = api.get(f"/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers/gitea")[
        "status"
    ]["webhookPath"]
    assert made.lines[-1] == f"✔ generated webhook URL {path}"
    api.delete(f"/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers/gitea")
