"""Per-key exponential backoff: starts at base, doubles, never exceeds cap."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fluxd.aio import Backoff


def test_delays_double_from_base_up_to_cap() -> None:
    backoff = Backoff(base=0.5, cap=10.0)
    delays = [backoff.next("a") for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_each_key_backs_off_on_its_own() -> None:
    backoff = Backoff(base=1.0, cap=100.0)
    backoff.next("a")
    backoff.next("a")
    assert backoff.next("b") == 1.0
    assert backoff.next("a") == 4.0
    assert (backoff.failures("a"), backoff.failures("b")) == (3, 1)


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(base=1.0, cap=100.0)
    for _ in range(5):
        backoff.next("a")
    backoff.reset("a")
    assert backoff.failures("a") == 0
    assert backoff.next("a") == 1.0


def test_defaults_match_flux_retry_delays() -> None:
    backoff = Backoff()
    assert backoff.next("a") == 0.75
    for _ in range(100):
        last = backoff.next("a")
    assert last == 15 * 60


def test_thousands_of_failures_stay_at_cap() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    for _ in range(5000):
        delay = backoff.next("a")
    assert delay == 30.0


def test_jitter_spreads_delays_within_bounds_and_never_above_cap() -> None:
    backoff = Backoff(base=4.0, cap=8.0, jitter=0.25, rng=random.Random(7))
    first = []
    for key in range(200):
        first.append(backoff.next(key))
    assert all(3.0 <= delay <= 5.0 for delay in first)
    assert max(first) - min(first) > 1.0
    capped = [backoff.next(key) for key in range(200) for _ in range(3)]
    assert all(delay <= 8.0 for delay in capped)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"base": 0.0}, "base must be positive", id="zero-base"),
        pytest.param({"base": 10.0, "cap": 5.0}, "must not be below its base", id="cap-below-base"),
        pytest.param({"jitter": 1.0}, "jitter", id="jitter-too-large"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**settings)
