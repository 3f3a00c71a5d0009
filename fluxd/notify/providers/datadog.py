"""Datadog: an event per Flux event (``POST /api/v1/events``), tagged for search.

Only the scheme and host of the address are used: ``https://api.datadoghq.eu``
picks the site, no address means ``https://api.datadoghq.com``. The API key is
the Secret's ``token``, sent as ``DD-API-KEY``. Tags are lower-cased, as Flux
sends them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, is_error, metadata_items
from fluxd.notify.transport import exchange


def datadog_event(event: Event) -> dict[str, Any]:
    obj = event.involved_object
    tags = [
        f"flux_reporting_controller:{event.reporting_controller}",
        f"flux_reason:{event.reason}",
        f"kube_kind:{obj.kind}",
        f"kube_name:{obj.name}",
        f"kube_namespace:{obj.namespace}",
    ]
    tags.extend(f"{key}:{value}" for key, value in metadata_items(event))
    return {
        "title": f"Events from the {obj.kind} {obj.name}/{obj.namespace}",
        "text": event.message,
        "tags": [tag.lower() for tag in tags],
        "source_type_name": "fluxcd",
        "date_happened": int(event.timestamp.timestamp()),
        "alert_type": "error" if is_error(event) else "info",
    }


DEFAULT_SITE: Final = "https://api.datadoghq.com"


class DatadogProvider(ChatProvider):
    provider_type: ClassVar[str] = "datadog"

    def validate(self) -> None:
        if self.config.address:
            super().validate()
        self.require_token("the Datadog API key")

    async def post(self, event: Event) -> None:
        parts = urlsplit(self.config.address or DEFAULT_SITE)
        await exchange(
            self.session,
            config=self.config,
            url=f"{parts.scheme}://{parts.netloc}/api/v1/events",
            payload=datadog_event(event),
            headers={"DD-API-KEY": self.config.token, "Accept": "application/json"},
        )
