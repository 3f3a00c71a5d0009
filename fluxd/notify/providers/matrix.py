"""Matrix: an ``m.text`` message PUT into the room in ``channel`` (client-server API).

The transaction id is the SHA-1 of the event's JSON, as Flux makes it, so a
retried send of the same event is deduplicated by the homeserver instead of
posted twice.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar
from urllib.parse import quote

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, metadata_items, severity_emoji
from fluxd.notify.transport import encode_json, exchange


def matrix_body(event: Event) -> str:
    heading = f"{severity_emoji(event)} {event.involved_object.display_name()}"
    metadata = "".join(f"- {key}: {value}\n" for key, value in metadata_items(event))
    return f"{heading}\n{event.message}\n{metadata}"


def transaction_id(event: Event) -> str:
    return hashlib.sha1(encode_json(event.to_json_dict()), usedforsecurity=False).hexdigest()


class MatrixProvider(ChatProvider):
    provider_type: ClassVar[str] = "matrix"

    def validate(self) -> None:
        super().validate()
        self.require_token("the access token")
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="spec.channel (the room id) is empty"
            )

    async def post(self, event: Event) -> None:
        room = quote(self.config.channel, safe="!:@")
        url = (
            f"{self.config.address.rstrip('/')}/_matrix/client/r0/rooms/{room}"
            f"/send/m.room.message/{transaction_id(event)}"
        )
        await exchange(
            self.session,
            config=self.config,
            url=url,
            method="PUT",
            payload={"body": matrix_body(event), "msgtype": "m.text"},
            headers={"Authorization": f"Bearer {self.config.token}"},
        )
