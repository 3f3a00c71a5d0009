"""A replica that loses the lease and wins it again starts its second term from nothing.

The daemon's leader callback runs under the real ``LeaderElector`` with a fake
clock and a lease store that can be cut off like an unreachable API server.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import anyio
import anyio.lowlevel

from fluxd.aio import FakeClock, LeaderElector, LeaseConflict, LeaseRecord
from fluxd.controllers.manager import Components, Daemon
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.settings import Settings


class FlakyLease:
    """One stored lease; ``reachable = False`` fails every request, as an API outage does."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.reachable = True

    async def _round_trip(self) -> None:
        await anyio.lowlevel.checkpoint()
        if not self.reachable:
            raise ConnectionError("API server unreachable")

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record

    async def get(self) -> LeaseRecord | None:
        await self._round_trip()
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        await self._round_trip()
        if self.record is not None:
            raise LeaseConflict(lease="default/fluxd")
        return self._store(record)

    async def update(self, record: LeaseRecord, *, resource_version: str) -> LeaseRecord:
        await self._round_trip()
        if self.record is None or self.record.resource_version != resource_version:
            raise LeaseConflict(lease="default/fluxd", resource_version=resource_version)
        return self._store(record)


class Assembly:
    """Builds a fresh set of parts per call; each part records that it ran."""

    def __init__(self) -> None:
        self.built: list[Components] = []
        self.ran: list[int] = []
        self.recorders: list[EventRecorder] = []

    async def __call__(self, kube: Kube, recorder: EventRecorder, settings: Settings) -> Components:
        number = len(self.built)
        self.recorders.append(recorder)

        async def service() -> None:
            self.ran.append(number)
            await anyio.sleep_forever()

        components = Components(services={"work": service})
        self.built.append(components)
        return components


async def test_a_new_term_runs_freshly_assembled_parts() -> None:
    clock = FakeClock()
    lease = FlakyLease()
    assembly = Assembly()
    daemon = Daemon(Settings(), assemble=assembly)
    daemon._kube = cast(Kube, object())
    # What ``run`` does before campaigning: the first term's parts serve HTTP meanwhile.
    daemon.components = await daemon._assemble(cast(Kube, object()))
    elector = LeaderElector(
        "a", lease, lease_duration=15, renew_deadline=10, retry_period=2, clock=clock
    )

    async with anyio.create_task_group() as group:
        group.start_soon(elector.run, daemon._lead)
        await clock.run_for(1)
        assert assembly.ran == [0]
        first = daemon.components

        lease.reachable = False  # longer than the renew deadline: leadership is lost
        await clock.run_for(20)
        assert not elector.is_leader
        lease.reachable = True
        await clock.run_for(20)
        assert elector.is_leader

        assert daemon.terms == 2
        assert len(assembly.built) == 2, "the second term reused the first term's parts"
        assert daemon.components is not first
        assert assembly.ran == [0, 1]
        # Each term records Events through its own recorder, so sinks never pile up.
        assert assembly.recorders[0] is not assembly.recorders[1]
        group.cancel_scope.cancel()


async def test_the_http_side_follows_the_current_term() -> None:
    assembly = Assembly()
    daemon = Daemon(Settings(), assemble=assembly)
    served: list[str] = []

    async def first(request: Any) -> Any:
        served.append("first")

    async def second(request: Any) -> Any:
        served.append("second")

    daemon.components = Components(webhook=first, artifacts=lambda path: None)
    await daemon._webhook(cast(Any, None))
    daemon.components = Components(webhook=second)
    await daemon._webhook(cast(Any, None))
    assert served == ["first", "second"]
    assert daemon._artifact("gitrepository/x/y/z.tar.gz") is None
