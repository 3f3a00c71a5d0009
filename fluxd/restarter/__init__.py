"""Reloader-compatible restarts: roll the workloads that use a changed Secret or ConfigMap.

Pure logic only: plain dicts in, patches and Job manifests out. The controller
that watches the cluster feeds events in and applies the plans.

Typical flow for one changed object::

    change = ConfigChange.from_object(kind, obj, previous=cache.get(key))
    cache.observe(change.key, change.digest)
    if config_filter.admits(change.key, labels=...):
        for workload_key in index.affected(change.key, config_annotations=change.annotations):
            coalescer.add(workload_key, change, item_key=change.key)
    ...
    for batch in coalescer.due():
        plan = plan_restart(fresh_workload, batch.items, now=utcnow, strategy=...)
        if plan: apply plan.body (PATCH with plan.patch_type, create the Job,
                 or delete the Job and create it again)
"""

from __future__ import annotations

from fluxd.restarter.annotations import (
    DEFAULT_ANNOTATIONS,
    Decision,
    RestarterAnnotations,
    Trigger,
    WorkloadProfile,
    decide,
    evaluate,
    profile_workload,
)
from fluxd.restarter.configs import ConfigKey, ConfigKind
from fluxd.restarter.errors import (
    InvalidConfigData,
    InvalidLabelSelector,
    RestarterError,
    UnsupportedWorkload,
)
from fluxd.restarter.hashing import (
    DigestAlgorithm,
    config_digest,
    config_digests,
    digest_payload,
    equivalent_digests,
)
from fluxd.restarter.index import ConfigFilter, DigestCache, WorkloadIndex
from fluxd.restarter.label_selectors import LabelSelector, parse_label_selector
from fluxd.restarter.pause import (
    PauseSchedule,
    PauseState,
    pause_patch,
    pause_state,
    resume_patch,
)
from fluxd.restarter.references import (
    ConfigReference,
    ReferenceSource,
    container_for,
    pod_references,
    referenced_configs,
)
from fluxd.restarter.strategies import (
    ConfigChange,
    PatchType,
    RestartAction,
    RestartPlan,
    RestartStrategy,
    env_var_name,
    needs_restart,
    plan_restart,
    recorded_digest,
)
from fluxd.restarter.workloads import (
    RolloutRestartMode,
    WorkloadKey,
    WorkloadKind,
    job_from_cronjob,
    pod_spec,
    pod_template,
    recreated_job,
    workload_key,
    workload_kind,
)

__all__ = [
    "DEFAULT_ANNOTATIONS",
    "ConfigChange",
    "ConfigFilter",
    "ConfigKey",
    "ConfigKind",
    "ConfigReference",
    "Decision",
    "DigestAlgorithm",
    "DigestCache",
    "InvalidConfigData",
    "InvalidLabelSelector",
    "LabelSelector",
    "PatchType",
    "PauseSchedule",
    "PauseState",
    "ReferenceSource",
    "RestartAction",
    "RestartPlan",
    "RestartStrategy",
    "RestarterAnnotations",
    "RestarterError",
    "RolloutRestartMode",
    "Trigger",
    "UnsupportedWorkload",
    "WorkloadIndex",
    "WorkloadKey",
    "WorkloadKind",
    "WorkloadProfile",
    "config_digest",
    "config_digests",
    "container_for",
    "decide",
    "digest_payload",
    "env_var_name",
    "equivalent_digests",
    "evaluate",
    "job_from_cronjob",
    "needs_restart",
    "parse_label_selector",
    "pause_patch",
    "pause_state",
    "plan_restart",
    "pod_references",
    "pod_spec",
    "pod_template",
    "profile_workload",
    "recorded_digest",
    "recreated_job",
    "referenced_configs",
    "resume_patch",
    "workload_key",
    "workload_kind",
]
