"""Zoom Team Chat: an incoming-webhook message in Zoom's ``full`` format.

The webhook's verification token (the Secret's ``token``) is sent as the bare
``Authorization`` value, and ``format=full`` is added to the address unless
it names a format, as Flux does.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, metadata_items
from fluxd.notify.transport import exchange


def zoom_payload(event: Event) -> dict[str, Any]:
    body: list[dict[str, Any]] = [{"type": "message", "text": event.message}]
    if event.metadata:
        body.append(
            {
                "type": "fields",
                "items": [{"key": key, "value": value} for key, value in metadata_items(event)],
            }
        )
    head = {"text": event.involved_object.display_name(), "sub_head": {"text": event.severity}}
    return {"content": {"head": head, "body": body}}


def full_format_url(address: str) -> str:
    parts = urlsplit(address)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if query.get("format"):
        return address
    query["format"] = "full"
    return urlunsplit(parts._replace(query=urlencode(sorted(query.items()))))


class ZoomProvider(ChatProvider):
    provider_type: ClassVar[str] = "zoom"

    def validate(self) -> None:
        super().validate()
        self.require_token("the webhook's verification token")

    async def post(self, event: Event) -> None:
        await exchange(
            self.session,
            config=self.config,
            url=full_format_url(self.config.address),
            payload=zoom_payload(event),
            headers={"Authorization": self.config.token},
        )
