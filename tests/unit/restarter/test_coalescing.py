"""Changes to several objects of one workload within the window make one rollout."""

from __future__ import annotations

import pytest

from fluxd.aio import FakeClock
from fluxd.restarter import Batch, Coalescer


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
