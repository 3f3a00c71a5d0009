"""Discord: Slack-formatted messages to the webhook's Slack-compatible endpoint.

Flux posts to ``<webhook>/slack``; the channel is fixed by the webhook itself.
"""

from __future__ import annotations

from typing import ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.providers.slack import slack_payload
from fluxd.notify.transport import exchange


def slack_endpoint(address: str) -> str:
    base, _, query = address.partition("?")
    base = base.rstrip("/")
    if not base.endswith("/slack"):
        base += "/slack"
    return f"{base}?{query}" if query else base


class DiscordProvider(ChatProvider):
    provider_type: ClassVar[str] = "discord"

    async def post(self, event: Event) -> None:
        await exchange(
            self.session,
            config=self.config,
            url=slack_endpoint(self.config.address),
            payload=slack_payload(event, username=self.config.username, channel=""),
        )
