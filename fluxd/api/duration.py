"""Go duration strings (``1m``, ``1h30m``, ``500ms``, ``10m0s``) as Flux writes them.

Flux's specs carry ``metav1.Duration`` values, which are Go ``time.Duration``
strings; controllers need seconds, and status or messages show durations the way
Go prints them.  Arithmetic is done in whole nanoseconds, as Go does, so that a
parsed value formats back to the same canonical text.
"""

from __future__ import annotations

import re

from fluxd.api.errors import InvalidDuration

# The CRD patterns Flux puts on duration fields: hours allowed, and not.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
SHORT_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

_UNITS = {
    "ns": _NANOSECOND,
    "us": _MICROSECOND,
    "\u00b5s": _MICROSECOND,  # micro sign
    "\u03bcs": _MICROSECOND,  # Greek small letter mu
    "ms": _MILLISECOND,
    "s": _SECOND,
    "m": _MINUTE,
    "h": _HOUR,
}
_MAX_NANOSECONDS = 2**63 - 1  # Go's time.Duration is an int64
_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string into whole nanoseconds, following ``time.ParseDuration``."""
    body = text
    sign = 1
    if body[:1] in ("-", "+"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise InvalidDuration(text, reason="empty duration")
    total = 0
    position = 0
    while position < len(body):
        match = _COMPONENT.match(body, position)
        if match is None or match.end() == position:
            raise InvalidDuration(text, reason="expected a number followed by a unit")
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise InvalidDuration(text, reason="expected a number before the unit")
        if not unit:
            raise InvalidDuration(text, reason="missing unit (one of ns, us, ms, s, m, h)")
        scale = _UNITS.get(unit)
        if scale is None:
            raise InvalidDuration(text, reason=f"unknown unit {unit!r}")
        total += int(whole or "0") * scale
        if fraction:
            # Go truncates sub-nanosecond precision rather than rounding.
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_NANOSECONDS:
            raise InvalidDuration(text, reason="out of range")
        position = match.end()
    return sign * total


def parse_duration(text: str) -> float:
    """Parse a Go duration string (``1h30m``, ``500ms``) into seconds."""
    return parse_duration_ns(text) / _SECOND


def format_duration_ns(nanoseconds: int) -> str:
    """Format nanoseconds the way Go's ``Duration.String`` does (``1h30m0s``, ``500ms``)."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    remaining = abs(nanoseconds)
    if remaining < _SECOND:
        for unit, scale in (("ms", _MILLISECOND), ("\u00b5s", _MICROSECOND), ("ns", 1)):
            if remaining >= scale:
                return f"{sign}{_decimal(remaining, scale)}{unit}"
    hours, remaining = divmod(remaining, _HOUR)
    minutes, remaining = divmod(remaining, _MINUTE)
    seconds = _decimal(remaining, _SECOND)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def format_duration(seconds: float) -> str:
    """Format seconds as a canonical Go duration string (``60`` -> ``1m0s``)."""
    return format_duration_ns(round(seconds * _SECOND))


def _decimal(value: int, scale: int) -> str:
    """``value / scale`` in decimal with trailing zeros of the fraction dropped."""
    whole, fraction = divmod(value, scale)
    if not fraction:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")
