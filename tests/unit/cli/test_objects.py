"""How objects read on the command line: flux's columns, selectors, events, reconcile verdicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fluxd.cli import kinds
from fluxd.cli.events import event_row, is_about_fluxd, last_seen, parse_for
from fluxd.cli.failures import UsageError
from fluxd.cli.listing import header, parse_status_selector, row, status_matches
from fluxd.cli.reconciling import handled

SHA = "16cfcc0b9066b3234dda29927ac1c19860d9663f"


def _obj(
    *,
    ready: str | None = "True",
    message: str = "",
    suspend: bool = False,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready, "message": message}]
    return {
        "metadata": {"name": "app", "namespace": "flux-system"},
        "spec": {"suspend": suspend},
        "status": {"conditions": conditions, **(status or {})},
    }


def test_git_repository_row() -> None:
    obj = _obj(
        message=f"stored artifact for revision 'master@sha1:{SHA}'",
        status={"artifact": {"revision": f"master@sha1:{SHA}"}},
    )
    assert header(kinds.GIT_REPOSITORIES, all_namespaces=False, wide=False) == [
        "Name",
        "Revision",
        "Suspended",
        "Ready",
        "Message",
    ]
    assert row(kinds.GIT_REPOSITORIES, obj, all_namespaces=False, wide=False) == [
        "app",
        "master@sha1:16cfcc0b",
        "False",
        "True",
        "stored artifact for revision 'master@sha1:16cfcc0b'",
    ]


def test_kustomization_row_under_all_namespaces() -> None:
    obj = _obj(ready="False", message="boom", suspend=True, status={"lastAppliedRevision": "v1"})
    assert header(kinds.KUSTOMIZATIONS, all_namespaces=True, wide=True) == [
        "Namespace",
        "Name",
        "Revision",
        "Suspended",
        "Ready",
        "Message",
        "Age",
    ]
    cells = row(kinds.KUSTOMIZATIONS, obj, all_namespaces=True, wide=True, with_kind=True)
    assert cells == ["flux-system", "kustomization/app", "v1", "True", "False", "boom", "<unknown>"]


def test_an_object_never_reconciled_is_waiting() -> None:
    assert row(kinds.RECEIVERS, _obj(ready=None), all_namespaces=False, wide=False) == [
        "app",
        "False",
        "False",
        "waiting to be reconciled",
    ]


def test_alerts_and_providers_without_status_read_ready_as_in_flux() -> None:
    bare = {"metadata": {"name": "slack"}, "spec": {}}
    assert row(kinds.PROVIDERS, bare, all_namespaces=False, wide=False) == [
        "slack",
        "True",
        "Provider is Ready",
    ]
    assert row(kinds.ALERTS, bare, all_namespaces=False, wide=False)[1:] == [
        "False",
        "True",
        "Alert is Ready",
    ]


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        pytest.param("ready=false", True, id="match"),
        pytest.param("Ready=False", True, id="case-insensitive"),
        pytest.param("ready=true", False, id="other-status"),
        pytest.param("stalled=true", False, id="absent-condition"),
    ],
)
def test_status_selector(selector: str, matches: bool) -> None:
    parsed = parse_status_selector(selector)
    assert status_matches(_obj(ready="False"), parsed) is matches


def test_status_selector_needs_type_and_status() -> None:
    with pytest.raises(UsageError, match="type=status"):
        parse_status_selector("ready")


@pytest.mark.parametrize(
    ("status", "stamp", "expected"),
    [
        pytest.param({"lastHandledReconcileAt": "t1"}, "t1", True, id="handled"),
        pytest.param({"lastHandledReconcileAt": "t0"}, "t1", False, id="older-request"),
        pytest.param({}, "t1", False, id="never-handled"),
    ],
)
def test_reconcile_is_handled_when_the_stamp_comes_back(
    status: dict[str, Any], stamp: str, expected: bool
) -> None:
    assert handled(_obj(status=status), stamp) is expected


def test_reconcile_is_not_handled_while_ready_is_unknown() -> None:
    assert not handled(_obj(ready="Unknown", status={"lastHandledReconcileAt": "t"}), "t")


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "flux-system", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "involvedObject": {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "name": "repo",
            "namespace": "flux-system",
        },
        "type": "Normal",
        "reason": "NewArtifact",
        "message": "stored artifact\n",
        **fields,
    }


def test_event_row_uses_the_latest_of_its_times() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    event = _event(
        eventTime="2024-05-01T11:00:00.000000Z",
        series={"count": 3, "lastObservedTime": "2024-05-01T11:59:30.000000Z"},
    )
    assert event_row(event, all_namespaces=False, now=now) == [
        "30s",
        "Normal",
        "NewArtifact",
        "GitRepository/repo",
        "stored artifact",
    ]
    assert event_row(_event(), all_namespaces=True, now=now)[:2] == ["flux-system", "120m"]


def test_last_seen_falls_back_to_creation() -> None:
    assert last_seen(_event()) == datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def test_only_fluxd_kinds_are_events_about_fluxd() -> None:
    assert is_about_fluxd(_event())
    pod = {"involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}
    assert not is_about_fluxd(pod)
    lookalike = {"involvedObject": {"apiVersion": "example.com/v1", "kind": "Kustomization"}}
    assert not is_about_fluxd(lookalike)


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        pytest.param("Kustomization/apps", kinds.KUSTOMIZATIONS, "apps", id="kind"),
        pytest.param("ks/apps", kinds.KUSTOMIZATIONS, "apps", id="short-name"),
        pytest.param("gitrepositories/repo", kinds.GIT_REPOSITORIES, "repo", id="plural"),
    ],
)
def test_for_flag(text: str, kind: kinds.CliKind, name: str) -> None:
    assert parse_for(text) == (kind, name)


@pytest.mark.parametrize("text", ["Deployment/x", "Kustomization", "Kustomization/"])
def test_for_flag_refuses_what_fluxd_does_not_serve(text: str) -> None:
    with pytest.raises(UsageError, match="Kind/name"):
        parse_for(text)
