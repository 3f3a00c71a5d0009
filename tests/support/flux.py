"""Small helpers for creating and waiting on Flux objects in e2e tests."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from testenv.api import Api, wait_for

GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}/kustomizations"


def secret(api: Api, namespace: str, name: str, data: dict[str, str | bytes]) -> None:
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    api.apply(
        f"/api/v1/namespaces/{namespace}/secrets/{name}",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded},
    )


def git_repository(api: Api, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return api.apply(f"{GIT_REPOSITORIES.format(ns=namespace)}/{name}", body)


def condition(obj: dict[str, Any] | None, kind: str = "Ready") -> dict[str, Any] | None:
    for entry in (obj or {}).get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            return dict(entry)
    return None


def wait_condition(
    api: Api,
    path: str,
    *,
    status: str = "True",
    kind: str = "Ready",
    reason: str | None = None,
    timeout: float = 90,
    extra: Any = None,
) -> dict[str, Any]:
    """Wait until the object's condition has ``status`` (and ``reason``); return the object."""

    def check() -> dict[str, Any] | None:
        obj = api.get(path)
        found = condition(obj, kind)
        if found is None or found["status"] != status:
            return None
        if reason is not None and found["reason"] != reason:
            return None
        if obj["status"].get("observedGeneration", -1) < obj["metadata"]["generation"] and (
            status == "True"
        ):
            return None
        if extra is not None and not extra(obj):
            return None
        return obj

    result: dict[str, Any] = wait_for(check, timeout=timeout, what=f"{kind}={status} on {path}")
    return result


def request_reconcile(api: Api, path: str) -> str:
    """Set reconcile.fluxcd.io/requestedAt as `flux reconcile` does; returns the value."""
    value = datetime.datetime.now(datetime.UTC).isoformat()
    api.merge_patch(path, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": value}}})
    return value


def events_for(api: Api, namespace: str, name: str) -> list[dict[str, Any]]:
    items = api.items(
        f"/api/v1/namespaces/{namespace}/events", fieldSelector=f"involvedObject.name={name}"
    )
    return items


def kustomization(api: Api, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return api.apply(f"{KUSTOMIZATIONS.format(ns=namespace)}/{name}", body)


def kustomization_path(namespace: str, name: str) -> str:
    return f"{KUSTOMIZATIONS.format(ns=namespace)}/{name}"


def git_repository_path(namespace: str, name: str) -> str:
    return f"{GIT_REPOSITORIES.format(ns=namespace)}/{name}"
