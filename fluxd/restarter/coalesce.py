"""Coalescing: several objects of one workload changing together make one rollout.

A kustomize apply often writes a Secret and a ConfigMap used by the same
Deployment within a second of each other; restarting per object would roll
the pods twice. Changes are collected per workload, and the batch falls due
``window`` seconds after its *first* change (a fixed window, so a stream of
changes cannot postpone a restart forever). A later change of the same object
within the window replaces the earlier one.

Pure bookkeeping on a ``Clock``: the caller sleeps until ``next_deadline()``
and takes ``due()``; tests drive it with a fake clock.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fluxd.aio.clock import Clock, SystemClock

DEFAULT_WINDOW = 2.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Batch(Generic[K, V]):
    """The changes collected for one workload, in order of first arrival."""

    key: K
    items: tuple[V, ...]


@dataclass
class _Pending(Generic[V]):
    deadline: float
    items: dict[Hashable, V]


class Coalescer(Generic[K, V]):
    """Collect items per key; release each key's items once, ``window`` after its first."""

    def __init__(self, *, window: float = DEFAULT_WINDOW, clock: Clock | None = None) -> None:
        if window < 0:
            raise ValueError(f"coalescing window must not be negative, got {window}")
        self._window = window
        self._clock: Clock = clock or SystemClock()
        self._pending: dict[K, _Pending[V]] = {}

    def add(self, key: K, item: V, *, item_key: Hashable) -> None:
        """Record ``item`` for ``key``; an item with the same ``item_key`` is replaced."""
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(self._clock.now() + self._window, {})
            self._pending[key] = pending
        # Re-inserting keeps the first-arrival position, which dict.update does.
        pending.items[item_key] = item

    def due(self) -> list[Batch[K, V]]:
        """Remove and return every batch whose window has closed, earliest first."""
        now = self._clock.now()
        ready = sorted(
            (pending.deadline, index, key)
            for index, (key, pending) in enumerate(self._pending.items())
            if pending.deadline <= now
        )
        return [Batch(key, tuple(self._pending.pop(key).items.values())) for _, _, key in ready]

    def next_deadline(self) -> float | None:
        """Clock time at which the next batch falls due, None when nothing is pending."""
        return min((pending.deadline for pending in self._pending.values()), default=None)

    def discard(self, key: K) -> None:
        """Drop a workload's pending changes (it was deleted)."""
        self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)
