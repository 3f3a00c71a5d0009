"""Errors raised while fetching a Git source and storing its artifact.

Every failure is a :class:`SourceError`, so the GitRepository reconciler needs
one ``except``. ``reason`` is the Flux condition reason to report and
``stalled`` says whether retrying can help: a stalled error needs the user to
change the spec or a Secret, anything else is transient and retried with
backoff. Messages name the repository URL with any ``user:password@`` removed
and never contain a password, token or private key.

::

    SourceError                     (abstract)
    ├── AuthenticationFailed        reason AuthenticationFailed, transient
    │                               wrong credentials, key refused, host key mismatch
    ├── GitOperationFailed          reason GitOperationFailed, transient
    │   │                           unreachable, repository or ref missing, empty, timeout
    │   └── GitTimeout              the operation did not finish within spec.timeout
    ├── StorageOperationFailed      reason StorageOperationFailed, transient
    │   │                           writing, packing or collecting artifacts failed
    │   └── ArtifactPathRefused     a requested path is outside the storage root
    └── InvalidSource               STALLED; reason URLInvalid (bad URL or scheme),
                                    AuthenticationFailed (Secret lacks a key, bad key or CA),
                                    GitOperationFailed (bad commit SHA or semver range,
                                    a feature the transport cannot do)
"""

from __future__ import annotations

import urllib.parse
from typing import ClassVar

__all__ = [
    "ArtifactPathRefused",
    "AuthenticationFailed",
    "GitOperationFailed",
    "GitTimeout",
    "InvalidSource",
    "SourceError",
    "StorageOperationFailed",
    "redact_url",
]


def redact_url(url: str) -> str:
    """``url`` without its userinfo (``user:password@``), safe for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class SourceError(Exception):
    """A Git source could not be fetched or stored."""

    #: Flux's condition reason for this error.
    reason: str = "GitOperationFailed"
    #: True when only a change by the user (spec, Secret) can fix it: do not retry.
    stalled: ClassVar[bool] = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The repository URL the error is about, already redacted.
        self.url = redact_url(url) if url is not None else None

    def __str__(self) -> str:
        return self.message


class AuthenticationFailed(SourceError):
    """The server refused our credentials, or its identity could not be verified."""

    reason: str = "AuthenticationFailed"


class GitOperationFailed(SourceError):
    """Listing, fetching or checking out failed for a reason other than credentials."""

    reason: str = "GitOperationFailed"


class GitTimeout(GitOperationFailed):
    """A Git operation did not finish within its timeout."""


class StorageOperationFailed(SourceError):
    """Writing, packing, reading or collecting artifacts in the storage failed."""

    reason: str = "StorageOperationFailed"


class ArtifactPathRefused(StorageOperationFailed):
    """A path given to the storage (e.g. by an HTTP client) points outside its root."""


class InvalidSource(SourceError):
    """The spec or its Secret is unusable as written; retrying cannot help."""

    stalled: ClassVar[bool] = True

    def __init__(self, message: str, *, url: str | None = None, reason: str = "URLInvalid") -> None:
        super().__init__(message, url=url)
        self.reason = reason
