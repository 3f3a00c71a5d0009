"""Is an applied object ready? kstatus rules on plain dicts.

Flux waits for workloads with kstatus (sigs.k8s.io/cli-utils): first the rules
every object shares (being deleted, ``status.observedGeneration`` behind
``metadata.generation``, a ``Reconciling`` or ``Stalled`` condition), then a
rule per built-in kind (replica counts for Deployments, ``Established`` for
CRDs, ``Complete``/``Failed`` for Jobs, ...). Custom resources are judged by
their ``Ready`` condition. The caller polls until every object is CURRENT, one
is FAILED, or its timeout passes.

A Kustomization's ``healthCheckExprs`` (``fluxd.apply.cel``) replace all of
these rules for the API groups and kinds they name, as Flux's custom status
readers do: only "not found" is still decided here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fluxd.api import meta

if TYPE_CHECKING:
    from fluxd.apply.cel import HealthCheckExprs

# kstatus gives a Pending pod this long to be scheduled before calling it unschedulable.
SCHEDULE_WINDOW = timedelta(seconds=15)


class Status(StrEnum):
    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    NOT_FOUND = "NotFound"
    # The status could not be read (a health check expression failed to evaluate).
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Health:
    status: Status
    message: str
    # Why the status could not be determined; reported with the object when a wait fails.
    error: str = ""

    @property
    def ready(self) -> bool:
        return self.status is Status.CURRENT


Object = Mapping[str, Any]
Rule = Callable[[Object], Health]


def health(
    obj: Object | None, *, now: datetime | None = None, exprs: HealthCheckExprs | None = None
) -> Health:
    """The kstatus verdict for an object as read from the cluster (``None``: absent)."""
    if obj is None:
        return Health(Status.NOT_FOUND, "Resource not found")
    if exprs:
        evaluator = exprs.evaluator_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if evaluator is not None:
            return evaluator.evaluate(obj)
    generic = _generic(obj)
    if generic is not None:
        return generic
    kind = str(obj.get("kind", ""))
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group == "" and kind == "Pod":
        return _pod(obj, now=now or datetime.now(UTC))
    rule = _RULES.get(f"{group}/{kind}" if group else kind)
    if rule is not None:
        return rule(obj)
    return _ready_condition(obj)


def _in_progress(message: str) -> Health:
    return Health(Status.IN_PROGRESS, message)


def _current(message: str) -> Health:
    return Health(Status.CURRENT, message)


def _int(obj: Object, *path: str, default: int) -> int:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(obj: Object, *path: str, default: str) -> str:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value if isinstance(value, str) else default


def _generic(obj: Object) -> Health | None:
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return _in_progress("Resource scheduled for deletion")
    generation = metadata.get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and generation != observed:
        kind = obj.get("kind", "")
        return _in_progress(
            f"{kind} generation is {generation}, but latest observed generation is {observed}"
        )
    for condition in meta.conditions_of(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return _in_progress(str(condition.get("message") or "Reconciling"))
        if condition.get("type") == "Stalled":
            return Health(Status.FAILED, str(condition.get("message") or "Stalled"))
    return None


def _deployment(obj: Object) -> Health:
    # Without progressDeadlineSeconds the controller never sets Progressing.
    progressing = "progressDeadlineSeconds" not in (obj.get("spec") or {})
    available = False
    for condition in meta.conditions_of(obj):
        if condition.get("type") == "Progressing":
            if condition.get("reason") == "ProgressDeadlineExceeded":
                return Health(Status.FAILED, "Progress deadline exceeded")
            if condition.get("status") == "True" and condition.get("reason") == (
                "NewReplicaSetAvailable"
            ):
                progressing = True
        elif condition.get("type") == "Available" and condition.get("status") == "True":
            available = True
    spec = _int(obj, "spec", "replicas", default=1)
    replicas = _int(obj, "status", "replicas", default=0)
    updated = _int(obj, "status", "updatedReplicas", default=0)
    ready = _int(obj, "status", "readyReplicas", default=0)
    available_replicas = _int(obj, "status", "availableReplicas", default=0)
    if spec > replicas:
        return _in_progress(f"Replicas: {replicas}/{spec}")
    if spec > updated:
        return _in_progress(f"Updated: {updated}/{spec}")
    if replicas > spec:
        return _in_progress(f"Pending termination: {replicas - spec}")
    if updated > available_replicas:
        return _in_progress(f"Available: {available_replicas}/{updated}")
    if spec > ready:
        return _in_progress(f"Ready: {ready}/{spec}")
    if not progressing:
        return _in_progress("ReplicaSet not Available")
    if not available:
        return _in_progress("Deployment not Available")
    return _current(f"Deployment is available. Replicas: {replicas}")


def _statefulset(obj: Object) -> Health:
    if _str(obj, "spec", "updateStrategy", "type", default="") == "OnDelete":
        return _current("StatefulSet is using the ondelete update strategy")
    spec = _int(obj, "spec", "replicas", default=1)
    ready = _int(obj, "status", "readyReplicas", default=0)
    current = _int(obj, "status", "currentReplicas", default=0)
    updated = _int(obj, "status", "updatedReplicas", default=0)
    replicas = _int(obj, "status", "replicas", default=0)
    partition = _int(obj, "spec", "updateStrategy", "rollingUpdate", "partition", default=-1)
    if spec > replicas:
        return _in_progress(f"Replicas: {replicas}/{spec}")
    if spec > ready:
        return _in_progress(f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress(f"Pending termination: {replicas - spec}")
    if partition != -1:
        if updated < spec - partition:
            return _in_progress(f"updated: {updated}/{spec - partition}")
        return _current(f"Partition rollout complete. updated: {updated}")
    if spec > current:
        return _in_progress(f"current: {current}/{spec}")
    current_revision = _str(obj, "status", "currentRevision", default="")
    if current_revision != _str(obj, "status", "updateRevision", default=""):
        return _in_progress("Waiting for updated revision to match current")
    return _current(f"All replicas scheduled as expected. Replicas: {replicas}")


def _daemonset(obj: Object) -> Health:
    kind = obj.get("kind", "DaemonSet")
    if not isinstance((obj.get("metadata") or {}).get("generation"), int):
        return _in_progress(f"{kind} metadata.generation not found")
    if not isinstance((obj.get("status") or {}).get("observedGeneration"), int):
        return _in_progress(f"{kind} status.observedGeneration not found")
    desired = _int(obj, "status", "desiredNumberScheduled", default=-1)
    current = _int(obj, "status", "currentNumberScheduled", default=0)
    updated = _int(obj, "status", "updatedNumberScheduled", default=0)
    available = _int(obj, "status", "numberAvailable", default=0)
    ready = _int(obj, "status", "numberReady", default=0)
    if desired == -1:
        return _in_progress("Missing .status.desiredNumberScheduled")
    if desired > current:
        return _in_progress(f"Current: {current}/{desired}")
    if desired > updated:
        return _in_progress(f"Updated: {updated}/{desired}")
    if desired > available:
        return _in_progress(f"Available: {available}/{desired}")
    if desired > ready:
        return _in_progress(f"Ready: {ready}/{desired}")
    return _current(f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Object) -> Health:
    failure = meta.condition_of(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return _in_progress("Replica Failure condition. Check Pods")
    spec = _int(obj, "spec", "replicas", default=1)
    replicas = _int(obj, "status", "replicas", default=0)
    ready = _int(obj, "status", "readyReplicas", default=0)
    available = _int(obj, "status", "availableReplicas", default=0)
    labelled = _int(obj, "status", "fullyLabeledReplicas", default=0)
    if spec > labelled:
        return _in_progress(f"Labelled: {labelled}/{spec}")
    if spec > available:
        return _in_progress(f"Available: {available}/{spec}")
    if spec > ready:
        return _in_progress(f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress(f"Pending termination: {replicas - spec}")
    return _current(f"ReplicaSet is available. Replicas: {replicas}")


def _job(obj: Object) -> Health:
    parallelism = _int(obj, "spec", "parallelism", default=1)
    completions = _int(obj, "spec", "completions", default=parallelism)
    succeeded = _int(obj, "status", "succeeded", default=0)
    active = _int(obj, "status", "active", default=0)
    failed = _int(obj, "status", "failed", default=0)
    for condition in meta.conditions_of(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return _current(f"Job Completed. succeeded: {succeeded}/{completions}")
        if condition.get("type") == "Failed":
            return Health(Status.FAILED, f"Job Failed. failed: {failed}/{completions}")
        if condition.get("type") == "Suspended":
            return _current("Job is suspended")
    if not _str(obj, "status", "startTime", default=""):
        return _in_progress("Job not started")
    return _current(f"Job in progress. success:{succeeded}, active: {active}, failed: {failed}")


def _pod(obj: Object, *, now: datetime) -> Health:
    phase = _str(obj, "status", "phase", default="")
    if phase == "Succeeded":
        return _current("Pod has completed successfully")
    if phase == "Failed":
        return _current("Pod has completed, but not successfully")
    if phase == "Running":
        ready = meta.condition_of(obj, "Ready")
        if ready is not None and ready.get("status") == "True":
            return _current("Pod is Ready")
        crashing = [
            str(container.get("name"))
            for container in (obj.get("status") or {}).get("containerStatuses") or []
            if ((container.get("state") or {}).get("waiting") or {}).get("reason")
            == "CrashLoopBackOff"
        ]
        if crashing:
            return Health(Status.FAILED, f"Containers in CrashLoop state: {','.join(crashing)}")
        return _in_progress("Pod is running but is not Ready")
    if phase == "Pending":
        scheduled = meta.condition_of(obj, "PodScheduled")
        if (
            scheduled is not None
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            created = _timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
            if created is not None and now - SCHEDULE_WINDOW < created:
                return _in_progress("Pod has not been scheduled")
            return Health(Status.FAILED, "Pod could not be scheduled")
        return _in_progress("Pod is in the Pending phase")
    if not phase:
        return _in_progress("Pod phase not available")
    return _in_progress(f"Pod phase is {phase}")


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _pvc(obj: Object) -> Health:
    phase = _str(obj, "status", "phase", default="unknown")
    if phase != "Bound":
        return _in_progress(f"PVC is not Bound. phase: {phase}")
    return _current("PVC is Bound")


def _service(obj: Object) -> Health:
    # kstatus only asks a LoadBalancer for its cluster IP, not for an external
    # ingress: clusters without a load-balancer controller must still go Ready.
    service_type = _str(obj, "spec", "type", default="ClusterIP")
    if service_type == "LoadBalancer" and not _str(obj, "spec", "clusterIP", default=""):
        return _in_progress("ClusterIP not set. Service type: LoadBalancer")
    return _current("Service is ready")


def _namespace(obj: Object) -> Health:
    if _str(obj, "status", "phase", default="Active") == "Terminating":
        return _in_progress("Namespace is terminating")
    return _current("Namespace is active")


def _crd(obj: Object) -> Health:
    for condition in meta.conditions_of(obj):
        status = condition.get("status")
        if condition.get("type") == "NamesAccepted" and status == "False":
            return Health(Status.FAILED, str(condition.get("message") or "Names not accepted"))
        if condition.get("type") == "Established":
            if status == "False" and condition.get("reason") != "Installing":
                return Health(Status.FAILED, str(condition.get("message") or "Not established"))
            if status == "True":
                return _current("CRD is established")
    return _in_progress("Install in progress")


def _always_ready(obj: Object) -> Health:
    return _current("Resource is always ready")


def _pdb(obj: Object) -> Health:
    return _current("AllowedDisruptions has been computed.")


def _ready_condition(obj: Object) -> Health:
    """Custom resources: judged by a ``Ready`` condition when they have one."""
    ready = meta.condition_of(obj, "Ready")
    if ready is None:
        return _current("Resource is current")
    message = str(ready.get("message") or "")
    if ready.get("status") == "True":
        return _current(message or "Resource is Ready")
    return _in_progress(message or "Resource is not Ready")


_RULES: dict[str, Rule] = {
    "Service": _service,
    "Secret": _always_ready,
    "ConfigMap": _always_ready,
    "Namespace": _namespace,
    "PersistentVolumeClaim": _pvc,
    "apps/StatefulSet": _statefulset,
    "apps/DaemonSet": _daemonset,
    "extensions/DaemonSet": _daemonset,
    "apps/Deployment": _deployment,
    "extensions/Deployment": _deployment,
    "apps/ReplicaSet": _replicaset,
    "extensions/ReplicaSet": _replicaset,
    "policy/PodDisruptionBudget": _pdb,
    "batch/CronJob": _always_ready,
    "batch/Job": _job,
    "apiextensions.k8s.io/CustomResourceDefinition": _crd,
}
