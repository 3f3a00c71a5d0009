"""Webex: a Markdown message to the room in ``channel``, with the bot token as Bearer."""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def webex_markdown(event: Event) -> str:
    emoji = "\N{BOMB}" if is_error(event) else "\N{WHITE HEAVY CHECK MARK}"
    lines = [f"{emoji} **{event.involved_object.display_name()}**", event.message]
    lines.extend(f">**{key}**: {value}" for key, value in metadata_items(event))
    return "\n".join(lines) + "\n"


class WebexProvider(ChatProvider):
    provider_type: ClassVar[str] = "webex"

    def validate(self) -> None:
        super().validate()
        self.require_token("the bot access token")
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="spec.channel (the room id) is empty"
            )

    async def post(self, event: Event) -> None:
        payload: dict[str, Any] = {"roomId": self.config.channel, "markdown": webex_markdown(event)}
        await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=payload,
            headers={"Authorization": f"Bearer {self.config.token}"},
        )
