"""Staged server-side apply: what reaches the cluster, what is reported, what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.apply import Action, stamp_owner
from fluxd.apply.ssa import (
    DryRunError,
    NamespaceError,
    ResourceManager,
    UnknownKindError,
    has_drifted,
)
from fluxd.kube import errors as kube_errors

from .conftest import FakeCluster

NS = "realm"


def configmap(name: str, data: dict[str, str], **annotations: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        metadata["annotations"] = {
            f"kustomize.toolkit.fluxcd.io/{k}": v for k, v in annotations.items()
        }
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [{"name": "v1"}],
    },
}
WIDGET = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w", "namespace": NS},
}


def actions(changes: Any) -> dict[str, str]:
    return {entry.subject: entry.action.value for entry in changes}


async def test_objects_are_created_then_unchanged_then_configured(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    first = await manager.apply_all_staged([configmap("a", {"k": "1"}), configmap("b", {"k": "1"})])
    assert actions(first) == {"ConfigMap/realm/a": "created", "ConfigMap/realm/b": "created"}

    writes_before = len(cluster.writes)
    second = await manager.apply_all_staged(
        [configmap("a", {"k": "1"}), configmap("b", {"k": "2"})]
    )
    assert actions(second) == {"ConfigMap/realm/a": "unchanged", "ConfigMap/realm/b": "configured"}
    # Only the drifted object is written.
    assert cluster.writes[writes_before:] == [("apply", "ConfigMap/b")]
    assert second.event_message() == "ConfigMap/realm/b configured"


async def test_one_rejected_object_stops_its_whole_stage_before_any_write(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.dry_run_errors["bad"] = kube_errors.Invalid(
        'ConfigMap "bad" is invalid: data: Invalid value', status=422, reason="Invalid"
    )
    with pytest.raises(DryRunError) as raised:
        await manager.apply_all_staged(
            [namespace(NS), configmap("good", {"k": "1"}), configmap("bad", {"k": "1"})]
        )
    assert str(raised.value).startswith("ConfigMap/realm/bad dry-run failed (Invalid):")
    # The namespace (an earlier stage) went in; nothing of the failing stage did.
    assert cluster.writes == [("apply", "Namespace/realm")]
    assert actions(raised.value.changes) == {"Namespace/realm": "created"}


async def test_a_namespaced_object_without_namespace_is_refused(manager: ResourceManager) -> None:
    orphan = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    with pytest.raises(NamespaceError, match=r"^ConfigMap/x namespace not specified$"):
        await manager.apply_all_staged([orphan])


async def test_a_cluster_scoped_object_loses_a_stray_namespace(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    stray = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps", "namespace": NS}}
    changes = await manager.apply_all_staged([stray])
    assert actions(changes) == {"Namespace/apps": "created"}
    assert cluster.get("Namespace", "", "apps") is not None


async def test_an_unknown_kind_names_the_object_and_the_missing_definition(
    manager: ResourceManager,
) -> None:
    with pytest.raises(UnknownKindError) as raised:
        await manager.apply_all_staged([WIDGET])
    assert "Widget/realm/w" in str(raised.value)
    assert "no matches for kind 'Widget' in version 'example.com/v1'" in str(raised.value)


async def test_a_definition_in_the_first_stage_serves_objects_of_the_last(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    changes = await manager.apply_all_staged([WIDGET, WIDGET_CRD])
    assert cluster.writes == [
        ("apply", "CustomResourceDefinition/widgets.example.com"),
        ("apply", "Widget/w"),
    ]
    assert cluster.discovery_forgotten == 1
    assert [entry.action for entry in changes] == [Action.CREATED, Action.CREATED]


@pytest.mark.parametrize(
    ("annotations", "exists", "expected", "written"),
    [
        pytest.param({"ssa": "Ignore"}, False, "skipped", False, id="ssa-ignore"),
        pytest.param({"reconcile": "disabled"}, True, "skipped", False, id="reconcile-disabled"),
        pytest.param({"ssa": "IfNotPresent"}, True, "skipped", False, id="if-not-present-exists"),
        pytest.param({"ssa": "IfNotPresent"}, False, "created", True, id="if-not-present-absent"),
        pytest.param({"ssa": "merge"}, True, "configured", True, id="ssa-merge-case-insensitive"),
    ],
)
async def test_per_object_policies(
    manager: ResourceManager,
    cluster: FakeCluster,
    annotations: dict[str, str],
    exists: bool,
    expected: str,
    written: bool,
) -> None:
    if exists:
        cluster.put(configmap("c", {"k": "old"}))
    changes = await manager.apply_all_staged([configmap("c", {"k": "new"}, **annotations)])
    assert actions(changes) == {"ConfigMap/realm/c": expected}
    assert bool(cluster.writes) is written


IMMUTABLE = kube_errors.Invalid(
    'Deployment.apps "web" is invalid: spec.selector: Invalid value: field is immutable',
    status=422,
    reason="Invalid",
)


async def test_an_immutable_change_needs_force(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    cluster.put(configmap("c", {"k": "old"}))
    cluster.dry_run_errors["c"] = IMMUTABLE
    with pytest.raises(DryRunError, match="force"):
        await manager.apply_all_staged([configmap("c", {"k": "new"})])
    assert cluster.writes == []


@pytest.mark.parametrize(
    ("spec_force", "annotations"),
    [
        pytest.param(True, {}, id="spec-force"),
        pytest.param(False, {"force": "enabled"}, id="force-annotation"),
    ],
)
async def test_force_recreates_on_an_immutable_change(
    manager: ResourceManager, cluster: FakeCluster, spec_force: bool, annotations: dict[str, str]
) -> None:
    cluster.put(configmap("c", {"k": "old"}))
    cluster.dry_run_errors["c"] = IMMUTABLE

    async def recreate_once(*args: Any, **kwargs: Any) -> Any:
        cluster.dry_run_errors.clear()
        return await original(*args, **kwargs)

    original = cluster.delete
    cluster.delete = recreate_once  # type: ignore[method-assign]
    changes = await manager.apply_all_staged(
        [configmap("c", {"k": "new"}, **annotations)], force=spec_force
    )
    assert actions(changes) == {"ConfigMap/realm/c": "created"}
    assert cluster.writes == [("delete", "ConfigMap/c"), ("apply", "ConfigMap/c")]
    assert cluster.get("ConfigMap", NS, "c")["data"] == {"k": "new"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("live", "dry_run", "drifted"),
    [
        pytest.param(
            {
                "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]},
                "data": {"k": "v"},
            },
            {
                "metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]},
                "data": {"k": "v"},
            },
            False,
            id="server-metadata-ignored",
        ),
        pytest.param(
            {"metadata": {"name": "a"}, "status": {"replicas": 1}},
            {"metadata": {"name": "a"}, "status": {"replicas": 2}},
            False,
            id="status-ignored",
        ),
        pytest.param(
            {"metadata": {"name": "a"}, "data": {"k": "v"}},
            {"metadata": {"name": "a"}, "data": {"k": "w"}},
            True,
            id="data-changed",
        ),
        pytest.param(
            {"metadata": {"name": "a", "labels": {"x": "1"}}},
            {
                "metadata": {
                    "name": "a",
                    "labels": {"x": "1", "kustomize.toolkit.fluxcd.io/name": "app"},
                }
            },
            True,
            id="label-added",
        ),
    ],
)
def test_drift_detection(live: dict[str, Any], dry_run: dict[str, Any], drifted: bool) -> None:
    assert has_drifted(live, dry_run) is drifted


async def test_owner_labels_reach_the_cluster(
    manager: ResourceManager, cluster: FakeCluster
) -> None:
    objects = [configmap("a", {"k": "1"})]
    stamp_owner(objects, name="app", namespace="flux-system")
    await manager.apply_all_staged(objects)
    labels = cluster.get("ConfigMap", NS, "a")["metadata"]["labels"]  # type: ignore[index]
    assert labels == {
        "kustomize.toolkit.fluxcd.io/name": "app",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
