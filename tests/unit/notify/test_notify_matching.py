"""Alert selection and enrichment, as notification-controller decides it."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.notify import alert_selects, compose_notification, route
from fluxd.notify.event import Event, ObjectReference
from tests.unit.notify.notify_services import make_event


def alert(namespace: str = "flux-system", **spec: Any) -> dict[str, Any]:
    spec.setdefault("providerRef", {"name": "chat"})
    spec.setdefault("eventSources", [{"kind": "Kustomization", "name": "*"}])
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Alert",
        "metadata": {"name": "on-call", "namespace": namespace},
        "spec": spec,
    }


def provider(namespace: str = "flux-system", name: str = "chat", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Provider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "slack", **spec},
    }


INFO = make_event()
ERROR = make_event(severity="error", message="kustomize build failed: waiting on socket")
LABELLED = make_event(labels={"team": "edge", "tier": "infra"})
APPLIED = {
    "kustomize.toolkit.fluxcd.io/name": "realm-ix",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}
ROLL_FAILED = Event(
    involved_object=ObjectReference(
        kind="Deployment", name="realm-ix", namespace="realm", api_version="apps/v1"
    ),
    severity="error",
    message="Update for 'realm-ix' of type 'Deployment' in namespace 'realm' failed",
    reason="ReloadFail",
    reporting_controller="fluxd",
    labels=APPLIED,
)


@pytest.mark.parametrize(
    ("spec", "event", "selected"),
    [
        pytest.param({}, INFO, True, id="wildcard-name-same-namespace"),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "realm-ix"}]},
            INFO,
            True,
            id="exact-name",
        ),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "other"}]},
            INFO,
            False,
            id="other-name",
        ),
        pytest.param(
            {"eventSources": [{"kind": "GitRepository", "name": "*"}]},
            INFO,
            False,
            id="other-kind",
        ),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "apps"}]},
            INFO,
            False,
            id="explicit-other-namespace",
        ),
        pytest.param({"eventSeverity": "info"}, ERROR, True, id="info-alert-gets-errors"),
        pytest.param({"eventSeverity": "error"}, INFO, False, id="error-alert-skips-info"),
        pytest.param({"eventSeverity": "error"}, ERROR, True, id="error-alert-gets-errors"),
        pytest.param({"exclusionList": ["waiting.*socket"]}, ERROR, False, id="excluded"),
        pytest.param({"inclusionList": ["^Reconciliation"]}, INFO, True, id="included"),
        pytest.param({"inclusionList": ["^Reconciliation"]}, ERROR, False, id="not-included"),
        pytest.param(
            {"inclusionList": [".*"], "exclusionList": ["build failed"]},
            ERROR,
            False,
            id="exclusion-beats-inclusion",
        ),
        pytest.param(
            {"exclusionList": ["(unclosed", "socket"]},
            ERROR,
            False,
            id="broken-regex-ignored-others-apply",
        ),
        pytest.param({"suspend": True}, INFO, False, id="suspended-alert"),
        pytest.param(
            {
                "eventSources": [
                    {"kind": "Kustomization", "name": "*", "matchLabels": {"team": "edge"}}
                ]
            },
            LABELLED,
            True,
            id="labels-match",
        ),
        pytest.param(
            {
                "eventSources": [
                    {"kind": "Kustomization", "name": "*", "matchLabels": {"team": "web"}}
                ]
            },
            LABELLED,
            False,
            id="labels-differ",
        ),
        pytest.param(
            {
                "eventSources": [
                    {"kind": "Kustomization", "name": "*", "matchLabels": {"team": "edge"}}
                ]
            },
            INFO,
            False,
            id="labels-unknown",
        ),
        pytest.param(
            {
                "eventSources": [
                    {"kind": "Kustomization", "name": "realm-ix", "matchLabels": {"x": "y"}}
                ]
            },
            INFO,
            False,
            id="labels-apply-to-named-source",
        ),
        pytest.param(
            {
                "eventSources": [
                    {"kind": "GitRepository", "name": "*"},
                    {"kind": "Kustomization", "name": "realm-ix"},
                ]
            },
            INFO,
            True,
            id="any-source-matches",
        ),
        pytest.param({}, ROLL_FAILED, True, id="workload-event-via-its-kustomization"),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "realm-ix"}]},
            ROLL_FAILED,
            True,
            id="workload-event-via-its-named-kustomization",
        ),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "other"}]},
            ROLL_FAILED,
            False,
            id="workload-event-of-another-kustomization",
        ),
        pytest.param(
            {"eventSources": [{"kind": "Kustomization", "name": "*", "namespace": "realm"}]},
            ROLL_FAILED,
            False,
            id="workload-event-matched-on-the-kustomizations-namespace",
        ),
        pytest.param(
            {"eventSources": [{"kind": "GitRepository", "name": "*"}]},
            ROLL_FAILED,
            False,
            id="workload-event-not-for-other-kinds",
        ),
        pytest.param(
            {},
            Event(
                involved_object=ObjectReference(
                    kind="Deployment", name="x", namespace="flux-system"
                ),
                severity="error",
                message="not applied by fluxd",
                reason="ReloadFail",
                reporting_controller="fluxd",
                labels={},
            ),
            False,
            id="workload-event-without-kustomization",
        ),
    ],
)
def test_alert_selection(spec: dict[str, Any], event: Event, selected: bool) -> None:
    assert alert_selects(alert(**spec), event) is selected


def test_alert_in_another_namespace_must_name_the_source_namespace() -> None:
    elsewhere = alert(namespace="monitoring")
    assert not alert_selects(elsewhere, INFO)
    explicit = alert(
        namespace="monitoring",
        eventSources=[{"kind": "Kustomization", "name": "*", "namespace": "flux-system"}],
    )
    assert alert_selects(explicit, INFO)


def test_alert_metadata_and_summary_never_override_the_event() -> None:
    event = make_event(metadata={"revision": "main@sha1:abc", "env": "from-event"})
    enriched = compose_notification(
        alert(
            summary="Edge cluster ccs",
            eventMetadata={"env": "from-alert", "cluster": "ccs"},
        ),
        event,
    )
    assert enriched.metadata == {
        "revision": "main@sha1:abc",
        "env": "from-event",
        "cluster": "ccs",
        "summary": "Edge cluster ccs",
    }
    assert event.metadata == {"revision": "main@sha1:abc", "env": "from-event"}


def test_route_resolves_providers_and_skips_suspended_ones() -> None:
    alerts = [
        alert(summary="to chat"),
        {
            **alert(),
            "metadata": {"name": "muted", "namespace": "flux-system"},
            "spec": {**alert()["spec"], "providerRef": {"name": "paused"}},
        },
        {
            **alert(),
            "metadata": {"name": "dangling", "namespace": "flux-system"},
            "spec": {**alert()["spec"], "providerRef": {"name": "missing"}},
        },
    ]
    providers = {
        ("flux-system", "chat"): provider(),
        ("flux-system", "paused"): provider(name="paused", suspend=True),
    }
    [dispatch] = route(INFO, alerts=alerts, providers=providers)
    assert dispatch.provider["metadata"]["name"] == "chat"
    assert dispatch.notification.metadata["summary"] == "to chat"


def test_route_can_forbid_cross_namespace_events() -> None:
    watcher = alert(
        namespace="monitoring",
        eventSources=[{"kind": "Kustomization", "name": "*", "namespace": "flux-system"}],
    )
    providers = {("monitoring", "chat"): provider(namespace="monitoring")}
    assert len(route(INFO, alerts=[watcher], providers=providers)) == 1
    assert route(INFO, alerts=[watcher], providers=providers, no_cross_namespace_refs=True) == []
