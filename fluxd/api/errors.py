"""Errors raised by the API layer when text or objects do not fit Flux's API.

Exception tree::

    ApiError                     anything the API layer refuses
    ├── InvalidDuration          a Go duration string that does not parse (also ValueError)
    └── UnknownKind              an apiVersion/kind that fluxd does not serve (also LookupError)

Messages quote the offending text; they never carry Secret data.
"""

from __future__ import annotations


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
