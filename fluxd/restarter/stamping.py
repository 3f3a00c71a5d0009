"""One rollout per commit: the applier writes the restarter's record in the same apply.

When one reconcile applies both a Secret/ConfigMap and a workload the
restarter would roll for it, applying them separately rolls the workload
twice: once for the new workload spec (an image bump), once more when the
restarter sees the config change and writes its digest. Instead, before the
apply, the digest of the config *as it will be applied* is written into the
workload's pod template exactly as the restarter would write it (Reloader's
``STAKATER_<NAME>_<KIND>`` env var, in the container the restarter picks).
The workload then rolls once, with the new config, and the restarter finds its
record up to date and leaves it alone.

Only when the restarter would act (it runs, its filters admit the config, the
workload's annotations ask for it) and only where writing changes nothing
else: a workload that already records a digest for the config keeps
recording one (an equal digest of any algorithm is kept as it is, so nothing
rolls for a mere re-apply), and a workload without a record gets one only when
the config is changing in this apply, never for an unchanged config (Reloader
adds no record to a workload it never restarted). New workloads are left
alone (there is no second rollout to save). The ``annotations`` strategy,
workloads with a pause period, Jobs, CronJobs and Argo Rollouts are left to
the restarter: their record holds a timestamp or the restart is not a
template change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluxd.restarter.annotations import DEFAULT_ANNOTATIONS, RestarterAnnotations, decide
from fluxd.restarter.configs import ConfigKey, ConfigKind
from fluxd.restarter.errors import InvalidConfigData, UnsupportedWorkload
from fluxd.restarter.index import ConfigFilter
from fluxd.restarter.strategies import (
    ConfigChange,
    RestartStrategy,
    _env_record,
    _write_env_vars,
)
from fluxd.restarter.workloads import (
    WorkloadKey,
    WorkloadKind,
    pod_template,
    workload_annotations,
    workload_key,
    workload_kind,
)

# Kinds whose restart is a pod-template change the applier can make itself.
_STAMPED_KINDS = frozenset(
    {WorkloadKind.DEPLOYMENT, WorkloadKind.STATEFULSET, WorkloadKind.DAEMONSET}
)


@dataclass(frozen=True)
class Stamp:
    """A workload of the apply set that records the digest of a config of the same set."""

    workload: dict[str, Any]
    change: ConfigChange
    container: str

    @property
    def workload_key(self) -> WorkloadKey:
        return workload_key(self.workload)

    @property
    def config_key(self) -> ConfigKey:
        return self.change.key


def candidate_stamps(
    objects: Sequence[dict[str, Any]],
    *,
    config_filter: ConfigFilter,
    namespace_labels: Mapping[str, Mapping[str, str] | None],
    strategy: RestartStrategy = RestartStrategy.ENV_VARS,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
    auto_reload_all: bool = False,
) -> list[Stamp]:
    """Every (workload, config) pair of ``objects`` the restarter would roll for.

    ``namespace_labels`` holds the labels of the namespaces involved (only read
    when the filter has a namespace selector).
    """
    if strategy is not RestartStrategy.ENV_VARS:
        return []
    configs: dict[ConfigKey, ConfigChange] = {}
    for obj in objects:
        kind = ConfigKind.parse(str(obj.get("kind", "")))
        if kind not in (ConfigKind.SECRET, ConfigKind.CONFIGMAP) or obj.get("apiVersion") != "v1":
            continue
        metadata = obj.get("metadata") or {}
        try:
            change = ConfigChange.from_object(kind, obj, names=names)
        except InvalidConfigData:
            continue
        if config_filter.admits(
            change.key,
            labels=metadata.get("labels") or {},
            namespace_labels=namespace_labels.get(change.namespace),
        ):
            configs[change.key] = change
    if not configs:
        return []
    stamps: list[Stamp] = []
    for obj in objects:
        try:
            shape = workload_kind(obj)
        except UnsupportedWorkload:
            continue
        if shape not in _STAMPED_KINDS or names.pause_period in workload_annotations(obj):
            continue
        namespace = str((obj.get("metadata") or {}).get("namespace", ""))
        for change in configs.values():
            if change.namespace != namespace:
                continue
            decision = decide(
                obj,
                config_kind=change.kind,
                config_name=change.name,
                config_annotations=change.annotations,
                names=names,
                auto_reload_all=auto_reload_all,
            )
            if decision.restart and decision.container is not None:
                stamps.append(Stamp(workload=obj, change=change, container=decision.container))
    return stamps


def stamp(
    candidate: Stamp,
    *,
    live_workload: Mapping[str, Any] | None,
    live_config: Mapping[str, Any] | None,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
) -> bool:
    """Write ``candidate``'s record into its (built) workload when it is due; whether it was."""
    if live_workload is None:
        return False
    change = candidate.change
    recorded = _env_record(live_workload, kind=change.kind, name=change.name, names=names)
    if recorded is not None and recorded in change.equivalent:
        value = recorded
    elif recorded is not None or _changing(change, live_config, names=names):
        value = change.digest
    else:
        return False
    template = pod_template(candidate.workload)
    if not isinstance(template, dict):
        return False
    written = ConfigChange(
        namespace=change.namespace,
        kind=change.kind,
        name=change.name,
        digest=value,
        equivalent=change.equivalent,
    )
    _write_env_vars(template, [(written, candidate.container)])
    return True


def _changing(
    change: ConfigChange, live: Mapping[str, Any] | None, *, names: RestarterAnnotations
) -> bool:
    if live is None:
        # A config being created restarts nothing (Reloader's reload-on-create is off by default).
        return False
    try:
        current = ConfigChange.from_object(change.kind, live, names=names)
    except InvalidConfigData:
        return True
    return current.digest not in change.equivalent
