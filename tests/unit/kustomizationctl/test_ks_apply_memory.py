"""The applier's memory: an object applied before costs one read while nothing changed.

Drift is still found and corrected: any write to the live object (a new
resourceVersion) or a new desired object sends it through the dry run again.
"""

from __future__ import annotations

from typing import Any, cast

from fluxd.apply.applied import AppliedMemory
from fluxd.apply.ignore import compile_ignore_rules
from fluxd.apply.inventory import ObjectRef
from fluxd.apply.ssa import ResourceManager
from fluxd.kube.client import Kube
from fluxd.restarter.label_selectors import parse_label_selector

from .conftest import FakeCluster

NS = "realm"


def configmap(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
        "data": {"k": value},
    }


def remembering(cluster: FakeCluster, memory: AppliedMemory, **options: Any) -> ResourceManager:
    return ResourceManager(
        cast(Kube, cluster),
        owner_name="app",
        owner_namespace="flux-system",
        applied=memory,
        **options,
    )


def actions(changes: Any) -> dict[str, str]:
    return {entry.subject: entry.action.value for entry in changes}


async def test_a_new_object_is_dry_run_then_created_without_a_read(cluster: FakeCluster) -> None:
    changes = await remembering(cluster, AppliedMemory()).apply_all_staged([configmap("a", "1")])

    assert actions(changes) == {"ConfigMap/realm/a": "created"}
    assert cluster.asked == [("dry-run", "ConfigMap/a")]
    assert cluster.get("ConfigMap", NS, "a") is not None


async def test_an_unchanged_object_is_read_once_and_not_dry_run(cluster: FakeCluster) -> None:
    memory = AppliedMemory()
    await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])
    cluster.asked.clear()
    writes = len(cluster.writes)

    changes = await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])

    assert actions(changes) == {"ConfigMap/realm/a": "unchanged"}
    assert cluster.asked == [("get", "ConfigMap/a")]
    assert len(cluster.writes) == writes


async def test_an_edit_by_another_client_is_still_found_and_undone(cluster: FakeCluster) -> None:
    memory = AppliedMemory()
    await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])
    cluster.edit("ConfigMap", NS, "a", data={"k": "edited"})

    changes = await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])

    assert actions(changes) == {"ConfigMap/realm/a": "configured"}
    live = cluster.get("ConfigMap", NS, "a")
    assert live is not None and live["data"] == {"k": "1"}


async def test_a_write_that_changed_nothing_is_dry_run_once_then_remembered(
    cluster: FakeCluster,
) -> None:
    memory = AppliedMemory()
    await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])
    cluster.edit("ConfigMap", NS, "a")  # e.g. a controller's status update
    cluster.asked.clear()

    first = await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])
    second = await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])

    assert actions(first) == actions(second) == {"ConfigMap/realm/a": "unchanged"}
    assert cluster.asked == [
        ("get", "ConfigMap/a"),
        ("dry-run", "ConfigMap/a"),
        ("get", "ConfigMap/a"),
    ]


async def test_a_new_desired_object_is_dry_run_and_applied(cluster: FakeCluster) -> None:
    memory = AppliedMemory()
    await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])

    changes = await remembering(cluster, memory).apply_all_staged([configmap("a", "2")])

    assert actions(changes) == {"ConfigMap/realm/a": "configured"}
    live = cluster.get("ConfigMap", NS, "a")
    assert live is not None and live["data"] == {"k": "2"}


async def test_an_object_deleted_by_another_client_is_created_again(cluster: FakeCluster) -> None:
    memory = AppliedMemory()
    await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])
    del cluster.objects[("ConfigMap", NS, "a")]

    changes = await remembering(cluster, memory).apply_all_staged([configmap("a", "1")])

    assert actions(changes) == {"ConfigMap/realm/a": "created"}
    assert cluster.get("ConfigMap", NS, "a") is not None


async def test_a_pruned_object_is_forgotten(cluster: FakeCluster) -> None:
    memory = AppliedMemory()
    manager = remembering(cluster, memory)
    await manager.apply_all_staged([configmap("a", "1")])
    live = cluster.get("ConfigMap", NS, "a")
    assert live is not None
    live["metadata"]["labels"] = {
        "kustomize.toolkit.fluxcd.io/name": "app",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }

    await manager.delete_stale([ObjectRef.from_object(configmap("a", "1"))])

    assert len(memory) == 0


async def test_with_ignore_rules_every_object_is_dry_run(cluster: FakeCluster) -> None:
    rules = compile_ignore_rules([{"paths": ["/data/other"]}], parse_selector=parse_label_selector)
    memory = AppliedMemory()
    await remembering(cluster, memory, ignore=rules).apply_all_staged([configmap("a", "1")])
    cluster.asked.clear()

    await remembering(cluster, memory, ignore=rules).apply_all_staged([configmap("a", "1")])

    assert ("dry-run", "ConfigMap/a") in cluster.asked
