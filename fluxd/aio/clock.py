"""Time as a dependency.

Everything in fluxd that waits (work queues, backoff, leader election,
supervision) asks a ``Clock`` instead of calling ``time`` and ``anyio.sleep``
directly, so tests can drive hours of reconciling on a ``FakeClock`` without
sleeping for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")

# Upper bound on event-loop turns a FakeClock spends letting woken tasks run;
# only reached by a task that spins on zero-length sleeps.
_MAX_SETTLE_TURNS = 10_000
# Turns used when the event loop does not expose its ready queue.
_FALLBACK_SETTLE_TURNS = 100


class Clock(Protocol):
    """Monotonic time and sleeping."""

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` (0 or less only yields)."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(seconds, 0.0))


@dataclass(order=True)
class _Sleeper:
    deadline: float
    sequence: int
    event: anyio.Event = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class FakeClock:
    """A clock that only moves when a test says so.

    ``advance`` jumps (synchronously); ``run_for`` steps from deadline to
    deadline and lets the event loop run until every woken task waits again
    before time moves on, which makes multi-task scenarios deterministic.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are currently sleeping on this clock."""
        return sum(1 for sleeper in self._sleepers if not sleeper.cancelled)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(self._now + seconds, next(self._sequence), anyio.Event())
        heapq.heappush(self._sleepers, sleeper)
        try:
            await sleeper.event.wait()
        finally:
            # A cancelled sleeper stays in the heap and is skipped when due.
            sleeper.cancelled = True

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds`` and wake every sleeper whose deadline has passed.

        The woken tasks run when the caller next yields; they all read the new
        time. Use ``run_for`` to play out a span of time step by step.
        """
        if seconds < 0:
            raise ValueError(f"a clock cannot go back in time (advance by {seconds})")
        self._now += seconds
        while self._sleepers and self._sleepers[0].deadline <= self._now:
            heapq.heappop(self._sleepers).event.set()

    async def run_for(self, seconds: float) -> None:
        """Let ``seconds`` pass, one deadline at a time, letting woken tasks run in between.

        Each sleeper wakes at exactly its deadline, and a task that goes back
        to sleep within the span is woken again in the same call, so
        ``run_for(3600)`` plays out an hour of periodic work deterministically.
        """
        if seconds < 0:
            raise ValueError(f"a clock cannot go back in time (run for {seconds})")
        target = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0].deadline <= target:
            sleeper = heapq.heappop(self._sleepers)
            if sleeper.cancelled:
                continue
            self._now = max(self._now, sleeper.deadline)
            sleeper.event.set()
            await self.settle()
        self._now = target
        await self.settle()

    async def settle(self) -> None:
        """Let every runnable task run until all of them wait again."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        if ready is None:
            for _ in range(_FALLBACK_SETTLE_TURNS):
                await anyio.lowlevel.checkpoint()
            return
        # asyncio keeps runnable callbacks in ``_ready``: when it is empty while
        # this task runs, every other task is waiting on something.
        for _ in range(_MAX_SETTLE_TURNS):
            await anyio.lowlevel.checkpoint()
            if not ready:
                return


async def run_with_timeout(
    clock: Clock, seconds: float, operation: Callable[[], Awaitable[T]]
) -> T:
    """Run ``operation`` and cancel it after ``seconds`` on ``clock``.

    Raises ``TimeoutError`` when the time ran out first. ``anyio.fail_after``
    cannot be used because it measures real time, not the injected clock.
    """
    if isinstance(clock, SystemClock) and seconds > 0:
        # On the real clock anyio's own deadline does the same, without a helper task and
        # without a cancel called from a task (anyio formats that task into the reason).
        with anyio.fail_after(seconds):
            return await operation()
    outcome: list[T] = []
    failure: Exception | None = None
    timed_out = False

    async with anyio.create_task_group() as group:

        async def expire() -> None:
            nonlocal timed_out
            await clock.sleep(seconds)
            timed_out = True
            group.cancel_scope.cancel()

        group.start_soon(expire)
        try:
            outcome.append(await operation())
        except Exception as error:
            # Raised outside the task group, or it would arrive wrapped in an ExceptionGroup.
            failure = error
        group.cancel_scope.cancel()

    if failure is not None:
        raise failure
    if timed_out and not outcome:
        raise TimeoutError(f"operation did not finish within {seconds:g}s")
    return outcome[0]
