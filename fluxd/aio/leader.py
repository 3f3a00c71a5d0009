"""Leader election on a lease, independent of where the lease is stored.

With several replicas only one may reconcile, or two daemons would apply and
prune the same objects. The rules are those of client-go's ``leaderelection``
with a ``coordination.k8s.io/v1`` Lease, so fluxd interoperates with the same
lease semantics users know:

- a candidate takes the lease when nobody holds it, when it already holds it,
  or when the holder has not renewed for ``leaseDurationSeconds`` as measured
  on the candidate's own clock since it last saw the lease change (so clocks
  of different machines never need to agree);
- the leader renews every ``retry_period`` and stops leading when it could not
  renew for ``renew_deadline``, which is shorter than the lease duration, so it
  has stopped before anybody else may take over;
- an orderly stop releases the lease (empty holder, 1s duration) so another
  replica takes over at its next attempt instead of waiting for expiry.

Writes are optimistic: each update names the resource version it was based on
and the store raises ``LeaseConflict`` when the lease moved meanwhile. While it
leads and its lease is valid, the leader renews by writing against the version
it last wrote, without reading the lease first (client-go's fast path), and
reads only when that write fails.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import structlog

from fluxd.aio.clock import Clock, SystemClock, run_with_timeout
from fluxd.aio.errors import LeaseConflict

_log = structlog.get_logger(__name__)

# Duration written when releasing, as client-go does: the lease is free at once.
RELEASED_LEASE_DURATION = 1


def _format_micro_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_micro_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text)


@dataclass(frozen=True, kw_only=True)
class LeaseRecord:
    """The election state kept in a Lease's spec, plus the version it was read at.

    Fields map one to one to ``spec.holderIdentity``, ``leaseDurationSeconds``,
    ``acquireTime``, ``renewTime``, ``leaseTransitions`` and
    ``metadata.resourceVersion``. An empty ``holder_identity`` means nobody leads.
    """

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0
    resource_version: str = ""

    def to_spec(self) -> dict[str, Any]:
        """The Lease ``spec`` for this record (times as MicroTime strings)."""
        return {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": _format_micro_time(self.acquire_time),
            "renewTime": _format_micro_time(self.renew_time),
            "leaseTransitions": self.lease_transitions,
        }

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        """Read a record from a Lease object as returned by the API."""
        spec = lease.get("spec") or {}
        metadata = lease.get("metadata") or {}
        return cls(
            holder_identity=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse_micro_time(spec.get("acquireTime")),
            renew_time=_parse_micro_time(spec.get("renewTime")),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(metadata.get("resourceVersion") or ""),
        )


class LeaseStore(Protocol):
    """Where the lease lives (a Kubernetes Lease in production)."""

    async def get(self) -> LeaseRecord | None:
        """The current record, or None when the lease does not exist."""
        ...

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the lease; raise ``LeaseConflict`` if it exists already."""
        ...

    async def update(self, record: LeaseRecord, *, resource_version: str) -> LeaseRecord:
        """Replace the lease if still at ``resource_version``, else raise ``LeaseConflict``."""
        ...


class _Attempt(enum.Enum):
    LEADING = "leading"
    HELD_ELSEWHERE = "held elsewhere"
    FAILED = "failed"


class LeaderElector:
    """Campaigns for a lease and runs a callback for as long as it leads.

    After losing leadership the elector campaigns again and, once re-elected,
    starts the callback afresh.
    """

    def __init__(
        self,
        identity: str,
        store: LeaseStore,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        if lease_duration < 1:
            raise ValueError(f"lease_duration must be at least 1s, got {lease_duration}")
        if not lease_duration > renew_deadline:
            raise ValueError(
                f"lease_duration ({lease_duration}s) must exceed renew_deadline "
                f"({renew_deadline}s), or a new leader could start before the old one stops"
            )
        if not 0 < retry_period < renew_deadline:
            raise ValueError(
                f"retry_period ({retry_period}s) must be positive and below "
                f"renew_deadline ({renew_deadline}s)"
            )
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._leader = False
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._run_scope: anyio.CancelScope | None = None
        self._stopped: anyio.Event | None = None

    @property
    def is_leader(self) -> bool:
        """True while this elector holds the lease and runs the callback."""
        return self._leader

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        """Campaign, and run ``on_started_leading`` while leading.

        The callback is cancelled as soon as leadership is lost. ``run``
        returns when the callback returns, when ``release`` is called, or on
        cancellation; the lease is released on the way out. An exception from
        the callback propagates (wrapped in an ``ExceptionGroup``).
        """
        if self._stopped is not None:
            raise RuntimeError(f"leader elector {self.identity!r} is already running")
        self._stopped = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._run_scope = scope
                while True:
                    await self._acquire()
                    if await self._lead(on_started_leading):
                        break
        finally:
            self._run_scope = None
            self._leader = False
            with anyio.CancelScope(shield=True):
                await self._release_lease()
            self._stopped.set()
            self._stopped = None

    async def release(self) -> None:
        """Stop leading and hand the lease over at once; ``run`` then returns."""
        stopped = self._stopped
        if self._run_scope is not None and stopped is not None:
            self._run_scope.cancel()
            await stopped.wait()
            return
        self._leader = False
        await self._release_lease()

    async def _acquire(self) -> None:
        while await self._attempt(self.renew_deadline) is not _Attempt.LEADING:
            await self._clock.sleep(self.retry_period)

    async def _lead(self, on_started_leading: Callable[[], Awaitable[None]]) -> bool:
        """Run the callback while renewing; True when the callback returned by itself."""
        finished = False
        self._leader = True
        _log.info("started leading", identity=self.identity)
        try:
            async with anyio.create_task_group() as group:

                async def lead() -> None:
                    nonlocal finished
                    await on_started_leading()
                    finished = True
                    group.cancel_scope.cancel()

                group.start_soon(lead, name=f"leader {self.identity}")
                await self._keep_renewing()
                self._leader = False
                _log.warning("leadership lost", identity=self.identity)
                group.cancel_scope.cancel()
        finally:
            self._leader = False
        return finished

    async def _keep_renewing(self) -> None:
        """Return when leadership is lost."""
        last_renewed = self._clock.now()
        while True:
            await self._clock.sleep(self.retry_period)
            started = self._clock.now()
            remaining = last_renewed + self.renew_deadline - started
            if remaining <= 0:
                return
            attempt = await self._attempt(remaining)
            if attempt is _Attempt.LEADING:
                last_renewed = started
            elif attempt is _Attempt.HELD_ELSEWHERE:
                return
            if self._clock.now() >= last_renewed + self.renew_deadline:
                return

    async def _attempt(self, within: float) -> _Attempt:
        try:
            return await run_with_timeout(self._clock, within, self._try_acquire_or_renew)
        except LeaseConflict as conflict:
            _log.debug("lease write conflict", identity=self.identity, reason=str(conflict))
        except TimeoutError:
            _log.warning("lease operation timed out", identity=self.identity, seconds=within)
        except Exception as error:
            # One line, not a traceback: an unreachable API server fails every retry period.
            _log.warning(
                "lease operation failed",
                identity=self.identity,
                error=str(error),
                error_type=type(error).__name__,
            )
        return _Attempt.FAILED

    async def _try_acquire_or_renew(self) -> _Attempt:
        now = self._wall_clock()
        if await self._renew_as_observed(now):
            return _Attempt.LEADING
        current = await self._store.get()
        if current is None:
            created = await self._store.create(
                LeaseRecord(
                    holder_identity=self.identity,
                    lease_duration_seconds=round(self.lease_duration),
                    acquire_time=now,
                    renew_time=now,
                )
            )
            self._observe(created)
            return _Attempt.LEADING
        self._observe(current)
        holder = current.holder_identity
        expires_at = self._observed_at + current.lease_duration_seconds
        if holder and holder != self.identity and expires_at > self._clock.now():
            return _Attempt.HELD_ELSEWHERE
        ours = holder == self.identity
        updated = await self._store.update(
            LeaseRecord(
                holder_identity=self.identity,
                lease_duration_seconds=round(self.lease_duration),
                acquire_time=current.acquire_time if ours else now,
                renew_time=now,
                lease_transitions=current.lease_transitions + (0 if ours else 1),
            ),
            resource_version=current.resource_version,
        )
        self._observe(updated)
        return _Attempt.LEADING

    async def _renew_as_observed(self, now: datetime) -> bool:
        """Renew a valid lease of ours against the version last seen; False to read first."""
        observed = self._observed
        if (
            not self._leader
            or observed is None
            or observed.holder_identity != self.identity
            or self._observed_at + observed.lease_duration_seconds <= self._clock.now()
        ):
            return False
        renewal = replace(
            observed, lease_duration_seconds=round(self.lease_duration), renew_time=now
        )
        try:
            self._observe(
                await self._store.update(renewal, resource_version=observed.resource_version)
            )
        except Exception as error:
            _log.debug(
                "renewing without reading failed; reading the lease",
                identity=self.identity,
                error=str(error),
            )
            return False
        return True

    def _observe(self, record: LeaseRecord) -> None:
        # Expiry is judged from when this replica saw the lease change, never
        # from the times written in it by another machine's clock.
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock.now()

    async def _release_lease(self) -> None:
        observed = self._observed
        if observed is None or observed.holder_identity != self.identity:
            return
        now = self._wall_clock()
        released = LeaseRecord(
            holder_identity="",
            lease_duration_seconds=RELEASED_LEASE_DURATION,
            acquire_time=now,
            renew_time=now,
            lease_transitions=observed.lease_transitions,
        )

        async def write() -> LeaseRecord:
            return await self._store.update(released, resource_version=observed.resource_version)

        try:
            self._observe(await run_with_timeout(self._clock, self.retry_period, write))
        except Exception as error:
            _log.warning(
                "could not release the lease",
                identity=self.identity,
                error=str(error),
                error_type=type(error).__name__,
            )
            return
        _log.info("released the lease", identity=self.identity)
