"""Per-key exponential backoff.

A reconcile that keeps failing must not hammer the API server or a Git host:
each key waits ``base``, then twice that, and so on up to ``cap``, and starts
again from ``base`` once it succeeds. Flux's controllers default to 750ms and
15 minutes (``--min-retry-delay`` / ``--max-retry-delay``); so does fluxd.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

DEFAULT_BASE = 0.75
DEFAULT_CAP = 15 * 60.0

# Beyond this many doublings every delay is the cap; stops float overflow.
_MAX_DOUBLINGS = 64


def exponential_delay(failures: int, *, base: float, cap: float) -> float:
    """The delay after ``failures`` consecutive failures: ``base``, doubling, at most ``cap``.

    The one backoff formula of fluxd; ``Backoff`` keeps the count per key.
    """
    doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
    return min(cap, base * 2.0**doublings)


class Backoff:
    """Delays that double with each consecutive failure of a key, bounded by ``cap``.

    ``jitter`` spreads each delay by up to that fraction either way (0.1 gives
    90%..110%) so keys that failed together do not retry together; the result
    never exceeds ``cap``.
    """

    def __init__(
        self,
        *,
        base: float = DEFAULT_BASE,
        cap: float = DEFAULT_CAP,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0:
            raise ValueError(f"backoff base must be positive, got {base}")
        if cap < base:
            raise ValueError(f"backoff cap ({cap}) must not be below its base ({base})")
        if not 0 <= jitter < 1:
            raise ValueError(f"backoff jitter must be in [0, 1), got {jitter}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._failures: dict[Hashable, int] = {}

    def next(self, key: Hashable) -> float:
        """Record one more failure of ``key`` and return how long it should wait."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = exponential_delay(failures, base=self.base, cap=self.cap)
        if self.jitter:
            delay *= self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(delay, self.cap)

    def reset(self, key: Hashable) -> None:
        """Forget the failures of ``key``: its next delay is ``base`` again."""
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """Consecutive failures recorded for ``key`` since its last reset."""
        return self._failures.get(key, 0)
