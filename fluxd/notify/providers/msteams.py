"""Microsoft Teams: an Adaptive Card for Workflows URLs, the legacy MessageCard for connectors.

Office 365 connectors (hosts ending in ``.webhook.office.com``) only take the
retired ``MessageCard``; every other address (Power Automate / Teams
Workflows) gets an Adaptive Card 1.4 message. Flux decides by that host
suffix alone, and so does fluxd.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from fluxd.notify.event import META_SUMMARY, Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange

CONNECTOR_HOST_SUFFIX: Final = ".webhook.office.com"
ADAPTIVE_CARD_VERSION: Final = "1.4"


def is_connector_url(address: str) -> bool:
    return (urlsplit(address).hostname or "").endswith(CONNECTOR_HOST_SUFFIX)


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


def adaptive_card(event: Event) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "TextBlock", "text": event.message, "wrap": True}
    if is_error(event):
        message["color"] = "attention"
    # The summary leads, the other metadata follow by key, as Flux orders them.
    facts: list[dict[str, str]] = []
    if META_SUMMARY in event.metadata:
        facts.append({"title": META_SUMMARY, "value": event.metadata[META_SUMMARY]})
    facts.extend(
        {"title": key, "value": value}
        for key, value in metadata_items(event)
        if key != META_SUMMARY
    )
    title = {
        "type": "TextBlock",
        "text": event.involved_object.display_name(),
        "size": "large",
        "weight": "bolder",
        "wrap": True,
    }
    fact_set: dict[str, Any] = {"type": "FactSet"}
    if facts:  # Flux omits an empty fact list
        fact_set["facts"] = facts
    items = [title, message, fact_set]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": ADAPTIVE_CARD_VERSION,
                    "body": [{"type": "Container", "items": items}],
                    "msteams": {"width": "Full"},
                },
            }
        ],
    }


class MSTeamsProvider(ChatProvider):
    provider_type: ClassVar[str] = "msteams"

    async def post(self, event: Event) -> None:
        card = message_card if is_connector_url(self.config.address) else adaptive_card
        await exchange(
            self.session, config=self.config, url=self.config.address, payload=card(event)
        )
