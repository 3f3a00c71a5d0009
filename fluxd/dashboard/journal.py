"""What the daemon did lately, kept in small bounded rings for the dashboard.

The cluster's state (sources, Kustomizations) is read from the controllers'
informer caches when a page is asked for; what happened *between* two looks
(webhook deliveries, restarts, Events) exists nowhere else, so the parts that
do it append one small record each to a ring here. Appending is a deque push
and a counter bump: nothing is computed for a page nobody opens. Records hold
names, outcomes and times only, never a value read from a Secret.

The journal outlives a leadership term: a new term's journal starts from the
previous one's records, so losing the lease does not empty the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from fluxd.kube.events import Recorded

# Records kept per ring: enough for "what happened lately" on a small cluster, a few KiB.
RING_SIZE: Final = 50

T = TypeVar("T")


class Ring(Generic[T]):
    """The newest ``size`` records, newest first when read."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._items: deque[T] = deque(maxlen=size)

    def append(self, item: T) -> None:
        self._items.append(item)

    def newest_first(self) -> list[T]:
        return list(reversed(self._items))

    def extend(self, other: Ring[T]) -> None:
        self._items.extend(other._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)


@dataclass(frozen=True)
class Push:
    """One webhook delivery to the receiver port, accepted or refused."""

    at: float
    #: ``namespace/name`` of the Receiver; empty when no Receiver owns the path.
    receiver: str
    status: int
    #: ``fluxd_receiver_requests_total``'s outcome label (accepted, unauthorized, ...).
    outcome: str
    #: The forge's event type when it said one (``push``, ``ping``).
    event: str = ""

    @property
    def accepted(self) -> bool:
        return self.status < 300


@dataclass(frozen=True)
class ConfigRef:
    """A Secret or ConfigMap by name (its content is never recorded)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Restart:
    """One restart the restarter wrote (or failed to write) for changed configs."""

    at: float
    workload_kind: str
    namespace: str
    name: str
    configs: tuple[ConfigRef, ...]
    succeeded: bool
    #: From the change being seen to the workload written, when known.
    seconds: float | None = None
    #: What failed, for a restart that did not go through.
    error: str = ""

    @property
    def workload(self) -> str:
        return f"{self.workload_kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class EventLine:
    """One Event fluxd emitted, as the API and the alerts got it."""

    at: float
    type: str
    reason: str
    message: str
    #: ``Kind/namespace/name`` of the object the Event is about.
    regarding: str


@dataclass
class Journal:
    """The dashboard's rings, and a signal that the state a page shows has changed."""

    pushes: Ring[Push] = field(default_factory=Ring)
    restarts: Ring[Restart] = field(default_factory=Ring)
    events: Ring[EventLine] = field(default_factory=Ring)
    #: Bumped on every record and every cached object change, so live pages can compare.
    version: int = 0
    _changed: asyncio.Event | None = field(default=None, repr=False)

    def touch(self) -> None:
        """Something a page shows changed; wake the live streams, if any is open."""
        self.version += 1
        if self._changed is not None:
            self._changed.set()

    def on_cached_change(self, *_: Any) -> None:
        """An informer handler: a cached object changed."""
        self.touch()

    async def wait_changed(self, *, since: int, timeout: float) -> int:
        """The version once it is past ``since``, or after ``timeout`` seconds at the latest."""
        if self.version == since:
            if self._changed is None or self._changed.is_set():
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

    def carry_over(self, previous: Journal) -> None:
        """Start with ``previous``'s records (a new term's journal)."""
        if previous is self:
            return
        self.pushes.extend(previous.pushes)
        self.restarts.extend(previous.restarts)
        self.events.extend(previous.events)
        self.version = previous.version + 1
        if previous._changed is not None:
            # Streams still waiting on the old journal look again at the new one.
            previous._changed.set()

    # -- recorders ----------------------------------------------------------------

    def record_push(self, *, receiver: str, status: int, outcome: str, event: str = "") -> None:
        self.pushes.append(
            Push(
                at=time.time(),
                receiver=receiver,
                status=status,
                outcome=outcome,
                # The forge's header, so its length is the sender's choice.
                event=event[:64],
            )
        )
        self.touch()

    def record_restart(
        self,
        *,
        workload_kind: str,
        namespace: str,
        name: str,
        configs: Sequence[ConfigRef],
        succeeded: bool,
        seconds: float | None = None,
        error: str = "",
    ) -> None:
        self.restarts.append(
            Restart(
                at=time.time(),
                workload_kind=workload_kind,
                namespace=namespace,
                name=name,
                configs=tuple(configs),
                succeeded=succeeded,
                seconds=seconds,
                error=error,
            )
        )
        self.touch()

    def record_event(self, recorded: Recorded) -> None:
        """An ``EventRecorder`` sink."""
        regarding: Mapping[str, Any] = recorded.regarding
        subject = "/".join(
            str(part)
            for part in (regarding.get("kind"), regarding.get("namespace"), regarding.get("name"))
            if part
        )
        self.events.append(
            EventLine(
                at=recorded.timestamp,
                type=recorded.type,
                reason=recorded.reason,
                message=recorded.message,
                regarding=subject,
            )
        )
        self.touch()
