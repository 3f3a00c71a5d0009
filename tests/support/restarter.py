"""Builders and checks for the restarter's end-to-end tests.

Objects are plain dicts sent with ``testenv.api.Api``; checks read the cluster
the way a user would (ReplicaSets, pod templates, Jobs, Events), never fluxd's
own state.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from testenv.api import Api, ApiError, wait_for

AUTO = "reloader.stakater.com/auto"

JSON = dict[str, Any]

_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
}


def collection(kind: str, namespace: str) -> str:
    return _PATHS[kind].format(ns=namespace)


def path(kind: str, namespace: str, name: str) -> str:
    return f"{collection(kind, namespace)}/{name}"


def encoded(data: Mapping[str, str | bytes]) -> dict[str, str]:
    return {
        key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
        for key, value in data.items()
    }


def secret(
    name: str,
    data: Mapping[str, str | bytes],
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> JSON:
    metadata: JSON = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": encoded(data)}


def config_map(
    name: str, data: Mapping[str, str], *, annotations: Mapping[str, str] | None = None
) -> JSON:
    metadata: JSON = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def secret_volume(volume: str, secret_name: str) -> JSON:
    return {"name": volume, "secret": {"secretName": secret_name}}


def config_map_volume(volume: str, name: str) -> JSON:
    return {"name": volume, "configMap": {"name": name}}


def app_container(
    name: str = "app",
    *,
    mounts: Sequence[str] = (),
    env: Sequence[JSON] = (),
    env_from: Sequence[JSON] = (),
) -> JSON:
    built: JSON = {"name": name, "image": "example.invalid/app:1"}
    if mounts:
        built["volumeMounts"] = [{"name": m, "mountPath": f"/etc/{m}"} for m in mounts]
    if env:
        built["env"] = list(env)
    if env_from:
        built["envFrom"] = list(env_from)
    return built


def workload(
    name: str,
    *,
    kind: str = "Deployment",
    annotations: Mapping[str, str] | None = None,
    template_annotations: Mapping[str, str] | None = None,
    containers: Sequence[JSON] | None = None,
    init_containers: Sequence[JSON] = (),
    volumes: Sequence[JSON] = (),
    replicas: int = 1,
) -> JSON:
    """A Deployment/StatefulSet/DaemonSet/CronJob whose pods run on the fake nodes."""
    labels = {"app": name}
    pod_spec: JSON = {"containers": list(containers or [app_container()])}
    if volumes:
        pod_spec["volumes"] = list(volumes)
    if init_containers:
        pod_spec["initContainers"] = list(init_containers)
    template: JSON = {"metadata": {"labels": labels}, "spec": pod_spec}
    if template_annotations:
        template["metadata"]["annotations"] = dict(template_annotations)
    metadata: JSON = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    api_version = "batch/v1" if kind == "CronJob" else "apps/v1"
    spec: JSON
    if kind == "CronJob":
        pod_spec["restartPolicy"] = "Never"
        spec = {
            "schedule": "0 0 1 1 *",
            "suspend": True,
            "jobTemplate": {"spec": {"template": template}},
        }
    else:
        spec = {"selector": {"matchLabels": labels}, "template": template}
        if kind != "DaemonSet":
            spec["replicas"] = replicas
        if kind == "StatefulSet":
            spec["serviceName"] = name
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def create(api: Api, namespace: str, body: JSON) -> JSON:
    return api.create(collection(str(body["kind"]), namespace), body)


def pod_template(api: Api, namespace: str, kind: str, name: str) -> JSON:
    obj = api.get(path(kind, namespace, name))
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"])
    return dict(obj["spec"]["template"])


def env_value(template: Mapping[str, Any], variable: str) -> str | None:
    """The value of ``variable`` in any container of a pod template (None when absent)."""
    for container in template.get("spec", {}).get("containers", []):
        for entry in container.get("env") or ():
            if entry.get("name") == variable:
                return str(entry.get("value", ""))
    return None


def generation(api: Api, namespace: str, kind: str, name: str) -> int:
    return int(api.get(path(kind, namespace, name))["metadata"]["generation"])


def replica_sets(api: Api, namespace: str, deployment: str) -> list[JSON]:
    """ReplicaSets owned by a Deployment: one per distinct pod template it rolled out."""
    return [
        rs
        for rs in api.items(f"/apis/apps/v1/namespaces/{namespace}/replicasets")
        if any(
            ref.get("kind") == "Deployment" and ref.get("name") == deployment
            for ref in rs["metadata"].get("ownerReferences") or ()
        )
    ]


def wait_rolled_out(api: Api, namespace: str, name: str, *, timeout: float = 120) -> JSON:
    """Wait until the Deployment's newest template runs on every replica; returns it."""

    def done() -> JSON | None:
        deployment = api.get(path("Deployment", namespace, name))
        status = deployment.get("status", {})
        wanted = deployment["spec"].get("replicas", 1)
        if (
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == wanted
            and status.get("availableReplicas") == wanted
            and status.get("replicas") == wanted
        ):
            return deployment
        return None

    result: JSON = wait_for(done, timeout=timeout, what=f"deployment {name} rolled out")
    return result


def pods(api: Api, namespace: str, app: str) -> list[JSON]:
    return [
        pod
        for pod in api.items(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")
        if not pod["metadata"].get("deletionTimestamp")
    ]


def events(api: Api, namespace: str, *, name: str, reason: str) -> list[JSON]:
    """events.k8s.io Events about object ``name`` with ``reason``."""
    return [
        event
        for event in api.items(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
        if event.get("regarding", {}).get("name") == name and event.get("reason") == reason
    ]


def jobs_of(api: Api, namespace: str, cronjob: str) -> list[JSON]:
    return [
        job
        for job in api.items(f"/apis/batch/v1/namespaces/{namespace}/jobs")
        if any(
            ref.get("kind") == "CronJob" and ref.get("name") == cronjob
            for ref in job["metadata"].get("ownerReferences") or ()
        )
    ]


VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
VAP_BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"


def deny_deployment_updates(api: Api, namespace: str, name: str) -> str:
    """A ValidatingAdmissionPolicy refusing every update of one Deployment (403), in force.

    Returns the policy's name for ``allow_deployment_updates``. The API server
    loads policies asynchronously, so this waits until a dry-run update is refused.
    """
    policy = f"freeze-{namespace}-{name}"
    api.create(
        VAP,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.metadata.name != '{name}'",
                        "message": f"deployment {name} is frozen",
                        "reason": "Forbidden",
                    }
                ],
            },
        },
    )
    api.create(
        VAP_BINDINGS,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    wait_for(
        lambda: not _update_allowed(api, namespace, name),
        timeout=30,
        what="admission policy in force",
    )
    return policy


def allow_deployment_updates(api: Api, policy: str) -> None:
    """Remove a policy made by ``deny_deployment_updates`` (its binding first)."""
    api.delete(f"{VAP_BINDINGS}/{policy}")
    api.delete(f"{VAP}/{policy}")


def _update_allowed(api: Api, namespace: str, name: str) -> bool:
    try:
        api.request(
            "PATCH",
            path("Deployment", namespace, name),
            {"metadata": {"labels": {"probe": "1"}}},
            content_type="application/merge-patch+json",
            query={"dryRun": "All"},
        )
    except ApiError as error:
        if error.status == 403:
            return False
        raise
    return True
