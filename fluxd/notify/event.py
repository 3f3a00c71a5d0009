"""The event every controller step reports, in Flux's shape.

Flux controllers POST events to notification-controller as JSON; fluxd runs
every controller in one process, so events are handed over in memory instead
(the ``EventRecorder``'s sinks). The ``Event`` keeps Flux's JSON shape
(``involvedObject``, ``severity``, ``reason``, ``metadata``,
``reportingController`` …) so the generic webhook provider forwards exactly
what Flux would, and events from external Flux controllers can be decoded
with the same type.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

Severity = Literal["trace", "info", "error"]

SEVERITY_TRACE: Final = "trace"
SEVERITY_INFO: Final = "info"
SEVERITY_ERROR: Final = "error"

# Metadata keys Flux controllers use (fluxcd/pkg apis/event/v1).
META_REVISION: Final = "revision"
META_ORIGIN_REVISION: Final = "originRevision"
META_COMMIT: Final = "commit"
META_CHECKSUM: Final = "checksum"
META_DIGEST: Final = "digest"
META_TOKEN: Final = "token"
META_COMMIT_STATUS: Final = "commit_status"
META_COMMIT_STATUS_UPDATE: Final = "update"
META_SUMMARY: Final = "summary"

# The reason Flux uses for "still working on it" events (fluxcd/pkg apis/meta).
REASON_PROGRESSING: Final = "Progressing"


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """The object an event is about (Kubernetes ``ObjectReference`` subset)."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""

    @property
    def group(self) -> str:
        """API group of the object, ``""`` for the core group."""
        return self.api_version.rpartition("/")[0]

    def display_name(self) -> str:
        """``kind/name.namespace`` in lower-case kind, as Flux's chat messages show it."""
        return f"{self.kind.lower()}/{self.name}.{self.namespace}"

    def to_json_dict(self) -> dict[str, str]:
        """``corev1.ObjectReference``'s JSON: its keys in its order, empty ones omitted."""
        fields = (
            ("kind", self.kind),
            ("namespace", self.namespace),
            ("name", self.name),
            ("uid", self.uid),
            ("apiVersion", self.api_version),
            ("resourceVersion", self.resource_version),
        )
        return {key: value for key, value in fields if value}

    @classmethod
    def from_json_dict(cls, raw: Mapping[str, Any]) -> ObjectReference:
        return cls(
            kind=str(raw.get("kind", "")),
            name=str(raw.get("name", "")),
            namespace=str(raw.get("namespace", "")),
            uid=str(raw.get("uid", "")),
            api_version=str(raw.get("apiVersion", "")),
            resource_version=str(raw.get("resourceVersion", "")),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A report about one object, as Flux's event API defines it.

    ``metadata`` holds un-prefixed keys (``revision``, ``summary``…): the form
    notification-controller forwards to providers. ``labels`` are the involved
    object's labels, carried so that Alert ``matchLabels`` can be evaluated
    without an API call; they are not part of the wire format, nor is ``alert``.
    """

    involved_object: ObjectReference
    severity: Severity
    message: str
    reason: str
    reporting_controller: str
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Flux's event recorder reports its host name: the pod's name in a cluster.
    reporting_instance: str = field(default_factory=socket.gethostname)
    labels: Mapping[str, str] | None = None
    #: The Alert that routed this event, which commit status expressions read as ``alert``;
    #: not part of the wire format either.
    alert: Mapping[str, Any] | None = None

    def revision(self) -> str | None:
        """The source revision this event refers to, looked up as Flux does."""
        for key in (META_COMMIT, META_ORIGIN_REVISION, META_REVISION):
            value = self.metadata.get(key)
            if value:
                return value
        return None

    def is_commit_status_update(self) -> bool:
        return self.metadata.get(META_COMMIT_STATUS) == META_COMMIT_STATUS_UPDATE

    def is_for_commit_status(self) -> bool:
        """Whether a commit status provider is sent this event, as notification-controller
        decides: a commit status update, a failure, or an event naming a commit; and in
        every case one that has a revision to put the status on."""
        wanted = (
            self.is_commit_status_update()
            or self.severity == SEVERITY_ERROR
            or bool(self.metadata.get(META_COMMIT))
        )
        return wanted and self.revision() is not None

    def with_metadata(self, metadata: Mapping[str, str]) -> Event:
        return replace(self, metadata=dict(metadata))

    def to_json_dict(self) -> dict[str, Any]:
        """Flux's event JSON (``fluxcd/pkg`` ``Event``), ready for ``json.dumps``.

        Field for field as notification-controller forwards it, in its order;
        ``metadata`` and ``reportingInstance`` are omitted when empty.
        """
        out: dict[str, Any] = {
            "involvedObject": self.involved_object.to_json_dict(),
            "severity": self.severity,
            "timestamp": _format_timestamp(self.timestamp),
            "message": self.message,
            "reason": self.reason,
        }
        if self.metadata:
            out["metadata"] = dict(sorted(self.metadata.items()))
        out["reportingController"] = self.reporting_controller
        if self.reporting_instance:
            out["reportingInstance"] = self.reporting_instance
        return out

    @classmethod
    def from_flux_json(cls, raw: Mapping[str, Any]) -> Event:
        """Decode an event as a Flux controller sends it.

        Flux controllers prefix metadata keys with their API group
        (``kustomize.toolkit.fluxcd.io/revision``); notification-controller keeps
        only the keys of the involved object's group, strips the prefix and drops
        checksum/digest. The same cleanup happens here.
        """
        involved = ObjectReference.from_json_dict(raw.get("involvedObject") or {})
        raw_metadata = raw.get("metadata") or {}
        severity = str(raw.get("severity", SEVERITY_INFO))
        if severity not in (SEVERITY_TRACE, SEVERITY_INFO, SEVERITY_ERROR):
            severity = SEVERITY_INFO
        return cls(
            involved_object=involved,
            severity=severity,  # type: ignore[arg-type]  # checked just above
            message=str(raw.get("message", "")),
            reason=str(raw.get("reason", "")),
            reporting_controller=str(raw.get("reportingController", "")),
            reporting_instance=str(raw.get("reportingInstance", "")),
            timestamp=_parse_timestamp(raw.get("timestamp")),
            metadata=clean_metadata(
                {str(k): str(v) for k, v in raw_metadata.items()}, group=involved.group
            ),
        )


def clean_metadata(metadata: Mapping[str, str], *, group: str) -> dict[str, str]:
    """Keep the ``<group>/`` keys without their prefix, minus checksum and digest."""
    prefix = f"{group}/"
    excluded = {f"{prefix}{META_CHECKSUM}".lower(), f"{prefix}{META_DIGEST}".lower()}
    return {
        key.removeprefix(prefix): value
        for key, value in metadata.items()
        if key.startswith(group) and key.lower() not in excluded
    }


def _format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339_FRACTION = re.compile(r"\.\d+")


def _parse_timestamp(raw: object) -> datetime:
    if isinstance(raw, str) and raw:
        text = _RFC3339_FRACTION.sub("", raw).replace("Z", "+00:00")
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text)
    return datetime.now(UTC)
