"""Four aiohttp servers, split like Flux's ports.

- webhook address (default ``:9292``, the only port meant to be reachable from
  outside the cluster): ``POST /hook/<digest>`` for Receivers, nothing else;
- metrics address (default ``:8080``, internal): ``/metrics``, ``/healthz``,
  ``/readyz``;
- storage address (default ``127.0.0.1:9090``): artifact downloads
  (``/gitrepository/<ns>/<name>/<file>``, likewise ``/helmrepository/`` and
  ``/helmchart/``). fluxd reads its artifacts from disk, and those of a
  private repository hold its secrets, so by default nothing outside the pod
  can download them;
- dashboard address (``dashboard-addr``, empty by default: not served): the
  read-only dashboard (``fluxd.dashboard``), given here as a ready-made
  application. It has its own listener so that neither the public webhook port
  nor the metrics port every scraper reaches shows the cluster's inventory.

- events address (default ``:9690``, internal): notification-controller's
  event server, for Flux controllers running beside fluxd. Flux binds it to
  ``:9090``, which fluxd's storage address already holds (as source-controller
  does); clients never see the port, they post to the ``notification-controller``
  Service on port 80.

All run on every replica, leader or not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fluxd.metrics import REGISTRY
from fluxd.settings import Settings, split_addr

log = structlog.get_logger("fluxd.server")

WebhookHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ArtifactResolver = Callable[[str], Path | None]


@dataclass
class Health:
    """What the probes report: liveness is the loop answering, readiness is set by the daemon."""

    ready: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def not_ready(self, component: str, reason: str) -> None:
        self.reasons[component] = reason

    def recovered(self, component: str) -> None:
        self.reasons.pop(component, None)

    @property
    def is_ready(self) -> bool:
        return self.ready and not self.reasons


class HttpServer:
    def __init__(
        self,
        *,
        settings: Settings,
        health: Health,
        webhook: WebhookHandler | None = None,
        events: WebhookHandler | None = None,
        artifacts: ArtifactResolver | None = None,
        dashboard: web.Application | None = None,
    ) -> None:
        self.settings = settings
        self.health = health
        self.webhook = webhook
        self.events = events
        self.artifacts = artifacts
        self.dashboard = dashboard
        self.bound: dict[str, tuple[str, int]] = {}

    def metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    def storage_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(
            "/{path:(?:gitrepository|ocirepository|helmrepository|helmchart)/.+}", self._artifact
        )
        return app

    def webhook_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.webhook_body_limit)
        app.router.add_route("*", "/hook/{digest}", self._hook)
        return app

    def events_app(self) -> web.Application:
        app = web.Application()
        # Flux's event server answers on every path, as notification-controller's "/" does.
        app.router.add_route("*", "/{path:.*}", self._event)
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.health.is_ready:
            return web.Response(text="ok")
        reasons = "; ".join(f"{k}: {v}" for k, v in self.health.reasons.items()) or "starting"
        return web.Response(status=503, text=f"not ready: {reasons}")

    async def _artifact(self, request: web.Request) -> web.StreamResponse:
        if self.artifacts is None:
            raise web.HTTPNotFound()
        path = self.artifacts(request.match_info["path"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        if self.webhook is None:
            raise web.HTTPNotFound()
        return await self.webhook(request)

    async def _event(self, request: web.Request) -> web.StreamResponse:
        if self.events is None:
            raise web.HTTPNotFound()
        return await self.events(request)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        runners: list[web.AppRunner] = []
        servers = [
            ("metrics", self.metrics_app(), self.settings.metrics_addr),
            ("webhook", self.webhook_app(), self.settings.webhook_addr),
            ("storage", self.storage_app(), self.settings.storage_addr),
            ("events", self.events_app(), self.settings.events_addr),
        ]
        if self.dashboard is not None and self.settings.dashboard_addr:
            servers.append(("dashboard", self.dashboard, self.settings.dashboard_addr))
        try:
            for name, app, addr in servers:
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                runners.append(runner)
                host, port = split_addr(addr)
                site = web.TCPSite(runner, host, port)
                await site.start()
                server = site._server
                sockets = getattr(server, "sockets", None) or []
                bound = sockets[0].getsockname()[:2] if sockets else (host, port)
                self.bound[name] = (str(bound[0]), int(bound[1]))
                log.info("listening", server=name, address=f"{bound[0]}:{bound[1]}")
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for runner in runners:
                    await runner.cleanup()
