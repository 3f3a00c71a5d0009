"""The domain-free asyncio kit: clocks, backoff, coalescing, work queue, supervision, leases.

Nothing here knows about Kubernetes objects or Flux; controllers build on it.
"""

from __future__ import annotations

from fluxd.aio.backoff import Backoff, exponential_delay
from fluxd.aio.clock import Clock, FakeClock, SystemClock, run_with_timeout
from fluxd.aio.coalesce import Batch, Coalescer
from fluxd.aio.errors import AioError, LeaseConflict
from fluxd.aio.leader import LeaderElector, LeaseRecord, LeaseStore
from fluxd.aio.queue import Outcome, QueueObserver, Result, Worker, WorkQueue
from fluxd.aio.supervise import cancel_on_stop_signal, supervise, wait_for_stop_signal

__all__ = [
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
