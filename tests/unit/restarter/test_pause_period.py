"""Pause period: state kept on the Deployment, resumed on time even after a daemon restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fluxd.restarter import (
    PauseSchedule,
    WorkloadKey,
    WorkloadKind,
    pause_patch,
    pause_state,
    resume_patch,
)
from tests.unit.restarter.restarter_objects import workload

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
PERIOD = "deployment.reloader.stakater.com/pause-period"
PAUSED_AT = "deployment.reloader.stakater.com/paused-at"


def deployment(
    annotations: dict[str, str] | None = None, *, name: str = "realm-ix", paused: bool = False
) -> dict[str, Any]:
    spec_extra = {"paused": True} if paused else None
    return workload(name, annotations=annotations, spec_extra=spec_extra)


def apply_merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge(result[key], value)
        else:
            result[key] = value
    return result


def test_pause_state_round_trip() -> None:
    fresh = deployment({PERIOD: "5m"})
    patch = pause_patch(fresh, now=NOW)
    assert patch is not None
    paused = apply_merge(fresh, patch)

    state = pause_state(paused)
    assert state.paused and state.paused_by_restarter
    assert state.paused_at == NOW
    assert state.resume_at == NOW + timedelta(minutes=5)
    # A new process reading the same object resumes at the same moment.
    key = WorkloadKey("edge", WorkloadKind.DEPLOYMENT, "realm-ix")
    schedule = PauseSchedule()
    assert schedule.observe(paused)
    assert schedule.due(now=NOW + timedelta(minutes=4, seconds=59)) == []
    assert schedule.due(now=NOW + timedelta(minutes=5)) == [key]

    resumed = apply_merge(paused, resume_patch())
    assert resumed["spec"]["paused"] is False
    assert PAUSED_AT not in resumed["metadata"]["annotations"]
    assert schedule.observe(resumed)
    assert schedule.due(now=NOW + timedelta(hours=1)) == []
    assert len(schedule) == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(deployment(), None, id="no-period"),
        pytest.param(deployment({PERIOD: "soon"}), None, id="unparsable-period"),
        pytest.param(deployment({PERIOD: "5m"}, paused=True), None, id="already-paused"),
        pytest.param(deployment({PERIOD: "1h30m"}), "2024-05-01T12:00:00Z", id="go-duration"),
    ],
)
def test_when_to_pause(target: dict[str, Any], expected: str | None) -> None:
    patch = pause_patch(target, now=NOW)
    stamp = None if patch is None else patch["metadata"]["annotations"][PAUSED_AT]
    assert stamp == expected


def test_paused_by_someone_else_is_never_resumed() -> None:
    by_user = deployment({PERIOD: "5m"}, paused=True)
    assert not pause_state(by_user).paused_by_restarter
    schedule = PauseSchedule()
    assert not schedule.observe(by_user)
    assert schedule.due(now=NOW + timedelta(days=1)) == []


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param({PERIOD: "5m", PAUSED_AT: "yesterday"}, id="unparsable-paused-at"),
        pytest.param({PAUSED_AT: "2024-05-01T12:00:00Z"}, id="period-removed"),
    ],
)
def test_broken_pause_resumes_at_once(annotations: dict[str, str]) -> None:
    stuck = deployment(annotations, paused=True)
    schedule = PauseSchedule()
    schedule.observe(stuck)
    assert schedule.due(now=NOW) == [stuck_key()]


def test_the_next_deadline_is_the_earliest_resume() -> None:
    stamp = "2024-05-01T12:00:00Z"
    later = deployment({PERIOD: "10m", PAUSED_AT: stamp}, name="a", paused=True)
    sooner = deployment({PERIOD: "2m", PAUSED_AT: stamp}, name="b", paused=True)
    schedule = PauseSchedule()
    for each in (later, sooner, deployment(name="c")):
        schedule.observe(each)
    assert len(schedule) == 2
    assert schedule.next_deadline(after=NOW) == NOW + timedelta(minutes=2)
    sooner_key = WorkloadKey("edge", WorkloadKind.DEPLOYMENT, "b")
    assert schedule.next_deadline(after=NOW, skip={sooner_key}) == NOW + timedelta(minutes=10)


def stuck_key() -> WorkloadKey:
    return WorkloadKey("edge", WorkloadKind.DEPLOYMENT, "realm-ix")
