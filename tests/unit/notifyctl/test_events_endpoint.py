"""The events endpoint over real HTTP: what a Flux controller posting its events gets back."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxd.aio import FakeClock
from fluxd.controllers.notification import AlertDispatcher, ExternalEvents, NotificationRegistry
from fluxd.kube.client import Kube
from fluxd.notify import DeliveryQueue, Event
from fluxd.server.app import Health, HttpServer
from fluxd.server.events import MAX_EVENT_BYTES, EventIntake, decode_event
from fluxd.settings import Settings
from tests.unit.notifyctl.notifyctl_fakes import GIT_REPOSITORY, FakeKube, RecordedEvents

INTERVAL = 300.0


def flux_event(**changes: Any) -> dict[str, Any]:
    """An event as kustomize-controller's recorder (fluxcd/pkg runtime/events) posts it."""
    event: dict[str, Any] = {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "uid": "7d0cdc51-ddcf-4743-b223-83ca5c699632",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "56921",
        },
        "severity": "info",
        "timestamp": "2026-12-01T14:00:00Z",
        "message": "Deployment/default/podinfo configured",
        "reason": "ReconciliationSucceeded",
        "metadata": {
            "kustomize.toolkit.fluxcd.io/revision": "main@sha1:" + "a" * 40,
            "kustomize.toolkit.fluxcd.io/token": "b" * 40,
            "kustomize.toolkit.fluxcd.io/checksum": "c" * 40,
            "source.toolkit.fluxcd.io/revision": "not this object's group",
        },
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7f5d6b9c4-x2x9q",
    }
    event.update(changes)
    return event


@dataclass
class Sink:
    answer: int | None = 1
    events: list[Event] = field(default_factory=list)

    async def __call__(self, event: Event) -> int | None:
        self.events.append(event)
        return self.answer


@dataclass
class Endpoint:
    client: TestClient[web.Request, web.Application]
    sink: Sink
    clock: FakeClock

    async def post(self, body: bytes | dict[str, Any], path: str = "/") -> tuple[int, str]:
        data = io.BytesIO(json.dumps(body).encode() if isinstance(body, dict) else body)
        async with self.client.post(path, data=data) as response:
            return response.status, await response.text()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    sink = Sink()
    clock = FakeClock()
    intake = EventIntake(sink=sink, rate_limit_interval=INTERVAL, clock=clock)
    server = HttpServer(settings=Settings(), health=Health(), events=intake)
    async with TestClient(TestServer(server.events_app(), host="127.0.0.1")) as client:
        yield Endpoint(client, sink, clock)


async def test_an_event_is_accepted_and_routed_as_notification_controller_cleans_it(
    endpoint: Endpoint,
) -> None:
    assert await endpoint.post(flux_event()) == (202, "")
    [event] = endpoint.sink.events
    assert event.involved_object.display_name() == "kustomization/apps.flux-system"
    assert event.reason == "ReconciliationSucceeded"
    assert event.reporting_controller == "kustomize-controller"
    # Only the object's group is kept, without prefix; checksum and the dedup token never leave.
    assert dict(event.metadata) == {"revision": "main@sha1:" + "a" * 40}


async def test_metadata_from_the_objects_event_annotations_is_forwarded_below_its_own(
    endpoint: Endpoint,
) -> None:
    posted = flux_event()
    posted["metadata"] |= {
        "event.toolkit.fluxcd.io/env": "staging",
        "event.toolkit.fluxcd.io/revision": "annotated",
    }
    assert (await endpoint.post(posted))[0] == 202
    [event] = endpoint.sink.events
    assert dict(event.metadata) == {"revision": "main@sha1:" + "a" * 40, "env": "staging"}


async def test_events_are_accepted_on_any_path_as_flux_serves_them(endpoint: Endpoint) -> None:
    assert (await endpoint.post(flux_event(), path="/anything"))[0] == 202


async def test_an_event_no_alert_selects_is_accepted_quietly(endpoint: Endpoint) -> None:
    endpoint.sink.answer = 0
    assert await endpoint.post(flux_event()) == (202, "")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"[1, 2]", "JSON object", id="not-an-object"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(flux_event(involvedObject="apps"), "involvedObject", id="object-not-a-map"),
        pytest.param(
            flux_event(involvedObject={"kind": 3}), "involvedObject.kind", id="kind-not-a-string"
        ),
        pytest.param(flux_event(message=["a"]), "message", id="message-not-a-string"),
        pytest.param(flux_event(metadata={"a": 1}), "metadata", id="metadata-not-strings"),
        pytest.param(flux_event(metadata=["a"]), "metadata", id="metadata-not-a-map"),
        pytest.param(flux_event(timestamp=12), "timestamp", id="timestamp-not-a-string"),
    ],
)
async def test_a_malformed_body_gets_400_with_the_reason_and_routes_nothing(
    endpoint: Endpoint, body: bytes | dict[str, Any], reason: str
) -> None:
    status, text = await endpoint.post(body)
    assert status == 400
    assert reason in text
    assert endpoint.sink.events == []


async def test_a_body_over_three_mebibytes_gets_413(endpoint: Endpoint) -> None:
    status, _ = await endpoint.post(b" " * (MAX_EVENT_BYTES + 1))
    assert status == 413
    assert endpoint.sink.events == []


async def test_the_same_event_is_rate_limited_for_the_interval_then_accepted_again(
    endpoint: Endpoint,
) -> None:
    assert (await endpoint.post(flux_event()))[0] == 202
    assert (await endpoint.post(flux_event()))[0] == 429
    endpoint.clock.advance(INTERVAL)
    assert (await endpoint.post(flux_event()))[0] == 202
    assert len(endpoint.sink.events) == 2


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"message": "another message"}, id="message"),
        pytest.param(
            {"metadata": {"kustomize.toolkit.fluxcd.io/revision": "main@sha1:" + "d" * 40}},
            id="revision",
        ),
        pytest.param({"metadata": {"kustomize.toolkit.fluxcd.io/token": "e" * 40}}, id="token"),
        pytest.param(
            {"involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "b"}},
            id="object",
        ),
    ],
)
async def test_events_that_differ_in_a_keyed_field_are_not_rate_limited(
    endpoint: Endpoint, change: dict[str, Any]
) -> None:
    assert (await endpoint.post(flux_event()))[0] == 202
    assert (await endpoint.post(flux_event(**change)))[0] == 202


async def test_a_replica_that_is_not_leading_asks_the_sender_to_retry(endpoint: Endpoint) -> None:
    endpoint.sink.answer = None
    status, text = await endpoint.post(flux_event())
    assert status == 503
    assert "leader" in text


class CapturingDispatcher(AlertDispatcher):
    """Routes nothing; keeps what it was given."""

    seen: list[Event]

    def dispatch(self, event: Event) -> int | None:
        self.seen.append(event)
        return 1


async def test_matchlabels_of_a_posted_event_are_read_from_its_object(
    kube: FakeKube, recorded: RecordedEvents
) -> None:
    # Flux's recorders send no labels; notification-controller reads the object for matchLabels.
    kube.add(
        GIT_REPOSITORY,
        {"metadata": {"name": "podinfo", "namespace": "flux-system", "labels": {"team": "edge"}}},
    )
    registry = NotificationRegistry(kube=cast(Kube, kube), recorder=recorded.recorder)
    registry.alerts[("flux-system", "edge")] = {
        "metadata": {"name": "edge", "namespace": "flux-system"},
        "spec": {
            "providerRef": {"name": "chat"},
            "eventSources": [
                {"kind": "GitRepository", "name": "*", "matchLabels": {"team": "edge"}}
            ],
        },
    }
    dispatcher = CapturingDispatcher(registry=registry, no_cross_namespace_refs=False)
    dispatcher.seen = []
    dispatcher.delivery = cast(DeliveryQueue, object())
    sink = ExternalEvents(kube=cast(Kube, kube), dispatcher=dispatcher)
    posted = flux_event(
        involvedObject={
            "kind": "GitRepository",
            "namespace": "flux-system",
            "name": "podinfo",
            "apiVersion": GIT_REPOSITORY.api_version,
        }
    )
    event, _ = decode_event(json.dumps(posted).encode())
    assert event.labels is None
    assert await sink(event) == 1
    assert [e.labels for e in dispatcher.seen] == [{"team": "edge"}]
