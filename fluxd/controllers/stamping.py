"""The Kustomization side of "one rollout per commit": read what the stamp needs, then stamp.

``fluxd.restarter.stamping`` decides, from the built objects and their live
versions, which workloads get the restarter's digest record in the same apply
as the Secret or ConfigMap they use. This module gives it the restarter's
settings (its filters, annotation names and strategy, so the applier writes
exactly what the restarter would) and the live objects, read with the
Kustomization's own client (impersonation included). A read that fails only
means no stamp: the restarter then rolls the workload as it always did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from fluxd.controllers.restarter import annotation_names, config_filter, runs_restarter
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import NAMESPACE, Resource
from fluxd.restarter.index import ConfigFilter
from fluxd.restarter.stamping import Stamp, candidate_stamps, stamp
from fluxd.restarter.strategies import RestartStrategy
from fluxd.settings import Settings

log = structlog.get_logger("fluxd.controllers.stamping")


class ConfigRecords:
    """Writes the restarter's records into built workloads before they are applied."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = runs_restarter(settings)
        self.strategy = RestartStrategy(settings.reload_strategy)
        self.names = annotation_names(settings)
        # The restarter's filters are only read (and validated) where the restarter runs.
        self.filter = config_filter(settings) if self.enabled else ConfigFilter()
        self.auto_reload_all = settings.auto_reload_all

    async def stamp(self, kube: Kube, objects: Sequence[dict[str, Any]]) -> list[Stamp]:
        """Stamp the workloads of ``objects`` that are due; returns the stamps written."""
        if not self.enabled or self.strategy is not RestartStrategy.ENV_VARS:
            return []
        labels: dict[str, Any] = {}
        if self.filter.namespace_selector is not None:
            for namespace in {str((o.get("metadata") or {}).get("namespace", "")) for o in objects}:
                found = await _read(kube, NAMESPACE, namespace, None) if namespace else None
                labels[namespace] = None if found is None else found["metadata"].get("labels", {})
        candidates = candidate_stamps(
            objects,
            config_filter=self.filter,
            namespace_labels=labels,
            strategy=self.strategy,
            names=self.names,
            auto_reload_all=self.auto_reload_all,
        )
        written: list[Stamp] = []
        live: dict[tuple[str, str, str], Object | None] = {}
        for candidate in candidates:
            workload = await _cached(kube, live, candidate.workload)
            config = await _cached(kube, live, _stub(candidate))
            if stamp(candidate, live_workload=workload, live_config=config, names=self.names):
                written.append(candidate)
        if written:
            log.info(
                "restarter records written into the applied workloads",
                stamps=[f"{s.workload_key} <- {s.config_key}" for s in written],
            )
        return written


def _stub(candidate: Stamp) -> dict[str, Any]:
    key = candidate.config_key
    return {
        "apiVersion": "v1",
        "kind": key.kind.value,
        "metadata": {"name": key.name, "namespace": key.namespace},
    }


async def _cached(
    kube: Kube, cache: dict[tuple[str, str, str], Object | None], obj: dict[str, Any]
) -> Object | None:
    metadata = obj.get("metadata") or {}
    key = (str(obj.get("kind")), str(metadata.get("namespace", "")), str(metadata.get("name")))
    if key not in cache:
        try:
            resource = await kube.resource_for(str(obj.get("apiVersion", "")), key[0])
        except kube_errors.KubeError:
            cache[key] = None
        else:
            cache[key] = await _read(kube, resource, key[2], key[1] or None)
    return cache[key]


async def _read(kube: Kube, resource: Resource, name: str, namespace: str | None) -> Object | None:
    try:
        return await kube.get_or_none(resource, name, namespace=namespace)
    except kube_errors.KubeError as error:
        log.debug("cannot read object for the restarter record", name=name, error=str(error))
        return None
