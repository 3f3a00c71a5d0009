"""Objects are checked against the generated schemas with kubectl-like messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fluxd.api.errors import InvalidObject, UnknownKind
from fluxd.api.validate import ensure_valid, validate_object


def messages(obj: dict[str, Any]) -> list[str]:
    return [str(violation) for violation in validate_object(obj)]


def test_seed_git_repository_is_valid(git_repository: dict[str, Any]) -> None:
    assert messages(git_repository) == []


def test_seed_kustomization_is_valid(kustomization: dict[str, Any]) -> None:
    assert messages(kustomization) == []


def test_bad_interval_names_the_field_the_value_and_the_expected_form(
    git_repository: dict[str, Any],
) -> None:
    git_repository["spec"]["interval"] = "1 minute"
    (message,) = messages(git_repository)
    assert message.startswith('spec.interval: Invalid value: "1 minute": a duration such as')
    assert "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" in message


def test_missing_url_is_a_required_value(git_repository: dict[str, Any]) -> None:
    del git_repository["spec"]["url"]
    assert messages(git_repository) == ["spec.url: Required value"]


def test_invalid_object_error_lists_every_violation(git_repository: dict[str, Any]) -> None:
    del git_repository["spec"]["url"]
    git_repository["spec"]["interval"] = "often"
    with pytest.raises(InvalidObject) as caught:
        ensure_valid(git_repository)
    text = str(caught.value)
    assert text.startswith("GitRepository 'k3s-private-repo' is invalid: ")
    assert "spec.url: Required value" in text
    assert 'spec.interval: Invalid value: "often"' in text
    assert len(caught.value.violations) == 2


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(
            ("spec", "url"),
            "ftp://example.com/repo.git",
            "spec.url: Invalid value: \"ftp://example.com/repo.git\": should match '^(http|https|ssh)://.*$'",
            id="url-scheme",
        ),
        pytest.param(
            ("spec", "timeout"),
            "1h",
            'spec.timeout: Invalid value: "1h": a duration such as 500ms, 30s or 5m (no hours)',
            id="timeout-without-hours",
        ),
        pytest.param(
            ("spec", "suspend"),
            "yes",
            'spec.suspend: Invalid value: "yes": must be of type boolean',
            id="type",
        ),
        pytest.param(
            ("spec", "ref", "branch"),
            5,
            "spec.ref.branch: Invalid value: 5: must be of type string",
            id="nested-type",
        ),
        pytest.param(
            ("spec", "verify"),
            {"mode": "tail", "secretRef": {"name": "keys"}},
            'spec.verify.mode: Unsupported value: "tail": supported values: '
            '"head", "HEAD", "Tag", "TagAndHEAD"',
            id="enum",
        ),
        pytest.param(
            ("spec", "include"),
            [{"fromPath": "x"}],
            "spec.include[0].repository: Required value",
            id="list-item",
        ),
        pytest.param(
            ("spec", "branch"),
            "master",
            "spec.branch: unknown field",
            id="unknown-field",
        ),
    ],
)
def test_git_repository_violations(
    git_repository: dict[str, Any], path: tuple[str, ...], value: object, expected: str
) -> None:
    target = git_repository
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert messages(git_repository)[0].startswith(expected)


def test_null_counts_as_absent(git_repository: dict[str, Any]) -> None:
    git_repository["spec"]["secretRef"] = None
    assert messages(git_repository) == []
    git_repository["spec"]["url"] = None
    assert messages(git_repository) == ["spec.url: Required value"]


def test_status_written_by_fluxd_validates(git_repository: dict[str, Any]) -> None:
    git_repository["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "observedGeneration": 1,
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "reason": "Succeeded",
                "message": "stored artifact for revision 'master@sha1:0123abcd'",
            }
        ],
        "artifact": {
            "path": "gitrepository/flux-system/k3s-private-repo/0123abcd.tar.gz",
            "url": "http://fluxd.flux-system.svc/gitrepository/flux-system/k3s-private-repo/0123abcd.tar.gz",
            "revision": "master@sha1:0123abcd",
            "digest": "sha256:" + "a" * 64,
            "lastUpdateTime": "2024-05-01T12:00:00Z",
            "size": 1024,
        },
    }
    assert messages(git_repository) == []
    broken = copy.deepcopy(git_repository)
    broken["status"]["conditions"][0]["status"] = "Yes"
    broken["status"]["conditions"][0]["reason"] = ""
    assert messages(broken) == [
        'status.conditions[0].status: Unsupported value: "Yes": supported values: '
        '"True", "False", "Unknown"',
        'status.conditions[0].reason: Invalid value: "": should be at least 1 chars long',
        'status.conditions[0].reason: Invalid value: "": should match '
        "'^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$'",
    ]


def test_kustomization_requires_prune_and_checks_enums(kustomization: dict[str, Any]) -> None:
    del kustomization["spec"]["prune"]
    kustomization["spec"]["sourceRef"]["kind"] = "HelmRepository"
    kustomization["spec"]["deletionPolicy"] = "Keep"
    assert sorted(messages(kustomization)) == [
        'spec.deletionPolicy: Unsupported value: "Keep": supported values: '
        '"MirrorPrune", "Delete", "WaitForTermination", "Orphan"',
        "spec.prune: Required value",
        'spec.sourceRef.kind: Unsupported value: "HelmRepository": supported values: '
        '"OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"',
    ]


def test_kustomization_full_spec_is_valid(kustomization: dict[str, Any]) -> None:
    kustomization["spec"].update(
        {
            "targetNamespace": "realm",
            "namePrefix": "ix-",
            "patches": [
                {
                    "patch": "- op: add\n  path: /metadata/labels/x\n  value: y\n",
                    "target": {"kind": "Deployment", "labelSelector": "app=realm"},
                }
            ],
            "images": [{"name": "realm", "newTag": "2.6.0"}],
            "commonMetadata": {"labels": {"team": "edge"}},
            "postBuild": {
                "substitute": {"cluster": "ccs"},
                "substituteFrom": [{"kind": "Secret", "name": "vars", "optional": True}],
            },
            "dependsOn": [{"name": "infra"}],
            "healthChecks": [{"kind": "Deployment", "name": "realm", "namespace": "realm"}],
            "wait": True,
            "force": False,
            "deletionPolicy": "Orphan",
            "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}},
        }
    )
    kustomization["status"] = {
        "inventory": {"entries": [{"id": "realm_realm-config-ix__Secret", "v": "v1"}]},
        "lastAppliedRevision": "master@sha1:0123abcd",
    }
    assert messages(kustomization) == []


def test_substitute_values_must_be_strings(kustomization: dict[str, Any]) -> None:
    kustomization["spec"]["postBuild"] = {"substitute": {"replicas": 3}}
    assert messages(kustomization) == [
        "spec.postBuild.substitute.replicas: Invalid value: 3: must be of type string"
    ]


def test_notification_kinds_accept_fluxd_extras() -> None:
    receiver = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1",
        "kind": "Receiver",
        "metadata": {"name": "gitea", "namespace": "flux-system"},
        "spec": {
            "type": "gitea",
            "events": ["push"],
            "secretRef": {"name": "webhook-token"},
            "resources": [{"kind": "GitRepository", "name": "k3s-private-repo"}],
        },
    }
    provider = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": "dingtalk", "namespace": "flux-system"},
        "spec": {"type": "dingtalk", "secretRef": {"name": "dingtalk-url"}, "timeout": "10s"},
    }
    alert = {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": {"name": "sync-failures", "namespace": "flux-system"},
        "spec": {
            "providerRef": {"name": "dingtalk"},
            "eventSeverity": "error",
            "eventSources": [{"kind": "Kustomization", "name": "*"}],
        },
    }
    assert messages(receiver) == []
    assert messages(provider) == []
    assert messages(alert) == []
    del receiver["spec"]["secretRef"]  # type: ignore[attr-defined]
    assert messages(receiver) == ["spec.secretRef: Required value"]


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownKind, match="HelmRelease"):
        validate_object(
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {}}
        )
    with pytest.raises(UnknownKind):
        # Flux's older versions are not served.
        validate_object({"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "GitRepository"})
