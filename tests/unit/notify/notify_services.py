"""Test helpers for notification tests: events, and real HTTP services on 127.0.0.1.

The stand-in services validate requests the way the real ones do (signatures,
tokens, paths) and record what they received, so tests assert on what a chat
or Gitea would have shown.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxd.notify.event import Event, ObjectReference

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


def make_event(
    *,
    kind: str = "Kustomization",
    name: str = "realm-ix",
    namespace: str = "flux-system",
    severity: str = "info",
    message: str = "Reconciliation finished",
    reason: str = "ReconciliationSucceeded",
    metadata: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Event:
    return Event(
        involved_object=ObjectReference(
            kind=kind,
            name=name,
            namespace=namespace,
            uid="7d0cdc51-ddcf-4743-b223-83ca5c699632",
            api_version="kustomize.toolkit.fluxcd.io/v1",
        ),
        severity=severity,  # type: ignore[arg-type]
        message=message,
        reason=reason,
        reporting_controller="kustomize-controller",
        timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        metadata=metadata if metadata is not None else {"revision": "master@sha1:" + "a" * 40},
        labels=labels,
    )


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    """A local HTTP service: every request is recorded, then answered by ``handler``."""

    server: TestServer
    received: list[Received] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return str(self.server.make_url(path))


async def start(handler: Handler) -> Service:
    service: Service

    async def entry(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        service.received.append(
            Received(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        return await handler(request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", entry)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    service = Service(server=server)
    return service


StartService = Callable[[Handler], Awaitable[Service]]
