"""Deciding whether an incoming webhook is genuine and wanted, for each Receiver type.

Pure functions over what the HTTP server read (headers, the raw body) and
what the Receiver holds (its ``spec`` and Secret ``token``), so the server
stays thin and every rule is testable without a socket. The rules are Flux's
(``github``, ``gitlab``, ``bitbucket``, ``generic``, ``generic-hmac``) plus a
native ``gitea`` type that checks Gitea's own ``X-Gitea-Signature``; Flux's
advice to use ``github`` for Gitea keeps working too, since Gitea also sends
the GitHub headers. Signatures are compared in constant time over raw bytes.

Flux answers 400 to every rejected request. fluxd is more precise without
telling an attacker more: 401 for a missing or wrong credential, 403 for a
genuine event the Receiver does not accept, 400 for a malformed request. The
``reason`` is for the log only, never for the response.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

# Event names that only test the connection, per source.
_PINGS: Final = frozenset({"ping", "diagnostics:ping"})

_HASHES: Final[dict[str, Callable[[], Any]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


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


def verify_receiver_request(
    spec: Mapping[str, Any], *, headers: Mapping[str, str], body: bytes, token: str
) -> ReceiverVerdict:
    """Check one request against the Receiver ``spec`` and its ``token``."""
    receiver_type = str(spec.get("type", ""))
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    events = [str(event) for event in spec.get("events") or ()]
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


_CHECKS: Final[dict[str, Callable[[dict[str, str], bytes, str, list[str]], ReceiverVerdict]]] = {
    "generic": _generic,
    "generic-hmac": _generic_hmac,
    "github": _github,
    "gitea": _gitea,
    "gitlab": _gitlab,
    "bitbucket": _bitbucket,
}


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


def _reject(status: int, reason: str) -> ReceiverVerdict:
    return ReceiverVerdict(accepted=False, status=status, reason=reason)
