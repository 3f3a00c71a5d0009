"""Coalescing: changes within the window become one batch, released once."""

from __future__ import annotations

import anyio
import pytest

from fluxd.aio import Batch, Coalescer, FakeClock


async def test_changes_within_the_window_are_one_batch() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, str] = Coalescer(window=2.0, clock=clock)
    coalescer.add("deploy/realm", "a1", item_key="secret/a")
    clock.advance(1.5)
    coalescer.add("deploy/realm", "b1", item_key="configmap/b")
    assert coalescer.due() == []
    clock.advance(0.5)
    assert coalescer.due() == [Batch("deploy/realm", ("a1", "b1"))]
    assert coalescer.due() == []
    assert len(coalescer) == 0


async def test_later_change_of_the_same_object_replaces_the_earlier() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, str] = Coalescer(window=2.0, clock=clock)
    coalescer.add("deploy/realm", "a1", item_key="secret/a")
    coalescer.add("deploy/realm", "a2", item_key="secret/a")
    clock.advance(2.0)
    assert coalescer.due() == [Batch("deploy/realm", ("a2",))]


async def test_window_is_fixed_from_the_first_change() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, int] = Coalescer(window=2.0, clock=clock)
    for step in range(4):
        coalescer.add("deploy/realm", step, item_key=step % 2)
        clock.advance(0.6)
    # 2.4s after the first change: due despite changes every 0.6s.
    assert [batch.key for batch in coalescer.due()] == ["deploy/realm"]


async def test_workloads_are_independent_and_ordered_by_deadline() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, str] = Coalescer(window=2.0, clock=clock)
    coalescer.add("b", "1", item_key="x")
    clock.advance(1.0)
    coalescer.add("a", "2", item_key="x")
    assert coalescer.next_deadline() == 2.0
    clock.advance(1.0)
    assert [batch.key for batch in coalescer.due()] == ["b"]
    assert coalescer.next_deadline() == 3.0
    clock.advance(1.0)
    assert [batch.key for batch in coalescer.due()] == ["a"]
    assert coalescer.next_deadline() is None


def test_discard_drops_pending_changes() -> None:
    coalescer: Coalescer[str, str] = Coalescer(window=0.0, clock=FakeClock())
    coalescer.add("gone", "1", item_key="x")
    coalescer.discard("gone")
    assert coalescer.due() == []


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Coalescer[str, str](window=-1.0)


# -- leading mode: act on the first change at once, fold the rest into one trailing batch


@pytest.mark.parametrize(
    ("gaps", "expected"),
    [
        pytest.param([0.0], [True], id="first-acts-now"),
        pytest.param([0.0, 0.5], [True, False], id="second-within-window-waits"),
        pytest.param([0.0, 0.5, 0.5], [True, False, False], id="third-joins-the-batch"),
        pytest.param([0.0, 2.5], [True, True], id="after-the-window-acts-now"),
    ],
)
def test_leading_mode_acts_on_a_quiet_key_at_once(gaps: list[float], expected: list[bool]) -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, int] = Coalescer(window=2.0, leading=True, clock=clock)
    now = []
    for index, gap in enumerate(gaps):
        clock.advance(gap)
        now.append(coalescer.add("repo", index, item_key="push"))
    assert now == expected


def test_leading_mode_releases_the_burst_when_the_first_window_closes() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, int] = Coalescer(window=2.0, leading=True, clock=clock)
    assert coalescer.add("repo", 1, item_key="push")
    clock.advance(0.5)
    assert not coalescer.add("repo", 2, item_key="push")
    assert not coalescer.add("repo", 3, item_key="push")
    assert coalescer.next_deadline() == 2.0
    clock.advance(1.5)
    assert coalescer.due() == [Batch("repo", (3,))]
    # The trailing release opens the next window; other keys are unaffected.
    clock.advance(0.1)
    assert not coalescer.add("repo", 4, item_key="push")
    assert coalescer.add("other", 1, item_key="push")
    assert coalescer.next_deadline() == 4.0


async def test_wait_due_wakes_for_a_key_that_falls_due_before_the_one_it_sleeps_on() -> None:
    clock = FakeClock()
    coalescer: Coalescer[str, int] = Coalescer(window=2.0, leading=True, clock=clock)
    coalescer.add("early", 1, item_key="push")  # acts now at t=0, window until t=2
    clock.advance(1.0)
    coalescer.add("late", 1, item_key="push")  # acts now at t=1, window until t=3
    clock.advance(0.5)
    coalescer.add("late", 2, item_key="push")  # due at t=3
    released: list[Batch[str, int]] = []

    async def release() -> None:
        released.extend(await coalescer.wait_due())

    async with anyio.create_task_group() as group:
        group.start_soon(release)
        await clock.settle()
        coalescer.add("early", 2, item_key="push")  # due at t=2, before "late"
        await clock.run_for(0.5)
        assert released == [Batch("early", (2,))]
        group.cancel_scope.cancel()
