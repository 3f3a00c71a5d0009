"""The daemon: connect, serve HTTP, win the lease, run every controller; stop in order.

Everything long-lived runs in one anyio task group under a name and a guard.
Controllers and other leader-only services (pollers, the restarter) run only
while this replica holds the lease; the HTTP servers run on every replica.

Leadership can be lost and won again by the same process (an API server
outage longer than the lease is routine on a single-node cluster). Each new
term therefore starts from nothing: every controller, informer, queue and
registry is assembled anew, so the first lists of the term report every
object and every object is reconciled again, whatever the previous term was
doing when it was cancelled. Flux's controllers get the same effect by
exiting; rebuilding keeps the pod (and its artifacts) and skips a restart.

The dashboard's journal (recent pushes, restarts, Events) is history, not
state: a new term's journal starts from the previous one's records.

On SIGTERM/SIGINT the work queues stop taking keys, in-flight reconciles get
``shutdown-grace`` seconds to finish, the lease is released, and the process
exits 0.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog
from aiohttp import web

from fluxd.aio import Backoff, LeaderElector, supervise, wait_for_stop_signal
from fluxd.build import close_engines
from fluxd.controllers.runtime import Controller
from fluxd.dashboard import Dashboard, Journal, State
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.kube.leases import KubeLeaseStore
from fluxd.kube.secretcache import SecretCache
from fluxd.metrics import LEADER
from fluxd.server.app import ArtifactResolver, Health, HttpServer, WebhookHandler
from fluxd.settings import Settings

log = structlog.get_logger("fluxd.manager")

Service = Callable[[], Awaitable[None]]


@dataclass
class Components:
    """What runs on the leader, and what the HTTP server needs; filled by ``assemble``."""

    controllers: list[Controller] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    webhook: WebhookHandler | None = None
    events: WebhookHandler | None = None
    artifacts: ArtifactResolver | None = None
    #: What the dashboard shows besides the caches; the parts that act record into it.
    journal: Journal = field(default_factory=Journal)
    #: Secrets by version, shared by every part that reads them (see ``secret_cache``).
    secrets: SecretCache | None = None

    def secret_cache(self, kube: Kube, settings: Settings) -> SecretCache:
        """The one Secret cache of this term, made (and its watch run) on first use."""
        if self.secrets is None:
            self.secrets = SecretCache(kube, namespaces=settings.watch_namespaces)
            self.services["informer Secret metadata"] = self.secrets.run
        return self.secrets

    def controller(self, kind: str) -> Controller | None:
        """The controller of ``kind`` (e.g. "GitRepository"), so other parts can hook into it."""
        for candidate in self.controllers:
            if candidate.kind == kind:
                return candidate
        return None


Assembler = Callable[[Kube, EventRecorder, Settings], Awaitable[Components]]


def identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Daemon:
    def __init__(self, settings: Settings, *, assemble: Assembler) -> None:
        self.settings = settings
        self.assemble = assemble
        self.health = Health()
        self.identity = identity()
        self.components = Components()
        self.server: HttpServer | None = None
        self.elector: LeaderElector | None = None
        #: Leadership terms begun so far (each runs freshly assembled components).
        self.terms = 0
        self.leading = False
        self._kube: Kube | None = None

    async def run(self) -> int:
        settings = self.settings
        kube = await Kube.connect(
            kubeconfig=settings.kubeconfig or None, context=settings.kube_context or None
        )
        try:
            await self._wait_for_api(kube)
            self._kube = kube
            # The first term's parts also serve HTTP before (and without) leadership.
            self.components = await self._assemble(kube)
            self.server = HttpServer(
                settings=settings,
                health=self.health,
                webhook=self._webhook,
                events=self._events,
                artifacts=self._artifact,
                dashboard=Dashboard(state=self.dashboard_state).app()
                if settings.dashboard_addr
                else None,
            )
            async with anyio.create_task_group() as group:
                await group.start(self.server.run)
                self.health.ready = True
                if settings.leader_election:
                    store = KubeLeaseStore(
                        kube,
                        name=settings.effective_lease_name,
                        namespace=settings.effective_lease_namespace,
                    )
                    self.elector = LeaderElector(
                        self.identity,
                        store,
                        lease_duration=settings.lease_duration,
                        renew_deadline=settings.renew_deadline,
                        retry_period=settings.retry_period,
                    )
                    group.start_soon(self.elector.run, self._lead, name="leader-election")
                else:
                    group.start_soon(self._lead, name="controllers")
                signal = await wait_for_stop_signal()
                log.info("stopping", signal=signal.name, grace_seconds=settings.shutdown_grace)
                self.health.ready = False
                await self._drain()
                if self.elector is not None:
                    await self.elector.release()
                group.cancel_scope.cancel()
        finally:
            LEADER.set(0)
            with anyio.CancelScope(shield=True):
                await close_engines()
                await kube.close()
        log.info("stopped")
        return 0

    async def _wait_for_api(self, kube: Kube) -> None:
        backoff = Backoff(base=0.5, cap=10.0)
        while True:
            try:
                version = await kube.server_version()
                log.info("connected", server=kube.host, version=version.get("gitVersion"))
                self.health.recovered("api")
                return
            except kube_errors.KubeError as error:
                delay = backoff.next("api")
                self.health.not_ready("api", str(error))
                log.warning("API server not reachable yet", error=str(error), retry_in=delay)
                await anyio.sleep(delay)

    async def _assemble(self, kube: Kube) -> Components:
        recorder = EventRecorder(
            kube,
            controller="fluxd",
            instance=self.identity,
            # Flux writes event metadata as annotations prefixed with the object's API group.
            annotation_prefix=lambda ref: str(ref.get("apiVersion", "")).split("/")[0],
        )
        components = await self.assemble(kube, recorder, self.settings)
        journal = components.journal
        journal.carry_over(self.components.journal)
        if self.settings.dashboard_addr:
            recorder.add_sink(journal.record_event)
            for controller in components.controllers:
                # A counter bump per cached change, so an open dashboard page refreshes.
                controller.informer.add_handler(journal.on_cached_change)
        return components

    def dashboard_state(self) -> State:
        """What the dashboard shows now: the current term's caches and journal."""
        components = self.components

        def cached(kind: str) -> list[dict[str, Any]]:
            controller = components.controller(kind)
            return list(controller.informer.values()) if controller is not None else []

        return State(
            identity=self.identity,
            leading=self.leading,
            sources=cached("GitRepository"),
            kustomizations=cached("Kustomization"),
            journal=components.journal,
        )

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        handler = self.components.webhook
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        handler = self.components.events
        if handler is None:
            raise web.HTTPNotFound()
        return await handler(request)

    def _artifact(self, relpath: str) -> Path | None:
        resolve = self.components.artifacts
        return resolve(relpath) if resolve is not None else None

    async def _lead(self) -> None:
        """Everything that runs only on the leader; cancelled when leadership is lost."""
        if self.terms and self._kube is not None:
            # Nothing of a cancelled term is reused: its queues lost the keys in flight,
            # its informers would report only what changed, its registries were cleared.
            self.components = await self._assemble(self._kube)
        self.terms += 1
        self.leading = True
        self.components.journal.touch()
        LEADER.set(1)
        log.info("running controllers", identity=self.identity, term=self.terms)
        try:
            async with anyio.create_task_group() as group:
                for controller in self.components.controllers:
                    group.start_soon(
                        supervise,
                        f"informer {controller.kind}",
                        controller.informer.run,
                        name=f"informer {controller.kind}",
                    )
                    group.start_soon(
                        supervise,
                        f"queue {controller.kind}",
                        self._queue_runner(controller),
                        name=f"queue {controller.kind}",
                    )
                for name, service in self.components.services.items():
                    group.start_soon(supervise, name, service, name=name)
                # Lead until cancelled (leadership lost or shutdown), even with nothing to run.
                await anyio.sleep_forever()
        finally:
            self.leading = False
            self.components.journal.touch()
            LEADER.set(0)

    @staticmethod
    def _queue_runner(controller: Controller) -> Service:
        async def run() -> None:
            await controller.informer.synced.wait()
            await controller.queue.run(controller.run_one)

        return run

    async def _drain(self) -> None:
        grace = self.settings.shutdown_grace
        with anyio.move_on_after(grace + 1):
            async with anyio.create_task_group() as group:
                for controller in self.components.controllers:
                    group.start_soon(controller.queue.shutdown, grace)
