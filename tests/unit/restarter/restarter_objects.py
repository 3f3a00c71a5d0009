"""Builders for the plain-dict objects the restarter reads: workloads, Secrets, ConfigMaps.

The defaults are the user's scenario: Deployment ``realm-ix`` in namespace
``edge`` mounting Secret ``realm-config-ix`` into container ``realm``.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_NAME = "realm-config-ix"
NAMESPACE = "edge"


def container(
    name: str = "realm",
    *,
    mounts: Sequence[str] = (),
    env: Sequence[Mapping[str, Any]] = (),
    env_from: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    built: dict[str, Any] = {"name": name, "image": f"example/{name}:1"}
    if mounts:
        built["volumeMounts"] = [{"name": mount, "mountPath": f"/etc/{mount}"} for mount in mounts]
    if env:
        built["env"] = [dict(item) for item in env]
    if env_from:
        built["envFrom"] = [dict(item) for item in env_from]
    return built


def secret_volume(name: str = "config", secret: str = SECRET_NAME) -> dict[str, Any]:
    return {"name": name, "secret": {"secretName": secret}}


def workload(
    name: str = "realm-ix",
    *,
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    namespace: str = NAMESPACE,
    annotations: Mapping[str, str] | None = None,
    template_annotations: Mapping[str, str] | None = None,
    containers: Sequence[Mapping[str, Any]] | None = None,
    init_containers: Sequence[Mapping[str, Any]] = (),
    volumes: Sequence[Mapping[str, Any]] | None = None,
    spec_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A workload of any kind; defaults to the scenario's Deployment."""
    pod_spec: dict[str, Any] = {
        "containers": [dict(c) for c in (containers or [container(mounts=["config"])])],
        "volumes": [dict(v) for v in (volumes if volumes is not None else [secret_volume()])],
    }
    if init_containers:
        pod_spec["initContainers"] = [dict(c) for c in init_containers]
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
    if template_annotations:
        template["metadata"]["annotations"] = dict(template_annotations)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any]
    if kind == "CronJob":
        spec = {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"job": name}, "annotations": {"team": "edge"}},
                "spec": {"backoffLimit": 2, "template": template},
            },
        }
    else:
        spec = {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template}
    spec.update(spec_extra or {})
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def secret(
    name: str = SECRET_NAME,
    data: Mapping[str, bytes] | None = None,
    *,
    namespace: str = NAMESPACE,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Secret as the apiserver returns it (``data`` base64-encoded)."""
    content = data if data is not None else {"realm_ix.toml": b'listen = "0.0.0.0:443"\n'}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in content.items()},
    }


def configmap(
    name: str = "realm-settings",
    data: Mapping[str, str] | None = None,
    *,
    binary: Mapping[str, bytes] | None = None,
    namespace: str = NAMESPACE,
) -> dict[str, Any]:
    built: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
    }
    if data is not None:
        built["data"] = dict(data)
    if binary is not None:
        built["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary.items()}
    return built


def env_of(obj: Mapping[str, Any], container_name: str) -> dict[str, str]:
    """``name → value`` of a container's plain env vars anywhere in a patch or object."""
    for found in _containers(obj):
        if found.get("name") == container_name:
            return {e["name"]: e.get("value", "") for e in found.get("env") or ()}
    raise AssertionError(f"no container {container_name!r} in {obj}")


def _containers(node: Any) -> list[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        found = list(node.get("containers") or []) if "containers" in node else []
        for value in node.values():
            found.extend(_containers(value))
        return found
    if isinstance(node, list):
        return [c for item in node for c in _containers(item)]
    return []


def apply_strategic(target: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Enough of a strategic merge for these patches: maps merge, containers/env by name."""
    result = copy.deepcopy(target)

    def merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            if key in ("containers", "env") and isinstance(value, list):
                existing = into.setdefault(key, [])
                for item in value:
                    match = next((e for e in existing if e["name"] == item["name"]), None)
                    if match is None:
                        existing.append(copy.deepcopy(item))
                    else:
                        merge(match, item)
            elif isinstance(value, dict):
                merge(into.setdefault(key, {}), value)
            else:
                into[key] = value

    merge(result, body)
    return result
