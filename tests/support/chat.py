"""Local HTTP servers standing in for a DingTalk robot and Gitea's commit status API.

They run a real aiohttp server on 127.0.0.1 in a background thread, check
requests the way the real services do (DingTalk's ``access_token`` and
``sign``, Gitea's ``Authorization: token …``) and keep what they received,
so e2e tests assert on what a chat room or a commit page would show. Gitea
webhook payloads come from ``testenv.gitea`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from testenv.api import Api, wait_for
from testenv.gitea import gitea_headers, gitea_push

__all__ = [
    "ChatServer",
    "Received",
    "dingtalk_alert",
    "dingtalk_sign",
    "gitea_headers",
    "gitea_push",
]


@dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it, and whether it would have been accepted."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    accepted: bool


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """The sign DingTalk expects: base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>"))."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass
class ChatServer:
    """Stand-ins: a DingTalk robot (``/robot/send``), a generic webhook (``/hooks/generic``)
    and Gitea's ``/api/v1/repos/…/statuses/<sha>``."""

    dingtalk_access_token: str = "robot-access-token"
    dingtalk_secret: str = "SECdingtalk-signing-secret"
    gitea_token: str = "gitea-api-token"
    #: When set, every request is answered with this HTTP status instead.
    fail_with: int | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dingtalk_address(self) -> str:
        return f"{self.url}/robot/send?access_token={self.dingtalk_access_token}"

    def start(self) -> ChatServer:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="chat-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the chat stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def requests(self, path_prefix: str = "/", *, accepted: bool | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.path.startswith(path_prefix) and (accepted is None or r.accepted is accepted)
            ]

    def wait_for_request(
        self, path_prefix: str, *, timeout: float = 90, what: str = "a request"
    ) -> Received:
        found = wait_for(
            lambda: self.requests(path_prefix, accepted=True), timeout=timeout, what=what
        )
        return found[0]  # type: ignore[no-any-return]

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/hooks/generic", self._generic)
        app.router.add_route("*", "/api/v1/repos/{owner}/{repo}/statuses/{sha}", self._gitea)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _keep(self, request: web.Request, body: Any, *, accepted: bool) -> None:
        with self._lock:
            self.received.append(
                Received(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    body=body,
                    accepted=accepted,
                )
            )

    async def _dingtalk(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = _json_or_text(raw)
        if self.fail_with is not None:
            self._keep(request, body, accepted=False)
            return web.Response(status=self.fail_with, text="robot unavailable")
        query = request.query
        timestamp = query.get("timestamp", "")
        signed = (
            query.get("access_token") == self.dingtalk_access_token
            and timestamp.isdigit()
            and abs(time.time() * 1000 - int(timestamp)) < 3600_000
            and hmac.compare_digest(
                query.get("sign", ""), dingtalk_sign(self.dingtalk_secret, timestamp)
            )
        )
        well_formed = isinstance(body, dict) and body.get("msgtype") in ("markdown", "text")
        self._keep(request, body, accepted=signed and well_formed)
        if not signed:
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"})
        if not well_formed:
            return web.json_response({"errcode": 40035, "errmsg": "missing parameter"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _generic(self, request: web.Request) -> web.Response:
        # Flux's generic provider posts the event as JSON, naming its controller in gotk-component.
        raw = await request.read()
        body = _json_or_text(raw)
        well_formed = (
            request.content_type == "application/json"
            and isinstance(body, dict)
            and request.headers.get("gotk-component") == body.get("reportingController")
        )
        self._keep(request, body, accepted=well_formed)
        return web.Response(status=200 if well_formed else 400)

    async def _gitea(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = _json_or_text(raw)
        if self.fail_with is not None:
            self._keep(request, body, accepted=False)
            return web.Response(status=self.fail_with)
        authorised = request.headers.get("Authorization") == f"token {self.gitea_token}"
        if request.method == "GET":
            return web.json_response([] if authorised else {"message": "token is required"})
        self._keep(request, body, accepted=authorised and isinstance(body, dict))
        if not authorised:
            return web.json_response({"message": "token is required"}, status=401)
        return web.json_response({"id": len(self.received), **body}, status=201)


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}"


def dingtalk_alert(
    api: Api,
    chat: ChatServer,
    namespace: str,
    *,
    name: str,
    kinds: tuple[str, ...],
    severity: str = "info",
) -> None:
    """A Secret, a ``dingtalk`` Provider sending to ``chat`` and an Alert on ``kinds``.

    All three are called ``name``.
    """
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {
                "address": base64.b64encode(chat.dingtalk_address.encode()).decode(),
                "token": base64.b64encode(chat.dingtalk_secret.encode()).decode(),
            },
        },
    )
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/providers",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": name},
            "spec": {"type": "dingtalk", "secretRef": {"name": name}},
        },
    )
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/alerts",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": name},
            "spec": {
                "providerRef": {"name": name},
                "eventSeverity": severity,
                "eventSources": [{"kind": kind, "name": "*"} for kind in kinds],
            },
        },
    )
