"""Projected volumes and init containers count as uses for every workload kind, as in Reloader.

Each case goes the way an event goes: the workload is cut down by
``slim_workload``, indexed, found for the changed object, then planned on
the full object; the digest must land in the container Reloader picks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fluxd.restarter import ConfigChange, ConfigKind, WorkloadIndex, plan_restart
from fluxd.restarter.configs import ConfigKey
from fluxd.restarter.slim import slim_workload
from tests.unit.restarter.restarter_objects import NAMESPACE, configmap, container, env_of, workload

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
AUTO = {"reloader.stakater.com/auto": "true"}
ENV = "STAKATER_REALM_SETTINGS_CONFIGMAP"

KINDS = [
    pytest.param("StatefulSet", "apps/v1", id="statefulset"),
    pytest.param("DaemonSet", "apps/v1", id="daemonset"),
    pytest.param("Deployment", "apps/v1", id="deployment"),
    pytest.param("Rollout", "argoproj.io/v1alpha1", id="rollout"),
    pytest.param("Job", "batch/v1", id="job"),
    pytest.param("CronJob", "batch/v1", id="cronjob"),
]

MIXED_PROJECTION = {
    "name": "bundle",
    "projected": {
        "sources": [
            {"secret": {"name": "realm-config-ix"}},
            {
                "downwardAPI": {
                    "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                }
            },
            {"configMap": {"name": "realm-settings", "items": [{"key": "a", "path": "a"}]}},
            {"serviceAccountToken": {"path": "token"}},
        ]
    },
}

SHAPES: dict[str, dict[str, Any]] = {
    "projected-only-source": {
        "containers": [container("sidecar"), container("realm", mounts=["bundle"])],
        "volumes": [
            {
                "name": "bundle",
                "projected": {"sources": [{"configMap": {"name": "realm-settings"}}]},
            }
        ],
    },
    "projected-mixed-sources": {
        "containers": [container("sidecar"), container("realm", mounts=["bundle"])],
        "volumes": [MIXED_PROJECTION],
    },
    "init-container-projected": {
        "init_containers": [container("setup", mounts=["bundle"])],
        "containers": [container("realm"), container("sidecar")],
        "volumes": [MIXED_PROJECTION],
    },
    "init-container-env-from": {
        "init_containers": [
            container("setup", env_from=[{"configMapRef": {"name": "realm-settings"}}])
        ],
        "containers": [container("realm"), container("sidecar")],
        "volumes": [],
    },
}


@pytest.mark.parametrize(("kind", "api_version"), KINDS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_used_config_restarts_and_the_digest_goes_where_reloader_puts_it(
    kind: str, api_version: str, shape: str
) -> None:
    target = workload(kind=kind, api_version=api_version, annotations=AUTO, **SHAPES[shape])
    index = WorkloadIndex()
    key = index.upsert(slim_workload(target))
    assert index.affected(ConfigKey(NAMESPACE, ConfigKind.CONFIGMAP, "realm-settings")) == [key]

    change = ConfigChange.from_object(
        ConfigKind.CONFIGMAP, configmap(data={"a": "2"}), previous="older"
    )
    plan = plan_restart(target, [change], now=NOW)
    assert plan is not None
    assert env_of(plan.body, "realm") == {ENV: change.digest}
    # Patches and Job manifests (CronJob, Job) alike hold the pod template at spec.template.
    containers = plan.body["spec"]["template"]["spec"]["containers"]
    others = [c for c in containers if c["name"] != "realm"]
    assert all(not c.get("env") for c in others), others
