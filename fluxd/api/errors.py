"""Errors raised by the API layer when text or objects do not fit Flux's API.

Exception tree::

    ApiError                     anything the API layer refuses
    ├── InvalidDuration          a Go duration string that does not parse (also ValueError)
    ├── UnknownKind              an apiVersion/kind that fluxd does not serve (also LookupError)
    └── InvalidObject            an object that breaks its kind's schema; carries every violation

Messages quote field paths and offending values; they never carry Secret data,
because the only objects validated here are Flux custom resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ApiError(Exception):
    """Base of every error raised by ``fluxd.api``."""


class InvalidDuration(ApiError, ValueError):
    """A duration string is not in Go's ``time.ParseDuration`` syntax."""

    def __init__(self, text: str, *, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid duration {text!r}: {reason}")


class UnknownKind(ApiError, LookupError):
    """No kind served by fluxd matches the given apiVersion and kind."""

    def __init__(self, *, api_version: str, kind: str) -> None:
        self.api_version = api_version
        self.kind = kind
        super().__init__(f"fluxd does not serve kind {kind!r} in apiVersion {api_version!r}")


@dataclass(frozen=True)
class Violation:
    """One place where an object breaks its schema, in the apiserver's wording."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObject(ApiError):
    """An object breaks its kind's schema; ``violations`` lists every problem found."""

    def __init__(self, *, kind: str, name: str, violations: Sequence[Violation]) -> None:
        self.kind = kind
        self.name = name
        self.violations = tuple(violations)
        details = "; ".join(str(violation) for violation in self.violations)
        super().__init__(f"{kind} {name!r} is invalid: {details}")
