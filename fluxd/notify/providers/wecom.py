"""WeCom (企业微信) group robot: a Markdown message per event.

The webhook URL (with its ``key``) is the credential, so it belongs in the
Secret's ``address``. WeCom answers HTTP 200 with a non-zero ``errcode`` when
it refuses a message, caps Markdown content at 4096 bytes and a robot at 20
messages a minute.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from fluxd.notify.event import Event
from fluxd.notify.providers.base import (
    ChatProvider,
    RateLimit,
    check_robot_answer,
    markdown_text,
    markdown_title,
    truncate_utf8,
)
from fluxd.notify.transport import exchange

MAX_CONTENT_BYTES: Final = 4096


def wecom_payload(event: Event) -> dict[str, Any]:
    content = f"### {markdown_title(event)}\n{markdown_text(event)}"
    return {
        "msgtype": "markdown",
        "markdown": {"content": truncate_utf8(content, max_bytes=MAX_CONTENT_BYTES)},
    }


class WeComProvider(ChatProvider):
    provider_type: ClassVar[str] = "wecom"
    default_rate_limits: ClassVar[tuple[RateLimit, ...]] = (RateLimit(20, 60.0),)

    async def post(self, event: Event) -> None:
        reply = await exchange(
            self.session, config=self.config, url=self.config.address, payload=wecom_payload(event)
        )
        check_robot_answer(reply.json(), provider_type=self.provider_type, code_key="errcode")
