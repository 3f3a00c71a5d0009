"""Leader election: one leader at a time, takeover on expiry, conflicts, hand-over on release."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from fluxd.aio import FakeClock, LeaderElector, LeaseConflict, LeaseRecord


class LeaseServer:
    """The single stored lease every replica sees, with optimistic versioning."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.conflicting_writes = 0

    def store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


class LeaseConnection:
    """One replica's view of the server; it can be cut off to simulate a partition."""

    def __init__(self, server: LeaseServer) -> None:
        self.server = server
        self.reachable = True
        self.reads = 0

    async def _round_trip(self) -> None:
        # yield like a real request would, so replicas interleave
        await anyio.lowlevel.checkpoint()
        if not self.reachable:
            raise ConnectionError("API server unreachable")

    async def get(self) -> LeaseRecord | None:
        await self._round_trip()
        self.reads += 1
        return self.server.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        await self._round_trip()
        if self.server.record is not None:
            raise LeaseConflict(lease="flux-system/fluxd")
        return self.server.store(record)

    async def update(self, record: LeaseRecord, *, resource_version: str) -> LeaseRecord:
        await self._round_trip()
        if self.server.conflicting_writes:
            # somebody else wrote the lease in between
            self.server.conflicting_writes -= 1
            assert self.server.record is not None
            self.server.store(self.server.record)
        if self.server.record is None or self.server.record.resource_version != resource_version:
            raise LeaseConflict(lease="flux-system/fluxd", resource_version=resource_version)
        return self.server.store(record)


class Replica:
    """An elector plus a record of when its leading callback ran."""

    def __init__(self, name: str, server: LeaseServer, clock: FakeClock) -> None:
        self.connection = LeaseConnection(server)
        self.elector = LeaderElector(name, self.connection, clock=clock)
        self.clock = clock
        self.started: list[float] = []
        self.stopped: list[float] = []

    async def lead(self) -> None:
        self.started.append(self.clock.now())
        try:
            await anyio.sleep_forever()
        finally:
            self.stopped.append(self.clock.now())

    async def run(self) -> None:
        await self.elector.run(self.lead)


async def advance_watching(
    clock: FakeClock, seconds: float, check: Callable[[], None], step: float = 0.5
) -> None:
    """Advance in small steps, checking an invariant after each one."""
    for _ in range(round(seconds / step)):
        await clock.run_for(step)
        check()


@pytest.fixture
def server() -> LeaseServer:
    return LeaseServer()


def leaders(*replicas: Replica) -> list[str]:
    return [replica.elector.identity for replica in replicas if replica.elector.is_leader]


async def test_of_two_replicas_only_one_leads(clock: FakeClock, server: LeaseServer) -> None:
    a, b = Replica("a", server, clock), Replica("b", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        group.start_soon(b.run)

        def one_leader() -> None:
            assert len(leaders(a, b)) == 1

        await clock.settle()
        one_leader()
        await advance_watching(clock, 120.0, one_leader)
        group.cancel_scope.cancel()

    (winner,) = [replica for replica in (a, b) if replica.started]
    assert winner.started == [0.0]
    assert server.record is not None and server.record.lease_transitions == 0


async def test_racing_creates_leave_one_leader_and_no_error(
    clock: FakeClock, server: LeaseServer, logs: list[MutableMapping[str, Any]]
) -> None:
    a, b = Replica("a", server, clock), Replica("b", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        group.start_soon(b.run)
        await clock.run_for(10.0)
        assert leaders(a, b) == ["a"]
        group.cancel_scope.cancel()
    assert any(entry["event"] == "lease write conflict" for entry in logs)


async def test_the_leader_renews_every_retry_period(clock: FakeClock, server: LeaseServer) -> None:
    a = Replica("a", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.run_for(20.0)
        group.cancel_scope.cancel()
    # created at 0, renewed at 2, 4, ..., 20, then released
    assert server.version == 1 + 10 + 1
    # Renewing a valid lease of its own, the leader writes without reading first.
    assert a.connection.reads == 1


async def test_a_renewal_after_someone_else_wrote_reads_the_lease_again(
    clock: FakeClock, server: LeaseServer
) -> None:
    a = Replica("a", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        server.conflicting_writes = 1
        await clock.run_for(2.0)
        assert a.elector.is_leader
        assert a.connection.reads == 2
        group.cancel_scope.cancel()
    assert server.record is not None and server.record.holder_identity == ""


async def test_when_the_leader_stops_renewing_the_other_takes_over_after_expiry(
    clock: FakeClock, server: LeaseServer
) -> None:
    a, b = Replica("a", server, clock), Replica("b", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        group.start_soon(b.run)
        await clock.run_for(10.0)
        assert leaders(a, b) == ["a"]

        # a's last successful renewal was at t=10; then it is cut off
        a.connection.reachable = False

        def never_two_leaders() -> None:
            assert len(leaders(a, b)) <= 1

        await advance_watching(clock, 30.0, never_two_leaders)
        group.cancel_scope.cancel()

    # a gives up at its renew deadline, before the lease can expire for b
    assert a.stopped == [20.0]
    # b saw a's last renewal at t=10 and waits out the 15s lease duration
    assert len(b.started) == 1
    assert 25.0 <= b.started[0] <= 27.0
    assert server.record is not None
    assert server.record.lease_transitions == 1


@pytest.mark.parametrize(
    ("conflicts", "still_leading"),
    [
        pytest.param(2, True, id="brief-conflicts-are-retried"),
        # Each failed renewal meets two conflicts: its write without reading, then
        # the write after reading.
        pytest.param(12, False, id="conflicts-past-renew-deadline-lose-leadership"),
    ],
)
async def test_renewal_conflicts(
    clock: FakeClock, server: LeaseServer, conflicts: int, still_leading: bool
) -> None:
    a = Replica("a", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        server.conflicting_writes = conflicts
        await clock.run_for(12.0)
        assert a.elector.is_leader is still_leading
        assert bool(a.stopped) is not still_leading
        group.cancel_scope.cancel()


async def test_release_on_stop_hands_over_at_once(clock: FakeClock, server: LeaseServer) -> None:
    a, b = Replica("a", server, clock), Replica("b", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        group.start_soon(b.run)
        await clock.run_for(31.0)
        await a.elector.release()
        assert a.stopped == [31.0]
        assert not a.elector.is_leader
        assert server.record is not None and server.record.holder_identity == ""
        await clock.run_for(2.0)
        assert leaders(a, b) == ["b"]
        group.cancel_scope.cancel()
    assert b.started == [32.0]


async def test_cancelling_run_releases_the_lease(clock: FakeClock, server: LeaseServer) -> None:
    a = Replica("a", server, clock)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(a.run)
            await clock.run_for(5.0)
            scope.cancel()
    assert server.record is not None
    assert server.record.holder_identity == ""
    assert server.record.lease_duration_seconds == 1


async def test_a_callback_that_returns_ends_the_run_and_releases(
    clock: FakeClock, server: LeaseServer
) -> None:
    connection = LeaseConnection(server)
    elector = LeaderElector("a", connection, clock=clock)

    async def short_job() -> None:
        await clock.sleep(3.0)

    async with anyio.create_task_group() as group:
        group.start_soon(elector.run, short_job)
        await clock.run_for(10.0)
    assert clock.now() == 10.0
    assert server.record is not None and server.record.holder_identity == ""


async def test_a_lease_held_by_a_restarted_replica_of_the_same_identity_is_resumed(
    clock: FakeClock, server: LeaseServer
) -> None:
    acquired = datetime(2024, 5, 1, tzinfo=UTC)
    server.store(
        LeaseRecord(
            holder_identity="a",
            lease_duration_seconds=15,
            acquire_time=acquired,
            renew_time=acquired,
            lease_transitions=4,
        )
    )
    a = Replica("a", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        assert a.started == [0.0]
        assert server.record is not None
        assert server.record.lease_transitions == 4
        assert server.record.acquire_time == acquired
        group.cancel_scope.cancel()


async def test_a_lease_held_by_another_is_taken_only_after_it_expires(
    clock: FakeClock, server: LeaseServer
) -> None:
    stale = datetime(2024, 5, 1, tzinfo=UTC)
    server.store(
        LeaseRecord(
            holder_identity="gone",
            lease_duration_seconds=15,
            acquire_time=stale,
            renew_time=stale,
            lease_transitions=2,
        )
    )
    b = Replica("b", server, clock)
    async with anyio.create_task_group() as group:
        group.start_soon(b.run)
        # expiry counts from when b first saw the lease, not from its renewTime
        await clock.run_for(14.0)
        assert b.started == []
        await clock.run_for(2.0)
        assert b.started == [16.0]
        group.cancel_scope.cancel()
    assert server.record is not None and server.record.lease_transitions == 3


async def test_a_hung_renewal_gives_up_leadership_at_the_renew_deadline(
    clock: FakeClock, server: LeaseServer
) -> None:
    a = Replica("a", server, clock)
    original_update = a.connection.update
    hang = anyio.Event()

    async def hanging_update(record: LeaseRecord, *, resource_version: str) -> LeaseRecord:
        await hang.wait()
        return await original_update(record, resource_version=resource_version)

    async with anyio.create_task_group() as group:
        group.start_soon(a.run)
        await clock.settle()
        a.connection.update = hanging_update  # type: ignore[method-assign]
        await clock.run_for(10.0)
        assert a.stopped == [10.0]
        assert not a.elector.is_leader
        # let the release on the way out reach the store: nobody advances the clock then
        hang.set()
        group.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        pytest.param({"lease_duration": 10.0, "renew_deadline": 10.0}, "must exceed", id="no-gap"),
        pytest.param({"renew_deadline": 10.0, "retry_period": 10.0}, "below", id="slow-retry"),
        pytest.param({"lease_duration": 0.5, "renew_deadline": 0.2}, "at least 1s", id="tiny"),
    ],
)
def test_unsafe_timings_are_refused(
    clock: FakeClock, server: LeaseServer, timing: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderElector("a", LeaseConnection(server), clock=clock, **timing)


# -- the Lease wire format ---------------------------------------------------


def test_a_record_round_trips_through_a_lease_object() -> None:
    acquired = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    record = LeaseRecord(
        holder_identity="fluxd-7c9f",
        lease_duration_seconds=15,
        acquire_time=acquired,
        renew_time=acquired + timedelta(seconds=2, microseconds=250),
        lease_transitions=3,
    )
    spec = record.to_spec()
    assert spec == {
        "holderIdentity": "fluxd-7c9f",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-05-01T08:30:00.000000Z",
        "renewTime": "2024-05-01T08:30:02.000250Z",
        "leaseTransitions": 3,
    }
    lease = {"metadata": {"name": "fluxd", "resourceVersion": "812"}, "spec": spec}
    assert LeaseRecord.from_lease(lease) == replace(record, resource_version="812")


def test_an_empty_lease_reads_as_unheld() -> None:
    record = LeaseRecord.from_lease({"metadata": {"resourceVersion": "5"}, "spec": {}})
    assert record.holder_identity == ""
    assert record.acquire_time is None
    assert record.lease_transitions == 0


def test_conflicts_say_which_lease_and_version() -> None:
    assert str(LeaseConflict(lease="flux-system/fluxd", resource_version="9")) == (
        "lease flux-system/fluxd changed since resource version 9"
    )
    assert str(LeaseConflict(lease="flux-system/fluxd")) == "lease flux-system/fluxd already exists"
