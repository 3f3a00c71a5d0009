"""Opsgenie: an alert per event, aliased so that repeats of one condition are one alert.

The alias hashes the Provider's UID with the object and reason, as Flux does,
so Opsgenie deduplicates the same failure reported again and again.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.transport import exchange


def opsgenie_alias(provider_uid: str, event: Event) -> str:
    obj = event.involved_object
    key = f"{provider_uid}/{obj.kind}/{obj.namespace}/{obj.name}/{event.reason}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class OpsgenieProvider(ChatProvider):
    provider_type: ClassVar[str] = "opsgenie"

    def validate(self) -> None:
        super().validate()
        self.require_token("the Opsgenie API key")

    async def post(self, event: Event) -> None:
        details = dict(sorted(event.metadata.items()))
        details["severity"] = event.severity
        payload = {
            "message": f"{event.involved_object.kind}/{event.involved_object.name}",
            "alias": opsgenie_alias(self.config.uid, event),
            "description": event.message,
            "details": details,
        }
        await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=payload,
            headers={"Authorization": f"GenieKey {self.config.token}"},
        )
