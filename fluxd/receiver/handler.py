"""The ``POST /hook/<digest>`` handler: turn a genuine webhook into reconcile requests.

The handler knows no Kubernetes: it asks a ``ReceiverDirectory`` which
Receiver owns the path (an in-memory index) and hands accepted requests to a
``ReconcileTrigger``. Every check that can fail without an API call comes
first (method, path, size, signature), so a flood of bad requests costs a
hash and a dictionary lookup each. Rejections answer with a bare status code;
the reason is logged and counted, never sent back.

Answers, in the order they are decided::

    405  not a POST
    404  no Receiver has this path
    503  the Receiver is suspended or not ready (as Flux answers)
    413  the body is larger than ``webhook-body-limit``
    401/403/400  ``verify_receiver_request`` (for ``generic-oidc``: ``OIDCIssuers``)
                 said no; 400 for a payload that is not JSON
    500  a reconcile request could not be written, or a resource filter
         failed on this request (the sender may retry)
    200  accepted (also for a signed ping, and when a target does not exist)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

import structlog
from aiohttp import web

from fluxd.metrics import WEBHOOKS
from fluxd.receiver.google import token_key_id
from fluxd.receiver.jwks import JsonWebKeys
from fluxd.receiver.oidc import GENERIC_OIDC, OIDCIssuers
from fluxd.receiver.verify import ReceiverVerdict, verify_receiver_request

log = structlog.get_logger("fluxd.receiver.handler")

# Senders that always post a JSON document (Gitea may wrap it in a form field).
_JSON_SENDERS: Final = frozenset({"github", "gitea", "gitlab", "bitbucket"})
_READ_CHUNK: Final = 64 * 1024


class WebhookOutcome(StrEnum):
    """The ``outcome`` label of ``fluxd_receiver_requests_total``."""

    ACCEPTED = "accepted"
    PING = "ping"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    BAD_REQUEST = "bad_request"
    FAILED = "failed"


_REJECTIONS: Final = {
    401: WebhookOutcome.UNAUTHORIZED,
    403: WebhookOutcome.FORBIDDEN,
    400: WebhookOutcome.BAD_REQUEST,
}


@dataclass(frozen=True)
class ReceiverEntry:
    """What the handler needs of one Receiver: the object, its token and its state."""

    receiver: Mapping[str, Any]
    token: str = field(repr=False)
    ready: bool = True
    # The whole Secret, decoded (gcr reads ``email`` and ``audience`` too).
    secret: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def namespace(self) -> str:
        return str(self.receiver.get("metadata", {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.receiver.get("metadata", {}).get("name", ""))

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.receiver.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def suspended(self) -> bool:
        return bool(self.spec.get("suspend"))


class ReceiverDirectory(Protocol):
    """Finds the Receiver that owns a webhook path."""

    async def find(self, path: str) -> ReceiverEntry | None: ...


ReconcileTrigger = Callable[[ReceiverEntry, Mapping[str, Any]], Awaitable[bool]]
"""Requests a reconcile of the Receiver's resources; False when an API write failed.

The second argument is what resource filters read: ``req`` (the request
document) and, for ``generic-oidc``, the token's verified ``claims``.
"""


class DeliveryObserver(Protocol):
    """Hears the answer to every delivery (the dashboard's ring of recent pushes)."""

    def __call__(self, *, receiver: str, status: int, outcome: str, event: str) -> None: ...


class PayloadTooLarge(Exception):
    """The request body is larger than the limit."""


class ReceiverWebhook:
    """The aiohttp handler for ``/hook/{digest}`` (``Components.webhook``)."""

    def __init__(
        self,
        *,
        directory: ReceiverDirectory,
        trigger: ReconcileTrigger,
        body_limit: int,
        observer: DeliveryObserver | None = None,
        google_keys: JsonWebKeys | None = None,
        oidc_issuers: OIDCIssuers | None = None,
    ) -> None:
        self.directory = directory
        self.trigger = trigger
        self.body_limit = body_limit
        self.observer = observer
        self.google_keys = google_keys
        self.oidc_issuers = oidc_issuers or OIDCIssuers()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        heard: dict[str, str] = {}
        response = await self._answer_delivery(request, heard)
        if self.observer is not None:
            self.observer(
                receiver=heard.get("receiver", ""),
                status=response.status,
                outcome=response.outcome.value if isinstance(response, _Answer) else "",
                event=heard.get("event", ""),
            )
        return response

    async def _answer_delivery(
        self, request: web.Request, heard: dict[str, str]
    ) -> web.StreamResponse:
        if request.method != "POST":
            return _answer(405, WebhookOutcome.METHOD_NOT_ALLOWED, headers={"Allow": "POST"})
        path = request.path
        entry = await self.directory.find(path)
        if entry is None:
            log.debug("webhook for an unknown path", path=path)
            return _answer(404, WebhookOutcome.NOT_FOUND)
        heard["receiver"] = f"{entry.namespace}/{entry.name}"
        bound = log.bind(receiver=heard["receiver"])
        if entry.suspended or not entry.ready:
            bound.warning(
                "webhook refused: the receiver is "
                + ("suspended" if entry.suspended else "not ready")
            )
            return _answer(503, WebhookOutcome.UNAVAILABLE)
        try:
            body = await self._read_body(request)
        except PayloadTooLarge:
            bound.warning("webhook refused: body too large", limit=self.body_limit)
            return _answer(413, WebhookOutcome.TOO_LARGE)
        headers = {key: value for key, value in request.headers.items()}
        claims: dict[str, Any] | None = None
        if entry.spec.get("type") == GENERIC_OIDC:
            # Discovery and keys are fetched over the network: not a pure check.
            authorization = next(
                (value for key, value in headers.items() if key.lower() == "authorization"), ""
            )
            claims, problem = await self.oidc_issuers.verify(entry.spec, authorization)
            verdict = (
                ReceiverVerdict(accepted=True, status=200, reconcile=True)
                if claims is not None
                else ReceiverVerdict(accepted=False, status=401, reason=problem)
            )
        else:
            keys = None
            if entry.spec.get("type") == "gcr" and self.google_keys is not None:
                authorization = next(
                    (value for key, value in headers.items() if key.lower() == "authorization"),
                    "",
                )
                keys = await self.google_keys.key_set(key_id=token_key_id(authorization))
            verdict = verify_receiver_request(
                entry.spec,
                headers=headers,
                body=body,
                token=entry.token,
                secret=entry.secret,
                google_keys=keys,
            )
        heard["event"] = verdict.event or ""
        if not verdict.accepted:
            bound.warning(
                "webhook refused",
                status=verdict.status,
                reason=verdict.reason,
                webhook_event=verdict.event,
            )
            return _answer(
                verdict.status, _REJECTIONS.get(verdict.status, WebhookOutcome.BAD_REQUEST)
            )
        if not _payload_is_well_formed(entry, headers=headers, body=body):
            bound.warning("webhook refused: the payload is not a JSON document")
            return _answer(400, WebhookOutcome.BAD_REQUEST)
        if not verdict.reconcile:
            bound.info("webhook ping acknowledged", webhook_event=verdict.event)
            return _answer(200, WebhookOutcome.PING)
        bound.info("webhook accepted", webhook_event=verdict.event)
        req = _request_document(headers, verdict.payload if verdict.payload is not None else body)
        filtered = entry.spec.get("resourceFilter") or any(
            isinstance(reference, Mapping) and reference.get("filter")
            for reference in entry.spec.get("resources") or ()
        )
        if req is None and filtered:
            # Flux cannot build its filters then, and answers 500.
            bound.warning("webhook refused: the JSON body is not an object for the filters")
            return _answer(500, WebhookOutcome.FAILED)
        variables: dict[str, Any] = {"req": req or {}}
        if claims is not None:
            variables["claims"] = claims
        if not await self.trigger(entry, variables):
            return _answer(500, WebhookOutcome.FAILED)
        return _answer(200, WebhookOutcome.ACCEPTED)

    async def _read_body(self, request: web.Request) -> bytes:
        declared = request.content_length
        if declared is not None and declared > self.body_limit:
            raise PayloadTooLarge()
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.body_limit:
                raise PayloadTooLarge()
            chunks.append(chunk)


def _payload_is_well_formed(
    entry: ReceiverEntry, *, headers: Mapping[str, str], body: bytes
) -> bool:
    """Forges post JSON; a signed body that is not JSON is a broken sender, answered 400."""
    content_type = next(
        (value for key, value in headers.items() if key.lower() == "content-type"), ""
    ).lower()
    if str(entry.spec.get("type", "")) not in _JSON_SENDERS and "json" not in content_type:
        return True
    payload = body
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("utf-8", errors="replace")).get("payload")
        payload = fields[0].encode() if fields else b""
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _request_document(headers: Mapping[str, str], payload: bytes) -> dict[str, Any] | None:
    """``req`` of resource filters: the body when it is sent as JSON, else ``{}``.

    As Flux reads it: only an ``application/json`` body is decoded; None when
    such a body is not a JSON object.
    """
    content_type = next(
        (value for key, value in headers.items() if key.lower() == "content-type"), ""
    )
    media_types = (part.split(";", 1)[0].strip().lower() for part in content_type.split(","))
    if "application/json" not in media_types:
        return {}
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _answer(
    status: int, outcome: WebhookOutcome, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    WEBHOOKS.labels(outcome.value).inc()
    return _Answer(status, outcome, headers=dict(headers or {}))


class _Answer(web.Response):
    """A bare-status answer that remembers its outcome for the observer."""

    def __init__(self, status: int, outcome: WebhookOutcome, *, headers: Mapping[str, str]) -> None:
        super().__init__(status=status, headers=dict(headers))
        self.outcome = outcome
