"""Providers, Alerts and dispatch without a cluster: what reaches a provider, what is reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest

from fluxd.controllers.notification import (
    ALERT,
    PROVIDER,
    AlertDispatcher,
    NotificationRegistry,
    ProviderState,
    event_from,
    observe_delivery,
)
from fluxd.kube.client import Kube
from fluxd.kube.events import Recorded
from fluxd.kube.resources import SECRET
from fluxd.metrics import NOTIFICATIONS
from fluxd.notify import DeliveryQueue, Event, ProviderConfig, RateLimit
from tests.unit.notifyctl.notifyctl_fakes import FakeKube, RecordedEvents, secret

NS = "flux-system"


def provider_object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": PROVIDER.api_version,
        "kind": "Provider",
        "metadata": {"name": name, "namespace": NS, "uid": "0c5e1c1a-1111", "generation": 1},
        "spec": spec,
    }


def alert_object(name: str, provider: str, *, severity: str = "info") -> dict[str, Any]:
    return {
        "apiVersion": ALERT.api_version,
        "kind": "Alert",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "providerRef": {"name": provider},
            "eventSeverity": severity,
            "eventSources": [{"kind": "GitRepository", "name": "*"}],
        },
    }


def recorded_event(
    *, type_: str = "Warning", metadata: dict[str, str] | None = None, kind: str = "GitRepository"
) -> Recorded:
    return Recorded(
        regarding={
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": kind,
            "name": "k3s-private-repo",
            "namespace": NS,
            "uid": "9f1",
        },
        type=type_,
        reason="GitOperationFailed",
        message="failed to checkout and determine revision",
        action="Reconcile",
        metadata=metadata or {},
        labels={"team": "edge"},
    )


@dataclass
class FakeSender:
    config: ProviderConfig
    rate_limits: tuple[RateLimit, ...] = ()
    sent: list[Event] = field(default_factory=list)

    async def send(self, event: Event) -> None:
        self.sent.append(event)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def registry(kube: FakeKube, recorded: RecordedEvents) -> NotificationRegistry:
    return NotificationRegistry(kube=cast(Kube, kube), recorder=recorded.recorder)


# -- converting events ----------------------------------------------------------


def test_recorded_event_becomes_a_flux_event() -> None:
    event = event_from(
        recorded_event(
            metadata={
                "source.toolkit.fluxcd.io/revision": "main@sha1:" + "a" * 40,
                "checksum": "x",
                "summary": "edge cluster",
            }
        )
    )
    assert event.severity == "error"
    assert event.reporting_controller == "source-controller"
    assert event.involved_object.display_name() == f"gitrepository/k3s-private-repo.{NS}"
    assert event.metadata == {"revision": "main@sha1:" + "a" * 40, "summary": "edge cluster"}
    assert event.labels == {"team": "edge"}
    assert event_from(recorded_event(type_="Normal")).severity == "info"


# -- providers and alerts -----------------------------------------------------


async def test_provider_with_its_secret_is_ready_and_its_alert_is_quiet(
    kube: FakeKube,
    registry: NotificationRegistry,
    recorded: RecordedEvents,
    session: aiohttp.ClientSession,
) -> None:
    kube.add(SECRET, secret(NS, "robot", {"address": "http://127.0.0.1:9/robot", "token": "SEC"}))
    registry.session = session
    await registry.set_alert(alert_object("failures", "dingtalk"))
    assert len(recorded.of("Alert", "failures")) == 1  # provider not there yet

    state = await registry.load_provider(
        provider_object("dingtalk", {"type": "dingtalk", "secretRef": {"name": "robot"}})
    )

    assert state.sender is not None and state.problem is None
    assert recorded.of("Provider", "dingtalk") == []
    assert len(recorded.of("Alert", "failures")) == 1  # nothing new once it resolves


@pytest.mark.parametrize(
    ("spec", "secrets", "expected"),
    [
        pytest.param(
            {"type": "dingtalk", "secretRef": {"name": "robot"}},
            {},
            "secretRef 'flux-system/robot' not found",
            id="missing-secret",
        ),
        pytest.param(
            {"type": "gitea", "address": "http://127.0.0.1:9/o/r", "secretRef": {"name": "api"}},
            {"api": {"username": "x"}},
            "token",
            id="gitea-without-token",
        ),
        pytest.param({"type": "dingtalk"}, {}, "no address", id="no-address"),
        pytest.param(
            {
                "type": "github",
                "address": "https://github.com/o/r",
                "secretRef": {"name": "api"},
                "commitStatusExpr": "'fluxd/' + event.involvedObject.",
            },
            {"api": {"token": "ghp_token"}},
            "spec.commitStatusExpr: failed to compile expression",
            id="commit-status-expr-does-not-compile",
        ),
    ],
)
async def test_broken_provider_is_reported_once_on_itself_and_on_its_alerts(
    kube: FakeKube,
    registry: NotificationRegistry,
    recorded: RecordedEvents,
    session: aiohttp.ClientSession,
    spec: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    expected: str,
) -> None:
    for name, data in secrets.items():
        kube.add(SECRET, secret(NS, name, data))
    registry.session = session
    provider = provider_object("chat", spec)
    registry.loading.add((NS, "chat"))
    await registry.set_alert(alert_object("failures", "chat"))

    await registry.load_provider(provider)
    await registry.load_provider(provider)  # a resync finds the same problem

    provider_events = recorded.of("Provider", "chat")
    assert [e.type for e in provider_events] == ["Warning"]
    assert expected in provider_events[0].message
    alert_events = recorded.of("Alert", "failures")
    assert len(alert_events) == 1
    assert "is not ready" in alert_events[0].message


# -- dispatch ------------------------------------------------------------------


def dispatcher_with(
    registry: NotificationRegistry, senders: dict[str, tuple[str, FakeSender | None]]
) -> AlertDispatcher:
    for name, (provider_type, sender) in senders.items():
        obj = provider_object(name, {"type": provider_type})
        registry.providers[(NS, name)] = ProviderState(
            obj, sender, None if sender else "broken on purpose"
        )
        registry.alerts[(NS, f"to-{name}")] = alert_object(f"to-{name}", name)
    return AlertDispatcher(registry=registry, no_cross_namespace_refs=False)


def sender(provider_type: str, name: str) -> FakeSender:
    return FakeSender(ProviderConfig(provider_type=provider_type, name=name, namespace=NS))


async def test_events_reach_every_matching_provider_without_waiting(
    registry: NotificationRegistry,
) -> None:
    slack, dingtalk = sender("slack", "slack"), sender("dingtalk", "dingtalk")
    dispatcher = dispatcher_with(
        registry, {"slack": ("slack", slack), "dingtalk": ("dingtalk", dingtalk)}
    )
    async with DeliveryQueue(observer=observe_delivery) as delivery:
        dispatcher.delivery = delivery
        dispatcher(recorded_event())
        assert slack.sent == []  # only queued: the reconcile that recorded it goes on at once
        await delivery.join()
    assert [e.reason for e in slack.sent] == ["GitOperationFailed"]
    assert [e.reason for e in dingtalk.sent] == ["GitOperationFailed"]


async def test_nothing_is_sent_when_not_the_leader(registry: NotificationRegistry) -> None:
    slack = sender("slack", "slack")
    dispatcher = dispatcher_with(registry, {"slack": ("slack", slack)})
    dispatcher(recorded_event())
    assert slack.sent == []


async def test_commit_status_provider_gets_status_updates_failures_and_commits_only(
    registry: NotificationRegistry,
) -> None:
    """Flux's rule: a commit status provider is sent commit status updates, failures and
    events naming a commit; other events (a source's new artifact) are no status."""
    gitea = sender("gitea", "gitea")
    dispatcher = dispatcher_with(registry, {"gitea": ("gitea", gitea)})
    revision = "main@sha1:" + "b" * 40
    async with DeliveryQueue() as delivery:
        dispatcher.delivery = delivery
        dispatcher(recorded_event())  # a failure, but with no commit to put a status on
        dispatcher(recorded_event(type_="Normal", metadata={"revision": revision}))
        dispatcher(
            recorded_event(
                type_="Normal", metadata={"revision": revision, "commit_status": "update"}
            )
        )
        dispatcher(recorded_event(metadata={"revision": revision}))
        dispatcher(recorded_event(type_="Normal", metadata={"commit": "c" * 40}))
        await delivery.join()
    assert [(e.severity, e.revision()) for e in gitea.sent] == [
        ("info", revision),
        ("error", revision),
        ("info", "c" * 40),
    ]


async def test_broken_provider_is_counted_and_skipped(registry: NotificationRegistry) -> None:
    healthy = sender("slack", "healthy")
    dispatcher = dispatcher_with(
        registry, {"healthy": ("slack", healthy), "broken": ("dingtalk", None)}
    )
    before = NOTIFICATIONS.labels("dingtalk", "invalid")._value.get()
    async with DeliveryQueue() as delivery:
        dispatcher.delivery = delivery
        dispatcher(recorded_event())
        await delivery.join()
    assert NOTIFICATIONS.labels("dingtalk", "invalid")._value.get() == before + 1
    assert len(healthy.sent) == 1
