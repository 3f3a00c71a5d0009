"""Inventory ids and diffs, ownership labels and per-object policy, in Flux's formats."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.apply import (
    ApplyPolicy,
    InventoryError,
    ObjectRef,
    format_inventory,
    inventory_from_objects,
    is_owned_by,
    object_policy,
    parse_inventory,
    stale_objects,
    stamp_owner,
)

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "realm-config-ix", "namespace": "realm"},
}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "realm", "namespace": "realm"},
}
CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "system:reloader"},
}


@pytest.mark.parametrize(
    ("manifest", "entry"),
    [
        pytest.param(SECRET, {"id": "realm_realm-config-ix__Secret", "v": "v1"}, id="core-group"),
        pytest.param(
            DEPLOYMENT, {"id": "realm_realm_apps_Deployment", "v": "v1"}, id="named-group"
        ),
        pytest.param(
            CLUSTER_ROLE,
            {"id": "_system__reloader_rbac.authorization.k8s.io_ClusterRole", "v": "v1"},
            id="cluster-scoped-with-colon",
        ),
    ],
)
def test_inventory_entries_use_flux_ids(manifest: dict[str, Any], entry: dict[str, str]) -> None:
    assert format_inventory(inventory_from_objects([manifest])) == {"entries": [entry]}


@pytest.mark.parametrize(
    "manifest", [SECRET, DEPLOYMENT, CLUSTER_ROLE], ids=["secret", "deployment", "clusterrole"]
)
def test_inventory_round_trips(manifest: dict[str, Any]) -> None:
    written = format_inventory(inventory_from_objects([manifest]))

    (ref,) = parse_inventory(written)

    assert ref == ObjectRef.from_object(manifest)
    assert ref.api_version == manifest["apiVersion"]
    assert ref.name == manifest["metadata"]["name"]


@pytest.mark.parametrize("bad", ["", "a_b", "ns_name_group_"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InventoryError):
        ObjectRef.parse(bad)


def test_objects_missing_from_the_new_inventory_are_stale() -> None:
    old = parse_inventory(
        {
            "entries": [
                {"id": "realm_realm-config-ix__Secret", "v": "v1"},
                {"id": "realm_realm_apps_Deployment", "v": "v1"},
                {"id": "realm_old__ConfigMap", "v": "v1"},
            ]
        }
    )
    new = inventory_from_objects([SECRET, {**DEPLOYMENT, "apiVersion": "apps/v2"}])

    assert [ref.id for ref in stale_objects(old, new)] == ["realm_old__ConfigMap"]


def test_no_previous_inventory_means_nothing_to_prune() -> None:
    assert stale_objects(parse_inventory(None), inventory_from_objects([SECRET])) == []


def test_duplicates_are_recorded_once() -> None:
    assert len(inventory_from_objects([SECRET, dict(SECRET)])) == 1


def test_owner_labels_are_added_and_recognised() -> None:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}}}
    ]

    stamp_owner(objects, name="realm", namespace="flux-system")

    assert objects[0]["metadata"]["labels"] == {
        "app": "x",
        "kustomize.toolkit.fluxcd.io/name": "realm",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    assert is_owned_by(objects[0], name="realm", namespace="flux-system")
    assert not is_owned_by(objects[0], name="other", namespace="flux-system")
    assert not is_owned_by(SECRET, name="realm", namespace="flux-system")


def annotated(**annotations: str) -> dict[str, Any]:
    keys = {f"kustomize.toolkit.fluxcd.io/{key}": value for key, value in annotations.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": keys}}


@pytest.mark.parametrize(
    ("manifest", "apply", "skip_apply", "skip_prune", "force"),
    [
        pytest.param(annotated(), ApplyPolicy.OVERRIDE, False, False, False, id="defaults"),
        pytest.param(annotated(ssa="Merge"), ApplyPolicy.MERGE, False, False, False, id="merge"),
        pytest.param(
            annotated(ssa="ifnotpresent"),
            ApplyPolicy.IF_NOT_PRESENT,
            False,
            False,
            False,
            id="case-insensitive",
        ),
        pytest.param(annotated(ssa="Ignore"), ApplyPolicy.IGNORE, True, False, False, id="ignore"),
        pytest.param(
            annotated(prune="disabled"), ApplyPolicy.OVERRIDE, False, True, False, id="no-prune"
        ),
        pytest.param(
            annotated(force="Enabled"), ApplyPolicy.OVERRIDE, False, False, True, id="force"
        ),
        pytest.param(
            annotated(reconcile="disabled"),
            ApplyPolicy.OVERRIDE,
            True,
            True,
            False,
            id="no-reconcile",
        ),
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "s",
                    "labels": {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
                },
            },
            ApplyPolicy.OVERRIDE,
            False,
            True,
            False,
            id="label-works-too",
        ),
    ],
)
def test_object_policy_from_labels_and_annotations(
    manifest: dict[str, Any], apply: ApplyPolicy, skip_apply: bool, skip_prune: bool, force: bool
) -> None:
    policy = object_policy(manifest)

    assert (policy.apply, policy.skip_apply, policy.skip_prune, policy.force) == (
        apply,
        skip_apply,
        skip_prune,
        force,
    )


def test_spec_force_applies_to_every_object() -> None:
    assert object_policy(annotated(), force=True).force
