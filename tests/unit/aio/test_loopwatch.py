"""The slow-callback detector names the callback that blocked the loop."""

from __future__ import annotations

import asyncio
import time

import structlog

from fluxd.aio.loopwatch import SLOW_CALLBACK_EVENT, watch_slow_callbacks


def _block_the_loop(done: asyncio.Event) -> None:
    # Deliberately synchronous: this is the blocking work the detector must see.
    time.sleep(0.2)
    done.set()


async def test_a_callback_over_the_threshold_is_logged_by_name() -> None:
    watch_slow_callbacks(threshold=0.05)
    loop = asyncio.get_running_loop()
    try:
        with structlog.testing.capture_logs() as logs:
            done = asyncio.Event()
            loop.call_soon(_block_the_loop, done)
            await done.wait()
            # The timing is logged after the callback returns, before the next one runs.
            await asyncio.sleep(0)
    finally:
        loop.set_debug(False)

    slow = [entry for entry in logs if entry["event"] == SLOW_CALLBACK_EVENT]
    assert len(slow) == 1
    assert "_block_the_loop" in slow[0]["callback"]
    assert slow[0]["seconds"] >= 0.05
