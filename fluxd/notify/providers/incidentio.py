"""incident.io: an HTTP alert-source event, firing on errors and resolved otherwise.

Events of one object share a ``deduplication_key`` (its UID), so a success
resolves the alert its failure fired. Progressing events are not sent, as in
Flux.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fluxd.notify.event import REASON_PROGRESSING, Event
from fluxd.notify.providers.base import ChatProvider, is_error
from fluxd.notify.transport import exchange


def incident_alert(event: Event) -> dict[str, Any]:
    metadata = dict(sorted(event.metadata.items()))
    metadata["severity"] = event.severity
    metadata["reason"] = event.reason
    if event.reporting_controller:
        metadata["reportingController"] = event.reporting_controller
    alert: dict[str, Any] = {
        "title": f"{event.involved_object.display_name()}: {event.reason}",
        "status": "firing" if is_error(event) else "resolved",
        "deduplication_key": event.involved_object.uid,
        "metadata": metadata,
    }
    if event.message:
        alert["description"] = event.message
    return alert


class IncidentioProvider(ChatProvider):
    provider_type: ClassVar[str] = "incident.io"

    def validate(self) -> None:
        super().validate()
        self.require_token("the alert source's API token")

    async def post(self, event: Event) -> None:
        if event.reason == REASON_PROGRESSING:
            return
        await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=incident_alert(event),
            headers={"Authorization": f"Bearer {self.config.token}"},
        )
