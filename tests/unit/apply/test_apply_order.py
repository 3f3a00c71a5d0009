"""Apply stages and ordering: what goes to the cluster first, and what is deleted last."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.apply import ApplyStage, apply_order, apply_stage, delete_order


def obj(
    kind: str, name: str = "x", *, api: str = "v1", namespace: str | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": metadata}


@pytest.mark.parametrize(
    ("manifest", "stage"),
    [
        pytest.param(
            obj("CustomResourceDefinition", api="apiextensions.k8s.io/v1"),
            ApplyStage.CLUSTER_DEFINITIONS,
            id="crd",
        ),
        pytest.param(obj("Namespace"), ApplyStage.CLUSTER_DEFINITIONS, id="namespace"),
        pytest.param(
            obj("ClusterRole", api="rbac.authorization.k8s.io/v1"),
            ApplyStage.CLUSTER_DEFINITIONS,
            id="clusterrole",
        ),
        pytest.param(
            obj("ClusterRoleBinding", api="rbac.authorization.k8s.io/v1"),
            ApplyStage.RESOURCES,
            id="clusterrolebinding",
        ),
        pytest.param(
            obj("Namespace", api="example.com/v1"),
            ApplyStage.RESOURCES,
            id="foreign-namespace-kind",
        ),
        pytest.param(
            obj("StorageClass", api="storage.k8s.io/v1"),
            ApplyStage.CLASS_DEFINITIONS,
            id="storageclass",
        ),
        pytest.param(
            obj("IngressClass", api="networking.k8s.io/v1"),
            ApplyStage.CLASS_DEFINITIONS,
            id="ingressclass",
        ),
        pytest.param(obj("Deployment", api="apps/v1"), ApplyStage.RESOURCES, id="deployment"),
    ],
)
def test_stage_of_each_kind(manifest: dict[str, Any], stage: ApplyStage) -> None:
    assert apply_stage(manifest) is stage


def test_stages_are_applied_in_order_and_sorted_within() -> None:
    objects = [
        obj("ValidatingWebhookConfiguration", "hook", api="admissionregistration.k8s.io/v1"),
        obj("Deployment", "realm", api="apps/v1", namespace="realm"),
        obj("Widget", "w", api="example.com/v1", namespace="realm"),
        obj("Secret", "realm-config-ix", namespace="realm"),
        obj("Service", "realm", namespace="realm"),
        obj("ServiceAccount", "realm", namespace="realm"),
        obj("StorageClass", "fast", api="storage.k8s.io/v1"),
        obj("Namespace", "realm"),
        obj("CustomResourceDefinition", "widgets.example.com", api="apiextensions.k8s.io/v1"),
    ]

    stages = [
        [f"{o['kind']}/{o['metadata']['name']}" for o in stage] for stage in apply_order(objects)
    ]

    assert stages == [
        ["CustomResourceDefinition/widgets.example.com", "Namespace/realm"],
        ["StorageClass/fast"],
        [
            "ServiceAccount/realm",
            "Secret/realm-config-ix",
            "Service/realm",
            "Deployment/realm",
            "Widget/w",
            "ValidatingWebhookConfiguration/hook",
        ],
    ]


def test_order_does_not_depend_on_input_order() -> None:
    objects = [
        obj("ConfigMap", name, namespace=ns) for ns, name in [("b", "z"), ("a", "y"), ("a", "x")]
    ]

    forward = apply_order(objects)
    backward = apply_order(list(reversed(objects)))

    assert forward == backward
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in forward[0]] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "z"),
    ]


def test_delete_order_is_the_reverse_of_apply_order() -> None:
    objects = [
        obj("Namespace", "realm"),
        obj("Deployment", "realm", api="apps/v1", namespace="realm"),
        obj("CustomResourceDefinition", "widgets.example.com", api="apiextensions.k8s.io/v1"),
        obj("Secret", "s", namespace="realm"),
    ]

    assert [o["kind"] for o in delete_order(objects)] == [
        "Deployment",
        "Secret",
        "Namespace",
        "CustomResourceDefinition",
    ]
