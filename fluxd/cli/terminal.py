"""What the command line prints: flux's progress marks, tables and short durations.

Progress and outcome lines go to stderr with flux's marks (``►`` action,
``◎`` waiting, ``✔`` success, ``⚠️`` warning, ``✗`` failure) so that stdout
carries only data (tables, YAML, diffs) and stays pipeable. Tables are laid
out like ``flux get``: upper-case headers, left-aligned cells padded to the
column width and separated by a tab.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

# Hex runs of SHA-1 up to SHA-512 length; flux shortens them to 8 characters in tables.
_HEX_RUN = re.compile(r"\b[a-f0-9]{40,128}\b")
_SHORT_HEX = 8


@dataclass
class Terminal:
    """Where the marks and the data go; tests hand in their own streams."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def action(self, message: str) -> None:
        self._mark("►", message)

    def waiting(self, message: str) -> None:
        self._mark("◎", message)

    def success(self, message: str) -> None:
        self._mark("✔", message)

    def warning(self, message: str) -> None:
        self._mark("⚠️", message)

    def failure(self, message: str) -> None:
        self._mark("✗", message)

    def data(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _mark(self, mark: str, message: str) -> None:
        self.err.write(f"{mark} {message}\n")
        self.err.flush()


def truncate_hex(text: str) -> str:
    """Shorten every long hex digest in ``text`` to 8 characters, as ``flux get`` does."""
    return _HEX_RUN.sub(lambda match: match.group(0)[:_SHORT_HEX], text)


def render_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """Rows (and an optional header) as flux's tab-separated, padded table."""
    lines: list[list[str]] = []
    if header:
        lines.append([column.upper() for column in header])
    lines.extend([_one_line(cell) for cell in row] for row in rows)
    if not lines:
        return ""
    width = max(len(line) for line in lines)
    widths = [
        max((len(line[i]) for line in lines if i < len(line)), default=0) for i in range(width)
    ]
    rendered = []
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + line[-1:]
        rendered.append("\t".join(cells).rstrip())
    return "\n".join(rendered) + "\n"


def _one_line(cell: str) -> str:
    return " ".join(cell.split("\n")).strip()


def human_duration(elapsed: timedelta) -> str:
    """An age the way kubectl and flux print it: ``45s``, ``3m10s``, ``5h``, ``12d``."""
    seconds = int(elapsed.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def parse_timestamp(value: object) -> datetime | None:
    """A Kubernetes Time/MicroTime string as an aware datetime; None when absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age(value: object, *, now: datetime | None = None) -> str:
    """How long ago a timestamp was, or ``<unknown>``."""
    moment = parse_timestamp(value)
    if moment is None:
        return "<unknown>"
    return human_duration((now or datetime.now(UTC)) - moment)


def rfc3339_nano(*, epoch_ns: int, utc_offset: timedelta) -> str:
    """Go's ``time.RFC3339Nano`` layout: trailing zeros of the fraction dropped, offset or Z."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    zone = UTC if utc_offset == timedelta(0) else None
    moment = datetime.fromtimestamp(seconds, UTC) + utc_offset
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    if fraction:
        text += f".{fraction}"
    if zone is UTC:
        return text + "Z"
    total = int(utc_offset.total_seconds()) // 60
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"
