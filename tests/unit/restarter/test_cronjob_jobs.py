"""A changed object used by a CronJob starts a Job, as Reloader does; the CronJob stays."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from fluxd.restarter import (
    ConfigChange,
    ConfigKind,
    RestartAction,
    job_from_cronjob,
    plan_restart,
)
from tests.unit.restarter.restarter_objects import env_of, secret, workload

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
AUTO = {"reloader.stakater.com/auto": "true"}


def cronjob() -> dict[str, object]:
    return workload("backup", kind="CronJob", api_version="batch/v1", annotations=AUTO)


def test_job_manifest_matches_a_manual_run() -> None:
    job = job_from_cronjob(cronjob())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"] == {
        "generateName": "backup-",
        "namespace": "edge",
        "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "team": "edge"},
        "labels": {"job": "backup"},
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "backup",
                "uid": "uid-backup",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["template"]["spec"]["containers"][0]["name"] == "realm"


def test_change_creates_a_job_carrying_the_digest() -> None:
    source = cronjob()
    before = copy.deepcopy(source)
    new = ConfigChange.from_object(ConfigKind.SECRET, secret(), previous="older")
    plan = plan_restart(source, [new], now=NOW)
    assert plan is not None
    assert plan.action is RestartAction.CREATE_JOB
    assert plan.patch_type is None
    assert plan.body["kind"] == "Job"
    assert env_of(plan.body, "realm") == {"STAKATER_REALM_CONFIG_IX_SECRET": new.digest}
    assert source == before


def test_cronjob_is_not_restarted_when_first_seen() -> None:
    # The CronJob never records a digest, so only a change seen while running counts.
    first_sight = ConfigChange.from_object(ConfigKind.SECRET, secret(), previous=None)
    assert plan_restart(cronjob(), [first_sight], now=NOW) is None
