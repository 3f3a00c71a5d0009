"""What Git commit status providers share: repository address, commit, status text.

The Provider ``address`` is the repository URL (HTTP, ``ssh://`` or scp-like);
the commit comes from the event's revision (``main@sha1:<hex>``, the legacy
``main/<hex>``, or a bare hash); the status is described by the event reason
("reconciliation succeeded") under a context unique per object and cluster
(``kind/name/<first block of the Provider uid>``), all as Flux computes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import REASON_PROGRESSING, SEVERITY_ERROR, SEVERITY_INFO, Event
from fluxd.notify.providers.base import HttpProvider, split_camel_case
from fluxd.notify.transport import exchange

_SCP_LIKE: Final = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
_HEX: Final = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class RepositoryAddress:
    """A repository on a Git server: ``base_url`` is ``scheme://host[:port][/prefix]``."""

    base_url: str
    owner: str
    name: str

    def api_path(self) -> str:
        return f"{quote(self.owner, safe='')}/{quote(self.name, safe='')}"


def parse_repository_address(address: str, *, provider_type: str) -> RepositoryAddress:
    """Split a repository URL into server and ``owner/name``; SSH URLs map to HTTPS."""
    text = address.strip()
    scp = None if "://" in text else _SCP_LIKE.match(text)
    if scp is not None:
        scheme, netloc, path = "https", scp.group("host"), scp.group("path")
    else:
        parts = urlsplit(text)
        if parts.scheme in ("ssh", "git+ssh"):
            # The SSH port says nothing about where the HTTP API listens.
            scheme, netloc = "https", parts.hostname or ""
        else:
            scheme, netloc = parts.scheme, parts.netloc.rpartition("@")[2]
        path = parts.path
    segments = [segment for segment in path.strip("/").removesuffix(".git").split("/") if segment]
    if scheme not in ("http", "https") or not netloc or len(segments) < 2:
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="address must be a repository URL like https://host/owner/repository",
        )
    prefix = "/".join(segments[:-2])
    base_url = f"{scheme}://{netloc}" + (f"/{prefix}" if prefix else "")
    return RepositoryAddress(base_url=base_url, owner=segments[-2], name=segments[-1])


def commit_sha(event: Event, *, provider_type: str) -> str:
    """The commit hash the event refers to; a permanent failure when there is none."""
    revision = event.revision()
    if not revision:
        raise DeliveryError(
            provider_type=provider_type,
            reason="the event has no revision metadata",
            retryable=False,
        )
    sha = extract_hash(revision)
    if sha is None:
        raise DeliveryError(
            provider_type=provider_type,
            reason=f"no commit hash in revision {revision!r}",
            retryable=False,
        )
    return sha


def extract_hash(revision: str) -> str | None:
    """``main@sha1:abc…`` / ``sha1:abc…`` / ``main/abc…`` / ``abc…`` → ``abc…``."""
    tail = revision.rpartition("@")[2] if "@" in revision else revision.rpartition("/")[2]
    algorithm, colon, digest = tail.partition(":")
    if colon and algorithm not in ("sha1", "sha256"):
        return None
    candidate = (digest if colon else tail).lower()
    return candidate if _HEX.match(candidate) else None


def commit_state(event: Event, *, provider_type: str) -> str:
    """The commit status for an event: progressing → pending, info → success, error → failure."""
    if event.reason == REASON_PROGRESSING:
        return "pending"
    if event.severity == SEVERITY_INFO:
        return "success"
    if event.severity == SEVERITY_ERROR:
        return "failure"
    raise DeliveryError(
        provider_type=provider_type,
        reason=f"no commit state for severity {event.severity!r}",
        retryable=False,
    )


def status_description(event: Event) -> str:
    return " ".join(split_camel_case(event.reason)).lower()


def status_context(event: Event, *, provider_uid: str) -> str:
    uid_block = provider_uid.split("-")[0]
    involved = event.involved_object
    return f"{involved.kind}/{involved.name}/{uid_block}".lower()


def is_duplicate(
    statuses: Any, *, context: str, state: str, description: str, state_field: str = "state"
) -> bool:
    """Whether the newest status of ``context`` already says the same thing.

    Statuses come newest first from both Gitea and GitHub; only the first one of
    our context counts.
    """
    if not isinstance(statuses, list):
        return False
    for status in statuses:
        if not isinstance(status, dict):
            continue
        listed_state = status.get(state_field)
        if not status.get("context") or not listed_state or not status.get("description"):
            continue
        if status["context"] == context:
            return bool(listed_state == state and status["description"] == description)
    return False


@dataclass(frozen=True)
class StatusEndpoints:
    """Where a forge lists a commit's statuses and where it accepts a new one."""

    listing: str
    post: str


class CommitStatusProvider(HttpProvider):
    """The flow Gitea and GitHub share: read the newest statuses, post only what is new.

    Subclasses say where (``endpoints``), with which headers and payload; the
    state, context and description come from the event the same way for both.
    """

    token_purpose: ClassVar[str] = "a token allowed to write commit statuses"
    # The key of a listed status's state (GitHub: "state").
    listed_state_field: ClassVar[str] = "state"

    def validate(self) -> None:
        super().validate()
        self.require_token(self.token_purpose)
        parse_repository_address(self.config.address, provider_type=self.provider_type)

    def skips(self, event: Event) -> bool:
        """Events this forge is not told about."""
        return False

    def endpoints(self, repository: RepositoryAddress, sha: str) -> StatusEndpoints:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def payload(self, *, state: str, description: str, context: str) -> dict[str, Any]:
        return {"state": state, "description": description, "context": context}

    async def send(self, event: Event) -> None:
        if self.skips(event):
            return
        repository = parse_repository_address(self.config.address, provider_type=self.provider_type)
        sha = commit_sha(event, provider_type=self.provider_type)
        state = commit_state(event, provider_type=self.provider_type)
        context = status_context(event, provider_uid=self.config.uid)
        description = status_description(event)
        endpoints = self.endpoints(repository, sha)
        headers = self.headers()
        listing = await exchange(
            self.session, config=self.config, url=endpoints.listing, method="GET", headers=headers
        )
        if is_duplicate(
            listing.json(),
            context=context,
            state=state,
            description=description,
            state_field=self.listed_state_field,
        ):
            return
        await exchange(
            self.session,
            config=self.config,
            url=endpoints.post,
            payload=self.payload(state=state, description=description, context=context),
            headers=headers,
        )
