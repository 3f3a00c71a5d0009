"""Zulip: a stream message (``POST /api/v1/messages``, form-encoded) as the bot in the Secret.

``channel`` is ``<stream>/<topic>``; the bot's email and API key are the
Secret's ``username`` and ``password`` (basic auth). The address's path is
replaced by the API path, as Flux does, so the server URL is enough.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, basic_authorization, markdown_status_post
from fluxd.notify.transport import exchange


class ZulipProvider(ChatProvider):
    provider_type: ClassVar[str] = "zulip"

    def validate(self) -> None:
        super().validate()
        stream, _, topic = self.config.channel.partition("/")
        if not stream or not topic:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason=f"spec.channel must be <channel>/<topic>, got {self.config.channel!r}",
            )

    async def post(self, event: Event) -> None:
        stream, _, topic = self.config.channel.partition("/")
        url = urlunsplit(urlsplit(self.config.address)._replace(path="/api/v1/messages"))
        form = urlencode(
            {"content": markdown_status_post(event), "to": stream, "topic": topic, "type": "stream"}
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.config.username or self.config.password:
            headers["Authorization"] = basic_authorization(
                self.config.username, self.config.password
            )
        await exchange(
            self.session, config=self.config, url=url, body=form.encode(), headers=headers
        )
