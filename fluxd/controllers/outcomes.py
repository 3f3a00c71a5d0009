"""What a reconcile can end in, and what each ending means for status and requeue.

A reconciler returns ``Reconciled`` or raises one of the failures below; one
function (``Controller._finish``) turns that into conditions, one status
patch and the queue's next step::

    ReconcileFailure           Ready=False, Reconciling=True (ProgressingWithRetry)
    ├── Transient              back off per key and try again
    ├── Waiting                try again after ``requeue_after``, no backoff
    ├── Deferred               status untouched: an input is being restored, look again soon
    └── Stalled                Ready=False, Stalled=True: nothing until the spec changes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConditionUpdate:
    """A condition the reconciler owns, set (status given) or removed (status None)."""

    type: str
    status: str | None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class EventNote:
    """An Event to record for the object (and so an alert to route)."""

    type: str  # Normal | Warning
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Reconciled:
    """Success: the object is Ready with this reason/message."""

    reason: str
    message: str
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionUpdate] = field(default_factory=list)
    events: list[EventNote] = field(default_factory=list)
    requeue_after: float | None = None


class ReconcileFailure(Exception):
    """A reconcile that did not succeed; ``reason`` and ``message`` land on Ready."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: dict[str, Any] | None = None,
        conditions: list[ConditionUpdate] | None = None,
        events: list[EventNote] | None = None,
        event: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status or {}
        self.conditions = conditions or []
        self.events = events or []
        self.event = event


class Transient(ReconcileFailure):
    """Might work next time (network, API server, a git host down): back off."""


class Waiting(ReconcileFailure):
    """Not an error yet (a dependency is not ready): check again after ``requeue_after``."""

    def __init__(self, reason: str, message: str, *, requeue_after: float, **kwargs: Any) -> None:
        super().__init__(reason, message, **kwargs)
        self.requeue_after = requeue_after


class Deferred(ReconcileFailure):
    """An input is on its way back (an artifact its source is storing again): no status change.

    The last status stays what it was, true until proven otherwise, so a new
    process does not flash Ready=False for every object while it refills its
    storage; the reconciler bounds how long it defers before reporting.
    """

    def __init__(self, reason: str, message: str, *, requeue_after: float, **kwargs: Any) -> None:
        super().__init__(reason, message, event=False, **kwargs)
        self.requeue_after = requeue_after


class Stalled(ReconcileFailure):
    """Cannot work until a human changes something (invalid spec, missing field)."""
