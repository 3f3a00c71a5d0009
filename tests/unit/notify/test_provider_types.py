"""Every Provider type of the CRD, sent through fluxd's real code to a service that checks it.

The table lives in tests/unit/notify/provider_cases/: one row per type with
the Provider and Secret a user writes and a check of what the service
received. Rows run against a local HTTP server that records requests, except
where the real service is at hand: Alertmanager (its API is read back) and
NATS (a subscriber receives what was published).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import pkgutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, get_args

import aiohttp
import nats
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from fluxd.api.notification import ProviderType
from fluxd.notify.config import ProviderConfig
from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.matching import compose_notification
from fluxd.notify.providers import build_provider
from fluxd.notify.providers.base import markdown_status_post
from fluxd.notify.providers.otel import traces_request
from testenv import notifypeers
from tests.unit.notify import provider_cases
from tests.unit.notify.notify_services import make_event
from tests.unit.notify.provider_cases import Captured, ProviderCase
from tests.unit.notify.provider_cases.chat import (
    ERROR,
    INFO,
    PROVIDER_UID,
    REVISION,
    check_msteams_connector,
    check_msteams_workflow,
    otlp_attributes,
    otlp_span,
    protobuf_fields,
)

CRD_TYPES: Final = frozenset(get_args(ProviderType))
TABLES: Final = {
    info.name: importlib.import_module(f"{provider_cases.__name__}.{info.name}")
    for info in pkgutil.iter_modules(provider_cases.__path__)
}
CASES: Final[tuple[ProviderCase, ...]] = tuple(
    case for table in TABLES.values() for case in table.CASES
)
AM_HEADERS: Final = notifypeers.ALERTMANAGER_HEADERS
# The chat table's rows run here; the git table's rows need forge-shaped answers and
# run in test_provider_types_git.py. Every CRD type must have a row in one of them.
CHAT_CASES: Final[tuple[ProviderCase, ...]] = TABLES["chat"].CASES


def test_every_crd_type_has_a_case() -> None:
    covered = {case.provider_type for case in CASES}
    assert covered <= CRD_TYPES, f"cases for types the CRD refuses: {covered - CRD_TYPES}"
    assert CRD_TYPES - covered == set(), f"types without a case: {CRD_TYPES - covered}"


def provider_object(case: ProviderCase, *, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
        "kind": "Provider",
        "metadata": {"name": "alerts", "namespace": "flux-system", "uid": PROVIDER_UID},
        "spec": {"type": case.provider_type, "address": address, **case.spec},
    }


def config_of(case: ProviderCase, *, base: str) -> ProviderConfig:
    hostport = base.split("://", 1)[1]
    secret = {key: value.replace("{hostport}", hostport) for key, value in case.secret.items()}
    return ProviderConfig.from_objects(
        provider_object(case, address=f"{base}{case.path}"), secret=secret
    )


async def send_all(
    case: ProviderCase, *, base: str, session: aiohttp.ClientSession, events: tuple[Event, ...]
) -> None:
    provider = build_provider(config_of(case, base=base), session=session)
    for event in events:
        await provider.send(event)


class Recorder:
    """A local HTTP service answering every request with ``reply`` and recording it."""

    def __init__(self, reply: tuple[int, str]) -> None:
        self.reply = reply
        self.captured: list[Captured] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        self.captured.append(
            Captured(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDict(request.headers),
                body=await request.read(),
            )
        )
        status, text = self.reply
        return web.Response(status=status, text=text, content_type="application/json")

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def recorder_factory() -> AsyncIterator[Any]:
    started: list[Recorder] = []

    async def start(reply: tuple[int, str]) -> Recorder:
        recorder = Recorder(reply)
        await recorder.server.start_server()
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        await recorder.server.close()


async def captured_by_alertmanager(
    case: ProviderCase, *, session: aiohttp.ClientSession, workdir: Path
) -> list[Captured]:
    async with notifypeers.alertmanager(workdir) as peer:
        await send_all(case, base=peer.url, session=session, events=(INFO, ERROR))
        # The alerts are listed at once; wait (bounded) until both leave "unprocessed".
        for _ in range(100):
            async with session.get(
                f"{peer.url}/api/v2/alerts", headers=notifypeers.ALERTMANAGER_HEADERS
            ) as response:
                body = await response.read()
            alerts = json.loads(body)
            if len(alerts) == 2 and all(a["status"]["state"] == "active" for a in alerts):
                break
            await asyncio.sleep(0.05)
    return [Captured("GET", "/api/v2/alerts", {}, CIMultiDict(), body)]


async def captured_by_nats(
    case: ProviderCase, *, session: aiohttp.ClientSession, workdir: Path
) -> list[Captured]:
    user, password = case.secret["username"], case.secret["password"]
    async with notifypeers.nats_server(workdir, user=user, password=password) as peer:
        subscriber = await nats.connect(servers=[peer.url], user=user, password=password)
        try:
            subscription = await subscriber.subscribe(case.spec["channel"])
            await subscriber.flush()
            await send_all(case, base=peer.url, session=session, events=(INFO, ERROR))
            messages = [await subscription.next_msg(timeout=10) for _ in range(2)]
        finally:
            await subscriber.close()
    return [
        Captured("MSG", message.subject, {}, CIMultiDict(), message.data) for message in messages
    ]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.provider_type) for case in CHAT_CASES])
async def test_service_receives_what_the_service_documents(
    case: ProviderCase,
    recorder_factory: Any,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    if case.provider_type == "alertmanager":
        captured = await captured_by_alertmanager(case, session=session, workdir=tmp_path)
    elif case.provider_type == "nats":
        captured = await captured_by_nats(case, session=session, workdir=tmp_path)
    else:
        recorder = await recorder_factory(case.reply)
        await send_all(case, base=recorder.base, session=session, events=(INFO, ERROR))
        captured = recorder.captured
    case.check(captured)


HTTP_CASES: Final = [
    pytest.param(case, id=case.provider_type) for case in CHAT_CASES if case.provider_type != "nats"
]


@pytest.mark.parametrize("case", HTTP_CASES)
async def test_refusal_is_reported_with_the_service_message(
    case: ProviderCase, recorder_factory: Any, session: aiohttp.ClientSession
) -> None:
    recorder = await recorder_factory((400, '{"message": "payload rejected: bad field"}'))
    with pytest.raises(DeliveryError) as refused:
        await send_all(case, base=recorder.base, session=session, events=(ERROR,))
    assert "payload rejected: bad field" in str(refused.value)
    assert refused.value.retryable is False


@pytest.mark.parametrize("case", HTTP_CASES)
async def test_server_errors_are_retried(
    case: ProviderCase, recorder_factory: Any, session: aiohttp.ClientSession
) -> None:
    recorder = await recorder_factory((503, '{"message": "try later"}'))
    with pytest.raises(DeliveryError) as failed:
        await send_all(case, base=recorder.base, session=session, events=(ERROR,))
    assert failed.value.retryable is True


# --- Config checks, reported when the Provider is loaded ----------------------------------

BROKEN: Final = [
    pytest.param("webex", {"channel": "room"}, {}, "token", id="webex-no-token"),
    pytest.param("webex", {}, {"token": "t"}, "channel", id="webex-no-room"),
    pytest.param("matrix", {"channel": "!r:x"}, {}, "token", id="matrix-no-token"),
    pytest.param("matrix", {}, {"token": "t"}, "channel", id="matrix-no-room"),
    pytest.param("opsgenie", {}, {}, "token", id="opsgenie-no-key"),
    pytest.param("pagerduty", {}, {}, "routing key", id="pagerduty-no-routing-key"),
    pytest.param("datadog", {}, {}, "token", id="datadog-no-key"),
    pytest.param("zoom", {}, {}, "token", id="zoom-no-token"),
    pytest.param("incident.io", {}, {}, "token", id="incidentio-no-token"),
    pytest.param("zulip", {"channel": "deploys"}, {}, "<channel>/<topic>", id="zulip-no-topic"),
    pytest.param("sentry", {}, {}, "DSN", id="sentry-dsn-without-key"),
    pytest.param("nats", {}, {}, "subject", id="nats-no-subject"),
    pytest.param("nats", {"channel": "s"}, {"nkey": "SUA..."}, "nkey", id="nats-nkey-refused"),
]


@pytest.mark.parametrize(("provider_type", "spec", "secret", "named"), BROKEN)
def test_unusable_config_is_refused_when_loaded(
    provider_type: str, spec: dict[str, str], secret: dict[str, str], named: str
) -> None:
    address = "nats://127.0.0.1:4222" if provider_type == "nats" else "https://example.com/42"
    provider = {"metadata": {"name": "p"}, "spec": {"type": provider_type, "address": address}}
    provider["spec"].update(spec)
    config = ProviderConfig.from_objects(provider, secret=secret)
    with pytest.raises(ProviderConfigError, match=named):
        build_provider(config, session=None)  # type: ignore[arg-type]  # never reached


# --- Microsoft Teams: the address decides the card ------------------------------------------


class LoopbackResolver(AbstractResolver):
    """Resolves every host name to 127.0.0.1, so real service hosts reach the local server."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("host", "check"),
    [
        pytest.param("contoso.webhook.office.com", check_msteams_connector, id="o365-connector"),
        pytest.param("prod-27.westeurope.logic.azure.com", check_msteams_workflow, id="workflows"),
    ],
)
async def test_msteams_card_follows_the_webhook_host(
    host: str, check: Any, recorder_factory: Any
) -> None:
    recorder = await recorder_factory((202, ""))
    port = recorder.base.rpartition(":")[2]
    case = ProviderCase("msteams", "/webhookb2/abc", check)
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        await send_all(case, base=f"http://{host}:{port}", session=session, events=(INFO, ERROR))
    check(recorder.captured)


def test_the_routing_alert_travels_with_the_notification() -> None:
    """otel names its traces after the Alert, so routing must hand the Alert over."""
    alert = {
        "metadata": {"name": "on-call", "namespace": "apps", "uid": "alert-uid-1"},
        "spec": {"providerRef": {"name": "tempo"}, "eventSources": [{"kind": "Kustomization"}]},
    }
    notification = compose_notification(alert, make_event())
    assert notification.alert == alert
    request = traces_request(notification, span_id=b"\x01" * 8, end_nanos=0)
    span, resource_spans = otlp_span(Captured("POST", "/v1/traces", {}, {}, request))
    assert span[1] == [hashlib.sha256(b"alert-uid-1:" + REVISION.encode()).digest()[:16]]
    resource = protobuf_fields(resource_spans[1][0])
    assert ("service.name", "apps/on-call") in otlp_attributes(resource[1])


@pytest.mark.parametrize(
    ("provider_type", "spec", "secret"),
    [
        # Datadog's client falls back to its default site without an address.
        pytest.param("datadog", {}, {"token": "k"}, id="datadog-default-site"),
        # NATS clients take host:port and assume nats://.
        pytest.param(
            "nats", {"address": "nats.nats:4222", "channel": "s"}, {}, id="nats-no-scheme"
        ),
    ],
)
def test_config_flux_accepts_is_accepted(
    provider_type: str, spec: dict[str, str], secret: dict[str, str]
) -> None:
    provider = {"metadata": {"name": "p"}, "spec": {"type": provider_type, **spec}}
    config = ProviderConfig.from_objects(provider, secret=secret)
    assert build_provider(config, session=None).config is config  # type: ignore[arg-type]


async def test_nats_refusing_the_credentials_is_a_permanent_failure(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with notifypeers.nats_server(tmp_path, user="fluxd", password="right") as peer:
        provider = {
            "metadata": {"name": "bus", "namespace": "flux-system"},
            "spec": {"type": "nats", "address": peer.url, "channel": "flux.events"},
        }
        config = ProviderConfig.from_objects(
            provider, secret={"username": "fluxd", "password": "wrong"}
        )
        with pytest.raises(DeliveryError) as refused:
            await build_provider(config, session=session).send(INFO)
    assert refused.value.retryable is False
    assert "authorization" in str(refused.value).lower()
    assert "wrong" not in str(refused.value)


async def test_alertmanager_refusing_the_credentials_is_a_permanent_failure(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with notifypeers.alertmanager(tmp_path) as peer:
        provider = {
            "metadata": {"name": "am", "namespace": "flux-system"},
            "spec": {"type": "alertmanager", "address": f"{peer.url}/api/v2/alerts"},
        }
        secret = {"username": notifypeers.ALERTMANAGER_USER, "password": "wrong-pass"}
        config = ProviderConfig.from_objects(provider, secret=secret)
        with pytest.raises(DeliveryError) as refused:
            await build_provider(config, session=session).send(ERROR)
        async with session.get(
            f"{peer.url}/api/v2/alerts", headers=notifypeers.ALERTMANAGER_HEADERS
        ) as response:
            assert await response.json() == []
    assert refused.value.status == 401 and refused.value.retryable is False


def test_markdown_status_post_leaves_out_the_change_request() -> None:
    """Flux's status post lists metadata but not the pull request it may be posted to."""
    event = make_event(metadata={"change_request": "42", "revision": "main@sha1:abc"})
    post = markdown_status_post(event)
    assert post.endswith("Metadata:\n* `revision`: main@sha1:abc\n")
    assert "change_request" not in post
