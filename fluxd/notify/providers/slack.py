"""Slack: an attachment per event, as Flux sends it.

Works with both Slack APIs: ``chat.postMessage`` (token in the Secret, sent as
a Bearer token; answers HTTP 200 with ``"ok": false`` on failure) and legacy
incoming webhooks (the address itself is the secret). Discord and Rocket.Chat
accept the same payload.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.errors import DeliveryError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def slack_payload(event: Event, *, username: str, channel: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "username": username or event.reporting_controller,
        "attachments": [
            {
                "color": "danger" if is_error(event) else "good",
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
    if channel:
        payload["channel"] = channel
    return payload


class SlackProvider(ChatProvider):
    provider_type: ClassVar[str] = "slack"

    async def post(self, event: Event) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        reply = await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=slack_payload(
                event, username=self.config.username, channel=self.config.channel
            ),
            headers=headers,
        )
        answer = reply.json()
        if isinstance(answer, dict) and answer.get("ok") is False:
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=f"Slack refused the message: {answer.get('error', 'unknown error')}",
                retryable=answer.get("error") == "ratelimited",
            )
