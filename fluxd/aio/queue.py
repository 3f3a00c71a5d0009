"""The work queue every controller runs on.

Watch events, webhooks and timers all say "look at this object again"; the
queue turns those into reconciles with the guarantees controllers rely on:
one object is never reconciled twice at once, many objects are reconciled in
parallel up to a limit, repeated requests collapse into one, failures back off
per object, and successful reconciles come back at their interval with jitter
so objects created together do not stay in lock-step.

All methods must be called from the event loop thread.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import random
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio
import structlog

from fluxd.aio.backoff import Backoff
from fluxd.aio.clock import Clock, SystemClock, run_with_timeout

K = TypeVar("K", bound=Hashable)

_log = structlog.get_logger(__name__)

DEFAULT_REQUEUE_JITTER = 0.1
# A timer set for ``due - now`` can wake a hair before ``due`` through float
# rounding; such a key counts as due rather than waiting for another wake-up.
_DUE_TOLERANCE = 1e-9


class Outcome(enum.Enum):
    """What a worker asks the queue to do with the key it just handled."""

    DONE = "done"
    RETRY = "retry"
    STOP = "stop"


@dataclass(frozen=True)
class Result:
    """A worker's verdict on one key; build it with ``done``, ``retry`` or ``stop``.

    ``requeue_after`` is the interval after a success, or the cap on the
    backoff delay after a failure; None means no interval, or no cap.
    """

    outcome: Outcome
    requeue_after: float | None = None

    @classmethod
    def done(cls, requeue_after: float | None = None) -> Result:
        """Success: forget past failures and come back after ``requeue_after`` (jittered)."""
        if requeue_after is not None and requeue_after < 0:
            raise ValueError(f"requeue_after must not be negative, got {requeue_after}")
        return cls(Outcome.DONE, requeue_after)

    @classmethod
    def retry(cls, *, at_most: float | None = None) -> Result:
        """Transient failure: come back after this key's next backoff delay.

        ``at_most`` caps the delay (e.g. at the object's own interval), while the
        failure still counts towards the backoff.
        """
        if at_most is not None and at_most < 0:
            raise ValueError(f"at_most must not be negative, got {at_most}")
        return cls(Outcome.RETRY, at_most)

    @classmethod
    def stop(cls) -> Result:
        """Stalled: do not come back until somebody adds the key again."""
        return cls(Outcome.STOP)


Worker = Callable[[K], Awaitable[Result]]


class QueueObserver(Protocol):
    """Receives the queue's measurements (metrics are wired in by the caller)."""

    def on_add(self, name: str) -> None:
        """A key was queued that was not already waiting."""
        ...

    def on_depth(self, name: str, depth: int) -> None:
        """The number of due keys waiting for a free worker changed."""
        ...

    def on_latency(self, name: str, seconds: float) -> None:
        """A key started ``seconds`` after it was due."""
        ...

    def on_work_duration(self, name: str, seconds: float) -> None:
        """A worker finished one key after ``seconds``."""
        ...

    def on_retry(self, name: str) -> None:
        """A key was requeued with backoff after a failure."""
        ...


class _SilentObserver:
    def on_add(self, name: str) -> None:
        pass

    def on_depth(self, name: str, depth: int) -> None:
        pass

    def on_latency(self, name: str, seconds: float) -> None:
        pass

    def on_work_duration(self, name: str, seconds: float) -> None:
        pass

    def on_retry(self, name: str) -> None:
        pass


class _Signal:
    """Wakes every task waiting at the moment it fires.

    The event is created on first wait, so a queue can be built before the
    event loop runs, and callers arm it before awaiting so that no wake-up is
    lost in between.
    """

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def arm(self) -> anyio.Event:
        if self._event is None:
            self._event = anyio.Event()
        return self._event

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


class WorkQueue(Generic[K]):
    """De-duplicating, delaying, per-key serialised queue with a pool of workers.

    A key is in at most one of three places: waiting (with a due time),
    being processed, or (while processed) marked to run again. Adding a key
    that is already waiting keeps the earlier due time; adding a key that is
    being processed makes it run once more after the current run, never
    concurrently.
    """

    def __init__(
        self,
        name: str,
        *,
        concurrency: int = 1,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        jitter: float = DEFAULT_REQUEUE_JITTER,
        rng: random.Random | None = None,
        observer: QueueObserver | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"queue {name!r}: concurrency must be at least 1, got {concurrency}")
        if not 0 <= jitter < 1:
            raise ValueError(f"queue {name!r}: jitter must be in [0, 1), got {jitter}")
        self.name = name
        self.concurrency = concurrency
        self._clock: Clock = clock or SystemClock()
        self._backoff = backoff or Backoff()
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._observer: QueueObserver = observer or _SilentObserver()

        self._scheduled: dict[K, float] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._ready: deque[tuple[K, float]] = deque()
        self._ready_keys: set[K] = set()
        self._processing: set[K] = set()
        self._rerun: dict[K, float] = {}

        self._scheduled_changed = _Signal()
        # When the scheduler wakes by itself (its earliest timer); a key due later need not
        # wake it, which spares a wake-up per requeue at an interval.
        self._wakes_at = float("inf")
        self._ready_changed = _Signal()
        self._work_finished = _Signal()
        self._stopped = _Signal()
        self._shutting_down = False
        self._running = False
        self._run_scope: anyio.CancelScope | None = None

    # -- adding keys ---------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` to be processed as soon as a worker is free."""
        self._enqueue(key, self._clock.now())

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` to be processed ``delay`` seconds from now."""
        self._enqueue(key, self._clock.now() + max(delay, 0.0))

    def add_rate_limited(self, key: K) -> None:
        """Queue ``key`` after its next backoff delay (one more failure counted)."""
        self._observer.on_retry(self.name)
        self.add_after(key, self._backoff.next(key))

    def forget(self, key: K) -> None:
        """Reset the backoff of ``key``; its next failure waits the base delay."""
        self._backoff.reset(key)

    # -- inspecting ----------------------------------------------------------

    def __len__(self) -> int:
        """Keys that will be processed: due, scheduled for later, or marked to run again."""
        return len(self._ready) + len(self._scheduled) + len(self._rerun)

    @property
    def depth(self) -> int:
        """Keys that are due and wait for a free worker."""
        return len(self._ready)

    @property
    def in_flight(self) -> int:
        """Keys a worker is processing right now."""
        return len(self._processing)

    def failures(self, key: K) -> int:
        """Consecutive failures of ``key`` counted by its backoff."""
        return self._backoff.failures(key)

    # -- running -------------------------------------------------------------

    async def run(self, worker: Worker[K]) -> None:
        """Process keys with ``concurrency`` workers until ``shutdown`` or cancellation.

        A worker that raises is logged with its key and retried with backoff;
        it never stops the queue.
        """
        if self._running:
            raise RuntimeError(f"queue {self.name!r} is already running")
        self._running = True
        try:
            async with anyio.create_task_group() as group:
                self._run_scope = group.cancel_scope
                group.start_soon(self._schedule, name=f"{self.name}-scheduler")
                for index in range(self.concurrency):
                    group.start_soon(self._work, worker, name=f"{self.name}-worker-{index}")
        finally:
            self._run_scope = None
            self._running = False
            self._processing.clear()
            self._stopped.fire()

    async def shutdown(self, grace: float = 0.0) -> None:
        """Stop starting keys, let in-flight work finish for up to ``grace`` seconds.

        Work still running after ``grace`` is cancelled. Returns once ``run``
        has returned (at once if it is not running).
        """
        self._shutting_down = True
        self._scheduled_changed.fire()
        self._ready_changed.fire()
        stopped = self._stopped.arm()
        deadline = self._clock.now() + grace
        while self._processing:
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                break
            finished = self._work_finished.arm()
            with suppress(TimeoutError):
                await run_with_timeout(self._clock, remaining, finished.wait)
        if self._processing and self._run_scope is not None:
            _log.warning(
                "cancelling unfinished work",
                queue=self.name,
                in_flight=len(self._processing),
                grace_seconds=grace,
            )
            self._run_scope.cancel()
        if self._running:
            await stopped.wait()

    # -- internals -----------------------------------------------------------

    def _enqueue(self, key: K, due: float) -> None:
        if self._shutting_down:
            return
        if key in self._processing:
            earlier = self._rerun.get(key)
            if earlier is None:
                self._observer.on_add(self.name)
            if earlier is None or due < earlier:
                self._rerun[key] = due
            return
        if key in self._ready_keys:
            return
        earlier = self._scheduled.get(key)
        if earlier is not None and earlier <= due:
            return
        if earlier is None:
            self._observer.on_add(self.name)
        # The entry for the later due time stays in the heap and is skipped.
        self._scheduled[key] = due
        heapq.heappush(self._timers, (due, next(self._sequence), key))
        if due < self._wakes_at:
            self._scheduled_changed.fire()

    def _promote_due(self) -> None:
        now = self._clock.now() + _DUE_TOLERANCE
        promoted = False
        while self._timers and self._timers[0][0] <= now:
            due, _, key = heapq.heappop(self._timers)
            if self._scheduled.get(key) != due:
                continue
            del self._scheduled[key]
            self._ready.append((key, due))
            self._ready_keys.add(key)
            promoted = True
        if promoted:
            self._observer.on_depth(self.name, len(self._ready))
            self._ready_changed.fire()

    async def _schedule(self) -> None:
        while not self._shutting_down:
            self._promote_due()
            changed = self._scheduled_changed.arm()
            if not self._timers:
                self._wakes_at = float("inf")
                await changed.wait()
                continue
            self._wakes_at = self._timers[0][0]
            delay = self._wakes_at - self._clock.now()
            with suppress(TimeoutError):
                await run_with_timeout(self._clock, delay, changed.wait)

    async def _work(self, worker: Worker[K]) -> None:
        while True:
            while not self._ready and not self._shutting_down:
                await self._ready_changed.arm().wait()
            if self._shutting_down:
                return
            key, due = self._ready.popleft()
            self._ready_keys.discard(key)
            self._processing.add(key)
            started = self._clock.now()
            self._observer.on_depth(self.name, len(self._ready))
            self._observer.on_latency(self.name, max(started - due, 0.0))
            try:
                try:
                    result = await worker(key)
                except Exception:
                    _log.exception("work item failed", queue=self.name, key=key)
                    result = Result.retry()
                self._finish(key, result, started)
            finally:
                self._processing.discard(key)
                self._work_finished.fire()

    def _finish(self, key: K, result: Result, started: float) -> None:
        now = self._clock.now()
        self._observer.on_work_duration(self.name, now - started)
        self._processing.discard(key)
        requeue_at: float | None = None
        if result.outcome is Outcome.RETRY:
            self._observer.on_retry(self.name)
            delay = self._backoff.next(key)
            if result.requeue_after is not None:
                delay = min(delay, result.requeue_after)
            requeue_at = now + delay
        else:
            self._backoff.reset(key)
            if result.outcome is Outcome.DONE and result.requeue_after is not None:
                requeue_at = now + self._jittered(result.requeue_after)
        rerun_at = self._rerun.pop(key, None)
        candidates = [due for due in (requeue_at, rerun_at) if due is not None]
        if candidates:
            self._enqueue(key, min(candidates))

    def _jittered(self, seconds: float) -> float:
        if not self._jitter:
            return seconds
        return seconds * self._rng.uniform(1 - self._jitter, 1 + self._jitter)
