"""An in-memory stand-in for the API server, enough for the applier's logic.

It serves a few built-in kinds plus kinds whose CustomResourceDefinition has
been applied, answers server-side apply (dry run or not) by layering the body
over server-maintained metadata, and records every write so tests can check
what reached the "cluster" and in which order.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, cast

import pytest

from fluxd.apply.ssa import ResourceManager
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.resources import (
    CONFIG_MAP,
    DEPLOYMENT,
    NAMESPACE,
    SECRET,
    SERVICE_ACCOUNT,
    Resource,
)

CRD = Resource(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
)
BUILT_IN = {
    (r.api_version, r.kind): r
    for r in (CONFIG_MAP, SECRET, DEPLOYMENT, NAMESPACE, SERVICE_ACCOUNT, CRD)
}

Key = tuple[str, str, str]


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        # Every read and dry run, as ("get" | "dry-run", "Kind/name").
        self.asked: list[tuple[str, str]] = []
        self.dry_run_errors: dict[str, kube_errors.ApiError] = {}
        self.delete_errors: dict[str, kube_errors.ApiError] = {}
        self.discovery_forgotten = 0
        self._versions = itertools.count(1)

    # -- the Kube surface the applier uses ------------------------------------

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        found = BUILT_IN.get((api_version, kind))
        if found is not None:
            return found
        for crd in (o for k, o in self.objects.items() if k[0] == "CustomResourceDefinition"):
            spec = crd["spec"]
            group, version = spec["group"], spec["versions"][0]["name"]
            if spec["names"]["kind"] == kind and f"{group}/{version}" == api_version:
                return Resource(
                    group, version, kind, spec["names"]["plural"], spec["scope"] == "Namespaced"
                )
        raise kube_errors.NotFound(f"no kind {kind} in {api_version}", status=404)

    def forget_discovery(self, api_version: str | None = None) -> None:
        self.discovery_forgotten += 1

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        self.asked.append(("get", f"{resource.kind}/{name}"))
        found = self.objects.get((resource.kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None

    async def apply(
        self,
        resource: Resource,
        body: dict[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        assert field_manager == "kustomize-controller"
        name = body["metadata"]["name"]
        error = self.dry_run_errors.get(name)
        if error is not None:
            raise error
        key = (resource.kind, body["metadata"].get("namespace", ""), name)
        live = self.objects.get(key)
        result = copy.deepcopy(body)
        metadata = result["metadata"]
        if live is not None:
            metadata["uid"] = live["metadata"]["uid"]
            metadata["resourceVersion"] = live["metadata"]["resourceVersion"]
        else:
            # As the API server's dry-run create: no version until it is stored.
            metadata["uid"] = f"uid-{name}"
            metadata["resourceVersion"] = ""
        metadata["managedFields"] = [{"manager": field_manager, "time": "now"}]
        if resource.kind == "CustomResourceDefinition":
            result["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        if dry_run:
            self.asked.append(("dry-run", f"{resource.kind}/{name}"))
        else:
            metadata["resourceVersion"] = str(next(self._versions))
            self.objects[key] = result
            self.writes.append(("apply", f"{resource.kind}/{name}"))
        return copy.deepcopy(result)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> None:
        error = self.delete_errors.get(name)
        if error is not None:
            raise error
        self.objects.pop((resource.kind, namespace or "", name), None)
        self.writes.append(("delete", f"{resource.kind}/{name}"))

    # -- test helpers --------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        metadata.setdefault("uid", f"uid-{metadata['name']}")
        metadata.setdefault("resourceVersion", str(next(self._versions)))
        self.objects[(obj["kind"], metadata.get("namespace", ""), metadata["name"])] = obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def edit(self, kind: str, namespace: str, name: str, **fields: Any) -> None:
        """Another client writes the object: new fields, a new resourceVersion."""
        obj = self.objects[(kind, namespace, name)]
        obj.update(copy.deepcopy(fields))
        obj["metadata"]["resourceVersion"] = str(next(self._versions))


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def manager(cluster: FakeCluster) -> ResourceManager:
    return ResourceManager(
        cast(Kube, cluster), owner_name="app", owner_namespace="flux-system", stage_timeout=2.0
    )
