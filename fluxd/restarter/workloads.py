"""Workload kinds the restarter rolls, and where each keeps its pod template.

Deployments, StatefulSets and DaemonSets roll when their ``spec.template``
changes. A CronJob is not rolled: as Reloader does, a change starts a Job from
the CronJob's ``jobTemplate`` (with the new digest in it) and leaves the
CronJob as it is. A plain Job cannot change its pod template: as Reloader
does, it is deleted and created again with the same spec carrying the new
digest, minus what the apiserver generated for the old one. Reloader does not
look at who owns a Job, so a Job a CronJob started is recreated too when its
own annotations select the change (the CronJob's are not copied to it). An
Argo Rollout rolls on a template change, or, when its
``reloader.stakater.com/rollout-strategy`` annotation says ``restart``, by
setting ``spec.restartAt`` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from fluxd.restarter.errors import UnsupportedWorkload


class WorkloadKind(StrEnum):
    """A kind the restarter can restart, valued by its Kubernetes ``kind``."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"
    CRONJOB = "CronJob"
    JOB = "Job"
    ROLLOUT = "Rollout"


class WorkloadKey(NamedTuple):
    """Identity of one workload."""

    namespace: str
    kind: WorkloadKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class WorkloadShape:
    """What the restarter needs to know about a kind."""

    kind: WorkloadKind
    api_version: str
    # Path from the object root to the pod template (metadata + spec).
    template_path: tuple[str, ...]
    # Built-in kinds accept strategic merge patches; custom resources do not.
    strategic_merge: bool


SHAPES: Mapping[WorkloadKind, WorkloadShape] = {
    WorkloadKind.DEPLOYMENT: WorkloadShape(
        WorkloadKind.DEPLOYMENT, "apps/v1", ("spec", "template"), strategic_merge=True
    ),
    WorkloadKind.STATEFULSET: WorkloadShape(
        WorkloadKind.STATEFULSET, "apps/v1", ("spec", "template"), strategic_merge=True
    ),
    WorkloadKind.DAEMONSET: WorkloadShape(
        WorkloadKind.DAEMONSET, "apps/v1", ("spec", "template"), strategic_merge=True
    ),
    WorkloadKind.CRONJOB: WorkloadShape(
        WorkloadKind.CRONJOB,
        "batch/v1",
        ("spec", "jobTemplate", "spec", "template"),
        strategic_merge=True,
    ),
    WorkloadKind.JOB: WorkloadShape(
        WorkloadKind.JOB, "batch/v1", ("spec", "template"), strategic_merge=True
    ),
    WorkloadKind.ROLLOUT: WorkloadShape(
        WorkloadKind.ROLLOUT, "argoproj.io/v1alpha1", ("spec", "template"), strategic_merge=False
    ),
}

# The annotation Kubernetes puts on Jobs started by hand from a CronJob
# (``kubectl create job --from``); Reloader sets it too.
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


class RolloutRestartMode(StrEnum):
    """How an Argo Rollout is restarted (Reloader's rollout-strategy annotation)."""

    ROLLOUT = "rollout"
    RESTART = "restart"


def workload_kind(workload: Mapping[str, Any]) -> WorkloadKind:
    """The kind of ``workload``; raises ``UnsupportedWorkload`` for anything else."""
    kind = str(workload.get("kind", ""))
    api_version = str(workload.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    for shape in SHAPES.values():
        # Items of a List response carry no apiVersion; the kind alone decides then.
        if shape.kind.value == kind and (
            not api_version or group == shape.api_version.split("/")[0]
        ):
            return shape.kind
    raise UnsupportedWorkload(api_version=api_version, kind=kind)


def workload_key(workload: Mapping[str, Any]) -> WorkloadKey:
    metadata = workload.get("metadata") or {}
    return WorkloadKey(
        str(metadata.get("namespace", "")), workload_kind(workload), str(metadata.get("name", ""))
    )


def pod_template(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The workload's pod template (``{}`` when it has none)."""
    node: Any = workload
    for step in SHAPES[workload_kind(workload)].template_path:
        node = node.get(step) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def pod_spec(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod_template(workload).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def workload_annotations(workload: Mapping[str, Any]) -> Mapping[str, str]:
    return (workload.get("metadata") or {}).get("annotations") or {}


def template_annotations(workload: Mapping[str, Any]) -> Mapping[str, str]:
    return (pod_template(workload).get("metadata") or {}).get("annotations") or {}


def rollout_restart_mode(workload: Mapping[str, Any], *, annotation: str) -> RolloutRestartMode:
    """``restart`` only when the annotation says exactly that; anything else rolls."""
    value = workload_annotations(workload).get(annotation, "")
    return RolloutRestartMode.RESTART if value == "restart" else RolloutRestartMode.ROLLOUT


def nest(path: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    """``{"a": {"b": leaf}}`` for ``path == ("a", "b")``: the skeleton of a patch."""
    node = leaf
    for step in reversed(path):
        node = {step: node}
    return node


def job_from_cronjob(
    cronjob: Mapping[str, Any], *, template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Job Reloader creates when a config used by ``cronjob`` changes.

    Named ``<cronjob>-<random>`` by the apiserver (``generateName``), owned by
    the CronJob as its controller, labelled and annotated from the
    ``jobTemplate`` plus ``cronjob.kubernetes.io/instantiate: manual``. Pass
    ``template`` to use a pod template other than the CronJob's own (the one
    carrying the new digest).
    """
    metadata = cronjob.get("metadata") or {}
    job_template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    job_template_metadata = job_template.get("metadata") or {}
    spec = copy.deepcopy(dict(job_template.get("spec") or {}))
    if template is not None:
        spec["template"] = copy.deepcopy(dict(template))
    annotations = {INSTANTIATE_ANNOTATION: "manual"}
    annotations.update(job_template_metadata.get("annotations") or {})
    job_metadata: dict[str, Any] = {
        "generateName": f"{metadata.get('name', '')}-",
        "namespace": metadata.get("namespace", ""),
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": cronjob.get("apiVersion", "batch/v1"),
                "kind": "CronJob",
                "name": metadata.get("name", ""),
                "uid": metadata.get("uid", ""),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    labels = job_template_metadata.get("labels")
    if labels:
        job_metadata["labels"] = dict(labels)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_metadata, "spec": spec}


# Labels the Job controller puts on a Job's pod template for its generated
# selector; a new Job gets its own, so Reloader drops these (and the selector).
_JOB_GENERATED_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "job-name",
)


def recreated_job(
    job: Mapping[str, Any], *, template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Job Reloader creates in place of ``job`` after deleting it.

    The same object minus what the apiserver generated for the old one, as
    Reloader's ``ReCreateJobFromjob`` clears it: ``resourceVersion``, ``uid``,
    ``creationTimestamp``, ``status``, the selector and the template labels
    that belong to it. Everything else (name, labels, annotations, owner
    references) is kept. Pass ``template`` to use a pod template other than
    the Job's own (the one carrying the new digest).
    """
    manifest = copy.deepcopy(dict(job))
    manifest.setdefault("apiVersion", "batch/v1")
    manifest.setdefault("kind", "Job")
    metadata = manifest.setdefault("metadata", {})
    for field in ("resourceVersion", "uid", "creationTimestamp"):
        metadata.pop(field, None)
    manifest.pop("status", None)
    spec = manifest.setdefault("spec", {})
    if template is not None:
        spec["template"] = copy.deepcopy(dict(template))
    spec.pop("selector", None)
    labels = (spec.get("template") or {}).get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        for label in _JOB_GENERATED_LABELS:
            labels.pop(label, None)
    return manifest
