"""Coalescing: many changes to one key within a window become one action.

Two places need it: the restarter (a kustomize apply writes a Secret and a
ConfigMap used by one Deployment within a second; restarting per object would
roll the pods twice) and the Receivers (a burst of pushes to one repository
should fetch it twice at most, not once per push).

Changes are collected per key and fall due as one ``Batch`` a fixed
``window`` after the window opened, so a stream of changes cannot postpone
the action forever; a later change with the same ``item_key`` replaces the
earlier one. Without ``leading`` the window opens at the first change. With
``leading``, the first change of a quiet key is not kept: ``add`` returns True
and the caller acts on it at once, which opens the window; changes inside it
collapse into one trailing batch at its end, whose release opens the next.

Bookkeeping on a ``Clock``: the caller either sleeps until
``next_deadline()`` and takes ``due()`` itself, or awaits ``wait_due()``;
tests drive both with a fake clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from fluxd.aio.clock import Clock, SystemClock

DEFAULT_WINDOW = 2.0

# Past this many keys, release times older than the window (which no longer matter) are forgotten.
_RELEASED_LIMIT = 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Batch(Generic[K, V]):
    """The changes collected for one key, in order of first arrival."""

    key: K
    items: tuple[V, ...]


@dataclass
class _Pending(Generic[V]):
    deadline: float
    items: dict[Hashable, V]


class Coalescer(Generic[K, V]):
    """Collect items per key; release each key's items once, when its window closes."""

    def __init__(
        self, *, window: float = DEFAULT_WINDOW, leading: bool = False, clock: Clock | None = None
    ) -> None:
        if window < 0:
            raise ValueError(f"coalescing window must not be negative, got {window}")
        self._window = window
        self._leading = leading
        self._clock: Clock = clock or SystemClock()
        self._pending: dict[K, _Pending[V]] = {}
        # Leading mode: when each key last acted, which opens its window.
        self._released: dict[K, float] = {}
        self._changed: anyio.Event | None = None

    def add(self, key: K, item: V, *, item_key: Hashable) -> bool:
        """Record ``item`` for ``key``; an item with the same ``item_key`` is replaced.

        Returns True when the item is not kept because the caller is to act on
        it now (leading mode, quiet key); False when it waits for a batch.
        """
        now = self._clock.now()
        pending = self._pending.get(key)
        if pending is None:
            if self._leading:
                released = self._released.get(key)
                if released is None or now - released >= self._window:
                    self._mark_released(key, now)
                    return True
                deadline = released + self._window
            else:
                deadline = now + self._window
            pending = _Pending(deadline, {})
            self._pending[key] = pending
            if self._changed is not None:
                self._changed.set()
        # Re-inserting keeps the first-arrival position, which dict assignment does.
        pending.items[item_key] = item
        return False

    def due(self) -> list[Batch[K, V]]:
        """Remove and return every batch whose window has closed, earliest first."""
        now = self._clock.now()
        ready = sorted(
            (pending.deadline, index, key)
            for index, (key, pending) in enumerate(self._pending.items())
            if pending.deadline <= now
        )
        batches = [Batch(key, tuple(self._pending.pop(key).items.values())) for _, _, key in ready]
        if self._leading:
            for batch in batches:
                self._mark_released(batch.key, now)
        return batches

    async def wait_due(self) -> list[Batch[K, V]]:
        """Wait until at least one batch is due, then remove and return the due ones."""
        while True:
            batches = self.due()
            if batches:
                return batches
            deadline = self.next_deadline()
            changed = self._changed = anyio.Event()
            if deadline is None:
                await changed.wait()
            else:
                await self._sleep_unless(changed, deadline - self._clock.now())

    async def _sleep_unless(self, changed: anyio.Event, seconds: float) -> None:
        """Sleep ``seconds`` on the clock, or less when a new key starts waiting.

        A new key may fall due before the deadline slept on.
        """
        async with anyio.create_task_group() as group:

            async def wake_on_change() -> None:
                await changed.wait()
                group.cancel_scope.cancel()

            group.start_soon(wake_on_change)
            await self._clock.sleep(seconds)
            group.cancel_scope.cancel()

    def next_deadline(self) -> float | None:
        """Clock time at which the next batch falls due, None when nothing is pending."""
        return min((pending.deadline for pending in self._pending.values()), default=None)

    def discard(self, key: K) -> None:
        """Drop a key's pending changes (its object was deleted)."""
        self._pending.pop(key, None)
        self._released.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)

    def _mark_released(self, key: K, now: float) -> None:
        self._released[key] = now
        if len(self._released) > _RELEASED_LIMIT:
            self._released = {
                other: at for other, at in self._released.items() if now - at < self._window
            }
