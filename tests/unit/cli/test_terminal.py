"""How the command line lays out what it prints: tables, digests, ages, request stamps."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from fluxd.cli.terminal import (
    Terminal,
    age,
    human_duration,
    render_table,
    rfc3339_nano,
    truncate_hex,
)

SHA1 = "16cfcc0b9066b3234dda29927ac1c19860d9663f"
SHA256 = "c2448c95e262b10f9c1137bf1472f51c04dffca76966ff15eff409d0b300c0b0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"main@sha1:{SHA1}", "main@sha1:16cfcc0b", id="revision"),
        pytest.param(f"sha256:{SHA256}", "sha256:c2448c95", id="digest"),
        pytest.param(
            f"stored artifact for revision 'main@sha1:{SHA1}'",
            "stored artifact for revision 'main@sha1:16cfcc0b'",
            id="inside-a-message",
        ),
        pytest.param("ffffffffffffff", "ffffffffffffff", id="too-short-to-be-a-digest"),
        pytest.param("f" * 130, "f" * 130, id="too-long-to-be-a-digest"),
        pytest.param("", "", id="empty"),
    ],
)
def test_truncate_hex_matches_flux(text: str, expected: str) -> None:
    assert truncate_hex(text) == expected


def test_table_pads_columns_and_separates_them_with_tabs() -> None:
    text = render_table(["Name", "Ready"], [["podinfo", "True"], ["a", "False"]])
    assert text == "NAME   \tREADY\npodinfo\tTrue\na      \tFalse\n"


def test_table_keeps_a_multi_line_message_on_its_row() -> None:
    text = render_table(None, [["x", "first line\nsecond line"]])
    assert text == "x\tfirst line second line\n"


def test_table_of_nothing_is_empty() -> None:
    assert render_table(None, []) == ""


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(-5, "<invalid>", id="future"),
        pytest.param(-1, "0s", id="clock-skew"),
        pytest.param(45, "45s", id="seconds"),
        pytest.param(119, "119s", id="under-two-minutes"),
        pytest.param(190, "3m10s", id="minutes-and-seconds"),
        pytest.param(300, "5m", id="whole-minutes"),
        pytest.param(45 * 60, "45m", id="minutes"),
        pytest.param(5 * 3600 + 120, "5h2m", id="hours-and-minutes"),
        pytest.param(30 * 3600, "30h", id="hours"),
        pytest.param(3 * 86400 + 7200, "3d2h", id="days-and-hours"),
        pytest.param(40 * 86400, "40d", id="days"),
        pytest.param(3 * 365 * 86400, "3y", id="years"),
    ],
)
def test_human_duration_reads_like_kubectl(seconds: int, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


def test_age_of_a_timestamp() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert age("2024-05-01T11:59:15Z", now=now) == "45s"
    assert age(None, now=now) == "<unknown>"
    assert age("not a time", now=now) == "<unknown>"


@pytest.mark.parametrize(
    ("epoch_ns", "offset", "expected"),
    [
        pytest.param(
            1_700_000_000_123_456_789, timedelta(0), "2023-11-14T22:13:20.123456789Z", id="utc"
        ),
        pytest.param(
            1_700_000_000_120_000_000, timedelta(0), "2023-11-14T22:13:20.12Z", id="trailing-zeros"
        ),
        pytest.param(1_700_000_000_000_000_000, timedelta(0), "2023-11-14T22:13:20Z", id="whole"),
        pytest.param(
            1_700_000_000_500_000_000,
            timedelta(hours=8),
            "2023-11-15T06:13:20.5+08:00",
            id="east",
        ),
        pytest.param(
            1_700_000_000_000_000_001,
            timedelta(hours=-3, minutes=-30),
            "2023-11-14T18:43:20.000000001-03:30",
            id="west",
        ),
    ],
)
def test_request_stamp_is_go_rfc3339_nano(epoch_ns: int, offset: timedelta, expected: str) -> None:
    assert rfc3339_nano(epoch_ns=epoch_ns, utc_offset=offset) == expected


def test_marks_go_to_stderr_and_data_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    terminal = Terminal(out=out, err=err)
    terminal.action("annotating")
    terminal.waiting("waiting")
    terminal.success("done")
    terminal.warning("careful")
    terminal.failure("broken")
    terminal.data("NAME\n")
    assert err.getvalue() == "► annotating\n◎ waiting\n✔ done\n⚠️ careful\n✗ broken\n"
    assert out.getvalue() == "NAME\n"
