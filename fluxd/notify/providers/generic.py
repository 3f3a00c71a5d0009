"""Generic webhook: Flux's event JSON, POSTed as is.

Receivers written for Flux keep working: same body, the ``Gotk-Component``
header naming the reporting controller, and any extra headers from the
Secret's ``headers`` key.
"""

from __future__ import annotations

from typing import ClassVar, Final

from fluxd.notify.event import Event
from fluxd.notify.providers.base import HttpProvider
from fluxd.notify.transport import encode_json, exchange

COMPONENT_HEADER: Final = "Gotk-Component"


def event_body(event: Event) -> bytes:
    return encode_json(event.to_json_dict())


class GenericProvider(HttpProvider):
    provider_type: ClassVar[str] = "generic"

    def extra_headers(self, body: bytes) -> dict[str, str]:
        return {}

    async def send(self, event: Event) -> None:
        body = event_body(event)
        headers = {COMPONENT_HEADER: event.reporting_controller}
        headers.update(self.config.headers)
        headers.update(self.extra_headers(body))
        await exchange(
            self.session, config=self.config, url=self.config.address, body=body, headers=headers
        )
