"""Reloader's pause period: hold a Deployment's rollout for a while after a change.

A Deployment annotated ``deployment.reloader.stakater.com/pause-period: 5m``
(Go duration syntax) is paused (``spec.paused: true``) in the same write that
records a new digest, so further changes during the period pile up in the
template and roll out together when it is resumed. The pause start is kept on
the object (``deployment.reloader.stakater.com/paused-at``, RFC 3339), as
Reloader keeps it, so a restarted daemon or a new leader resumes on time.

A Deployment paused by someone else (no ``paused-at``) is left alone, and never
resumed by us. A ``paused-at`` that does not parse, or a pause period removed or
broken while paused, resumes at once rather than leaving a Deployment stuck.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fluxd.api.duration import parse_duration_ns
from fluxd.api.errors import InvalidDuration
from fluxd.restarter.annotations import DEFAULT_ANNOTATIONS, RestarterAnnotations
from fluxd.restarter.workloads import WorkloadKey, WorkloadKind, workload_annotations, workload_key


@dataclass(frozen=True)
class PauseState:
    """A Deployment's pause as far as the restarter is concerned."""

    # The configured pause period; None when absent, unparsable or not positive.
    period: timedelta | None
    paused: bool
    # Paused by the restarter (or Reloader): ``paused-at`` is set.
    paused_by_restarter: bool
    paused_at: datetime | None
    # When to resume; None when the restarter has nothing to resume.
    resume_at: datetime | None


def rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339`` for a UTC instant: ``2024-05-01T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def pause_period(
    deployment: Mapping[str, Any], *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS
) -> timedelta | None:
    value = workload_annotations(deployment).get(names.pause_period, "")
    if not value:
        return None
    try:
        nanoseconds = parse_duration_ns(value)
    except InvalidDuration:
        return None
    return timedelta(microseconds=nanoseconds // 1000) if nanoseconds > 0 else None


def pause_state(
    deployment: Mapping[str, Any], *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS
) -> PauseState:
    period = pause_period(deployment, names=names)
    paused = bool((deployment.get("spec") or {}).get("paused"))
    stamp = workload_annotations(deployment).get(names.paused_at, "")
    by_us = paused and stamp != ""
    paused_at = parse_rfc3339(stamp) if by_us else None
    resume_at: datetime | None = None
    if by_us:
        if paused_at is None or period is None:
            # Nothing sensible to wait for: resume now rather than never.
            resume_at = datetime.min.replace(tzinfo=UTC)
        else:
            resume_at = paused_at + period
    return PauseState(period, paused, by_us, paused_at, resume_at)


def pause_patch(
    deployment: Mapping[str, Any],
    *,
    now: datetime,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
) -> dict[str, Any] | None:
    """The fields that pause ``deployment`` from ``now``, or None when it is not to be paused.

    Only a Deployment with a valid pause period that is not paused already is
    paused; the result is merged into the restart patch so both land together.
    """
    if str(deployment.get("kind", "Deployment")) != WorkloadKind.DEPLOYMENT.value:
        return None
    state = pause_state(deployment, names=names)
    if state.period is None or state.paused:
        return None
    period_text = workload_annotations(deployment)[names.pause_period]
    return {
        "metadata": {
            "annotations": {names.paused_at: rfc3339(now), names.pause_period: period_text}
        },
        "spec": {"paused": True},
    }


def resume_patch(*, names: RestarterAnnotations = DEFAULT_ANNOTATIONS) -> dict[str, Any]:
    """Merge patch that resumes a Deployment and forgets the pause start."""
    return {"metadata": {"annotations": {names.paused_at: None}}, "spec": {"paused": False}}


class PauseSchedule:
    """When each Deployment the restarter paused falls due, kept current event by event.

    Only Deployments paused by the restarter are held, so a Deployment event
    costs one ``pause_state`` and the timer's look costs the number of paused
    Deployments, not the number of Deployments in the cluster.
    """

    def __init__(self, *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS) -> None:
        self._names = names
        self._resume_at: dict[WorkloadKey, datetime] = {}

    def observe(self, deployment: Mapping[str, Any]) -> bool:
        """Take a Deployment's latest state; True when its resume moment changed."""
        key = workload_key(deployment)
        resume_at = pause_state(deployment, names=self._names).resume_at
        if resume_at is None:
            return self.forget(key)
        if self._resume_at.get(key) == resume_at:
            return False
        self._resume_at[key] = resume_at
        return True

    def forget(self, key: WorkloadKey) -> bool:
        """Drop a Deployment (deleted, or no longer paused by us); True if it was held."""
        return self._resume_at.pop(key, None) is not None

    def due(self, *, now: datetime, skip: Container[WorkloadKey] = ()) -> list[WorkloadKey]:
        """Held Deployments whose pause period is over at ``now``, earliest first."""
        ready = sorted((moment, key) for key, moment in self._resume_at.items() if moment <= now)
        return [key for _, key in ready if key not in skip]

    def next_deadline(
        self, *, after: datetime, skip: Container[WorkloadKey] = ()
    ) -> datetime | None:
        """The earliest resume moment later than ``after``, to sleep until then."""
        return min(
            (
                moment
                for key, moment in self._resume_at.items()
                if moment > after and key not in skip
            ),
            default=None,
        )

    def __len__(self) -> int:
        return len(self._resume_at)
