"""Conditions are set the way Flux sets them, so kstatus and dashboards read them alike."""

from __future__ import annotations

from datetime import UTC, datetime

from fluxd.api import meta
from fluxd.api.meta import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    condition_status,
    find_condition,
    is_false,
    is_ready,
    mark_reconciling,
    mark_stalled,
    remove_condition,
    set_condition,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 900_000, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 5, 0, tzinfo=UTC)


def ready(
    conditions: list[Condition],
    *,
    status: ConditionStatus = "True",
    reason: str = Reason.SUCCEEDED,
    message: str = "stored artifact for revision 'master@sha1:abc'",
    generation: int = 1,
    now: datetime = T0,
) -> list[Condition]:
    return set_condition(
        conditions,
        condition_type=ConditionType.READY,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )


def test_new_condition_carries_every_field_flux_writes() -> None:
    conditions = ready([])
    assert conditions == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": "2024-05-01T12:00:00Z",
            "reason": "Succeeded",
            "message": "stored artifact for revision 'master@sha1:abc'",
        }
    ]
    assert type(conditions[0]["type"]) is str  # plain strings serialise everywhere


def test_unchanged_state_keeps_transition_time_but_updates_generation() -> None:
    first = ready([], generation=1, now=T0)
    second = ready(first, generation=2, now=T1)
    assert second[0]["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert second[0]["observedGeneration"] == 2


def test_status_change_moves_transition_time() -> None:
    first = ready([], now=T0)
    second = ready(first, status="False", reason=Reason.GIT_OPERATION_FAILED, now=T1)
    assert second[0]["lastTransitionTime"] == "2024-05-01T12:05:00Z"
    assert is_false(second, ConditionType.READY)


def test_message_change_moves_transition_time_as_in_flux() -> None:
    first = ready([], now=T0)
    second = ready(first, message="stored artifact for revision 'master@sha1:def'", now=T1)
    assert second[0]["lastTransitionTime"] == "2024-05-01T12:05:00Z"


def test_input_list_is_left_untouched() -> None:
    first = ready([], now=T0)
    snapshot = [dict(c) for c in first]
    ready(first, status="False", reason=Reason.FAILED, now=T1)
    assert [dict(c) for c in first] == snapshot


def test_conditions_sort_stalled_reconciling_ready_then_by_type() -> None:
    conditions: list[Condition] = []
    for condition_type in ("SourceVerified", "Ready", "ArtifactInStorage", "Reconciling"):
        conditions = set_condition(
            conditions,
            condition_type=condition_type,
            status="True",
            reason=Reason.PROGRESSING,
            message="",
            observed_generation=1,
            now=T0,
        )
    conditions = mark_stalled(
        conditions, reason=Reason.FAILED, message="bad", observed_generation=1, now=T0
    )
    assert [c["type"] for c in conditions] == [
        "Stalled",
        "Ready",
        "ArtifactInStorage",
        "SourceVerified",
    ]


def test_reconciling_and_stalled_exclude_each_other() -> None:
    stalled = mark_stalled(
        [], reason=Reason.FAILED, message="invalid url", observed_generation=1, now=T0
    )
    reconciling = mark_reconciling(
        stalled, reason=Reason.PROGRESSING, message="reconciling", observed_generation=2, now=T1
    )
    assert [c["type"] for c in reconciling] == ["Reconciling"]
    assert [
        c["type"]
        for c in mark_stalled(reconciling, reason="Failed", message="x", observed_generation=2)
    ] == ["Stalled"]


def test_lookups_treat_a_missing_condition_as_unknown() -> None:
    conditions = ready([])
    assert is_ready(conditions)
    assert find_condition(conditions, "Healthy") is None
    assert condition_status(conditions, "Healthy") == "Unknown"
    assert not is_ready(remove_condition(conditions, ConditionType.READY))


def test_one_ready_reader_for_objects_as_the_api_returns_them() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "x"}]}}
    waiting = {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert meta.object_is_ready(ready)
    assert not meta.object_is_ready(waiting)
    assert not meta.object_is_ready({})
    assert not meta.object_is_ready({"status": {"conditions": ["garbage", {"status": "True"}]}})
    assert not meta.object_is_ready({"status": None})
    assert meta.condition_of(ready, "Ready") == ready["status"]["conditions"][0]


def test_history_keeps_one_snapshot_per_digest_and_outcome_newest_first() -> None:
    t0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
    history = meta.upsert_history(
        [],
        digest="sha256:a",
        status="ReconciliationSucceeded",
        duration_seconds=1.5,
        metadata={"revision": "main@sha1:1"},
        now=t0,
    )
    history = meta.upsert_history(
        history,
        digest="sha256:b",
        status="HealthCheckFailed",
        duration_seconds=30,
        metadata={"revision": "main@sha1:2"},
        now=t0.replace(minute=1),
    )
    history = meta.upsert_history(
        history,
        digest="sha256:a",
        status="ReconciliationSucceeded",
        duration_seconds=0.25,
        metadata={"revision": "main@sha1:1"},
        now=t0.replace(minute=2),
    )
    assert [s["digest"] for s in history] == ["sha256:a", "sha256:b"]
    latest = history[0]
    assert latest["totalReconciliations"] == 2
    assert latest["firstReconciled"] == "2026-12-01T10:00:00Z"
    assert latest["lastReconciled"] == "2026-12-01T10:02:00Z"
    assert latest["lastReconciledDuration"] == "250ms"
    assert history[1]["lastReconciledDuration"] == "30s"
    for n in range(10):
        history = meta.upsert_history(
            history,
            digest=f"sha256:{n}",
            status="ReconciliationSucceeded",
            duration_seconds=1,
            metadata={},
            now=t0,
        )
    assert len(history) == meta.HISTORY_MAX_SIZE
    assert history[0]["digest"] == "sha256:9"
