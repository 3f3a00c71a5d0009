"""Supervision of the daemon's long-lived tasks, and an orderly stop on signals.

A watch loop or poller that dies silently leaves the cluster unreconciled
while the process looks healthy. Every long-lived task therefore runs under
``supervise``: a crash is logged with the task's name and traceback, then the
task is restarted after a backoff, or, for tasks the daemon cannot live
without, the crash propagates so the process exits non-zero and Kubernetes
restarts it.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Iterable

import anyio
import structlog

from fluxd.aio.backoff import Backoff
from fluxd.aio.clock import Clock, SystemClock

_log = structlog.get_logger(__name__)

DEFAULT_RESTART_BASE = 1.0
DEFAULT_RESTART_CAP = 60.0
# A run at least this long counts as healthy: the next crash backs off from the base again.
DEFAULT_STABLE_AFTER = 60.0

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def supervise(
    name: str,
    fn: Callable[[], Awaitable[None]],
    *,
    restart: bool = True,
    backoff: Backoff | None = None,
    stable_after: float = DEFAULT_STABLE_AFTER,
    clock: Clock | None = None,
) -> None:
    """Run ``fn`` until it returns, restarting it after each crash.

    Meant to be started in a task group: ``group.start_soon(supervise, "watch", watch)``.
    With ``restart=False`` the first crash is logged and re-raised.
    Cancellation is never treated as a crash.
    """
    clock = clock or SystemClock()
    backoff = backoff or Backoff(base=DEFAULT_RESTART_BASE, cap=DEFAULT_RESTART_CAP)
    while True:
        started = clock.now()
        try:
            await fn()
        except Exception:
            if not restart:
                _log.exception("task crashed", task=name)
                raise
            if clock.now() - started >= stable_after:
                backoff.reset(name)
            delay = backoff.next(name)
            _log.exception("task crashed, restarting", task=name, restart_in_seconds=delay)
            await clock.sleep(delay)
            continue
        _log.info("task finished", task=name)
        return


async def wait_for_stop_signal(signals: Iterable[signal.Signals] = STOP_SIGNALS) -> signal.Signals:
    """Wait until the process receives one of ``signals`` and return it."""
    with anyio.open_signal_receiver(*signals) as received:
        async for number in received:
            return signal.Signals(number)
    raise RuntimeError("the signal receiver closed without a signal")


async def cancel_on_stop_signal(
    scope: anyio.CancelScope, signals: Iterable[signal.Signals] = STOP_SIGNALS
) -> None:
    """Cancel ``scope`` when a stop signal arrives, for an orderly shutdown.

    Start it in the task group to stop: ``group.start_soon(cancel_on_stop_signal,
    group.cancel_scope)``. The ``finally`` blocks of the cancelled tasks then run
    (queues drain, the leader lease is released).
    """
    received = await wait_for_stop_signal(signals)
    _log.info("stopping", signal=received.name)
    scope.cancel()
