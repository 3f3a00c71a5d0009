"""One row per Provider type: the Provider and Secret a user writes, and what the service must receive."""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Captured:
    """One request as the local stand-in service received it."""

    method: str
    # path only, no query
    path: str
    query: Mapping[str, str]
    # case-insensitive lookups: use CIMultiDict / lower-case keys
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ProviderCase:
    """Provider ``spec.address`` is ``{base}{path}`` where base is the local server's URL."""

    provider_type: str
    path: str
    # asserts method, path, headers, body as the service documents
    check: Callable[[list[Captured]], None]
    # Secret data (token, username, password, ...)
    secret: Mapping[str, str] = field(default_factory=dict)
    # Provider spec fields besides type/address
    spec: Mapping[str, Any] = field(default_factory=dict)
    # what the local server answers
    reply: tuple[int, str] = (200, "{}")
    # True: the event carries a revision and the provider writes commit statuses
    commit_status: bool = False
