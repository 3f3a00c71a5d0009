"""Prometheus Alertmanager: each event becomes one firing alert, POSTed to ``/api/v2/alerts``.

Labels are the event metadata plus Flux's fixed set (``alertname``,
``severity``, ``reason``, ``kind``, ``name``, ``namespace``,
``reportingcontroller``); the message, and the ``summary`` metadata if there
is one, are annotations. Authentication is basic (username and password) or
a Bearer token, as in Flux.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from fluxd.notify.event import META_SUMMARY, Event
from fluxd.notify.providers.base import ChatProvider, basic_authorization
from fluxd.notify.transport import exchange

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def title_case(text: str) -> str:
    """Each word capitalised, the rest lower-cased: ``ReconciliationSucceeded`` →
    ``Reconciliationsucceeded``, as Go's ``cases.Title`` renders a reason."""
    return _WORD.sub(lambda word: word.group(0)[0].upper() + word.group(0)[1:].lower(), text)


def alert_of(event: Event) -> dict[str, Any]:
    annotations = {"message": event.message}
    labels = dict(sorted(event.metadata.items()))
    if META_SUMMARY in labels:
        annotations[META_SUMMARY] = labels.pop(META_SUMMARY)
    obj = event.involved_object
    labels.update(
        alertname=f"Flux{obj.kind}{title_case(event.reason)}",
        severity=event.severity,
        reason=event.reason,
        kind=obj.kind,
        name=obj.name,
        namespace=obj.namespace,
        reportingcontroller=event.reporting_controller,
    )
    return {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": event.to_json_dict()["timestamp"],
    }


class AlertmanagerProvider(ChatProvider):
    provider_type: ClassVar[str] = "alertmanager"

    async def post(self, event: Event) -> None:
        headers: dict[str, str] = {}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        if self.config.username and self.config.password:
            # Flux sets basic auth last, so it wins over a token.
            headers["Authorization"] = basic_authorization(
                self.config.username, self.config.password
            )
        await exchange(
            self.session,
            config=self.config,
            url=self.config.address,
            payload=[alert_of(event)],
            headers=headers,
        )
