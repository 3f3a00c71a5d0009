"""Every field of the Alert CRD does what notification-controller's event server does with it.

The table names the field each case exercises; a field of the CRD with no
case fails ``test_every_alert_field_has_a_case``, so a field added to the
schema cannot go untested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import pytest

from fluxd.api.crds import custom_resource
from fluxd.notify import route
from fluxd.notify.event import Event
from tests.unit.notify.notify_services import make_event

NS = "flux-system"
PROVIDERS = {
    (NS, "chat"): {"kind": "Provider", "metadata": {"name": "chat", "namespace": NS}, "spec": {}},
    (NS, "pager"): {
        "kind": "Provider",
        "metadata": {"name": "pager", "namespace": NS},
        "spec": {},
    },
}
EVENT = make_event()
LABELLED = make_event(labels={"team": "edge"})
OTHER_NAMESPACE = make_event(namespace="apps")
FAILURE = make_event(severity="error", message="health check failed after 5m0s")


class Case(NamedTuple):
    field: str
    spec: dict[str, Any]
    event: Event
    #: The Provider sent through and the metadata the Alert added to or changed in the
    #: event's; None when nothing is sent.
    sent: tuple[str, Mapping[str, str]] | None


def source(**fields: Any) -> dict[str, Any]:
    return {"kind": "Kustomization", "name": "*", **fields}


CASES = [
    pytest.param(
        Case("spec.providerRef", {"providerRef": {"name": "pager"}}, make_event(), ("pager", {})),
        id="providerRef-picks-the-provider",
    ),
    pytest.param(
        Case("spec.providerRef.name", {"providerRef": {"name": "missing"}}, make_event(), None),
        id="providerRef-name-unknown-sends-nothing",
    ),
    pytest.param(
        Case("spec.eventSeverity", {"eventSeverity": "error"}, make_event(), None),
        id="eventSeverity-error-skips-info",
    ),
    pytest.param(
        Case("spec.eventSeverity", {"eventSeverity": "info"}, FAILURE, ("chat", {})),
        id="eventSeverity-info-takes-errors",
    ),
    pytest.param(
        Case("spec.eventSources", {"eventSources": []}, make_event(), None),
        id="eventSources-empty-selects-nothing",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].apiVersion",
            {"eventSources": [source(apiVersion="kustomize.toolkit.fluxcd.io/v1beta2")]},
            make_event(),
            ("chat", {}),
        ),
        id="eventSources-apiVersion-is-not-compared",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].kind",
            {"eventSources": [{"kind": "GitRepository", "name": "*"}]},
            make_event(),
            None,
        ),
        id="eventSources-kind-other",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].name",
            {"eventSources": [source(name="realm-ix")]},
            make_event(),
            ("chat", {}),
        ),
        id="eventSources-name-exact",
    ),
    pytest.param(
        Case("spec.eventSources[].name", {"eventSources": [source(name="other")]}, EVENT, None),
        id="eventSources-name-other",
    ),
    pytest.param(
        Case("spec.eventSources[].namespace", {}, OTHER_NAMESPACE, None),
        id="eventSources-namespace-defaults-to-the-alerts",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].namespace",
            {"eventSources": [source(namespace="apps")]},
            OTHER_NAMESPACE,
            ("chat", {}),
        ),
        id="eventSources-namespace-explicit",
    ),
    pytest.param(
        # Flux compares the namespace literally: only the name takes the '*' wildcard.
        Case(
            "spec.eventSources[].namespace",
            {"eventSources": [source(namespace="*")]},
            OTHER_NAMESPACE,
            None,
        ),
        id="eventSources-namespace-star-is-not-a-wildcard",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].matchLabels",
            {"eventSources": [source(matchLabels={"team": "edge"})]},
            LABELLED,
            ("chat", {}),
        ),
        id="eventSources-matchLabels-match",
    ),
    pytest.param(
        Case(
            "spec.eventSources[].matchLabels",
            {"eventSources": [source(matchLabels={"team": "web"})]},
            LABELLED,
            None,
        ),
        id="eventSources-matchLabels-differ",
    ),
    pytest.param(
        # notification-controller applies matchLabels whatever the name.
        Case(
            "spec.eventSources[].matchLabels",
            {"eventSources": [source(name="realm-ix", matchLabels={"team": "web"})]},
            LABELLED,
            None,
        ),
        id="eventSources-matchLabels-apply-to-a-named-source",
    ),
    pytest.param(
        Case("spec.inclusionList", {"inclusionList": ["^health"]}, FAILURE, ("chat", {})),
        id="inclusionList-match",
    ),
    pytest.param(
        Case("spec.inclusionList", {"inclusionList": ["^health"]}, make_event(), None),
        id="inclusionList-no-match",
    ),
    pytest.param(
        Case(
            "spec.exclusionList",
            {"inclusionList": [".*"], "exclusionList": ["after 5m"]},
            FAILURE,
            None,
        ),
        id="exclusionList-wins",
    ),
    pytest.param(
        Case(
            "spec.eventMetadata",
            {"eventMetadata": {"cluster": "edge-1", "revision": "alert's"}},
            EVENT,
            ("chat", {"cluster": "edge-1"}),
        ),
        id="eventMetadata-added-never-over-the-objects-own",
    ),
    pytest.param(
        Case(
            "spec.summary",
            {"summary": "edge cluster", "eventMetadata": {"summary": "older"}},
            make_event(),
            ("chat", {"summary": "edge cluster"}),
        ),
        id="summary-sent-as-metadata-over-eventMetadata",
    ),
    pytest.param(
        Case("spec.suspend", {"suspend": True}, make_event(), None),
        id="suspend-sends-nothing",
    ),
]


def alert(spec: Mapping[str, Any]) -> dict[str, Any]:
    full = {"providerRef": {"name": "chat"}, "eventSources": [source()], **spec}
    return {"kind": "Alert", "metadata": {"name": "on-call", "namespace": NS}, "spec": full}


@pytest.mark.parametrize("case", CASES)
def test_alert_field(case: Case) -> None:
    dispatches = route(case.event, alerts=[alert(case.spec)], providers=PROVIDERS)
    original = case.event.metadata
    sent = [
        (
            str(d.provider["metadata"]["name"]),
            {k: v for k, v in d.notification.metadata.items() if original.get(k) != v},
        )
        for d in dispatches
    ]
    assert sent == ([] if case.sent is None else [(case.sent[0], dict(case.sent[1]))])


def _paths(schema: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for name, child in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}"
        yield path
        items = child.get("items") if child.get("type") == "array" else None
        yield from _paths(
            items if isinstance(items, dict) else child, f"{path}[]" if items else path
        )


def test_every_alert_field_has_a_case() -> None:
    schema = custom_resource(
        api_version="notification.toolkit.fluxcd.io/v1beta3", kind="Alert"
    ).openapi_schema()
    fields = set(_paths(schema["properties"]["spec"], "spec"))
    covered = {param.values[0].field for param in CASES}  # type: ignore[union-attr]
    assert sorted(fields - covered) == []
