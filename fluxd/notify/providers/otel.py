"""OpenTelemetry: each event becomes one span, exported to an OTLP/HTTP traces endpoint.

As in Flux, the span is named ``Kind: namespace/name`` and carries the
object's identity and the event metadata as attributes; its status is Error
(with the message) for error events and Ok otherwise. The trace id is the
first 16 bytes of SHA-256(``<Alert UID>:<revision>``), so every event about
one revision, from source to Kustomization, lands in the same trace, and the
resource names the Alert (``service.name`` ``namespace/name``). HelmRepository
events are not exported, as Flux skips them.

The address is the OTLP endpoint URL; without a path, ``/v1/traces`` is
used. fluxd sends the OTLP JSON encoding (``application/json``), which
OTLP/HTTP receivers accept alongside protobuf. Authentication follows Flux:
when the Secret has ``headers`` without an ``Authorization``, one is added,
``Bearer <token or password>`` without a username, basic auth with one.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, basic_authorization, is_error
from fluxd.notify.transport import exchange

DEFAULT_TRACES_PATH: Final = "/v1/traces"
SCOPE_NAME: Final = "flux:notification-controller"
SKIPPED_KIND: Final = "HelmRepository"
# OTLP enums, by number as the JSON encoding allows.
_SPAN_KIND_INTERNAL: Final = 1
_STATUS_OK: Final = 1
_STATUS_ERROR: Final = 2


def revision_of(event: Event) -> str:
    """The revision the trace is keyed on, chosen as Flux does."""
    metadata = event.metadata
    if "oci-digest" in metadata and "app-version" in metadata:
        return f"{metadata['app-version']}@{metadata['oci-digest']}"
    return metadata.get("revision", "unknown")


def trace_id(alert_uid: str, revision: str) -> str:
    return hashlib.sha256(f"{alert_uid}:{revision}".encode()).hexdigest()[:32]


def _attribute(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _unix_nanos(event: Event) -> str:
    return str(int(event.timestamp.timestamp()) * 1_000_000_000)


def traces_request(event: Event, *, end_nanos: int) -> dict[str, Any]:
    """An OTLP ``ExportTraceServiceRequest`` (JSON encoding) holding the event's span."""
    alert = event.alert
    alert_name = f"{alert.namespace}/{alert.name}" if alert else ""
    obj = event.involved_object
    attributes = [
        _attribute("object.uid", obj.uid),
        _attribute("object.kind", obj.kind),
        _attribute("object.name", obj.name),
        _attribute("object.namespace", obj.namespace),
    ]
    attributes.extend(_attribute(key, value) for key, value in sorted(event.metadata.items()))
    status: dict[str, Any] = {"code": _STATUS_OK}
    if is_error(event):
        status = {"code": _STATUS_ERROR, "message": event.message}
    span = {
        "traceId": trace_id(alert.uid if alert else "", revision_of(event)),
        "spanId": secrets.token_hex(8),
        "name": f"{obj.kind}: {obj.namespace}/{obj.name}",
        "kind": _SPAN_KIND_INTERNAL,
        "startTimeUnixNano": _unix_nanos(event),
        "endTimeUnixNano": str(end_nanos),
        "attributes": attributes,
        "status": status,
    }
    resource = [
        _attribute("service.name", alert_name),
        _attribute("service.namespace", alert.namespace if alert else ""),
        _attribute("service.instance.id", alert.uid if alert else ""),
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource},
                "scopeSpans": [{"scope": {"name": SCOPE_NAME}, "spans": [span]}],
            }
        ]
    }


def traces_url(address: str) -> str:
    parts = urlsplit(address)
    if parts.path in ("", "/"):
        parts = parts._replace(path=DEFAULT_TRACES_PATH)
    return urlunsplit(parts)


class OtelProvider(ChatProvider):
    provider_type: ClassVar[str] = "otel"

    def headers(self) -> dict[str, str]:
        headers = dict(self.config.headers)
        secret = self.config.token or self.config.password
        if headers and "Authorization" not in headers:
            if not self.config.username:
                headers["Authorization"] = f"Bearer {secret}"
            elif secret:
                headers["Authorization"] = basic_authorization(self.config.username, secret)
        return headers

    async def post(self, event: Event) -> None:
        if event.involved_object.kind == SKIPPED_KIND:
            return
        await exchange(
            self.session,
            config=self.config,
            url=traces_url(self.config.address),
            payload=traces_request(event, end_nanos=time.time_ns()),
            headers=self.headers(),
        )
