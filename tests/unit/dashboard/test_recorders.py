"""The parts that act record what they did in the journal: pushes, restarts, Events, terms."""

from __future__ import annotations

import json
from typing import Any, cast

import anyio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxd.controllers.manager import Components, Daemon
from fluxd.controllers.restarter import Restarter
from fluxd.dashboard import Journal
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.receiver import ReceiverEntry, ReceiverWebhook
from fluxd.settings import Settings
from tests.unit.receiver.test_handler import (
    PATH,
    TOKEN,
    Directory,
    Trigger,
    receiver,
    signed,
)
from tests.unit.restarter.restarter_objects import secret, workload
from tests.unit.restarterctl.test_restarter_service import AUTO, FakeApi, eventually

PUSH = json.dumps({"ref": "refs/heads/master", "after": "f" * 40}).encode()


async def test_accepted_and_refused_deliveries_are_recorded() -> None:
    journal = Journal()
    handler = ReceiverWebhook(
        directory=Directory({PATH: ReceiverEntry(receiver=receiver(), token=TOKEN)}),
        trigger=Trigger(),
        body_limit=1024,
        observer=journal.record_push,
    )
    app = web.Application()
    app.router.add_route("*", "/hook/{digest}", handler.__call__)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for path, headers in (
            (PATH, signed(PUSH)),
            (PATH, signed(PUSH, token="forged")),
            ("/hook/" + "0" * 64, signed(PUSH)),
        ):
            async with client.post(path, data=PUSH, headers=headers) as response:
                await response.read()
    unknown, forged, genuine = journal.pushes.newest_first()
    assert (genuine.receiver, genuine.status, genuine.outcome, genuine.event) == (
        "flux-system/hook",
        200,
        "accepted",
        "push",
    )
    assert genuine.accepted
    assert (forged.receiver, forged.status, forged.outcome) == (
        "flux-system/hook",
        401,
        "unauthorized",
    )
    assert not forged.accepted
    assert (unknown.receiver, unknown.status, unknown.outcome) == ("", 404, "not_found")


async def test_a_restart_is_recorded_with_its_config_and_latency() -> None:
    api = FakeApi()
    api.put(secret())
    api.put(workload(annotations=AUTO))
    journal = Journal()
    service = Restarter(
        kube=cast(Kube, api),
        recorder=EventRecorder(None),
        settings=Settings(restart_coalesce_window=0.05),
        journal=journal,
    )
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(service.run)
            with anyio.fail_after(5):
                await service.ready.wait()
            await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
            await eventually(lambda: len(journal.restarts), what="a restart recorded")
            group.cancel_scope.cancel()
    finally:
        api.close()
    [restart] = journal.restarts.newest_first()
    assert restart.workload == "Deployment/edge/realm-ix"
    assert [str(config) for config in restart.configs] == ["Secret/edge/realm-config-ix"]
    assert restart.succeeded
    assert restart.seconds is not None and restart.seconds >= 0


class Assembly:
    def __init__(self) -> None:
        self.recorders: list[EventRecorder] = []

    async def __call__(self, kube: Kube, recorder: EventRecorder, settings: Settings) -> Components:
        self.recorders.append(recorder)
        return Components()


async def test_events_are_recorded_and_a_new_term_keeps_the_history() -> None:
    assembly = Assembly()
    daemon = Daemon(Settings(dashboard_addr="127.0.0.1:0"), assemble=assembly)
    daemon.components = await daemon._assemble(cast(Kube, None))
    obj: dict[str, Any] = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"namespace": "flux-system", "name": "realm-ix"},
    }
    await assembly.recorders[0].normal(obj, "ReconciliationSucceeded", "Applied revision: x")
    first = daemon.components.journal
    daemon.components = await daemon._assemble(cast(Kube, None))
    journal = daemon.components.journal
    assert journal is not first
    [event] = journal.events.newest_first()
    assert (event.regarding, event.reason, event.message) == (
        "Kustomization/flux-system/realm-ix",
        "ReconciliationSucceeded",
        "Applied revision: x",
    )
    assert daemon.dashboard_state().journal is journal
