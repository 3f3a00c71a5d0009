"""Supervised tasks restart after a crash with backoff, or take the process down; signals stop."""

from __future__ import annotations

import os
import signal
from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from fluxd.aio import Backoff, FakeClock, cancel_on_stop_signal, supervise


class CrashingTask:
    """Crashes on its first ``crashes`` starts after running ``runs_for`` seconds, then idles."""

    def __init__(self, clock: FakeClock, *, crashes: int, runs_for: float = 0.0) -> None:
        self.clock = clock
        self.crashes = crashes
        self.runs_for = runs_for
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(self.clock.now())
        await self.clock.sleep(self.runs_for)
        if len(self.starts) <= self.crashes:
            raise RuntimeError(f"watch stream broke (start {len(self.starts)})")
        await self.clock.sleep(10_000.0)


async def test_a_crashed_task_is_logged_and_restarted_with_backoff(
    clock: FakeClock, logs: list[MutableMapping[str, Any]]
) -> None:
    task = CrashingTask(clock, crashes=3)
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: supervise("poller", task, backoff=Backoff(base=1.0, cap=60.0), clock=clock)
        )
        await clock.run_for(100.0)
        group.cancel_scope.cancel()

    assert task.starts == [0.0, 1.0, 3.0, 7.0]
    crashes = [entry for entry in logs if entry["event"] == "task crashed, restarting"]
    assert [entry["task"] for entry in crashes] == ["poller"] * 3
    assert [entry["restart_in_seconds"] for entry in crashes] == [1.0, 2.0, 4.0]
    assert all(entry["exc_info"] is True and entry["log_level"] == "error" for entry in crashes)


async def test_a_long_healthy_run_resets_the_restart_backoff(clock: FakeClock) -> None:
    task = CrashingTask(clock, crashes=4, runs_for=100.0)
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: supervise(
                "watch",
                task,
                backoff=Backoff(base=1.0, cap=60.0),
                stable_after=50.0,
                clock=clock,
            )
        )
        await clock.run_for(500.0)
        group.cancel_scope.cancel()

    # every run lasted 100s, so each restart waits the base delay again
    assert task.starts == [0.0, 101.0, 202.0, 303.0, 404.0]


async def test_without_restart_the_crash_propagates(
    clock: FakeClock, logs: list[MutableMapping[str, Any]]
) -> None:
    task = CrashingTask(clock, crashes=1)
    with pytest.raises(RuntimeError, match="watch stream broke"):
        await supervise("leader", task, restart=False, clock=clock)
    assert task.starts == [0.0]
    assert [(entry["event"], entry["task"]) for entry in logs] == [("task crashed", "leader")]


async def test_a_task_that_returns_is_not_restarted(
    clock: FakeClock, logs: list[MutableMapping[str, Any]]
) -> None:
    starts: list[float] = []

    async def one_shot() -> None:
        starts.append(clock.now())

    await supervise("migration", one_shot, clock=clock)
    assert starts == [0.0]
    assert [entry["event"] for entry in logs] == ["task finished"]


async def test_cancellation_is_not_a_crash(
    clock: FakeClock, logs: list[MutableMapping[str, Any]]
) -> None:
    task = CrashingTask(clock, crashes=0)
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: supervise("server", task, clock=clock))
        await clock.run_for(5.0)
        group.cancel_scope.cancel()
    assert task.starts == [0.0]
    assert logs == []


async def test_a_stop_signal_cancels_the_scope_and_cleanup_runs(
    logs: list[MutableMapping[str, Any]],
) -> None:
    cleaned_up: list[str] = []

    async def serve() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cleaned_up.append("released")

    with anyio.fail_after(2):
        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            group.start_soon(cancel_on_stop_signal, group.cancel_scope)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            os.kill(os.getpid(), signal.SIGTERM)

    assert cleaned_up == ["released"]
    assert {"event": "stopping", "signal": "SIGTERM", "log_level": "info"} in logs
