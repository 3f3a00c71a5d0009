"""Events: Flux's JSON shape and metadata cleanup."""

from __future__ import annotations

import socket

import pytest

from fluxd.controllers.notification import event_from
from fluxd.kube.events import Recorded
from fluxd.notify import Event
from fluxd.notify.providers.commit_status import extract_hash, parse_repository_address
from tests.unit.notify.notify_services import make_event


def test_flux_event_json_is_decoded_with_flux_metadata_cleanup() -> None:
    event = Event.from_flux_json(
        {
            "involvedObject": {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "name": "webapp",
                "namespace": "apps",
                "uid": "7d0cdc51",
            },
            "metadata": {
                "kustomize.toolkit.fluxcd.io/revision": "main@sha1:731f7ead",
                "kustomize.toolkit.fluxcd.io/checksum": "dropped",
                "kustomize.toolkit.fluxcd.io/digest": "dropped",
                "source.toolkit.fluxcd.io/revision": "other group, dropped",
            },
            "severity": "error",
            "reason": "ValidationFailed",
            "message": "service/apps/webapp validation error",
            "reportingController": "kustomize-controller",
            "timestamp": "2022-10-28T07:26:19.123Z",
        }
    )
    assert event.metadata == {"revision": "main@sha1:731f7ead"}
    assert event.severity == "error"
    assert event.timestamp.year == 2022
    assert event.to_json_dict()["timestamp"] == "2022-10-28T07:26:19Z"
    assert event.to_json_dict()["involvedObject"]["uid"] == "7d0cdc51"


@pytest.mark.parametrize(
    ("metadata", "revision"),
    [
        pytest.param({"revision": "r", "commit": "c"}, "c", id="commit-first"),
        pytest.param({"revision": "r", "originRevision": "o"}, "o", id="origin-before-revision"),
        pytest.param({"revision": "r"}, "r", id="revision"),
        pytest.param({}, None, id="none"),
    ],
)
def test_revision_lookup_order(metadata: dict[str, str], revision: str | None) -> None:
    assert make_event(metadata=metadata).revision() == revision


@pytest.mark.parametrize(
    ("revision", "sha"),
    [
        pytest.param("master@sha1:" + "A" * 40, "a" * 40, id="flux-v1"),
        pytest.param("sha256:" + "b" * 64, "b" * 64, id="digest-only"),
        pytest.param("main/" + "c" * 40, "c" * 40, id="legacy"),
        pytest.param("d" * 40, "d" * 40, id="bare"),
        pytest.param("v1.0.0@md5:" + "e" * 40, None, id="unknown-algorithm"),
        pytest.param("main@sha1:short", None, id="not-a-hash"),
    ],
)
def test_commit_hash_from_revision(revision: str, sha: str | None) -> None:
    assert extract_hash(revision) == sha


@pytest.mark.parametrize(
    ("address", "base", "owner", "name"),
    [
        pytest.param(
            "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git",
            "http://gitea-svc.default.svc.cluster.local:3000",
            "k3s",
            "k3s-private",
            id="seed-scenario-url",
        ),
        pytest.param(
            "https://git.example/sub/org/repo/",
            "https://git.example/sub",
            "org",
            "repo",
            id="sub-path-install",
        ),
        pytest.param(
            "ssh://git@git.example:2222/org/repo.git",
            "https://git.example",
            "org",
            "repo",
            id="ssh",
        ),
        pytest.param(
            "git@github.com:org/repo.git", "https://github.com", "org", "repo", id="scp-like"
        ),
        pytest.param(
            "https://user:pw@git.example/org/repo",
            "https://git.example",
            "org",
            "repo",
            id="credentials-dropped",
        ),
    ],
)
def test_repository_address(address: str, base: str, owner: str, name: str) -> None:
    repository = parse_repository_address(address, provider_type="gitea")
    assert (repository.base_url, repository.owner, repository.name) == (base, owner, name)


def test_a_recorded_event_is_forwarded_field_for_field_as_notification_controller_does() -> None:
    recorded = Recorded(
        regarding={
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "name": "webapp",
            "namespace": "apps",
            "uid": "7d0cdc51",
            "resourceVersion": "4711",
        },
        type="Normal",
        reason="ReconciliationSucceeded",
        message="Reconciliation finished in 1s, next run in 10m",
        action="Reconcile",
        metadata={"kustomize.toolkit.fluxcd.io/revision": "main@sha1:731f7ead"},
        timestamp=1714564800.0,
    )
    payload = event_from(recorded).to_json_dict()
    # fluxcd/pkg apis/event Event: these keys, in this order, and nothing else (no `action`).
    assert payload == {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "apps",
            "name": "webapp",
            "uid": "7d0cdc51",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "4711",
        },
        "severity": "info",
        "timestamp": "2024-05-01T12:00:00Z",
        "message": "Reconciliation finished in 1s, next run in 10m",
        "reason": "ReconciliationSucceeded",
        "metadata": {"revision": "main@sha1:731f7ead"},
        "reportingController": "kustomize-controller",
        "reportingInstance": socket.gethostname(),
    }
    assert list(payload) == [
        "involvedObject",
        "severity",
        "timestamp",
        "message",
        "reason",
        "metadata",
        "reportingController",
        "reportingInstance",
    ]
    assert list(payload["involvedObject"]) == [
        "kind",
        "namespace",
        "name",
        "uid",
        "apiVersion",
        "resourceVersion",
    ]
