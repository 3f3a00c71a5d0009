"""Finding work that blocks the event loop, for debugging.

One process serves webhooks, probes, watches and every reconcile on one event
loop, so a callback that runs for a quarter second stalls all of them. asyncio's
debug mode already times every callback; :func:`watch_slow_callbacks` turns it
on with a threshold and re-logs each of asyncio's "Executing ... took" warnings
as one structured line with a message that tests and operators can search for:
``slow event-loop callback``.
"""

from __future__ import annotations

import asyncio
import logging

import structlog

SLOW_CALLBACK_EVENT = "slow event-loop callback"

log = structlog.get_logger("fluxd.aio.loopwatch")


class _SlowCallbackFilter(logging.Filter):
    """Turns asyncio's slow-callback warnings into our own log line."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        # asyncio.base_events logs: "Executing %s took %.3f seconds" % (handle, dt).
        if not str(record.msg).startswith("Executing ") or not isinstance(record.args, tuple):
            return True
        if len(record.args) != 2:
            return True
        callback, seconds = record.args
        log.warning(
            SLOW_CALLBACK_EVENT,
            callback=str(callback),
            seconds=round(float(seconds), 3),  # type: ignore[arg-type]
            threshold=self.threshold,
        )
        return False


def watch_slow_callbacks(*, threshold: float) -> None:
    """Log every callback of the running loop that takes longer than ``threshold`` seconds."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = threshold
    logger = logging.getLogger("asyncio")
    for existing in [f for f in logger.filters if isinstance(f, _SlowCallbackFilter)]:
        logger.removeFilter(existing)
    logger.addFilter(_SlowCallbackFilter(threshold))
    # Debug mode logs at WARNING; make sure a quieter root level does not hide them.
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)


__all__ = ["SLOW_CALLBACK_EVENT", "watch_slow_callbacks"]
