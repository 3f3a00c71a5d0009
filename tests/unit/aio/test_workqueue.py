"""The work queue: de-duplication, per-key serialisation, parallelism, requeue rules, drain."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from fluxd.aio import Backoff, FakeClock, Result, Worker, WorkQueue


class Recorder:
    """A worker that takes ``duration`` fake seconds and answers with ``verdict(key, run)``."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        duration: float = 0.0,
        verdict: Callable[[str, int], Result] = lambda key, run: Result.done(),
    ) -> None:
        self.clock = clock
        self.duration = duration
        self.verdict = verdict
        self.starts: list[tuple[str, float]] = []
        self.finished: list[tuple[str, float]] = []
        self.cancelled: list[tuple[str, float]] = []
        self.active: Counter[str] = Counter()
        self.most_parallel = 0
        self.most_parallel_per_key = 0

    async def __call__(self, key: str) -> Result:
        self.starts.append((key, self.clock.now()))
        self.active[key] += 1
        self.most_parallel = max(self.most_parallel, sum(self.active.values()))
        self.most_parallel_per_key = max(self.most_parallel_per_key, self.active[key])
        try:
            await self.clock.sleep(self.duration)
        except BaseException:
            self.cancelled.append((key, self.clock.now()))
            raise
        finally:
            self.active[key] -= 1
        self.finished.append((key, self.clock.now()))
        return self.verdict(key, self.runs(key))

    def runs(self, key: str) -> int:
        return sum(1 for started, _ in self.starts if started == key)

    def times(self, key: str) -> list[float]:
        return [at for started, at in self.starts if started == key]


@asynccontextmanager
async def running(queue: WorkQueue[str], worker: Worker[str]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run, worker)
        yield
        group.cancel_scope.cancel()


def make_queue(clock: FakeClock, **settings: Any) -> WorkQueue[str]:
    settings.setdefault("jitter", 0.0)
    settings.setdefault("backoff", Backoff(base=1.0, cap=8.0))
    return WorkQueue("test", clock=clock, **settings)


# -- de-duplication ----------------------------------------------------------


async def test_a_key_added_many_times_while_waiting_runs_once(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock)
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    async with running(queue, worker):
        await clock.run_for(60.0)
    assert sorted(key for key, _ in worker.starts) == ["a", "b"]


@pytest.mark.parametrize(
    "delays",
    [
        pytest.param([10.0, 5.0], id="earlier-added-last"),
        pytest.param([5.0, 10.0], id="earlier-added-first"),
        pytest.param([5.0, 10.0, 30.0, 7.0], id="many"),
    ],
)
async def test_a_waiting_key_keeps_its_earliest_due_time(
    clock: FakeClock, delays: list[float]
) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock)
    for delay in delays:
        queue.add_after("a", delay)
    async with running(queue, worker):
        await clock.run_for(60.0)
    assert worker.times("a") == [5.0]


async def test_an_immediate_add_overrides_a_scheduled_requeue(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, verdict=lambda key, run: Result.done(requeue_after=600.0))
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(30.0)
        queue.add("a")
        await clock.run_for(1.0)
    assert worker.times("a") == [0.0, 30.0]


# -- one run at a time per key -----------------------------------------------


async def test_a_key_added_while_running_runs_again_after_never_concurrently(
    clock: FakeClock,
) -> None:
    queue = make_queue(clock, concurrency=4)
    worker = Recorder(clock, duration=10.0)
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(1.0)
        queue.add("a")
        queue.add("a")
        await clock.run_for(3.0)
        assert worker.times("a") == [0.0]
        await clock.run_for(60.0)
    assert worker.times("a") == [0.0, 10.0]
    assert worker.most_parallel_per_key == 1


async def test_a_stalled_key_added_while_running_still_runs_again(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=10.0, verdict=lambda key, run: Result.stop())
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(5.0)
        queue.add("a")
        await clock.run_for(100.0)
    assert worker.times("a") == [0.0, 10.0]


async def test_a_delayed_add_while_running_waits_for_its_due_time(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=10.0)
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(1.0)
        queue.add_after("a", 20.0)
        await clock.run_for(60.0)
    assert worker.times("a") == [0.0, 21.0]


# -- parallelism -------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "expected_starts"),
    [
        pytest.param(1, [0.0, 10.0, 20.0, 30.0, 40.0], id="serial"),
        pytest.param(2, [0.0, 0.0, 10.0, 10.0, 20.0], id="two-workers"),
        pytest.param(8, [0.0] * 5, id="more-workers-than-keys"),
    ],
)
async def test_keys_run_in_parallel_up_to_the_concurrency_limit(
    clock: FakeClock, concurrency: int, expected_starts: list[float]
) -> None:
    queue = make_queue(clock, concurrency=concurrency)
    worker = Recorder(clock, duration=10.0)
    for key in "abcde":
        queue.add(key)
    async with running(queue, worker):
        await clock.run_for(100.0)
    assert sorted(at for _, at in worker.starts) == expected_starts
    assert worker.most_parallel == min(concurrency, 5)


async def test_due_keys_start_in_due_order(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=1.0)
    queue.add_after("late", 3.0)
    queue.add_after("early", 1.0)
    queue.add_after("middle", 2.0)
    async with running(queue, worker):
        await clock.run_for(10.0)
    assert [key for key, _ in worker.starts] == ["early", "middle", "late"]


# -- outcomes: retry, done, stop ---------------------------------------------


async def test_failures_back_off_exponentially_up_to_the_cap(clock: FakeClock) -> None:
    queue = make_queue(clock, backoff=Backoff(base=1.0, cap=8.0))
    worker = Recorder(clock, verdict=lambda key, run: Result.retry())
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(40.0)
    # waits of 1, 2, 4, 8, then 8 again
    assert worker.times("a") == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0]
    assert queue.failures("a") == 8


async def test_success_resets_the_backoff(clock: FakeClock) -> None:
    def fail_twice_then_succeed_then_fail(key: str, run: int) -> Result:
        return Result.done() if run == 3 else Result.retry()

    queue = make_queue(clock, backoff=Backoff(base=1.0, cap=8.0))
    worker = Recorder(clock, verdict=fail_twice_then_succeed_then_fail)
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(10.0)
        assert queue.failures("a") == 0
        queue.add("a")
        await clock.run_for(10.0)
    assert worker.times("a") == [0.0, 1.0, 3.0, 10.0, 11.0, 13.0, 17.0]


async def test_requeues_at_an_interval_do_not_each_wake_the_scheduler(clock: FakeClock) -> None:
    # 20 objects polled every minute: one wake-up per due time, none per requeue.
    queue = make_queue(clock, concurrency=4)
    worker = Recorder(clock, verdict=lambda key, run: Result.done(requeue_after=60.0))
    wakes = 0
    arm = queue._scheduled_changed.arm

    def counting_arm() -> Any:
        nonlocal wakes
        wakes += 1
        return arm()

    queue._scheduled_changed.arm = counting_arm  # type: ignore[method-assign]
    for index in range(20):
        queue.add_after(f"k{index}", float(index))
    async with running(queue, worker):
        await clock.run_for(599.0)
    assert worker.times("k3") == [3.0 + 60.0 * n for n in range(10)]
    runs = len(worker.starts)
    assert runs == 200
    assert wakes <= runs + 2


async def test_done_requeues_after_the_interval(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=2.0, verdict=lambda key, run: Result.done(60.0))
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(200.0)
    # the interval counts from the end of the run
    assert worker.times("a") == [0.0, 62.0, 124.0, 186.0]


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        pytest.param(0.0, 90.0, id="shortest"),
        pytest.param(0.5, 100.0, id="middle"),
        pytest.param(0.999999, 110.0, id="longest"),
    ],
)
async def test_requeue_is_jittered_by_ten_percent_by_default(
    clock: FakeClock, draw: float, expected: float
) -> None:
    queue = WorkQueue[str]("test", clock=clock, rng=FixedRandom(draw))
    worker = Recorder(clock, verdict=lambda key, run: Result.done(100.0))
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(115.0)
    assert worker.times("a")[1] == pytest.approx(expected, abs=0.001)


async def test_jittered_requeues_spread_keys_that_started_together(clock: FakeClock) -> None:
    queue = WorkQueue[str]("test", clock=clock, concurrency=50, rng=random.Random(3))
    worker = Recorder(clock, verdict=lambda key, run: Result.done(100.0))
    keys = [f"k{index}" for index in range(50)]
    for key in keys:
        queue.add(key)
    async with running(queue, worker):
        await clock.run_for(111.0)
    second_runs = [worker.times(key)[1] for key in keys]
    assert all(90.0 <= at <= 110.0 for at in second_runs)
    assert max(second_runs) - min(second_runs) > 10.0


async def test_a_stalled_key_is_not_requeued_until_added_again(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, verdict=lambda key, run: Result.stop())
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(3600.0)
        assert worker.times("a") == [0.0]
        assert len(queue) == 0
        queue.add("a")
        await clock.run_for(1.0)
    assert worker.times("a") == [0.0, 3600.0]


async def test_add_rate_limited_waits_for_the_keys_backoff(clock: FakeClock) -> None:
    queue = make_queue(clock, backoff=Backoff(base=2.0, cap=60.0))
    worker = Recorder(clock)
    queue.add_rate_limited("a")
    queue.add_rate_limited("b")
    queue.add_rate_limited("b")
    async with running(queue, worker):
        await clock.run_for(1.9)
        assert worker.starts == []
        await clock.run_for(10.0)
    # "b" keeps its first, earlier due time; its second failure still counts
    assert worker.times("a") == [2.0]
    assert worker.times("b") == [2.0]


async def test_forget_resets_the_backoff_of_a_key(clock: FakeClock) -> None:
    queue = make_queue(clock, backoff=Backoff(base=2.0, cap=60.0))
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    assert queue.failures("a") == 2
    queue.forget("a")
    assert queue.failures("a") == 0


# -- a worker that raises ----------------------------------------------------


async def test_a_worker_exception_is_logged_with_its_key_and_retried(
    clock: FakeClock, logs: list[MutableMapping[str, Any]]
) -> None:
    runs: list[tuple[str, float]] = []
    failures_left = {"bad": 2}

    async def flaky(key: str) -> Result:
        runs.append((key, clock.now()))
        if failures_left.get(key, 0) > 0:
            failures_left[key] -= 1
            raise RuntimeError("cannot reach the source")
        return Result.done()

    queue = make_queue(clock, backoff=Backoff(base=1.0, cap=8.0))
    queue.add("bad")
    async with running(queue, flaky):
        await clock.run_for(0.5)
        queue.add("good")
        await clock.run_for(10.0)

    assert runs == [("bad", 0.0), ("good", 0.5), ("bad", 1.0), ("bad", 3.0)]
    failures = [entry for entry in logs if entry["event"] == "work item failed"]
    assert len(failures) == 2
    assert failures[0]["key"] == "bad"
    assert failures[0]["queue"] == "test"
    assert failures[0]["log_level"] == "error"
    assert failures[0]["exc_info"] is True


# -- shutdown ----------------------------------------------------------------


async def test_shutdown_lets_in_flight_work_finish_within_grace(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=5.0)
    queue.add("a")
    queue.add("b")
    returned: list[float] = []

    async def run() -> None:
        await queue.run(worker)
        returned.append(clock.now())

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await clock.run_for(1.0)
        group.start_soon(queue.shutdown, 30.0)
        await clock.settle()
        queue.add("c")
        await clock.run_for(60.0)

    assert worker.finished == [("a", 5.0)]
    assert worker.cancelled == []
    assert returned == [5.0]


async def test_shutdown_cancels_work_still_running_after_grace(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock, duration=100.0)
    queue.add("a")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run, worker)
        await clock.run_for(1.0)
        group.start_soon(queue.shutdown, 3.0)
        await clock.run_for(10.0)
    assert worker.cancelled == [("a", 4.0)]
    assert worker.finished == []


async def test_shutdown_of_an_idle_queue_returns_at_once(clock: FakeClock) -> None:
    queue = make_queue(clock)
    worker = Recorder(clock)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run, worker)
        await clock.settle()
        with anyio.fail_after(1):
            await queue.shutdown(30.0)
    assert clock.now() == 0.0


# -- observability -----------------------------------------------------------


class RecordingObserver:
    def __init__(self) -> None:
        self.adds = 0
        self.retries = 0
        self.depths: list[int] = []
        self.latencies: list[float] = []
        self.durations: list[float] = []

    def on_add(self, name: str) -> None:
        self.adds += 1

    def on_depth(self, name: str, depth: int) -> None:
        self.depths.append(depth)

    def on_latency(self, name: str, seconds: float) -> None:
        self.latencies.append(seconds)

    def on_work_duration(self, name: str, seconds: float) -> None:
        self.durations.append(seconds)

    def on_retry(self, name: str) -> None:
        self.retries += 1


async def test_the_observer_sees_adds_depth_latency_duration_and_retries(
    clock: FakeClock,
) -> None:
    observer = RecordingObserver()
    queue = make_queue(clock, observer=observer)
    worker = Recorder(
        clock,
        duration=10.0,
        verdict=lambda key, run: Result.retry() if key == "b" else Result.stop(),
    )
    queue.add("a")
    queue.add("b")
    queue.add("a")
    async with running(queue, worker):
        await clock.run_for(21.5)

    assert observer.adds == 3  # a, b, then b again after its failure
    assert observer.retries == 1
    assert observer.depths[:3] == [2, 1, 0]
    assert observer.latencies == [0.0, 10.0, 0.0]  # b waited for the only worker
    assert observer.durations == [10.0, 10.0]


def test_invalid_concurrency_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        WorkQueue[str]("test", clock=clock, concurrency=0)
