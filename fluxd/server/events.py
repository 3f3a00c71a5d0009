"""The events endpoint: notification-controller's event server, for Flux controllers beside fluxd.

helm-controller, the image automation controllers or a Flux source-controller
post their events to ``http://notification-controller.<ns>.svc.cluster.local./``
(their ``--events-addr``). This handler answers them as notification-controller
does, so their recorders behave unchanged, and hands each event to the same
Alert routing fluxd's own events take.

Answers, in the order they are decided (any method, any path, as Flux's ``/``
handler)::

    413  the body is larger than 3 MiB (Flux's limit)
    400  the body is not an event (not JSON, or a field of the wrong type); the
         reason is in the body, so a developer posting by hand sees it
    429  the same event (object, message, revision, token) was accepted within
         the rate-limit interval: dropped, as Flux's event rate limiter does
    503  this replica is not the leader; only the leader delivers alerts, and
         Flux's recorders retry a 5xx
    202  accepted, including events no Alert selects (dropped quietly)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import structlog
from aiohttp import web

from fluxd.aio import Clock
from fluxd.notify import Event
from fluxd.notify.event import META_ORIGIN_REVISION, META_REVISION, META_TOKEN

log = structlog.get_logger("fluxd.server.events")

#: fluxcd/pkg apis/event ``Group``: metadata from the involved object's annotations.
EVENT_GROUP_PREFIX: Final = "event.toolkit.fluxcd.io/"
#: notification-controller's ``maxRequestSizeBytes``.
MAX_EVENT_BYTES: Final = 3 * 1024 * 1024

# String fields of fluxcd/pkg apis/event/v1beta1 Event and of its corev1 ObjectReference.
_STRING_FIELDS: Final = (
    "severity",
    "message",
    "reason",
    "reportingController",
    "reportingInstance",
)
_REFERENCE_FIELDS: Final = (
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
)


class EventSink(Protocol):
    """Routes one event through the Alerts; ``None`` when this replica cannot (not leading)."""

    async def __call__(self, event: Event) -> int | None: ...


class InvalidEvent(ValueError):
    """The body is not an event as Flux's controllers post it."""


class EventRateLimiter:
    """One event per key per interval, as Flux's memory store with one token per bucket.

    Expired keys are swept whenever the table has doubled since the last
    sweep, so memory stays bounded by the events of about one interval.
    """

    def __init__(self, *, interval: float, now: Callable[[], float]) -> None:
        self.interval = interval
        self._now = now
        self._until: dict[str, float] = {}
        self._sweep_at = 1024

    def allow(self, key: str) -> bool:
        now = self._now()
        until = self._until.get(key)
        if until is not None and now < until:
            return False
        self._until[key] = now + self.interval
        if len(self._until) >= self._sweep_at:
            self._until = {k: t for k, t in self._until.items() if t > now}
            self._sweep_at = max(1024, 2 * len(self._until))
        return True


def decode_event(body: bytes) -> tuple[Event, str]:
    """The event in ``body`` and its rate-limit key; raises ``InvalidEvent``."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"the body is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent("the body must be a JSON object (an event)")
    involved = raw.get("involvedObject")
    if involved is None:
        involved = {}
    if not isinstance(involved, dict):
        raise InvalidEvent("involvedObject must be an object")
    _require_strings(involved, _REFERENCE_FIELDS, where="involvedObject.")
    _require_strings(raw, _STRING_FIELDS, where="")
    metadata = raw.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise InvalidEvent("metadata must be an object of strings")
    timestamp = raw.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise InvalidEvent("timestamp must be an RFC 3339 string")
    key = _rate_limit_key(involved, str(raw.get("message") or ""), metadata or {})
    event = Event.from_flux_json(raw)
    # notification-controller drops the dedup token before routing: it is not for providers.
    metadata = {k: v for k, v in event.metadata.items() if k != META_TOKEN}
    # Keys the recorder copied from the object's event.toolkit.fluxcd.io/ annotations are
    # forwarded too, below the object's own keys (Flux lets an Alert's eventMetadata
    # override them; here the event's keys are kept, and the conflict logged).
    for raw_key, value in (raw.get("metadata") or {}).items():
        if raw_key.startswith(EVENT_GROUP_PREFIX):
            metadata.setdefault(raw_key.removeprefix(EVENT_GROUP_PREFIX), value)
    if metadata != dict(event.metadata):
        event = event.with_metadata(metadata)
    return event, key


def _require_strings(raw: Mapping[str, Any], fields: tuple[str, ...], *, where: str) -> None:
    for name in fields:
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidEvent(f"{where}{name} must be a string")


def _rate_limit_key(involved: Mapping[str, Any], message: str, metadata: Mapping[str, Any]) -> str:
    """notification-controller's ``eventKeyFunc``: object, message, revisions and token."""
    group = str(involved.get("apiVersion") or "").rpartition("/")[0]
    parts = [
        "event",
        f"name={involved.get('name') or ''}",
        f"namespace={involved.get('namespace') or ''}",
        f"kind={involved.get('kind') or ''}",
        f"message={message}",
    ]
    for label, key in (
        ("originRevision", META_ORIGIN_REVISION),
        ("revision", META_REVISION),
        ("token", META_TOKEN),
    ):
        value = metadata.get(f"{group}/{key}")
        if value is not None:
            parts.append(f"{label}={value}")
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class EventIntake:
    """The aiohttp handler of the events address."""

    def __init__(self, *, sink: EventSink, rate_limit_interval: float, clock: Clock) -> None:
        self.sink = sink
        self.limiter = EventRateLimiter(interval=rate_limit_interval, now=clock.now)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = await _read_body(request, limit=MAX_EVENT_BYTES)
        if body is None:
            log.warning("event rejected: body too large", limit=MAX_EVENT_BYTES)
            return web.Response(status=413, text="request body exceeds 3 MiB\n")
        try:
            event, key = decode_event(body)
        except InvalidEvent as error:
            log.warning("event rejected: malformed body", error=str(error))
            return web.Response(status=400, text=f"invalid event: {error}\n")
        involved = event.involved_object
        logged = log.bind(object=f"{involved.kind}/{involved.namespace}/{involved.name}")
        if not self.limiter.allow(key):
            logged.debug("discarding event, rate limiting duplicate events")
            return web.Response(status=429, text="duplicate event\n")
        dispatched = await self.sink(event)
        if dispatched is None:
            return web.Response(status=503, text="not the leader; retry\n")
        if dispatched == 0:
            logged.debug("discarding event, no alerts found for the involved object")
        else:
            logged.info("dispatching event", message=event.message, alerts=dispatched)
        return web.Response(status=202)


async def _read_body(request: web.Request, *, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it grows past ``limit`` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
