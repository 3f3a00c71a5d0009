"""The public surface of ``fluxd.aio``: what other packages may import."""

from __future__ import annotations

import fluxd.aio


def test_the_public_surface_is_pinned() -> None:
    assert sorted(fluxd.aio.__all__) == [
        "AioError",
        "Backoff",
        "Batch",
        "Clock",
        "Coalescer",
        "FakeClock",
        "LeaderElector",
        "LeaseConflict",
        "LeaseRecord",
        "LeaseStore",
        "Outcome",
        "QueueObserver",
        "Result",
        "SystemClock",
        "WorkQueue",
        "Worker",
        "cancel_on_stop_signal",
        "exponential_delay",
        "run_with_timeout",
        "supervise",
        "wait_for_stop_signal",
    ]
    for name in fluxd.aio.__all__:
        assert getattr(fluxd.aio, name) is not None
