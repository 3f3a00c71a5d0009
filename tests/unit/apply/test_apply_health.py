"""kstatus readiness rules, kind by kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fluxd.apply import Status, health

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def make(
    kind: str,
    api: str = "v1",
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    generation: int | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "namespace": "realm", **metadata}
    if generation is not None:
        meta["generation"] = generation
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": meta,
        "spec": spec or {},
        "status": status or {},
    }


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


READY_DEPLOYMENT_STATUS = {
    "observedGeneration": 2,
    "replicas": 2,
    "updatedReplicas": 2,
    "readyReplicas": 2,
    "availableReplicas": 2,
    "conditions": [
        cond("Available", "True"),
        cond("Progressing", "True", "NewReplicaSetAvailable"),
    ],
}


CASES = [
    # Deployment
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status=READY_DEPLOYMENT_STATUS,
            generation=2,
        ),
        Status.CURRENT,
        "Deployment is available. Replicas: 2",
        id="deployment-ready",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status=READY_DEPLOYMENT_STATUS,
            generation=3,
        ),
        Status.IN_PROGRESS,
        "Deployment generation is 3, but latest observed generation is 2",
        id="deployment-new-generation",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status={**READY_DEPLOYMENT_STATUS, "updatedReplicas": 1},
            generation=2,
        ),
        Status.IN_PROGRESS,
        "Updated: 1/2",
        id="deployment-rolling",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status={**READY_DEPLOYMENT_STATUS, "readyReplicas": 1},
            generation=2,
        ),
        Status.IN_PROGRESS,
        "Ready: 1/2",
        id="deployment-not-ready",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status={**READY_DEPLOYMENT_STATUS, "replicas": 3},
            generation=2,
        ),
        Status.IN_PROGRESS,
        "Pending termination: 1",
        id="deployment-old-pods",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2},
            status={
                **READY_DEPLOYMENT_STATUS,
                "conditions": [cond("Progressing", "False", "ProgressDeadlineExceeded")],
            },
            generation=2,
        ),
        Status.FAILED,
        "Progress deadline exceeded",
        id="deployment-deadline",
    ),
    pytest.param(
        make(
            "Deployment",
            "apps/v1",
            spec={"replicas": 2, "progressDeadlineSeconds": 600},
            status={**READY_DEPLOYMENT_STATUS, "conditions": [cond("Available", "True")]},
            generation=2,
        ),
        Status.IN_PROGRESS,
        "ReplicaSet not Available",
        id="deployment-progress-unknown",
    ),
    pytest.param(
        make("Deployment", "apps/v1", status={}, generation=1),
        Status.IN_PROGRESS,
        "Replicas: 0/1",
        id="deployment-default-one-replica",
    ),
    # StatefulSet
    pytest.param(
        make(
            "StatefulSet",
            "apps/v1",
            spec={"replicas": 1},
            status={
                "replicas": 1,
                "readyReplicas": 1,
                "currentReplicas": 1,
                "updatedReplicas": 1,
                "currentRevision": "a",
                "updateRevision": "a",
            },
        ),
        Status.CURRENT,
        "All replicas scheduled as expected. Replicas: 1",
        id="statefulset-ready",
    ),
    pytest.param(
        make(
            "StatefulSet",
            "apps/v1",
            spec={"replicas": 1},
            status={
                "replicas": 1,
                "readyReplicas": 1,
                "currentReplicas": 1,
                "currentRevision": "a",
                "updateRevision": "b",
            },
        ),
        Status.IN_PROGRESS,
        "Waiting for updated revision to match current",
        id="statefulset-revision",
    ),
    pytest.param(
        make(
            "StatefulSet", "apps/v1", spec={"replicas": 3, "updateStrategy": {"type": "OnDelete"}}
        ),
        Status.CURRENT,
        "StatefulSet is using the ondelete update strategy",
        id="statefulset-ondelete",
    ),
    # DaemonSet
    pytest.param(
        make(
            "DaemonSet",
            "apps/v1",
            generation=1,
            status={
                "observedGeneration": 1,
                "desiredNumberScheduled": 2,
                "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
                "numberReady": 2,
            },
        ),
        Status.CURRENT,
        "All replicas scheduled as expected. Replicas: 2",
        id="daemonset-ready",
    ),
    pytest.param(
        make(
            "DaemonSet",
            "apps/v1",
            generation=1,
            status={
                "observedGeneration": 1,
                "desiredNumberScheduled": 2,
                "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 1,
                "numberReady": 1,
            },
        ),
        Status.IN_PROGRESS,
        "Available: 1/2",
        id="daemonset-rolling",
    ),
    pytest.param(
        make("DaemonSet", "apps/v1", generation=1),
        Status.IN_PROGRESS,
        "DaemonSet status.observedGeneration not found",
        id="daemonset-unobserved",
    ),
    # ReplicaSet
    pytest.param(
        make(
            "ReplicaSet",
            "apps/v1",
            spec={"replicas": 1},
            status={
                "replicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "fullyLabeledReplicas": 1,
            },
        ),
        Status.CURRENT,
        "ReplicaSet is available. Replicas: 1",
        id="replicaset-ready",
    ),
    pytest.param(
        make(
            "ReplicaSet",
            "apps/v1",
            spec={"replicas": 1},
            status={"conditions": [cond("ReplicaFailure", "True")]},
        ),
        Status.IN_PROGRESS,
        "Replica Failure condition. Check Pods",
        id="replicaset-failure",
    ),
    # Job
    pytest.param(
        make("Job", "batch/v1", status={"succeeded": 1, "conditions": [cond("Complete", "True")]}),
        Status.CURRENT,
        "Job Completed. succeeded: 1/1",
        id="job-complete",
    ),
    pytest.param(
        make(
            "Job",
            "batch/v1",
            spec={"completions": 1},
            status={"failed": 3, "conditions": [cond("Failed", "True")]},
        ),
        Status.FAILED,
        "Job Failed. failed: 3/1",
        id="job-failed",
    ),
    pytest.param(
        make("Job", "batch/v1"), Status.IN_PROGRESS, "Job not started", id="job-not-started"
    ),
    # Pod
    pytest.param(
        make("Pod", status={"phase": "Running", "conditions": [cond("Ready", "True")]}),
        Status.CURRENT,
        "Pod is Ready",
        id="pod-ready",
    ),
    pytest.param(
        make(
            "Pod",
            status={
                "phase": "Running",
                "containerStatuses": [
                    {"name": "realm", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ],
            },
        ),
        Status.FAILED,
        "Containers in CrashLoop state: realm",
        id="pod-crashloop",
    ),
    pytest.param(
        make(
            "Pod",
            creationTimestamp="2025-01-01T11:00:00Z",
            status={
                "phase": "Pending",
                "conditions": [cond("PodScheduled", "False", "Unschedulable")],
            },
        ),
        Status.FAILED,
        "Pod could not be scheduled",
        id="pod-unschedulable",
    ),
    pytest.param(
        make(
            "Pod",
            creationTimestamp="2025-01-01T11:59:55Z",
            status={
                "phase": "Pending",
                "conditions": [cond("PodScheduled", "False", "Unschedulable")],
            },
        ),
        Status.IN_PROGRESS,
        "Pod has not been scheduled",
        id="pod-just-created",
    ),
    # PVC, Service, Namespace, CRD, always-ready kinds
    pytest.param(
        make("PersistentVolumeClaim", status={"phase": "Bound"}),
        Status.CURRENT,
        "PVC is Bound",
        id="pvc-bound",
    ),
    pytest.param(
        make("PersistentVolumeClaim", status={"phase": "Pending"}),
        Status.IN_PROGRESS,
        "PVC is not Bound. phase: Pending",
        id="pvc-pending",
    ),
    pytest.param(
        make("Service", spec={"type": "LoadBalancer"}),
        Status.IN_PROGRESS,
        "ClusterIP not set. Service type: LoadBalancer",
        id="service-lb-no-ip",
    ),
    pytest.param(
        make("Service", spec={"type": "LoadBalancer", "clusterIP": "10.43.0.9"}),
        Status.CURRENT,
        "Service is ready",
        id="service-lb",
    ),
    pytest.param(make("Namespace"), Status.CURRENT, "Namespace is active", id="namespace"),
    pytest.param(
        make("Namespace", deletionTimestamp="2025-01-01T11:00:00Z"),
        Status.IN_PROGRESS,
        "Resource scheduled for deletion",
        id="namespace-deleting",
    ),
    pytest.param(
        make(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            status={"conditions": [cond("NamesAccepted", "True"), cond("Established", "True")]},
        ),
        Status.CURRENT,
        "CRD is established",
        id="crd-established",
    ),
    pytest.param(
        make(
            "CustomResourceDefinition",
            "apiextensions.k8s.io/v1",
            status={"conditions": [cond("NamesAccepted", "False", "Conflict", "names clash")]},
        ),
        Status.FAILED,
        "names clash",
        id="crd-names-rejected",
    ),
    pytest.param(
        make("CustomResourceDefinition", "apiextensions.k8s.io/v1"),
        Status.IN_PROGRESS,
        "Install in progress",
        id="crd-installing",
    ),
    pytest.param(make("Secret"), Status.CURRENT, "Resource is always ready", id="secret"),
    # Custom resources
    pytest.param(
        make(
            "GitRepository",
            "source.toolkit.fluxcd.io/v1",
            generation=4,
            status={
                "observedGeneration": 4,
                "conditions": [cond("Ready", "True", message="stored artifact")],
            },
        ),
        Status.CURRENT,
        "stored artifact",
        id="cr-ready",
    ),
    pytest.param(
        make(
            "GitRepository",
            "source.toolkit.fluxcd.io/v1",
            generation=4,
            status={
                "observedGeneration": 4,
                "conditions": [cond("Ready", "False", message="auth failed")],
            },
        ),
        Status.IN_PROGRESS,
        "auth failed",
        id="cr-not-ready",
    ),
    pytest.param(
        make(
            "GitRepository",
            "source.toolkit.fluxcd.io/v1",
            generation=4,
            status={
                "observedGeneration": 4,
                "conditions": [cond("Stalled", "True", message="bad url")],
            },
        ),
        Status.FAILED,
        "bad url",
        id="cr-stalled",
    ),
    pytest.param(
        make(
            "GitRepository",
            "source.toolkit.fluxcd.io/v1",
            generation=4,
            status={"conditions": [cond("Reconciling", "True", message="fetching")]},
        ),
        Status.IN_PROGRESS,
        "fetching",
        id="cr-reconciling",
    ),
    pytest.param(
        make("Widget", "example.com/v1"),
        Status.CURRENT,
        "Resource is current",
        id="cr-without-conditions",
    ),
]


@pytest.mark.parametrize(("manifest", "status", "message"), CASES)
def test_health_by_kind(manifest: dict[str, Any], status: Status, message: str) -> None:
    verdict = health(manifest, now=NOW)

    assert (verdict.status, verdict.message) == (status, message)


def test_absent_object_is_not_found() -> None:
    verdict = health(None)

    assert verdict.status is Status.NOT_FOUND
    assert not verdict.ready
