"""The dashboard's aiohttp application: read-only pages and one live stream.

Routes (all GET; anything else is 405):

- ``/`` the overview: sources, Kustomizations with their inventory tree,
  recent pushes, restarts and Events;
- ``/kustomizations/<namespace>/<name>`` one Kustomization: conditions and
  inventory tree;
- ``/live`` server-sent events: ``changed`` whenever something a page shows
  changed (at most once per ``min_interval``), a comment every ``heartbeat``
  seconds otherwise, so proxies keep the stream open.

Every request reads the state afresh from a ``StateSource`` (the daemon's
current term's caches), so nothing is computed while nobody looks.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from fluxd.api import meta
from fluxd.dashboard.pages import kustomization_page, overview
from fluxd.dashboard.views import StateSource, find_kustomization, kustomization_row

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Commit links go to the forge; the dashboard's address is nobody's business there.
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:"
    ),
}


class Dashboard:
    def __init__(
        self, *, state: StateSource, heartbeat: float = 15.0, min_interval: float = 1.0
    ) -> None:
        self.state = state
        self.heartbeat = heartbeat
        self.min_interval = min_interval
        # Open live streams; they never end by themselves, so shutdown ends them.
        self._streams: set[asyncio.Task[Any]] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._overview)
        app.router.add_get("/kustomizations/{namespace}/{name}", self._kustomization)
        app.router.add_get("/live", self._live)
        app.on_shutdown.append(self._end_streams)
        return app

    async def _end_streams(self, _: web.Application) -> None:
        """Without this an open page would hold up the daemon's exit for the server's grace."""
        for stream in list(self._streams):
            stream.cancel()

    async def _overview(self, _: web.Request) -> web.Response:
        return _html(overview(self.state()))

    async def _kustomization(self, request: web.Request) -> web.Response:
        state = self.state()
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        ks = find_kustomization(state.kustomizations, namespace, name)
        if ks is None:
            raise web.HTTPNotFound(text=f"no Kustomization {namespace}/{name}")
        row = kustomization_row(ks, state.kustomizations)
        return _html(kustomization_page(state, row, meta.conditions_of(ks)))

    async def _live(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**_HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        version = self.state().journal.version
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await response.write(b"retry: 3000\n\n")
            while True:
                journal = self.state().journal
                seen = await journal.wait_changed(since=version, timeout=self.heartbeat)
                if seen == version and journal is self.state().journal:
                    await response.write(b": still here\n\n")
                    continue
                version = self.state().journal.version
                await response.write(f"event: changed\ndata: {version}\n\n".encode())
                # A burst of changes (a list, a rollout) becomes one refresh per interval.
                await asyncio.sleep(self.min_interval)
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            if task is not None:
                self._streams.discard(task)
        return response


def _html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_HEADERS)
