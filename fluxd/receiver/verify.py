"""Deciding whether an incoming webhook is genuine and wanted, for each Receiver type.

Pure functions over what the HTTP server read (headers, the raw body) and
what the Receiver holds (its ``spec`` and Secret ``token``), so the server
stays thin and every rule is testable without a socket. The rules are
notification-controller's, type by type (``internal/server/receiver_handlers.go``),
plus a native ``gitea`` type that checks Gitea's own ``X-Gitea-Signature``;
Flux's advice to use ``github`` for Gitea keeps working too, since Gitea also
sends the GitHub headers. Signatures are compared in constant time.

What each type checks, as Flux does:

- ``generic``: nothing but the secret path; ``generic-hmac``: ``X-Signature``.
- ``github``, ``bitbucket``: ``X-Hub-Signature(-256)``; ``gitlab``: ``X-Gitlab-Token``.
- ``harbor``: the ``Authorization`` header equals the token.
- ``dockerhub``, ``quay``, ``acr``: the secret path, and a body that decodes
  as the registry's push payload.
- ``nexus``: ``X-Nexus-Webhook-Signature``, hex HMAC-SHA1 of the body, then the payload.
- ``gcr``: a Google-signed OIDC ID token in ``Authorization: Bearer`` (Pub/Sub
  push), checked by ``fluxd.receiver.google``; ``req`` is the unwrapped event.
- ``cdevents``: a CDEvents (spec v0.4) document; ``Ce-Type`` is the event.
- ``generic-oidc``: an OIDC ID token from one of ``spec.oidcProviders``
  (``fluxd.receiver.oidc``, async: it discovers the issuer's keys).

``spec.events`` filters the events of ``github``, ``gitea``, ``gitlab``,
``bitbucket`` and ``cdevents``; the other types have no event to filter on.

Flux answers 400 to every rejected request. fluxd is more precise without
telling an attacker more: 401 for a missing or wrong credential, 403 for a
genuine event the Receiver does not accept, 400 for a malformed request. The
``reason`` is for the log only, never for the response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

from fluxd.receiver.google import id_token_problem

if TYPE_CHECKING:
    from jwt import PyJWKSet

# Event names that only test the connection, per source.
_PINGS: Final = frozenset({"ping", "diagnostics:ping"})

_HASHES: Final[dict[str, Callable[[], Any]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


# What a decoded value must be to fit a Go struct field: a str, a list of one
# shape, or an object whose listed keys have these shapes (others are ignored).
Shape = type[str] | list["Shape"] | Mapping[str, "Shape"]


@dataclass(frozen=True, slots=True)
class ReceiverVerdict:
    """What to do with one webhook request.

    ``status`` is the HTTP status to answer. ``reconcile`` is False for a
    request that is accepted only as a connectivity test (a signed ping the
    Receiver's ``events`` do not list). ``reason`` goes to the log, never to
    the caller.
    """

    accepted: bool
    status: int
    reconcile: bool = False
    event: str = ""
    reason: str = ""
    # The document ``req`` reads in resource filters when it is not the body
    # (gcr: the registry event unwrapped from the Pub/Sub message).
    payload: bytes | None = None


def verify_receiver_request(
    spec: Mapping[str, Any],
    *,
    headers: Mapping[str, str],
    body: bytes,
    token: str,
    secret: Mapping[str, str] | None = None,
    google_keys: PyJWKSet | None = None,
) -> ReceiverVerdict:
    """Check one request against the Receiver ``spec`` and its ``token``.

    ``secret`` is the Receiver's whole Secret (gcr reads ``email`` and
    ``audience`` from it); ``google_keys`` are Google's signing keys, for gcr.
    """
    receiver_type = str(spec.get("type", ""))
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    events = [str(event) for event in spec.get("events") or ()]
    if receiver_type == "gcr":
        if not token:
            return _reject(401, "the receiver's Secret has no token")
        return _gcr(lowered, body, secret=secret or {}, keys=google_keys)
    check = _CHECKS.get(receiver_type)
    if check is None:
        return _reject(400, f"receiver type {receiver_type!r} is not supported")
    if receiver_type != "generic" and not token:
        return _reject(401, "the receiver's Secret has no token")
    return check(lowered, body, token, events)


def _generic(
    headers: dict[str, str], body: bytes, token: str, events: list[str]
) -> ReceiverVerdict:
    return ReceiverVerdict(accepted=True, status=200, reconcile=True)


def _generic_hmac(
    headers: dict[str, str], body: bytes, token: str, events: list[str]
) -> ReceiverVerdict:
    failure = _check_prefixed_signature(headers.get("x-signature"), body=body, token=token)
    if failure is not None:
        return failure
    return ReceiverVerdict(accepted=True, status=200, reconcile=True)


def _github(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    signature = headers.get("x-hub-signature-256") or headers.get("x-hub-signature")
    failure = _check_prefixed_signature(signature, body=body, token=token)
    if failure is not None:
        return failure
    return _filter_event(headers.get("x-github-event", ""), events, source="GitHub")


def _gitea(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    signature = headers.get("x-gitea-signature", "").strip()
    if not signature:
        return _reject(401, "X-Gitea-Signature header is missing")
    expected = hmac.new(token.encode(), _gitea_signed_payload(headers, body), hashlib.sha256)
    if not _hex_digest_equal(expected.digest(), signature):
        return _reject(401, "X-Gitea-Signature does not match the body")
    return _filter_event(headers.get("x-gitea-event", ""), events, source="Gitea")


def _gitlab(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    presented = headers.get("x-gitlab-token")
    if presented is None:
        return _reject(401, "X-Gitlab-Token header is missing")
    if not hmac.compare_digest(presented.encode(), token.encode()):
        return _reject(401, "X-Gitlab-Token does not match the receiver token")
    return _filter_event(headers.get("x-gitlab-event", ""), events, source="GitLab")


def _bitbucket(
    headers: dict[str, str], body: bytes, token: str, events: list[str]
) -> ReceiverVerdict:
    failure = _check_prefixed_signature(headers.get("x-hub-signature"), body=body, token=token)
    if failure is not None:
        return failure
    return _filter_event(headers.get("x-event-key", ""), events, source="Bitbucket Server")


def _harbor(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    # Harbor sends its "Auth Header" setting verbatim: the whole header is the token.
    presented = headers.get("authorization", "")
    if not hmac.compare_digest(presented.encode(), token.encode()):
        return _reject(401, "the Harbor Authorization header does not match the receiver token")
    return _accept()


def _dockerhub(
    headers: dict[str, str], body: bytes, token: str, events: list[str]
) -> ReceiverVerdict:
    shape: Shape = {"push_data": {"tag": str}, "repository": {"repo_url": str}}
    return _accept_payload(body, shape, source="DockerHub")


def _quay(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    return _accept_payload(body, {"docker_url": str, "updated_tags": [str]}, source="Quay")


def _acr(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    shape: Shape = {"action": str, "target": {"repository": str, "tag": str}}
    return _accept_payload(body, shape, source="ACR")


def _nexus(headers: dict[str, str], body: bytes, token: str, events: list[str]) -> ReceiverVerdict:
    signature = headers.get("x-nexus-webhook-signature", "")
    if not signature:
        return _reject(401, "X-Nexus-Webhook-Signature header is missing")
    # Flux compares the lowercase hex text itself, so an uppercase hex digest is refused too.
    expected = hmac.new(token.encode(), body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return _reject(401, "X-Nexus-Webhook-Signature does not match the body")
    # Flux decodes the whole body here (json.Unmarshal), not just its first value.
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _reject(400, "cannot decode the Nexus webhook payload")
    if not _fits(document, {"action": str, "repositoryName": str}):
        return _reject(400, "cannot decode the Nexus webhook payload")
    return _accept()


def _cdevents(
    headers: dict[str, str], body: bytes, token: str, events: list[str]
) -> ReceiverVerdict:
    failure = cdevent_problem(body)
    if failure:
        return _reject(400, f"unable to validate CDEvent event: {failure}")
    return _filter_event(headers.get("ce-type", ""), events, source="CDEvents")


def _gcr(
    headers: dict[str, str], body: bytes, *, secret: Mapping[str, str], keys: PyJWKSet | None
) -> ReceiverVerdict:
    email = secret.get("email", "")
    if not email:
        return _reject(401, "invalid secret data: required field 'email' for GCR receiver")
    audience = secret.get("audience", "")
    if not audience:
        return _reject(401, "invalid secret data: required field 'audience' for GCR receiver")
    problem = id_token_problem(
        headers.get("authorization", ""), keys=keys, email=email, audience=audience
    )
    if problem:
        return _reject(401, f"cannot authenticate GCR request: {problem}")
    # A Pub/Sub push: the registry's event is base64 JSON in message.data.
    message_shape: Shape = {"message": {"data": str, "messageId": str, "subscription": str}}
    try:
        document, _ = json.JSONDecoder().raw_decode(body.decode("utf-8").lstrip())
    except (ValueError, UnicodeDecodeError):
        return _reject(400, "cannot decode GCR webhook payload")
    if not _fits(document, message_shape):
        return _reject(400, "cannot decode GCR webhook payload")
    data = str(((document or {}).get("message") or {}).get("data") or "")
    try:
        event = json.loads(base64.b64decode(data, validate=True))
    except (ValueError, UnicodeDecodeError):
        return _reject(400, "cannot decode GCR webhook body")
    if not isinstance(event, dict) or not _fits(event, {"action": str, "digest": str, "tag": str}):
        return _reject(400, "cannot decode GCR webhook body")
    # Flux hands on only these three fields (its filters read them as ``req``).
    unwrapped = {key: str(event.get(key) or "") for key in ("action", "digest", "tag")}
    return ReceiverVerdict(
        accepted=True,
        status=200,
        reconcile=True,
        payload=json.dumps(unwrapped, separators=(",", ":")).encode(),
    )


_CHECKS: Final[dict[str, Callable[[dict[str, str], bytes, str, list[str]], ReceiverVerdict]]] = {
    "generic": _generic,
    "generic-hmac": _generic_hmac,
    "github": _github,
    "gitea": _gitea,
    "gitlab": _gitlab,
    "bitbucket": _bitbucket,
    "harbor": _harbor,
    "dockerhub": _dockerhub,
    "quay": _quay,
    "acr": _acr,
    "nexus": _nexus,
    "cdevents": _cdevents,
}

# Every type verified: the table's, gcr, which needs more than the token, and
# generic-oidc, whose issuers are discovered over the network (fluxd.receiver.oidc).
VERIFIED_TYPES: Final = frozenset({*_CHECKS, "gcr", "generic-oidc"})


# -- payloads ---------------------------------------------------------------------------


def _accept_payload(body: bytes, shape: Shape, *, source: str) -> ReceiverVerdict:
    """Flux's "minimal validation": the body's first JSON value decodes into the payload struct."""
    try:
        document, _ = json.JSONDecoder().raw_decode(body.decode("utf-8").lstrip())
    except (ValueError, UnicodeDecodeError):
        return _reject(400, f"cannot decode the {source} webhook payload")
    if not _fits(document, shape):
        return _reject(400, f"cannot decode the {source} webhook payload")
    return _accept()


def _fits(value: object, shape: Shape) -> bool:
    """Whether Go's encoding/json would decode ``value`` into a field of this shape."""
    if value is None:
        return True  # null leaves a Go field at its zero value
    if shape is str:
        return isinstance(value, str)
    if isinstance(shape, list):
        return isinstance(value, list) and all(_fits(item, shape[0]) for item in value)
    if not isinstance(shape, Mapping) or not isinstance(value, dict):
        return False
    return all(_fits(value[key], inner) for key, inner in shape.items() if key in value)


# CDEvents spec v0.4 event types (subject.predicate), the ones Flux's SDK version knows.
_CDEVENT_TYPES: Final = frozenset(
    f"{subject}.{predicate}"
    for subject, predicates in {
        "artifact": ("deleted", "downloaded", "packaged", "published", "signed"),
        "branch": ("created", "deleted"),
        "build": ("finished", "queued", "started"),
        "change": ("abandoned", "created", "merged", "reviewed", "updated"),
        "environment": ("created", "deleted", "modified"),
        "incident": ("detected", "reported", "resolved"),
        "pipelinerun": ("finished", "queued", "started"),
        "repository": ("created", "deleted", "modified"),
        "service": ("deployed", "published", "removed", "rolledback", "upgraded"),
        "taskrun": ("finished", "started"),
        "testcaserun": ("finished", "queued", "skipped", "started"),
        "testoutput": ("published",),
        "testsuiterun": ("finished", "queued", "started"),
        "ticket": ("closed", "created", "updated"),
    }.items()
    for predicate in predicates
)
_CDEVENT_TYPE = re.compile(
    r"^dev\.cdevents\.(?P<subject>[a-z]+)\.(?P<predicate>[a-z]+)\.(?P<version>.*)$"
)
_CDEVENT_CUSTOM_TYPE = re.compile(r"^dev\.cdeventsx\.[a-z]+-[a-z]+\.[a-z]+\.(?P<version>.*)$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)


def cdevent_problem(body: bytes) -> str:
    """Why ``body`` is not a CDEvent of spec v0.4 ("" when it is one).

    The checks of the CDEvents SDK Flux uses: the context's required fields,
    a known event type of a compatible (same major) version, and a subject
    with an id and a content object.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "the body is not a JSON document"
    if not isinstance(document, dict):
        return "the body is not a JSON object"
    context = document.get("context")
    if not isinstance(context, dict):
        return "context is missing"
    for key in ("version", "id", "source", "type", "timestamp"):
        if not isinstance(context.get(key), str) or not context[key]:
            return f"context.{key} is required"
    event_type = str(context["type"])
    known = _CDEVENT_TYPE.match(event_type)
    custom = _CDEVENT_CUSTOM_TYPE.match(event_type)
    match = known or custom
    if match is None:
        return f"cannot parse event type {event_type}"
    version = _SEMVER.match(match["version"])
    if version is None:
        return f"invalid version format {match['version']}"
    if known is not None:
        if f"{known['subject']}.{known['predicate']}" not in _CDEVENT_TYPES:
            return f"unknown event type {event_type}"
        if version[1] != "0":
            return f"sdk event version 0 not compatible with {match['version']}"
    try:
        datetime.fromisoformat(str(context["timestamp"]).replace("Z", "+00:00"))
    except ValueError:
        return f"context.timestamp {context['timestamp']!r} is not an RFC 3339 time"
    subject = document.get("subject")
    if not isinstance(subject, dict):
        return "subject is missing"
    if not isinstance(subject.get("id"), str) or not subject["id"]:
        return "subject.id is required"
    if not isinstance(subject.get("content"), dict):
        return "subject.content is required"
    return ""


def _filter_event(event: str, events: Sequence[str], *, source: str) -> ReceiverVerdict:
    allowed = not events or any(event.lower() == wanted.lower() for wanted in events)
    if allowed:
        return ReceiverVerdict(accepted=True, status=200, reconcile=True, event=event)
    if event.lower() in _PINGS:
        # A genuine connection test gets a success, so the forge shows the hook
        # as working, but it reconciles nothing the Receiver did not ask for.
        return ReceiverVerdict(
            accepted=True, status=200, reconcile=False, event=event, reason="ping acknowledged"
        )
    return ReceiverVerdict(
        accepted=False,
        status=403,
        event=event,
        reason=f"the {source} event {event!r} is not in the receiver's events",
    )


def _check_prefixed_signature(
    signature: str | None, *, body: bytes, token: str
) -> ReceiverVerdict | None:
    """Verify ``<algorithm>=<hex>`` (GitHub style); None when it is valid."""
    if not signature:
        return _reject(401, "signature header is missing")
    algorithm, separator, hex_digest = signature.strip().partition("=")
    hash_factory = _HASHES.get(algorithm.lower())
    if not separator or hash_factory is None:
        return _reject(400, f"unsupported signature format (algorithm {algorithm[:16]!r})")
    expected = hmac.new(token.encode(), body, hash_factory).digest()
    if not _hex_digest_equal(expected, hex_digest):
        return _reject(401, "signature does not match the body")
    return None


def _hex_digest_equal(expected: bytes, presented_hex: str) -> bool:
    try:
        presented = bytes.fromhex(presented_hex.strip())
    except ValueError:
        return False
    return hmac.compare_digest(expected, presented)


def _gitea_signed_payload(headers: dict[str, str], body: bytes) -> bytes:
    """Gitea signs the JSON payload; in form deliveries that is the ``payload`` field."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", errors="replace")).get("payload")
        if values:
            return values[0].encode("utf-8")
    return body


def _accept() -> ReceiverVerdict:
    return ReceiverVerdict(accepted=True, status=200, reconcile=True)


def _reject(status: int, reason: str) -> ReceiverVerdict:
    return ReceiverVerdict(accepted=False, status=status, reason=reason)
