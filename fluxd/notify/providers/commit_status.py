"""What Git commit status providers share: repository address, commit, status key and text.

The Provider ``address`` is the repository URL (HTTP, ``ssh://`` or scp-like);
the commit comes from the event's revision (``main@sha1:<hex>``, the legacy
``main/<hex>``, or a bare hash); the status is described by the event reason
("reconciliation succeeded") under a key unique per object and cluster
(``kind/name/<first block of the Provider uid>``), all as Flux computes them.
``spec.commitStatusExpr`` replaces that key by a CEL expression over the
``event``, the ``alert`` that routed it and the ``provider``; it is compiled
when the Provider is loaded, so a broken one is refused then rather than on
every event (Flux finds out per event).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlsplit

from fluxd.cel import EvaluationError, Expression, ExpressionError
from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import REASON_PROGRESSING, SEVERITY_ERROR, SEVERITY_INFO, Event
from fluxd.notify.providers.base import HttpProvider, split_camel_case
from fluxd.notify.transport import exchange

_SCP_LIKE: Final = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")
_HEX: Final = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")

# The names a commit status expression may use (Flux's WithStructVariables).
COMMIT_STATUS_VARIABLES: Final = frozenset({"event", "alert", "provider"})


@dataclass(frozen=True, slots=True)
class GitAddress:
    """A repository address split as Flux's ``parseGitAddress`` does.

    ``host`` is ``scheme://host[:port]`` (SSH becomes HTTPS), ``path`` everything
    after it without slashes around or ``.git``: ``group/subgroup/project``.
    """

    host: str
    path: str

    @property
    def segments(self) -> list[str]:
        return [segment for segment in self.path.split("/") if segment]


def require_repository_address(address: str, *, provider_type: str) -> None:
    """An address is set; whether it names a repository is each forge's own check.

    Not the webhook check of ``HttpProvider.validate``: forges take SSH and
    scp-like repository URLs too, and send to their HTTPS API.
    """
    if not address:
        raise ProviderConfigError(provider_type=provider_type, reason="no address")


def parse_git_address(address: str, *, provider_type: str) -> GitAddress:
    """Split a repository URL into server and path; a permanent config error otherwise."""
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
    path = path.strip("/").removesuffix(".git")
    if scheme not in ("http", "https") or not netloc or not path:
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="address must be a repository URL like https://host/owner/repository",
        )
    return GitAddress(host=f"{scheme}://{netloc}", path=path)


@dataclass(frozen=True, slots=True)
class RepositoryAddress:
    """A repository on a Git server: ``base_url`` is ``scheme://host[:port][/prefix]``."""

    base_url: str
    owner: str
    name: str

    def api_path(self) -> str:
        return f"{quote(self.owner, safe='')}/{quote(self.name, safe='')}"


def parse_repository_address(address: str, *, provider_type: str) -> RepositoryAddress:
    """``owner/name`` of a repository URL; what comes before them is the server's prefix."""
    git = parse_git_address(address, provider_type=provider_type)
    segments = git.segments
    if len(segments) < 2:
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="address must be a repository URL like https://host/owner/repository",
        )
    prefix = "/".join(segments[:-2])
    base_url = git.host + (f"/{prefix}" if prefix else "")
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


def status_description(event: Event) -> str:
    return " ".join(split_camel_case(event.reason)).lower()


def status_name(event: Event) -> str:
    """``kind/name`` in lower case: the name Bitbucket shows beside the status."""
    involved = event.involved_object
    return f"{involved.kind}/{involved.name}".lower()


def default_status_key(event: Event, *, provider_uid: str) -> str:
    """A status key when no ``commitStatusExpr`` is set: one per object and cluster."""
    uid_block = provider_uid.split("-")[0]
    involved = event.involved_object
    return f"{involved.kind}/{involved.name}/{uid_block}".lower()


def compile_commit_status_expr(source: str, *, provider_type: str) -> Expression:
    """Compile ``spec.commitStatusExpr``; a config error names the field and the CEL issue."""
    try:
        return Expression.parse(source, variables=COMMIT_STATUS_VARIABLES)
    except ExpressionError as error:
        raise ProviderConfigError(
            provider_type=provider_type,
            reason=f"spec.commitStatusExpr: failed to compile expression: {error}",
        ) from None


def evaluate_commit_status_expr(
    expression: Expression,
    *,
    event: Event,
    provider: Mapping[str, Any],
    provider_type: str,
) -> str:
    """The status key ``expression`` computes for ``event``; not a string is a permanent failure."""
    variables = {
        "event": event.to_json_dict(),
        "alert": dict(event.alert or {}),
        "provider": dict(provider),
    }
    failure = "failed to evaluate the spec.commitStatusExpr CEL expression for the event"
    try:
        key = expression.evaluate(variables)
    except EvaluationError as error:
        raise DeliveryError(
            provider_type=provider_type, reason=f"{failure}: {error}", retryable=False
        ) from None
    if not isinstance(key, str):
        raise DeliveryError(
            provider_type=provider_type,
            reason=f"{failure}: failed to evaluate CEL expression as string: '{expression.source}'",
            retryable=False,
        )
    return key


@dataclass(frozen=True, slots=True)
class CommitStatus:
    """One status to write: on ``sha``, ``state`` in the forge's words, under ``key``."""

    sha: str
    state: str
    key: str
    description: str
    event: Event


class CommitStatusProvider(HttpProvider):
    """The flow every forge shares: which events, which commit, which key; then ``write``.

    ``states`` maps an event severity to the forge's state; a progressing event
    is skipped (as Flux does for every forge but Gitea) unless ``pending_state``
    names the state it becomes.
    """

    token_purpose: ClassVar[str] = "a token allowed to write commit statuses"
    states: ClassVar[Mapping[str, str]] = {}
    pending_state: ClassVar[str | None] = None

    _expression: Expression | None = None

    def validate(self) -> None:
        require_repository_address(self.config.address, provider_type=self.provider_type)
        self.validate_credentials()
        self.validate_address()
        if self.config.commit_status_expr:
            self._expression = compile_commit_status_expr(
                self.config.commit_status_expr, provider_type=self.provider_type
            )

    def validate_credentials(self) -> None:
        self.require_token(self.token_purpose)

    def validate_address(self) -> None:
        parse_repository_address(self.config.address, provider_type=self.provider_type)

    def status_key(self, event: Event) -> str:
        if self._expression is None:
            return default_status_key(event, provider_uid=self.config.uid)
        return evaluate_commit_status_expr(
            self._expression,
            event=event,
            provider=self.config.provider_object,
            provider_type=self.provider_type,
        )

    def state_of(self, event: Event) -> str | None:
        """The forge's state for ``event``; ``None``: the event is not posted."""
        if event.reason == REASON_PROGRESSING:
            return self.pending_state
        state = self.states.get(event.severity)
        if state is None:
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=f"no commit state for severity {event.severity!r}",
                retryable=False,
            )
        return state

    async def send(self, event: Event) -> None:
        state = self.state_of(event)
        if state is None:
            return
        status = CommitStatus(
            sha=commit_sha(event, provider_type=self.provider_type),
            state=state,
            key=self.status_key(event),
            description=status_description(event),
            event=event,
        )
        await self.write(status)

    async def write(self, status: CommitStatus) -> None:
        raise NotImplementedError


# Gitea's and GitHub's words for the three outcomes.
SUCCESS_FAILURE_STATES: Final = {SEVERITY_INFO: "success", SEVERITY_ERROR: "failure"}


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


class ContextStatusProvider(CommitStatusProvider):
    """Gitea and GitHub: read the newest statuses, post one under ``context`` only if new.

    Subclasses say where (``endpoints``), with which headers and payload.
    """

    states: ClassVar[Mapping[str, str]] = SUCCESS_FAILURE_STATES
    # The key of a listed status's state (GitHub: "state").
    listed_state_field: ClassVar[str] = "state"

    def endpoints(self, repository: RepositoryAddress, sha: str) -> StatusEndpoints:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def payload(self, *, state: str, description: str, context: str) -> dict[str, Any]:
        return {"state": state, "description": description, "context": context}

    async def write(self, status: CommitStatus) -> None:
        repository = parse_repository_address(self.config.address, provider_type=self.provider_type)
        endpoints = self.endpoints(repository, status.sha)
        headers = self.headers()
        listing = await exchange(
            self.session, config=self.config, url=endpoints.listing, method="GET", headers=headers
        )
        if is_duplicate(
            listing.json(),
            context=status.key,
            state=status.state,
            description=status.description,
            state_field=self.listed_state_field,
        ):
            return
        await exchange(
            self.session,
            config=self.config,
            url=endpoints.post,
            payload=self.payload(
                state=status.state, description=status.description, context=status.key
            ),
            headers=headers,
        )
