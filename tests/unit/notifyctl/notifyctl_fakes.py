"""A stand-in for the Kubernetes layer, so Receiver and Alert logic runs without a cluster.

``FakeKube`` keeps objects in a dict and answers the few verbs these
controllers use, recording every patch; ``FakeClock`` drives time by hand.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from fluxd.kube import errors as kube_errors
from fluxd.kube.events import EventRecorder, Recorded
from fluxd.kube.resources import Resource

GIT_REPOSITORY = Resource("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories")

ObjectKey = tuple[str, str, str]


@dataclass
class FakeKube:
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    patches: list[tuple[str, str, str, Any]] = field(default_factory=list)
    lists: int = 0
    fail_patch_with: kube_errors.KubeError | None = None

    def add(self, resource: Resource, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        self.objects[(resource.plural, metadata.get("namespace", ""), metadata["name"])] = obj

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Any:
        found = self.objects.get((resource.plural, namespace or "", name))
        if found is None:
            raise kube_errors.NotFound(f"{resource.kind} {name} not found", status=404)
        return found

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> Any:
        return self.objects.get((resource.plural, namespace or "", name))

    async def list_all(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        wanted = dict(pair.split("=", 1) for pair in (label_selector or "").split(",") if pair)
        items = [
            obj
            for (plural, ns, _), obj in self.objects.items()
            if plural == resource.plural
            and (namespace is None or ns == namespace)
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        return items, "1"

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        **_: Any,
    ) -> Any:
        if self.fail_patch_with is not None:
            raise self.fail_patch_with
        obj = await self.get(resource, name, namespace=namespace)
        self.patches.append((resource.kind, namespace or "", name, patch))
        annotations = patch.get("metadata", {}).get("annotations") or {}
        obj["metadata"].setdefault("annotations", {}).update(annotations)
        return obj

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        if (api_version, kind) == (GIT_REPOSITORY.api_version, GIT_REPOSITORY.kind):
            return GIT_REPOSITORY
        raise kube_errors.NotFound(f"no kind {kind} in {api_version}", status=404)


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordedEvents:
    """A recorder that writes nothing to an API and keeps every event for the test."""

    recorder: EventRecorder
    events: list[Recorded]

    def of(self, kind: str, name: str) -> list[Recorded]:
        return [
            e
            for e in self.events
            if e.regarding.get("kind") == kind and e.regarding.get("name") == name
        ]
