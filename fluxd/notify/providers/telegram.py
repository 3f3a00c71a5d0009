"""Telegram: ``sendMessage`` of the Bot API with a MarkdownV2 text.

The bot token comes from the Secret and goes in the URL path, so it is masked
in every error. ``channel`` is the chat id or ``@channel``, optionally followed
by ``:<thread id>`` for forum topics, as Flux accepts it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, metadata_items, severity_emoji
from fluxd.notify.transport import exchange

DEFAULT_API: Final = "https://api.telegram.org"
_SPECIAL: Final = frozenset("\\_*[]()~`>#+-=|{}.!")


def escape_markdown_v2(text: str) -> str:
    return "".join(f"\\{char}" if char in _SPECIAL else char for char in text)


def telegram_message(event: Event) -> str:
    heading = f"{severity_emoji(event)} {event.involved_object.kind.lower()}/"
    heading += f"{event.involved_object.name}/{event.involved_object.namespace}"
    lines = [f"*{escape_markdown_v2(heading)}*", escape_markdown_v2(event.message)]
    lines.extend(
        f"\\- *{escape_markdown_v2(key)}*: {escape_markdown_v2(value)}"
        for key, value in metadata_items(event)
    )
    return "\n".join(lines)


class TelegramProvider(ChatProvider):
    provider_type: ClassVar[str] = "telegram"

    def validate(self) -> None:
        self.require_token("the bot token")
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="spec.channel is empty"
            )

    async def post(self, event: Event) -> None:
        chat_id, _, thread = self.config.channel.partition(":")
        payload: dict[str, Any] = {
            "chat_id": chat_id,
            "text": telegram_message(event),
            "parse_mode": "MarkdownV2",
        }
        if thread:
            payload["message_thread_id"] = thread
        api = (self.config.address or DEFAULT_API).rstrip("/")
        reply = await exchange(
            self.session,
            config=self.config,
            url=f"{api}/bot{self.config.token}/sendMessage",
            payload=payload,
        )
        answer = reply.json()
        if isinstance(answer, dict) and answer.get("ok") is False:
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=self.config.redact(
                    f"Telegram refused the message: {answer.get('description', 'unknown error')}"
                ),
                retryable=False,
            )
