"""PagerDuty Events API v2: errors trigger an incident, other events resolve it.

The incident is keyed by the object's UID (``dedup_key``), so the next success
of the same object resolves what its failure opened; info events are also sent
as change events. ``channel`` is the routing (integration) key, and only the
scheme and host of the address are used, as in Flux. Progressing events are
not sent: they would resolve an incident before the outcome is known.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import REASON_PROGRESSING, SEVERITY_ERROR, SEVERITY_INFO, Event
from fluxd.notify.providers.base import ChatProvider, split_camel_case
from fluxd.notify.transport import exchange


def summary_of(event: Event) -> str:
    """``reconciliation failed: kustomization/apps``, as Flux words incidents."""
    name = f"{event.involved_object.kind}/{event.involved_object.name}".lower()
    description = " ".join(split_camel_case(event.reason)).lower()
    return f"{description}: {name}"


def _details(event: Event) -> dict[str, Any]:
    return {"message": event.message, "metadata": dict(sorted(event.metadata.items()))}


def alert_event(event: Event, *, routing_key: str) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": "resolve"}
    if event.involved_object.uid:
        body["dedup_key"] = event.involved_object.uid
    if event.severity == SEVERITY_ERROR:
        body["event_action"] = "trigger"
        body["payload"] = {
            "summary": summary_of(event),
            "source": f"Flux {event.reporting_controller}",
            "severity": "error",
            "timestamp": event.to_json_dict()["timestamp"],
            "component": event.involved_object.name,
            "group": event.involved_object.kind,
            "custom_details": _details(event),
        }
    return body


def change_event(event: Event, *, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "payload": {
            "summary": summary_of(event),
            "source": f"Flux {event.reporting_controller}",
            "timestamp": event.to_json_dict()["timestamp"],
            "custom_details": _details(event),
        },
    }


class PagerDutyProvider(ChatProvider):
    provider_type: ClassVar[str] = "pagerduty"

    def validate(self) -> None:
        super().validate()
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="spec.channel (the integration's routing key) is empty",
            )

    async def post(self, event: Event) -> None:
        if event.reason == REASON_PROGRESSING:
            return
        parts = urlsplit(self.config.address)
        endpoint = f"{parts.scheme}://{parts.netloc}"
        routing_key = self.config.channel
        await exchange(
            self.session,
            config=self.config,
            url=f"{endpoint}/v2/enqueue",
            payload=alert_event(event, routing_key=routing_key),
        )
        if event.severity == SEVERITY_INFO:
            await exchange(
                self.session,
                config=self.config,
                url=f"{endpoint}/v2/change/enqueue",
                payload=change_event(event, routing_key=routing_key),
            )
