"""A changed object used by a plain Job recreates the Job, as Reloader v1.4 does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fluxd.restarter import (
    ConfigChange,
    ConfigKind,
    RestartAction,
    WorkloadIndex,
    plan_restart,
    recreated_job,
)
from fluxd.restarter.configs import ConfigKey
from fluxd.restarter.slim import slim_workload
from tests.unit.restarter.restarter_objects import SECRET_NAME, container, secret, workload

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
AUTO = {"reloader.stakater.com/auto": "true"}


def live_job(**overrides: Any) -> dict[str, Any]:
    """A Job as the apiserver returns it: generated selector, labels, status."""
    job = workload("migrate", kind="Job", api_version="batch/v1", **overrides)
    generated = {
        "controller-uid": "uid-migrate",
        "batch.kubernetes.io/controller-uid": "uid-migrate",
        "batch.kubernetes.io/job-name": "migrate",
        "job-name": "migrate",
    }
    job["metadata"].update(
        {"resourceVersion": "41", "creationTimestamp": "2024-05-01T11:00:00Z", "labels": {"a": "b"}}
    )
    job["spec"] = {
        "backoffLimit": 3,
        "completions": 1,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-migrate"}},
        "template": job["spec"]["template"],
    }
    job["spec"]["template"]["metadata"]["labels"].update(generated)
    job["status"] = {"succeeded": 1}
    return job


def test_recreated_job_drops_what_the_apiserver_generated() -> None:
    manifest = recreated_job(live_job())
    assert manifest["metadata"] == {
        "name": "migrate",
        "namespace": "edge",
        "labels": {"a": "b"},
    }
    assert "status" not in manifest
    assert "selector" not in manifest["spec"]
    assert manifest["spec"]["template"]["metadata"]["labels"] == {"app": "migrate"}
    assert manifest["spec"]["backoffLimit"] == 3
    assert manifest["spec"]["completions"] == 1


@pytest.mark.parametrize(
    "uses",
    [
        pytest.param({}, id="volume"),
        pytest.param(
            {
                "volumes": [],
                "containers": [
                    container(env_from=[{"secretRef": {"name": SECRET_NAME}}]),
                ],
            },
            id="envFrom",
        ),
        pytest.param(
            {
                "volumes": [],
                "containers": [
                    container(
                        env=[
                            {
                                "name": "TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "t"}},
                            }
                        ]
                    ),
                ],
            },
            id="valueFrom",
        ),
    ],
)
def test_change_recreates_the_job_with_the_digest(uses: dict[str, Any]) -> None:
    job = live_job(annotations=AUTO, **uses)
    new = ConfigChange.from_object(ConfigKind.SECRET, secret(), previous="older")
    plan = plan_restart(job, [new], now=NOW)
    assert plan is not None
    assert plan.action is RestartAction.RECREATE_JOB
    assert plan.body["metadata"]["name"] == "migrate"
    assert "uid" not in plan.body["metadata"] and "selector" not in plan.body["spec"]
    env = plan.body["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "STAKATER_REALM_CONFIG_IX_SECRET", "value": new.digest} in env


def test_recreated_job_is_not_recreated_again() -> None:
    new = ConfigChange.from_object(ConfigKind.SECRET, secret(), previous="older")
    first = plan_restart(live_job(annotations=AUTO), [new], now=NOW)
    assert first is not None
    assert plan_restart(first.body, [new], now=NOW) is None


def test_jobs_are_indexed_by_what_their_pods_use() -> None:
    index = WorkloadIndex()
    key = index.upsert(slim_workload(live_job(annotations=AUTO)))
    assert index.affected(ConfigKey("edge", ConfigKind.SECRET, SECRET_NAME)) == [key]
