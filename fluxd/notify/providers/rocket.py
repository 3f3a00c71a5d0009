"""Rocket.Chat: an incoming-webhook message with one Slack-style attachment, as Flux sends it."""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def rocket_payload(event: Event, *, username: str, channel: str) -> dict[str, Any]:
    # Flux fills Slack's payload struct, so every key is present even when empty.
    return {
        "channel": channel,
        "username": username,
        "icon_url": "",
        "icon_emoji": "",
        "attachments": [
            {
                "fallback": "",
                "color": "#FF0000" if is_error(event) else "#0076D7",
                "author_name": event.involved_object.display_name(),
                "text": event.message,
                "mrkdwn_in": ["text"],
                "fields": [
                    {"title": key, "value": value, "short": False}
                    for key, value in metadata_items(event)
                ],
            }
        ],
    }


class RocketProvider(ChatProvider):
    provider_type: ClassVar[str] = "rocket"

    async def post(self, event: Event) -> None:
        payload = rocket_payload(event, username=self.config.username, channel=self.config.channel)
        await exchange(self.session, config=self.config, url=self.config.address, payload=payload)
