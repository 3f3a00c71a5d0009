"""Google Chat: a card with the message and the metadata as key/value widgets.

Progressing events are skipped, as Flux does: Google Chat would otherwise show
them in place of the meaningful result that follows.
"""

from __future__ import annotations

from html import escape
from typing import Any, ClassVar

from fluxd.notify.event import REASON_PROGRESSING, Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def chat_card(event: Event) -> dict[str, Any]:
    text = escape(event.message)
    if is_error(event):
        text = f'<font color="#ff0000">{text}</font>'
    key_values = [("TIMESTAMP", event.timestamp.isoformat()), *metadata_items(event)]
    return {
        "cards": [
            {
                "header": {
                    "title": event.involved_object.display_name(),
                    "subtitle": event.reporting_controller,
                },
                "sections": [
                    {"widgets": [{"textParagraph": {"text": text}}]},
                    {
                        "widgets": [
                            {"keyValue": {"topLabel": key, "content": value}}
                            for key, value in key_values
                        ]
                    },
                ],
            }
        ]
    }


class GoogleChatProvider(ChatProvider):
    provider_type: ClassVar[str] = "googlechat"

    async def post(self, event: Event) -> None:
        if event.reason == REASON_PROGRESSING:
            return
        await exchange(
            self.session, config=self.config, url=self.config.address, payload=chat_card(event)
        )
