"""Microsoft Teams: an Office 365 connector ``MessageCard`` per event.

Metadata become facts, the involved object the summary, and the theme colour
follows the severity, as in Flux.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def message_card(event: Event) -> dict[str, Any]:
    object_name = event.involved_object.display_name()
    return {
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": "FF0000" if is_error(event) else "0076D7",
        "summary": object_name,
        "sections": [
            {
                "activityTitle": event.message,
                "activitySubtitle": object_name,
                "facts": [{"name": key, "value": value} for key, value in metadata_items(event)],
            }
        ],
    }


class MSTeamsProvider(ChatProvider):
    provider_type: ClassVar[str] = "msteams"

    async def post(self, event: Event) -> None:
        await exchange(
            self.session, config=self.config, url=self.config.address, payload=message_card(event)
        )
