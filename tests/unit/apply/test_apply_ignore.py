"""``spec.ignore``: ignored fields are no drift and keep their live values when applied."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fluxd.apply.ignore import (
    IgnoreRuleError,
    compile_ignore_rules,
    ignored_paths,
    keep_live_values,
)
from fluxd.apply.ssa import FIELD_MANAGER, has_drifted
from fluxd.restarter.label_selectors import parse_label_selector


def deployment(
    replicas: int, *, image: str = "web:1", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": labels or {"tier": "front"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def rules(*raw: dict[str, Any]) -> Any:
    return compile_ignore_rules(list(raw), parse_selector=parse_label_selector)


def with_managers(obj: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["managedFields"] = list(entries)
    return obj


REPLICAS = {"paths": ["/spec/replicas"]}


def test_a_hand_scaled_replica_count_is_no_drift_when_ignored() -> None:
    live, dry_run = deployment(5), deployment(2)

    assert has_drifted(live, dry_run)
    assert not has_drifted(live, dry_run, ignore=rules(REPLICAS))


def test_other_changes_are_still_drift() -> None:
    live, dry_run = deployment(5), deployment(2, image="web:2")

    assert has_drifted(live, dry_run, ignore=rules(REPLICAS))


@pytest.mark.parametrize(
    ("target", "selected"),
    [
        pytest.param({}, True, id="no-target-selects-all"),
        pytest.param({"kind": "Deployment"}, True, id="kind"),
        pytest.param({"kind": "Deploy"}, False, id="kind-is-anchored"),
        pytest.param({"kind": "Deploy.*"}, True, id="kind-regex"),
        pytest.param({"group": "apps", "version": "v1"}, True, id="group-version"),
        pytest.param({"group": ""}, True, id="empty-group-is-unset"),
        pytest.param({"name": "web", "namespace": "apps"}, True, id="name-namespace"),
        pytest.param({"namespace": "other"}, False, id="other-namespace"),
        pytest.param({"labelSelector": "tier=front"}, True, id="labels"),
        pytest.param({"labelSelector": "tier notin (front)"}, False, id="labels-set-based"),
        pytest.param({"annotationSelector": "team"}, False, id="annotations"),
    ],
)
def test_targets_select_like_flux(target: dict[str, str], selected: bool) -> None:
    found = ignored_paths(rules({"paths": ["/spec/replicas"], "target": target}), deployment(1))

    assert found == (["/spec/replicas"] if selected else [])


def test_an_invalid_target_is_refused_with_the_rule_named() -> None:
    with pytest.raises(IgnoreRuleError, match=r"spec.ignore\[0\].target"):
        rules({"paths": ["/spec/replicas"], "target": {"name": "web("}})
    with pytest.raises(IgnoreRuleError, match="JSON pointer"):
        rules({"paths": ["spec/replicas"]})


def test_applying_keeps_the_live_value_of_a_field_only_fluxd_applies() -> None:
    live = with_managers(
        deployment(5),
        {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
        {"manager": "kubectl", "operation": "Update", "subresource": "scale"},
    )
    payload = deployment(2, image="web:2")

    keep_live_values(
        payload, live=live, dry_run=payload, rules=rules(REPLICAS), field_manager=FIELD_MANAGER
    )

    assert payload["spec"]["replicas"] == 5
    assert payload["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"


def test_applying_leaves_a_field_another_applier_owns_to_it() -> None:
    live = with_managers(
        deployment(5),
        {"manager": "hpa", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
    )
    payload = deployment(2)

    keep_live_values(
        payload, live=live, dry_run=payload, rules=rules(REPLICAS), field_manager=FIELD_MANAGER
    )

    assert "replicas" not in payload["spec"]


def test_list_items_are_matched_by_their_merge_key_for_ownership() -> None:
    image = {"paths": ["/spec/template/spec/containers/0/image"]}
    containers: dict[str, Any] = {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}
    live = with_managers(
        deployment(1, image="web:hotfix"),
        {
            "manager": "other",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": containers}}},
        },
    )
    payload = deployment(1, image="web:2")

    keep_live_values(
        payload, live=live, dry_run=payload, rules=rules(image), field_manager=FIELD_MANAGER
    )

    assert "image" not in payload["spec"]["template"]["spec"]["containers"][0]


def test_unchanged_ignored_fields_are_sent_as_they_are() -> None:
    live, payload = deployment(2), deployment(2, image="web:2")

    keep_live_values(
        payload, live=live, dry_run=payload, rules=rules(REPLICAS), field_manager=FIELD_MANAGER
    )

    assert payload == deployment(2, image="web:2")
