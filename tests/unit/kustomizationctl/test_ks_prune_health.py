"""Garbage collection only of what is ours, and health waits with Flux's messages."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from fluxd.apply import ObjectRef, owner_labels
from fluxd.apply.ssa import HealthCheckError, PruneError, ResourceManager, WaitInterrupted
from fluxd.kube import errors as kube_errors

from .conftest import FakeCluster

NS = "realm"
OURS = owner_labels(name="app", namespace="flux-system")


def obj(
    kind: str, name: str, *, labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if kind != "Namespace":
        metadata["namespace"] = NS
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


def ref(kind: str, name: str) -> ObjectRef:
    return ObjectRef.from_object(obj(kind, name))


async def test_only_owned_objects_that_allow_it_are_deleted(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(obj("ConfigMap", "owned", labels=OURS))
    cluster.put(obj("ConfigMap", "foreign"))
    cluster.put(
        obj("ConfigMap", "other-owner", labels=owner_labels(name="other", namespace="flux-system"))
    )
    protected = obj("ConfigMap", "protected", labels=OURS)
    protected["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
    cluster.put(protected)

    stale = [
        ref("ConfigMap", n) for n in ("owned", "foreign", "other-owner", "protected", "absent")
    ]
    changes = await manager.delete_stale(stale)

    assert {e.subject: e.action.value for e in changes} == {
        "ConfigMap/realm/owned": "deleted",
        "ConfigMap/realm/foreign": "skipped",
        "ConfigMap/realm/other-owner": "skipped",
        "ConfigMap/realm/protected": "skipped",
    }
    assert cluster.writes == [("delete", "ConfigMap/owned")]
    assert changes.event_message() == "ConfigMap/realm/owned deleted"


async def test_objects_are_deleted_in_reverse_apply_order(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    for kind, name in (("Namespace", "realm"), ("ConfigMap", "cfg"), ("Deployment", "web")):
        cluster.put(obj(kind, name, labels=OURS))
    await manager.delete_stale(
        [ref("Namespace", "realm"), ref("ConfigMap", "cfg"), ref("Deployment", "web")]
    )
    assert cluster.writes == [
        ("delete", "Deployment/web"),
        ("delete", "ConfigMap/cfg"),
        ("delete", "Namespace/realm"),
    ]


async def test_failed_deletes_survive_and_the_rest_proceeds(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(obj("ConfigMap", "stuck", labels=OURS))
    cluster.put(obj("ConfigMap", "fine", labels=OURS))
    cluster.delete_errors["stuck"] = kube_errors.Forbidden("denied by webhook", status=403)
    with pytest.raises(PruneError) as raised:
        await manager.delete_stale([ref("ConfigMap", "stuck"), ref("ConfigMap", "fine")])
    assert raised.value.survivors == [ref("ConfigMap", "stuck")]
    assert "ConfigMap/realm/stuck delete failed: denied by webhook" in str(raised.value)
    assert cluster.get("ConfigMap", NS, "fine") is None


def deployment(ready: int) -> dict[str, Any]:
    return obj(
        "Deployment",
        "web",
        spec={"replicas": 1},
        status={
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {"type": "Available", "status": "True" if ready else "False"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        },
    )


async def test_health_wait_returns_when_everything_is_current(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(deployment(ready=1))
    cluster.put(obj("ConfigMap", "cfg"))
    await manager.wait_for_ready(
        [ref("Deployment", "web"), ref("ConfigMap", "cfg")], timeout=1, interval=0.01
    )


async def test_health_wait_times_out_naming_the_unready_objects(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(deployment(ready=0))
    with pytest.raises(HealthCheckError) as raised:
        await manager.wait_for_ready(
            [ref("Deployment", "web"), ref("ConfigMap", "missing")], timeout=0.05, interval=0.01
        )
    assert str(raised.value) == (
        "timeout waiting for: [Deployment/realm/web status: 'InProgress', "
        "ConfigMap/realm/missing status: 'NotFound']"
    )


async def test_health_wait_stops_at_once_when_interrupted(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(deployment(ready=0))
    interrupt = anyio.Event()

    async def newer_revision() -> None:
        await anyio.sleep(0.05)
        interrupt.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(newer_revision)
            with pytest.raises(WaitInterrupted):
                await manager.wait_for_ready(
                    [ref("Deployment", "web")], timeout=600, interval=300, interrupt=interrupt
                )
