"""DingTalk (钉钉) custom group robot: a Markdown message per event.

When the Secret has a ``token``, it is the robot's signing secret (``SEC…``)
and every request is signed the way DingTalk checks it: ``timestamp`` in
milliseconds, ``sign = urlencode(base64(HMAC-SHA256(key=secret,
msg=timestamp + "\\n" + secret)))`` appended to the webhook URL. DingTalk
answers HTTP 200 even when it refuses a message, so ``errcode`` decides, and
a robot takes at most 20 messages a minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote_plus

import aiohttp

from fluxd.notify.config import ProviderConfig
from fluxd.notify.event import Event
from fluxd.notify.providers.base import (
    ChatProvider,
    RateLimit,
    check_robot_answer,
    markdown_text,
    markdown_title,
)
from fluxd.notify.transport import exchange


def dingtalk_sign(*, secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value (already URL-encoded) for ``timestamp_ms``."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def signed_url(address: str, *, secret: str, timestamp_ms: int) -> str:
    separator = "&" if "?" in address else "?"
    sign = dingtalk_sign(secret=secret, timestamp_ms=timestamp_ms)
    return f"{address}{separator}timestamp={timestamp_ms}&sign={sign}"


def dingtalk_payload(event: Event) -> dict[str, Any]:
    title = markdown_title(event)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": f"#### {title}\n\n{markdown_text(event)}"},
    }


class DingTalkProvider(ChatProvider):
    provider_type: ClassVar[str] = "dingtalk"
    default_rate_limits: ClassVar[tuple[RateLimit, ...]] = (RateLimit(20, 60.0),)

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
        url = self.config.address
        if self.config.token:
            url = signed_url(url, secret=self.config.token, timestamp_ms=int(self._clock() * 1000))
        reply = await exchange(
            self.session, config=self.config, url=url, payload=dingtalk_payload(event)
        )
        check_robot_answer(reply.json(), provider_type=self.provider_type, code_key="errcode")
