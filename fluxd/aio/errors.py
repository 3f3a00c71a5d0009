"""Exceptions raised by the asyncio kit.

::

    AioError                 base of everything below
     └── LeaseConflict       the leader Lease was written by someone else since it was read
                             (or already exists when creating it)

Timeouts measured on an injected clock raise the built-in ``TimeoutError``.
"""

from __future__ import annotations


class AioError(Exception):
    """Base class of the asyncio kit's exceptions."""


class LeaseConflict(AioError):
    """A lease write lost a race: the stored lease is not the version it was based on."""

    def __init__(self, *, lease: str, resource_version: str | None = None) -> None:
        self.lease = lease
        self.resource_version = resource_version
        if resource_version is None:
            message = f"lease {lease} already exists"
        else:
            message = f"lease {lease} changed since resource version {resource_version}"
        super().__init__(message)
