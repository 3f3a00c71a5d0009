"""A retry may be capped, e.g. at the object's interval, without forgetting the failures."""

from __future__ import annotations

import itertools

import anyio

from fluxd.aio import Backoff, FakeClock, Result, WorkQueue


async def test_retry_delay_is_capped_but_failures_still_count() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(
        "capped", clock=clock, backoff=Backoff(base=10.0, cap=1000.0), jitter=0.0
    )
    runs: list[float] = []

    async def worker(key: str) -> Result:
        runs.append(clock.now())
        return Result.retry(at_most=15.0)

    async with anyio.create_task_group() as group:
        group.start_soon(queue.run, worker)
        queue.add("k")
        await clock.run_for(100.0)
        group.cancel_scope.cancel()
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    assert gaps[0] == 10.0  # the base delay
    assert gaps[1:] and all(gap == 15.0 for gap in gaps[1:])  # 20, 40, ... capped at 15
    assert queue.failures("k") == len(runs)
