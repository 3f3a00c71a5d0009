"""Feishu / Lark (飞书) custom bot: an interactive card per event, as Flux's ``lark``.

When the Secret has a ``token``, it is the bot's signing secret, and the body
carries ``timestamp`` (seconds) and ``sign = base64(HMAC-SHA256(key=timestamp +
"\\n" + secret, msg=""))``, the check Feishu applies. Feishu answers HTTP 200
with a non-zero ``code`` (older bots: ``StatusCode``) when it refuses, and
allows 100 messages a minute and 5 a second per bot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, ClassVar

import aiohttp

from fluxd.notify.config import ProviderConfig
from fluxd.notify.event import Event
from fluxd.notify.providers.base import (
    ChatProvider,
    RateLimit,
    check_robot_answer,
    is_error,
    markdown_text,
    markdown_title,
)
from fluxd.notify.transport import exchange


def feishu_sign(*, secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def feishu_card(event: Event) -> dict[str, Any]:
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": markdown_title(event)},
                "template": "red" if is_error(event) else "turquoise",
            },
            "elements": [
                {"tag": "div", "text": {"tag": "lark_md", "content": markdown_text(event)}}
            ],
        },
    }


class FeishuProvider(ChatProvider):
    provider_type: ClassVar[str] = "feishu"
    default_rate_limits: ClassVar[tuple[RateLimit, ...]] = (
        RateLimit(100, 60.0),
        RateLimit(5, 1.0),
    )

    def __init__(
        self,
        *,
        config: ProviderConfig,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config=config, session=session)
        self._clock = clock

    async def post(self, event: Event) -> None:
        payload = feishu_card(event)
        if self.config.token:
            timestamp = int(self._clock())
            payload["timestamp"] = str(timestamp)
            payload["sign"] = feishu_sign(secret=self.config.token, timestamp=timestamp)
        reply = await exchange(
            self.session, config=self.config, url=self.config.address, payload=payload
        )
        answer = reply.json()
        key = "StatusCode" if isinstance(answer, dict) and "StatusCode" in answer else "code"
        check_robot_answer(answer, provider_type=self.provider_type, code_key=key)


class LarkProvider(FeishuProvider):
    """Flux's ``lark`` type: the same bot API on Lark's international domain."""

    provider_type: ClassVar[str] = "lark"
