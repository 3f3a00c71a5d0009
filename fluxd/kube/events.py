"""Kubernetes Events about our objects, de-duplicated like client-go's recorder.

Each event is written as an ``events.k8s.io/v1`` Event (which ``kubectl get
events`` and ``flux events`` read as core/v1 Events too). Repeats of the same
(object, type, reason, message) within ``window`` seconds update the existing
Event's ``series`` instead of creating a new one. Every event is also handed to
the sinks (the alerting bus), whatever happens to the API write.

``Trace`` events are Flux's: written as Normal Events for ``kubectl`` and
``flux events``, never forwarded as notifications, and a repeat within the
window is not written again (Flux's recorder drops such repeats too), so an
unchanged source polled every minute costs no API call for its event.

Writes are serialised per de-dup key only: the create and later series
patches of one Event stay in order (and a burst never creates it twice),
while a slow API call for one object never holds up Events about another.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from fluxd.kube import errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.resources import EVENT

log = structlog.get_logger("fluxd.kube.events")

_NOTE_LIMIT = 1024
# Past this many remembered Events, those older than the window are forgotten.
_SEEN_LIMIT = 4096

_DedupKey = tuple[str, ...]

#: Flux's event type for what is recorded in the cluster only, never notified.
TRACE = "Trace"
#: Annotations of an object that Flux's recorder copies into the metadata of its events
#: (``event.toolkit.fluxcd.io/change_request`` names a pull request to comment on).
EVENT_ANNOTATION_PREFIX = "event.toolkit.fluxcd.io/"


@dataclass(frozen=True)
class Recorded:
    """What was reported, as handed to sinks."""

    regarding: Mapping[str, Any]
    type: str
    reason: str
    message: str
    action: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    @property
    def severity(self) -> str:
        if self.type == TRACE:
            return "trace"
        return "error" if self.type == "Warning" else "info"


Sink = Callable[[Recorded], Awaitable[None] | None]


@dataclass
class _KeyLock:
    """The lock of one de-dup key, and how many writers hold or await it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _micro_time(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reference(obj: Object) -> dict[str, Any]:
    metadata = obj.get("metadata", {})
    ref = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "uid": metadata.get("uid", ""),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    def __init__(
        self,
        kube: Kube | None,
        *,
        controller: str = "fluxd",
        instance: str | None = None,
        window: float = 600.0,
        annotation_prefix: Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        self.kube = kube
        self.controller = controller
        self.instance = instance or os.environ.get("POD_NAME") or f"fluxd-{uuid.uuid4().hex[:6]}"
        self.window = window
        self.annotation_prefix = annotation_prefix
        self._sinks: list[Sink] = []
        self._seen: dict[_DedupKey, tuple[str, str, int, float]] = {}
        # Only keys being written have a lock, so the map is as small as the writes in flight.
        self._locks: dict[_DedupKey, _KeyLock] = {}

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    async def normal(self, obj: Object, reason: str, message: str, **kwargs: Any) -> None:
        await self.record(obj, type_="Normal", reason=reason, message=message, **kwargs)

    async def warning(self, obj: Object, reason: str, message: str, **kwargs: Any) -> None:
        await self.record(obj, type_="Warning", reason=reason, message=message, **kwargs)

    async def record(
        self,
        obj: Object,
        *,
        type_: str,
        reason: str,
        message: str,
        action: str = "Reconcile",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        regarding = reference(obj)
        labels = dict(obj.get("metadata", {}).get("labels") or {})
        annotations = obj.get("metadata", {}).get("annotations") or {}
        forwarded = {
            str(key): str(value)
            for key, value in annotations.items()
            if str(key).startswith(EVENT_ANNOTATION_PREFIX)
        }
        recorded = Recorded(
            regarding=regarding,
            type=type_,
            reason=reason,
            message=message,
            action=action,
            metadata={**forwarded, **(metadata or {})},
            labels=labels,
        )
        for sink in self._sinks:
            try:
                result = sink(recorded)
                if result is not None:
                    await result
            except Exception:
                log.exception("event sink failed", reason=reason)
        if self.kube is not None:
            try:
                await self._write(recorded)
            except errors.KubeError as error:
                log.warning(
                    "cannot record event",
                    reason=reason,
                    kind=regarding.get("kind"),
                    namespace=regarding.get("namespace"),
                    name=regarding.get("name"),
                    error=str(error),
                )

    async def _write(self, recorded: Recorded) -> None:
        assert self.kube is not None
        regarding = recorded.regarding
        namespace = str(regarding.get("namespace") or "default")
        note = recorded.message[:_NOTE_LIMIT]
        key: _DedupKey = (
            str(regarding.get("kind")),
            namespace,
            str(regarding.get("name")),
            str(regarding.get("uid", "")),
            recorded.type,
            recorded.reason,
            note,
        )
        now = recorded.timestamp
        if recorded.type == TRACE and self._count_repeat(key, now) is not None:
            # A repeated trace (an unchanged poll) is only counted: nothing to write or wait for.
            return
        async with self._exclusive(key):
            repeat = self._count_repeat(key, now)
            if repeat is not None:
                if recorded.type == TRACE:
                    return
                name, ns, count = repeat
                series = {"count": count, "lastObservedTime": _micro_time(now)}
                try:
                    await self.kube.patch(
                        EVENT, name, {"series": series}, namespace=ns, patch_type=PatchType.MERGE
                    )
                    return
                except errors.NotFound:
                    pass  # expired or deleted: write a new one below
            name = f"{regarding.get('name', 'object')}.{uuid.uuid4().hex[:16]}"
            annotations = {}
            if recorded.metadata:
                prefix = self.annotation_prefix(regarding) if self.annotation_prefix else ""
                # Keys copied from the object's annotations keep their own prefix.
                annotations = {
                    (f"{prefix}/{k}" if prefix and "/" not in k else k): v
                    for k, v in recorded.metadata.items()
                }
            body: Object = {
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
                "eventTime": _micro_time(now),
                "reportingController": self.controller,
                "reportingInstance": self.instance,
                "action": recorded.action,
                "reason": recorded.reason,
                "regarding": dict(regarding),
                "note": note,
                "type": "Normal" if recorded.type == TRACE else recorded.type,
            }
            await self.kube.create(EVENT, body, namespace=namespace)
            self._seen[key] = (name, namespace, 1, now)
            self._forget_old(now)

    def _count_repeat(self, key: _DedupKey, now: float) -> tuple[str, str, int] | None:
        """Count a repeat of an Event written within the window: its name, namespace, count."""
        previous = self._seen.get(key)
        if previous is None or now - previous[3] >= self.window:
            return None
        name, namespace, count, first = previous
        self._seen[key] = (name, namespace, count + 1, first)
        return name, namespace, count + 1

    @contextlib.asynccontextmanager
    async def _exclusive(self, key: _DedupKey) -> AsyncIterator[None]:
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _KeyLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    def _forget_old(self, now: float) -> None:
        if len(self._seen) < _SEEN_LIMIT:
            return
        for key, (_, _, _, first) in list(self._seen.items()):
            if now - first >= self.window:
                del self._seen[key]
