"""Field-manager takeover: kubectl's fields become fluxd's, so Git removals reach the cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fluxd.apply.ignore import compile_ignore_rules
from fluxd.apply.ssa import FIELD_MANAGER, ResourceManager
from fluxd.apply.takeover import cleanup_patch, takeover_managers
from fluxd.kube.resources import DEPLOYMENT, Resource
from fluxd.restarter.label_selectors import parse_label_selector

ENV_A: dict[str, Any] = {
    "f:spec": {"f:containers": {'k:{"name":"web"}': {"f:env": {'k:{"name":"A"}': {}}}}}
}
ENV_B: dict[str, Any] = {
    "f:spec": {"f:containers": {'k:{"name":"web"}': {"f:env": {'k:{"name":"B"}': {}}}}}
}
MANAGERS = takeover_managers(FIELD_MANAGER)


def live(*entries: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "apps", "managedFields": list(entries)}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata}


DESIRED = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}


def entry(manager: str, operation: str, fields: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "fieldsV1": fields, **extra}


def test_client_side_apply_fields_are_merged_into_ours_and_its_annotation_dropped() -> None:
    obj = live(
        entry(FIELD_MANAGER, "Apply", ENV_B),
        entry("kubectl-client-side-apply", "Update", ENV_A),
        entry("kube-controller-manager", "Update", {"f:status": {}}, subresource="status"),
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
    )

    patch = cleanup_patch(DESIRED, obj, field_manager=FIELD_MANAGER, managers=MANAGERS)

    assert patch[0] == {
        "op": "remove",
        "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    }
    entries = patch[1]["value"]
    assert [e["manager"] for e in entries] == ["kube-controller-manager", FIELD_MANAGER]
    merged = entries[-1]["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"web"}']["f:env"]
    assert set(merged) == {'k:{"name":"A"}', 'k:{"name":"B"}'}


def test_the_first_foreign_entry_becomes_ours_when_we_have_none() -> None:
    obj = live(
        entry("kubectl-create", "Update", ENV_A), entry("before-first-apply", "Update", ENV_B)
    )

    (replace,) = cleanup_patch(DESIRED, obj, field_manager=FIELD_MANAGER, managers=MANAGERS)

    (ours,) = replace["value"]
    assert (ours["manager"], ours["operation"]) == (FIELD_MANAGER, "Apply")
    assert set(ours["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"web"}']["f:env"]) == {
        'k:{"name":"A"}',
        'k:{"name":"B"}',
    }


@pytest.mark.parametrize(
    "foreign",
    [
        pytest.param(entry("helm", "Update", ENV_A), id="unlisted-manager"),
        pytest.param(entry("kubectl", "Update", ENV_A, subresource="scale"), id="subresource"),
        pytest.param(entry(FIELD_MANAGER, "Apply", ENV_A), id="already-ours"),
    ],
)
def test_other_entries_are_left_alone(foreign: dict[str, Any]) -> None:
    assert (
        cleanup_patch(DESIRED, live(foreign), field_manager=FIELD_MANAGER, managers=MANAGERS) == []
    )


def test_override_managers_are_taken_over_for_apply_and_update() -> None:
    managers = takeover_managers(FIELD_MANAGER, ["helm"])
    obj = live(entry("helm", "Apply", ENV_A))

    (replace,) = cleanup_patch(DESIRED, obj, field_manager=FIELD_MANAGER, managers=managers)

    assert [e["manager"] for e in replace["value"]] == [FIELD_MANAGER]


def test_merge_policy_keeps_other_managers_fields() -> None:
    obj = live(entry("kubectl-client-side-apply", "Update", ENV_A))
    merged = {
        **DESIRED,
        "metadata": {"name": "web", "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "Merge"}},
    }

    assert cleanup_patch(merged, obj, field_manager=FIELD_MANAGER, managers=MANAGERS) == []


class _Cluster:
    """The few calls the applier makes, on one existing Deployment.

    Dry runs echo what was sent, at the live object's resourceVersion, as the API
    server answers for an object that exists.
    """

    def __init__(self, live: dict[str, Any]) -> None:
        self.live = live
        self.applied: list[dict[str, Any]] = []

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        return DEPLOYMENT

    async def get_or_none(self, resource: Resource, name: str, **_: Any) -> dict[str, Any]:
        return copy.deepcopy(self.live)

    async def patch(self, resource: Resource, name: str, patch: Any, **_: Any) -> dict[str, Any]:
        for op in patch:
            if op["path"] == "/metadata/managedFields":
                self.live["metadata"]["managedFields"] = op["value"]
        return copy.deepcopy(self.live)

    async def apply(
        self, resource: Resource, body: dict[str, Any], *, dry_run: bool = False, **_: Any
    ) -> dict[str, Any]:
        if not dry_run:
            self.applied.append(copy.deepcopy(body))
        answer = {**copy.deepcopy(body), "status": {}}
        version = self.live["metadata"].get("resourceVersion", "1")
        answer["metadata"] = {**answer.get("metadata", {}), "resourceVersion": version}
        return answer


async def test_an_ignored_field_kubectl_applied_keeps_its_live_value_after_the_takeover() -> None:
    replicas: dict[str, Any] = {"f:spec": {"f:replicas": {}}}
    live: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "managedFields": [entry("kubectl", "Apply", replicas)],
        },
        "spec": {"replicas": 5, "paused": False},
    }
    cluster = _Cluster(live)
    desired: dict[str, Any] = {**copy.deepcopy(live), "spec": {"replicas": 2, "paused": True}}
    del desired["metadata"]["managedFields"]
    manager = ResourceManager(
        cluster,  # type: ignore[arg-type]
        owner_name="app",
        owner_namespace="apps",
        ignore=compile_ignore_rules(
            [{"paths": ["/spec/replicas"]}], parse_selector=parse_label_selector
        ),
    )

    await manager.apply_all_staged([desired])

    # kubectl's fields are ours now: leaving replicas out would drop them, so the live value goes.
    (applied,) = cluster.applied
    assert applied["spec"] == {"replicas": 5, "paused": True}
