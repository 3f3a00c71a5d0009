"""Sentry: errors as Sentry events, other events as one-span transactions (performance).

The address is the project's DSN
(``https://<public key>@<host>/<project id>``), ``channel`` the environment.
fluxd speaks Sentry's envelope endpoint directly
(``/api/<project id>/envelope/`` with an ``X-Sentry-Auth`` header) with the
event Flux's SDK builds: level, server name (the reporting controller),
transaction ``Kind: namespace/name``, metadata as a context (errors) or as
tags (transactions).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import SEVERITY_ERROR, SEVERITY_INFO, Event
from fluxd.notify.providers.base import ChatProvider, is_http_url
from fluxd.notify.transport import encode_json, exchange

SDK: Final = {"name": "fluxd", "version": "1"}
_CLIENT: Final = f"{SDK['name']}/{SDK['version']}"


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed Sentry DSN: where the envelope goes and the key that signs it."""

    envelope_url: str
    public_key: str
    secret_key: str

    @classmethod
    def parse(cls, raw: str) -> Dsn | None:
        if not is_http_url(raw):
            return None
        parts = urlsplit(raw)
        prefix, _, project = parts.path.rstrip("/").rpartition("/")
        if not parts.username or not project:
            return None
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return cls(
            envelope_url=f"{parts.scheme}://{netloc}{prefix}/api/{project}/envelope/",
            public_key=parts.username,
            secret_key=parts.password or "",
        )

    def auth_header(self) -> str:
        fields = [("sentry_version", "7"), ("sentry_client", _CLIENT)]
        fields.append(("sentry_key", self.public_key))
        if self.secret_key:
            fields.append(("sentry_secret", self.secret_key))
        return "Sentry " + ", ".join(f"{key}={value}" for key, value in fields)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transaction_name(event: Event) -> str:
    obj = event.involved_object
    return f"{obj.kind}: {obj.namespace}/{obj.name}"


def error_event(event: Event) -> dict[str, Any]:
    return {
        "event_id": secrets.token_hex(16),
        "timestamp": _timestamp(event.timestamp),
        "level": event.severity,
        "platform": "other",
        "server_name": event.reporting_controller,
        "transaction": transaction_name(event),
        "message": event.message,
        "contexts": {"metadata": dict(sorted(event.metadata.items()))},
        "sdk": SDK,
    }


def transaction_event(event: Event) -> dict[str, Any]:
    obj = event.involved_object
    tags = {
        "flux_involved_object_kind": obj.kind,
        "flux_involved_object_namespace": obj.namespace,
        "flux_involved_object_name": obj.name,
        "flux_reporting_controller": event.reporting_controller,
        "flux_reporting_instance": event.reporting_instance,
        "flux_reason": event.reason,
    }
    tags.update(sorted(event.metadata.items()))
    moment = _timestamp(event.timestamp)
    trace = {"trace_id": secrets.token_hex(16), "span_id": secrets.token_hex(8), "op": "event"}
    return {
        "event_id": secrets.token_hex(16),
        "type": "transaction",
        "platform": "other",
        "transaction": transaction_name(event),
        "message": event.message,
        "contexts": {"trace": trace},
        "tags": tags,
        "start_timestamp": moment,
        "timestamp": moment,
        "spans": [{**trace, "start_timestamp": moment, "timestamp": moment, "tags": tags}],
        "sdk": SDK,
    }


def envelope(item: dict[str, Any], *, dsn: str) -> bytes:
    """Sentry's envelope: a header line, an item header line, the item."""
    body = encode_json(item)
    header = {"event_id": item["event_id"], "sent_at": _timestamp(datetime.now(UTC)), "dsn": dsn}
    item_header = {"type": item.get("type", "event"), "length": len(body)}
    return b"\n".join([encode_json(header), encode_json(item_header), body]) + b"\n"


class SentryProvider(ChatProvider):
    provider_type: ClassVar[str] = "sentry"

    def validate(self) -> None:
        if not self.config.address:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="no address (the project's DSN)"
            )
        if Dsn.parse(self.config.address) is None:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the address is not a Sentry DSN (https://<key>@<host>/<project id>)",
            )

    async def post(self, event: Event) -> None:
        if event.severity == SEVERITY_ERROR:
            item = error_event(event)
        elif event.severity == SEVERITY_INFO:
            item = transaction_event(event)
        else:
            return  # Flux sends nothing for other severities
        if self.config.channel:
            item["environment"] = self.config.channel
        dsn = Dsn.parse(self.config.address)
        assert dsn is not None  # checked by validate()
        await exchange(
            self.session,
            config=self.config,
            url=dsn.envelope_url,
            body=envelope(item, dsn=self.config.address),
            headers={
                "Content-Type": "application/x-sentry-envelope",
                "X-Sentry-Auth": dsn.auth_header(),
            },
        )
