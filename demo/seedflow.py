"""The seed scenario's pieces, shared by ``make demo`` and the end-to-end test of the same flow.

The repository content, the example manifests in ``demo/seed/`` and the small
readers that tell whether each step of the flow has happened.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from testenv.api import Api

SEED = Path(__file__).resolve().parent / "seed"
# What demo/seed/ points at, and its placeholders: the personal access token and the
# webhook secret.
SEED_URL = "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git"
SEED_TOKEN = "gitea-personal-access-token"
WEBHOOK_TOKEN = "change-me-to-a-long-random-string"
CRDS = Path(__file__).resolve().parents[1] / "manifests" / "crds"
REALM_TOML = """[log]
level = "warn"

[[endpoints]]
listen = "0.0.0.0:5000"
remote = "203.0.113.10:443"
"""
KUSTOMIZATION = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
secretGenerator:
  - name: realm-config-ix
    files:
      - realm_ix.toml
# no hash suffix, so a hand-written Deployment can refer to a fixed name
generatorOptions:
  disableNameSuffixHash: true
"""

NAMESPACED = "/namespaces/{namespace}"
PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "Secret": "/api/v1" + NAMESPACED + "/secrets/{name}",
    "Deployment": "/apis/apps/v1" + NAMESPACED + "/deployments/{name}",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
    "GitRepository": "/apis/source.toolkit.fluxcd.io/v1" + NAMESPACED + "/gitrepositories/{name}",
    "Kustomization": "/apis/kustomize.toolkit.fluxcd.io/v1" + NAMESPACED + "/kustomizations/{name}",
    "Receiver": "/apis/notification.toolkit.fluxcd.io/v1" + NAMESPACED + "/receivers/{name}",
}


def path_of(doc: dict[str, Any]) -> str:
    metadata = doc["metadata"]
    return PATHS[doc["kind"]].format(name=metadata["name"], namespace=metadata.get("namespace", ""))


def apply_file(
    api: Api, path: Path, *, replace: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    text = path.read_text()
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        api.apply(path_of(doc), doc, manager="demo")
    return docs


def ready(api: Api, path: str, predicate: Callable[[dict[str, Any]], bool] | None = None) -> bool:
    obj = api.get_or_none(path)
    if obj is None:
        return False
    conditions = obj.get("status", {}).get("conditions", [])
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
        return False
    return predicate(obj) if predicate else True


def running_pods(api: Api) -> set[str]:
    pods = api.items("/api/v1/namespaces/realm/pods", labelSelector="app=realm")
    return {
        p["metadata"]["name"]
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    }


def crds_established(api: Api) -> bool:
    crds = api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    ours = [c for c in crds if c["spec"]["group"].endswith(".toolkit.fluxcd.io")]
    return len(ours) >= 5 and all(
        any(
            c["type"] == "Established" and c["status"] == "True"
            for c in crd["status"]["conditions"]
        )
        for crd in ours
    )


def secret_value(api: Api, path: str, key: str) -> bytes:
    return base64.b64decode(api.get(path)["data"][key])
