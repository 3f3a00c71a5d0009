"""Grafana: an annotation per event (``POST /api/annotations``), tagged for dashboards.

Tags are ``flux``, the reporting controller, ``key: value`` for each metadata
entry (colons replaced by ``|``: Grafana splits tags on them), then the
object's kind, name and namespace, as Flux writes them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider, basic_authorization, metadata_items
from fluxd.notify.transport import exchange


def annotation_of(event: Event) -> dict[str, Any]:
    obj = event.involved_object
    tags = ["flux", event.reporting_controller]
    tags.extend(
        f"{key.replace(':', '|')}: {value.replace(':', '|')}"
        for key, value in metadata_items(event)
    )
    tags.extend([f"kind: {obj.kind}", f"name: {obj.name}", f"namespace: {obj.namespace}"])
    return {
        "when": int(event.timestamp.timestamp()),
        "text": obj.display_name(),
        "tags": tags,
    }


class GrafanaProvider(ChatProvider):
    provider_type: ClassVar[str] = "grafana"

    async def post(self, event: Event) -> None:
        headers: dict[str, str] = {}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        elif self.config.username and self.config.password:
            headers["Authorization"] = basic_authorization(
                self.config.username, self.config.password
            )
        await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=annotation_of(event),
            headers=headers,
        )
