"""Go durations as users write them in specs and as Go prints them back."""

from __future__ import annotations

import pytest

from fluxd.api.duration import format_duration, parse_duration
from fluxd.api.errors import InvalidDuration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1m", 60.0, id="minute"),
        pytest.param("1h30m", 5400.0, id="hour-and-minutes"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("10m0s", 600.0, id="go-canonical"),
        pytest.param("1.5h", 5400.0, id="fractional-hours"),
        pytest.param("0", 0.0, id="bare-zero"),
        pytest.param("-2s", -2.0, id="negative"),
        pytest.param("1h2m3s4ms", 3723.004, id="every-unit"),
        pytest.param("250us", 0.00025, id="microseconds"),
        pytest.param("250\u00b5s", 0.00025, id="micro-sign"),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("5", id="no-unit"),
        pytest.param("1 minute", id="words"),
        pytest.param("1d", id="days-are-not-go"),
        pytest.param("m", id="no-number"),
        pytest.param("3000000h", id="beyond-int64-nanoseconds"),
    ],
)
def test_parse_rejects_with_the_text_in_the_message(text: str) -> None:
    with pytest.raises(InvalidDuration, match="invalid duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0, "0s", id="zero"),
        pytest.param(60, "1m0s", id="minute"),
        pytest.param(5400, "1h30m0s", id="hour-and-half"),
        pytest.param(0.5, "500ms", id="sub-second"),
        pytest.param(1.5, "1.5s", id="fractional-second"),
        pytest.param(3600, "1h0m0s", id="hour"),
        pytest.param(-90, "-1m30s", id="negative"),
        pytest.param(0.0000015, "1.5\u00b5s", id="microseconds"),
    ],
)
def test_format_like_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "text", ["1m0s", "1h30m0s", "500ms", "10m0s", "2h0m0.25s", "1.5s", "0s", "999ms"]
)
def test_canonical_text_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text", ["1m", "90s", "1.5h", "36h", "100ms"])
def test_value_round_trips_through_canonical_text(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
