"""The fake clock: time moves only on ``advance``, sleepers wake at their deadline, in order."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from fluxd.aio import FakeClock, SystemClock, run_with_timeout


async def test_sleepers_wake_in_deadline_order_at_their_deadline(clock: FakeClock) -> None:
    woken: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append((name, clock.now()))

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, "late", 5.0)
        group.start_soon(sleeper, "early", 2.0)
        group.start_soon(sleeper, "never", 50.0)
        await clock.run_for(1.0)
        assert woken == []
        await clock.run_for(9.0)
        assert woken == [("early", 2.0), ("late", 5.0)]
        assert clock.now() == 10.0
        assert clock.sleepers == 1
        group.cancel_scope.cancel()


async def test_a_task_sleeping_repeatedly_runs_every_period_within_one_advance(
    clock: FakeClock,
) -> None:
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await clock.sleep(2.0)
            ticks.append(clock.now())

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await clock.run_for(10.0)
        group.cancel_scope.cancel()

    assert ticks == [2.0, 4.0, 6.0, 8.0, 10.0]


async def test_a_cancelled_sleeper_is_no_longer_counted(clock: FakeClock) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(clock.sleep, 5.0)
        await clock.settle()
        assert clock.sleepers == 1
        group.cancel_scope.cancel()
    assert clock.sleepers == 0


async def test_time_cannot_go_back(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="back in time"):
        await clock.run_for(-1.0)


async def test_run_with_timeout_returns_the_result_of_a_fast_operation(clock: FakeClock) -> None:
    async def answer() -> int:
        await clock.sleep(1.0)
        return 42

    async with anyio.create_task_group() as group:
        results: list[int] = []

        async def call() -> None:
            results.append(await run_with_timeout(clock, 5.0, answer))

        group.start_soon(call)
        await clock.run_for(1.0)
        assert results == [42]
        assert clock.sleepers == 0


async def test_run_with_timeout_cancels_a_slow_operation_at_the_deadline(clock: FakeClock) -> None:
    outcome: list[str] = []

    async def slow() -> None:
        try:
            await clock.sleep(100.0)
        finally:
            outcome.append(f"cancelled at {clock.now():g}")

    async def call() -> None:
        with pytest.raises(TimeoutError):
            await run_with_timeout(clock, 3.0, slow)
        outcome.append("timed out")

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await clock.run_for(2.9)
        assert outcome == []
        await clock.run_for(0.1)
        assert outcome == ["cancelled at 3", "timed out"]


async def test_advance_jumps_at_once_and_woken_tasks_run_on_the_next_yield(
    clock: FakeClock,
) -> None:
    woken: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woken.append((name, clock.now()))

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, "due", 3.0)
        group.start_soon(sleeper, "later", 30.0)
        await clock.settle()
        clock.advance(5.0)
        assert clock.now() == 5.0
        assert woken == []
        await clock.settle()
        assert woken == [("due", 5.0)]
        group.cancel_scope.cancel()


async def test_run_with_timeout_on_the_real_clock_returns_raises_and_times_out() -> None:
    real = SystemClock()

    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    async def broken() -> int:
        raise ValueError("broken")

    assert await run_with_timeout(real, 5.0, answer) == 42
    with pytest.raises(ValueError, match="broken"):
        await run_with_timeout(real, 5.0, broken)
    with pytest.raises(TimeoutError):
        await run_with_timeout(real, 0.01, anyio.Event().wait)
