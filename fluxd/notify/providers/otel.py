"""OpenTelemetry: each event becomes one span, exported to an OTLP/HTTP traces endpoint.

As in Flux, the span is named ``Kind: namespace/name`` and carries the
object's identity and the event metadata as attributes; its status is Error
(with the message) for error events and Ok otherwise. The trace id is the
first 16 bytes of SHA-256(``<Alert UID>:<revision>``), so every event about
one revision, from source to Kustomization, lands in the same trace, and the
resource names the Alert (``service.name`` ``namespace/name``). HelmRepository
events are not exported, as Flux skips them.

The address is the OTLP endpoint URL; without a path, ``/v1/traces`` is
used. The request is OTLP/HTTP binary protobuf, as Flux's exporter sends it;
the few messages it needs are encoded here rather than by a protobuf
runtime and generated code. Authentication follows Flux:
when the Secret has ``headers`` without an ``Authorization``, one is added,
``Bearer <token or password>`` without a username, basic auth with one.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import time
from typing import ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, basic_authorization, is_error
from fluxd.notify.transport import exchange

DEFAULT_TRACES_PATH: Final = "/v1/traces"
SCOPE_NAME: Final = "flux:notification-controller"
SKIPPED_KIND: Final = "HelmRepository"
# The semantic conventions Flux's resource is built with (semconv v1.34.0).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.34.0"
PROTOBUF: Final = "application/x-protobuf"
# OTLP enums and flags (opentelemetry-proto trace/v1).
SPAN_KIND_INTERNAL: Final = 1
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2
# The parent is a remote span context: Flux starts every span under one.
SPAN_FLAGS_REMOTE_PARENT: Final = 0x100 | 0x200


def revision_of(event: Event) -> str:
    """The revision the trace is keyed on, chosen as Flux does."""
    metadata = event.metadata
    if "oci-digest" in metadata and "app-version" in metadata:
        return f"{metadata['app-version']}@{metadata['oci-digest']}"
    return metadata.get("revision", "unknown")


def trace_id(alert_uid: str, revision: str) -> bytes:
    return hashlib.sha256(f"{alert_uid}:{revision}".encode()).digest()[:16]


# --- Protocol Buffers wire format, just what ExportTraceServiceRequest needs ---------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _text(number: int, text: str) -> bytes:
    return _bytes(number, text.encode()) if text else b""  # proto3 leaves "" out


def _enum(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value) if value else b""


def _fixed64(number: int, value: int) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<Q", value)


def _fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<I", value)


def _attribute(key: str, value: str) -> bytes:
    # KeyValue{key=1, value=2: AnyValue{string_value=1}}; a oneof is sent even when "".
    return _bytes(1, key.encode()) + _bytes(2, _bytes(1, value.encode()))


def traces_request(event: Event, *, span_id: bytes, end_nanos: int) -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` (binary protobuf) holding the event's span."""
    alert = (event.alert or {}).get("metadata") or {}
    alert_uid, alert_name = str(alert.get("uid", "")), str(alert.get("name", ""))
    alert_namespace = str(alert.get("namespace", ""))
    obj = event.involved_object
    attributes = [
        ("object.uid", obj.uid),
        ("object.kind", obj.kind),
        ("object.name", obj.name),
        ("object.namespace", obj.namespace),
        *sorted(event.metadata.items()),
    ]
    status = _text(2, event.message) + _enum(3, STATUS_ERROR)
    if not is_error(event):
        status = _enum(3, STATUS_OK)  # the SDK keeps a description for errors only
    span = b"".join(
        [
            _bytes(1, trace_id(alert_uid, revision_of(event))),
            _bytes(2, span_id),
            _text(5, f"{obj.kind}: {obj.namespace}/{obj.name}"),
            _enum(6, SPAN_KIND_INTERNAL),
            _fixed64(7, int(event.timestamp.timestamp()) * 1_000_000_000),
            _fixed64(8, end_nanos),
            *(_bytes(9, _attribute(key, value)) for key, value in attributes),
            _bytes(15, status),
            _fixed32(16, SPAN_FLAGS_REMOTE_PARENT),
        ]
    )
    # Resource attributes in key order, as the SDK's attribute set keeps them.
    resource = b"".join(
        _bytes(1, _attribute(key, value))
        for key, value in (
            ("service.instance.id", alert_uid),
            ("service.name", f"{alert_namespace}/{alert_name}"),
            ("service.namespace", alert_namespace),
        )
    )
    scope_spans = _bytes(1, _text(1, SCOPE_NAME)) + _bytes(2, span)
    resource_spans = _bytes(1, resource) + _bytes(2, scope_spans) + _text(3, SCHEMA_URL)
    return _bytes(1, resource_spans)


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
            body=traces_request(event, span_id=secrets.token_bytes(8), end_nanos=time.time_ns()),
            headers={"Content-Type": PROTOBUF, **self.headers()},
        )
