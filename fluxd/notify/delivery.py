"""Getting notifications out without ever holding up the code that reports events.

``DeliveryQueue.submit`` only enqueues. Behind it, each Provider has its own
lane (one worker, in order), so a slow or dead webhook delays only its own
messages. A lane retries retryable failures with exponential backoff for a
bounded number of attempts, paces robots to the rate their service allows
instead of being refused, and drops repeats of the same event (same object,
message and metadata) sent to the same Provider within the dedup window,
which is Flux's 5 minutes by default. Every outcome is reported to an observer
hook, which the daemon turns into ``fluxd_notification_*`` metrics.

A lane lives as long as its Provider sends to the same place: ``retire``
stops it when the Provider is deleted or its address changes, and drops
(rather than drains) what it still holds, since those notifications were
meant for a destination the user has removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import structlog

from fluxd.aio import exponential_delay
from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import Provider, RateLimit

_log = structlog.get_logger("fluxd.notify.delivery")

# Flux's --rate-limit-interval default.
DEFAULT_DEDUP_WINDOW_SECONDS: Final = 300.0
_PURGE_EVERY: Final = 256


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRIED = "retried"
    FAILED = "failed"
    DEDUPLICATED = "deduplicated"
    DROPPED = "dropped"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One thing that happened to one notification, for metrics."""

    outcome: Outcome
    provider_type: str
    provider: str
    attempts: int = 0
    duration_seconds: float = 0.0
    reason: str = ""


DeliveryObserver = Callable[[DeliveryRecord], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` sends at most, waiting ``initial_delay``, doubling, capped, between."""

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, *, failed_attempts: int) -> float:
        return exponential_delay(failed_attempts, base=self.initial_delay, cap=self.max_delay)


@dataclass(slots=True)
class _Item:
    provider: Provider
    event: Event


@dataclass(slots=True)
class _Lane:
    key: str
    queue: asyncio.Queue[_Item]
    sent_at: dict[RateLimit, deque[float]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    current: _Item | None = None


DedupKey = tuple[str, str, str, str, str, tuple[tuple[str, str], ...]]


class DeliveryQueue:
    """Asynchronous, per-Provider delivery with retries, dedup and pacing.

    Use it as an async context manager (or call ``aclose``) so lane workers
    stop with it. ``submit`` must be called from the event loop's thread.
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        dedup_window: float = DEFAULT_DEDUP_WINDOW_SECONDS,
        lane_capacity: int = 256,
        observer: DeliveryObserver | None = None,
        rate_limits: Mapping[str, tuple[RateLimit, ...]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._dedup_window = dedup_window
        self._lane_capacity = lane_capacity
        self._observer = observer
        self._rate_limits = dict(rate_limits or {})
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        # Workers of retired lanes, cancelled and awaited by ``aclose``.
        self._retired: set[asyncio.Task[None]] = set()
        self._recent: dict[DedupKey, float] = {}
        self._submissions = 0
        self._closed = False

    async def __aenter__(self) -> DeliveryQueue:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def submit(self, provider: Provider, event: Event) -> bool:
        """Queue ``event`` for ``provider``; False when it was a duplicate or dropped."""
        if self._closed:
            raise RuntimeError("the delivery queue is closed")
        config = provider.config
        if self._is_duplicate(config.key, event):
            self._record(Outcome.DEDUPLICATED, provider)
            return False
        lane = self._lane(config.key)
        try:
            lane.queue.put_nowait(_Item(provider=provider, event=event))
        except asyncio.QueueFull:
            self._record(Outcome.DROPPED, provider, reason="provider lane is full")
            _log.error(
                "notification dropped: the provider's queue is full",
                provider=config.key,
                provider_type=config.provider_type,
                **_object_fields(event),
            )
            return False
        return True

    async def join(self) -> None:
        """Wait until everything submitted so far is delivered or given up."""
        for lane in tuple(self._lanes.values()):
            await lane.queue.join()

    async def aclose(self) -> None:
        self._closed = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        tasks.extend(self._retired)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def retire(self, provider_key: str, *, reason: str) -> int:
        """Stop ``provider_key``'s lane and drop what it holds; returns how many were dropped.

        The notification being sent, if any, is cancelled and counted as dropped.
        Synchronous, so a caller can swap a Provider's sender and retire its old
        lane with nothing submitted in between.
        """
        lane = self._lanes.pop(provider_key, None)
        if lane is None:
            return 0
        dropped = [lane.current] if lane.current is not None else []
        if lane.task is not None:
            lane.task.cancel()
            self._retired.add(lane.task)
            lane.task.add_done_callback(self._retired.discard)
        while not lane.queue.empty():
            dropped.append(lane.queue.get_nowait())
            lane.queue.task_done()
        for item in dropped:
            self._record(Outcome.DROPPED, item.provider, reason=reason)
        if dropped:
            _log.warning(
                "notifications dropped: the provider's lane was stopped",
                provider=provider_key,
                dropped=len(dropped),
                reason=reason,
            )
        return len(dropped)

    @property
    def lanes(self) -> int:
        """How many Providers currently have a lane."""
        return len(self._lanes)

    def _is_duplicate(self, provider_key: str, event: Event) -> bool:
        now = self._clock()
        self._submissions += 1
        if self._submissions % _PURGE_EVERY == 0:
            self._recent = {key: until for key, until in self._recent.items() if until > now}
        involved = event.involved_object
        key: DedupKey = (
            provider_key,
            involved.kind,
            involved.namespace,
            involved.name,
            event.message,
            tuple(sorted(event.metadata.items())),
        )
        if self._recent.get(key, 0.0) > now:
            return True
        self._recent[key] = now + self._dedup_window
        return False

    def _lane(self, key: str) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = _Lane(key=key, queue=asyncio.Queue(maxsize=self._lane_capacity))
            lane.task = asyncio.get_running_loop().create_task(
                self._work(lane), name=f"notify-lane:{key}"
            )
            self._lanes[key] = lane
        return lane

    async def _work(self, lane: _Lane) -> None:
        while True:
            item = await lane.queue.get()
            lane.current = item
            try:
                await self._deliver(lane, item)
                lane.current = None
            except asyncio.CancelledError:
                raise
            except Exception:
                lane.current = None
                # A bug in one provider must not stop the lane for later events.
                _log.exception("notification delivery crashed", provider=lane.key)
                self._record(Outcome.FAILED, item.provider, reason="internal error")
            finally:
                lane.queue.task_done()

    async def _deliver(self, lane: _Lane, item: _Item) -> None:
        provider, event = item.provider, item.event
        config = provider.config
        started = self._clock()
        for attempt in range(1, self._retry.max_attempts + 1):
            await self._pace(lane, provider)
            try:
                await provider.send(event)
            except ProviderConfigError as error:
                self._give_up(provider, event, attempt=attempt, started=started, error=error)
                return
            except DeliveryError as error:
                if not error.retryable or attempt == self._retry.max_attempts:
                    self._give_up(provider, event, attempt=attempt, started=started, error=error)
                    return
                delay = max(
                    self._retry.delay(failed_attempts=attempt), min(error.retry_after or 0.0, 300.0)
                )
                self._record(Outcome.RETRIED, provider, attempts=attempt, reason=error.reason)
                _log.warning(
                    "notification not delivered; retrying",
                    provider=config.key,
                    provider_type=config.provider_type,
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    error=str(error),
                    **_object_fields(event),
                )
                await asyncio.sleep(delay)
            else:
                self._record(
                    Outcome.DELIVERED,
                    provider,
                    attempts=attempt,
                    duration=self._clock() - started,
                )
                return

    def _give_up(
        self,
        provider: Provider,
        event: Event,
        *,
        attempt: int,
        started: float,
        error: DeliveryError | ProviderConfigError,
    ) -> None:
        config = provider.config
        self._record(
            Outcome.FAILED,
            provider,
            attempts=attempt,
            duration=self._clock() - started,
            reason=str(error),
        )
        _log.error(
            "notification not delivered; giving up",
            provider=config.key,
            provider_type=config.provider_type,
            attempts=attempt,
            error=str(error),
            **_object_fields(event),
        )

    async def _pace(self, lane: _Lane, provider: Provider) -> None:
        """Wait until sending now stays within every rate limit of the provider."""
        limits = self._rate_limits.get(provider.config.provider_type, provider.rate_limits)
        throttled = False
        while True:
            now = self._clock()
            wait = 0.0
            for limit in limits:
                sent = lane.sent_at.setdefault(limit, deque())
                while sent and sent[0] <= now - limit.period_seconds:
                    sent.popleft()
                if len(sent) >= limit.messages:
                    wait = max(wait, sent[0] + limit.period_seconds - now)
            if wait <= 0:
                break
            if not throttled:
                throttled = True
                self._record(Outcome.THROTTLED, provider)
            await asyncio.sleep(wait)
        for limit in limits:
            lane.sent_at[limit].append(now)

    def _record(
        self,
        outcome: Outcome,
        provider: Provider,
        *,
        attempts: int = 0,
        duration: float = 0.0,
        reason: str = "",
    ) -> None:
        if self._observer is None:
            return
        record = DeliveryRecord(
            outcome=outcome,
            provider_type=provider.config.provider_type,
            provider=provider.config.key,
            attempts=attempts,
            duration_seconds=duration,
            reason=reason,
        )
        try:
            self._observer(record)
        except Exception:
            _log.exception("delivery observer failed", outcome=outcome.value)


def _object_fields(event: Event) -> dict[str, str]:
    involved = event.involved_object
    return {"kind": involved.kind, "name": involved.name, "namespace": involved.namespace}
