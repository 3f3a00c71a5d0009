"""The order objects are applied and deleted in, as Flux's server-side apply does it.

Objects go to the cluster in three stages: cluster definitions first
(CustomResourceDefinitions, Namespaces, ClusterRoles), so later objects can use
them; then ``*Class`` kinds (StorageClass, IngressClass, ...); then everything
else. Inside a stage objects are ranked by kind (a Service before the Deployment
that uses it), then group, kind, namespace and name, so the order never depends
on the input order. Deletion walks the same ranking backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

# Kinds that should exist before others refer to them; unknown kinds rank 0.
_FIRST_KINDS = (
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "PriorityClass",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
# Webhooks last, so they cannot reject the objects applied alongside them.
_LAST_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_KIND_RANK = {kind: index - len(_FIRST_KINDS) for index, kind in enumerate(_FIRST_KINDS)} | {
    kind: index + 1 for index, kind in enumerate(_LAST_KINDS)
}


class ApplyStage(IntEnum):
    """The apply stage an object belongs to (lower goes first)."""

    CLUSTER_DEFINITIONS = 0
    CLASS_DEFINITIONS = 1
    RESOURCES = 2


def kind_rank(kind: str) -> int:
    """Negative for kinds applied early, positive for webhooks, 0 for the rest."""
    return _KIND_RANK.get(kind, 0)


def group_of(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` → the core group ``""``."""
    return api_version.rpartition("/")[0]


def apply_stage(obj: Mapping[str, Any]) -> ApplyStage:
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    lowered = kind.lower()
    if (
        (lowered == "customresourcedefinition" and api_version.startswith("apiextensions.k8s.io/"))
        or (lowered == "namespace" and api_version == "v1")
        or (lowered == "clusterrole" and api_version.startswith("rbac.authorization.k8s.io/"))
    ):
        return ApplyStage.CLUSTER_DEFINITIONS
    if kind.endswith("Class"):
        return ApplyStage.CLASS_DEFINITIONS
    return ApplyStage.RESOURCES


def sort_key(obj: Mapping[str, Any]) -> tuple[int, str, str, str, str]:
    """Rank by kind, then group, kind, namespace, name."""
    kind = str(obj.get("kind", ""))
    metadata = obj.get("metadata") or {}
    return (
        kind_rank(kind),
        group_of(str(obj.get("apiVersion", ""))),
        kind,
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def apply_order(objects: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """The non-empty apply stages, in order, each sorted by :func:`sort_key`."""
    stages: dict[ApplyStage, list[Mapping[str, Any]]] = {stage: [] for stage in ApplyStage}
    for obj in objects:
        stages[apply_stage(obj)].append(obj)
    return [sorted(stages[stage], key=sort_key) for stage in ApplyStage if stages[stage]]


def delete_order(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Objects in the reverse of the order they would be applied in."""
    flattened = [obj for stage in apply_order(objects) for obj in stage]
    return list(reversed(flattened))
