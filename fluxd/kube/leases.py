"""The leader lease stored as a ``coordination.k8s.io/v1`` Lease."""

from __future__ import annotations

from fluxd.aio import LeaseConflict, LeaseRecord
from fluxd.kube import errors
from fluxd.kube.client import Kube
from fluxd.kube.resources import LEASE


class KubeLeaseStore:
    """``fluxd.aio.LeaseStore`` over a Lease object, with optimistic concurrency."""

    def __init__(self, kube: Kube, *, name: str, namespace: str) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace

    @property
    def _label(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def get(self) -> LeaseRecord | None:
        lease = await self.kube.get_or_none(LEASE, self.name, namespace=self.namespace)
        return None if lease is None else LeaseRecord.from_lease(lease)

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        body = {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        try:
            created = await self.kube.create(LEASE, body, namespace=self.namespace)
        except errors.AlreadyExists as error:
            raise LeaseConflict(lease=self._label) from error
        return LeaseRecord.from_lease(created)

    async def update(self, record: LeaseRecord, *, resource_version: str) -> LeaseRecord:
        body = {
            "apiVersion": LEASE.api_version,
            "kind": LEASE.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": resource_version,
            },
            "spec": record.to_spec(),
        }
        try:
            updated = await self.kube.replace(LEASE, body)
        except (errors.Conflict, errors.NotFound) as error:
            raise LeaseConflict(lease=self._label, resource_version=resource_version) from error
        return LeaseRecord.from_lease(updated)
