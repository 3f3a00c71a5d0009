"""How a restart is recorded on a workload, and whether one is needed at all.

Reloader rolls a workload by changing its pod template in one of two ways
(its ``--reload-strategy``):

* ``env-vars`` (default): an env var ``STAKATER_<NAME>_<SECRET|CONFIGMAP>``
  holding the object's digest, in the container that uses the object;
* ``annotations``: the pod template annotation
  ``reloader.stakater.com/last-reloaded-from``, a JSON object
  ``{"type","name","namespace","hash","containerRefs","observedAt"}``.
  That names the last object only; fluxd remembers every object's digest in
  ``restarter.fluxd.dev/config-digests`` on the workload's own metadata, not
  on the pod template, so the template changes exactly as Reloader changes it
  (tools that diff templates, such as Argo CD, see nothing more). A record
  left on the template by an earlier fluxd release is still read.

The digest recorded on the workload is the truth: a change is only applied
when the recorded digest differs from the object's current one (any digest a
Reloader release could have written counts as equal), so a workload Reloader
already stamped is left alone and a change missed while the daemon was down
is caught up on the next look. With no record at all (never restarted), only a
change seen while running restarts, as with Reloader, which never acts on
objects it merely discovers. ``observedAt`` is informational and never
compared.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from fluxd.restarter.annotations import DEFAULT_ANNOTATIONS, RestarterAnnotations, decide
from fluxd.restarter.configs import ConfigKey, ConfigKind
from fluxd.restarter.hashing import DigestAlgorithm, config_digests
from fluxd.restarter.pause import pause_patch, rfc3339
from fluxd.restarter.workloads import (
    SHAPES,
    RolloutRestartMode,
    WorkloadKey,
    WorkloadKind,
    job_from_cronjob,
    nest,
    pod_spec,
    pod_template,
    recreated_job,
    rollout_restart_mode,
    template_annotations,
    workload_annotations,
    workload_key,
    workload_kind,
)

ENV_VAR_PREFIX = "STAKATER_"


class RestartStrategy(StrEnum):
    """Reloader's ``--reload-strategy`` values."""

    ENV_VARS = "env-vars"
    ANNOTATIONS = "annotations"


class PatchType(StrEnum):
    """Content types of the patches a plan carries."""

    STRATEGIC_MERGE = "application/strategic-merge-patch+json"
    MERGE = "application/merge-patch+json"


class RestartAction(StrEnum):
    """What the caller does with a plan's ``body``."""

    PATCH = "patch"  # patch the workload itself
    CREATE_JOB = "create-job"  # create the Job in ``body`` (CronJobs)
    RECREATE_JOB = "recreate-job"  # delete the Job, then create ``body`` (plain Jobs)


@dataclass(frozen=True)
class ConfigChange:
    """A Secret or ConfigMap as the restarter remembers it: digests and two annotations, no data."""

    namespace: str
    kind: ConfigKind
    name: str
    digest: str
    # Every digest meaning "same content" (other Reloader releases' algorithms).
    equivalent: frozenset[str]
    # The digest seen before this one while running; None at first sight.
    previous: str | None = None
    # Only the annotations the decision reads (ignore, match).
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(self.namespace, self.kind, self.name)

    @property
    def changed_while_watched(self) -> bool:
        return self.previous is not None and self.previous != self.digest

    @classmethod
    def from_object(
        cls,
        kind: ConfigKind,
        obj: Mapping[str, Any],
        *,
        previous: str | None = None,
        names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
        algorithm: DigestAlgorithm = DigestAlgorithm.SHA1,
    ) -> ConfigChange:
        metadata = obj.get("metadata") or {}
        all_annotations: Mapping[str, str] = metadata.get("annotations") or {}
        kept = {
            key: all_annotations[key]
            for key in names.config_object_keys()
            if key in all_annotations
        }
        digest, equivalent = config_digests(kind, obj, algorithm=algorithm)
        return cls(
            namespace=str(metadata.get("namespace", "")),
            kind=kind,
            name=str(metadata.get("name", "")),
            digest=digest,
            equivalent=equivalent,
            previous=previous,
            annotations=kept,
        )


@dataclass(frozen=True)
class RestartPlan:
    """One write that restarts one workload for one or more changed objects."""

    workload: WorkloadKey
    action: RestartAction
    # The patch (PATCH) or the Job manifest to create (CREATE_JOB).
    body: dict[str, Any]
    patch_type: PatchType | None
    changes: tuple[ConfigChange, ...]
    containers: tuple[str, ...]
    pauses: bool = False

    def describe(self) -> str:
        """Human-readable summary for logs and events (names and digests only)."""
        objects = ", ".join(f"{change.kind} {change.name}" for change in self.changes)
        verb = {
            RestartAction.CREATE_JOB: "starting a Job from",
            RestartAction.RECREATE_JOB: "recreating",
        }.get(self.action, "restarting")
        return f"{objects} changed; {verb} {self.workload.kind} {self.workload.name}"


def convert_to_env_var_name(text: str) -> str:
    """Reloader's name mangling: upper case, each run of other characters becomes one ``_``.

    Leading separators are dropped, a trailing one is kept (``a-`` → ``A_``).
    """
    out: list[str] = []
    last_valid = False
    for char in text:
        upper = char.upper() if len(char.upper()) == 1 else char
        if "A" <= upper <= "Z" or "0" <= upper <= "9":
            out.append(upper)
            last_valid = True
        else:
            if last_valid:
                out.append("_")
            last_valid = False
    return "".join(out)


def env_var_name(kind: ConfigKind, name: str) -> str:
    """``STAKATER_REALM_CONFIG_IX_SECRET`` for Secret ``realm-config-ix``."""
    return f"{ENV_VAR_PREFIX}{convert_to_env_var_name(name)}_{kind.reloader_type}"


def recorded_digest(
    workload: Mapping[str, Any],
    *,
    kind: ConfigKind,
    name: str,
    strategy: RestartStrategy = RestartStrategy.ENV_VARS,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
) -> str | None:
    """The digest last recorded on ``workload`` for an object, or None if never.

    The configured strategy's record is read first; the other one is a
    fallback so switching strategies does not restart everything.
    """
    readers = (_env_record, _annotation_record)
    if strategy is RestartStrategy.ANNOTATIONS:
        readers = (_annotation_record, _env_record)
    for reader in readers:
        found = reader(workload, kind=kind, name=name, names=names)
        if found is not None:
            return found
    return None


def needs_restart(
    workload: Mapping[str, Any],
    change: ConfigChange,
    *,
    strategy: RestartStrategy = RestartStrategy.ENV_VARS,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
) -> bool:
    """True when the workload's pods may run with content other than ``change``'s."""
    recorded = recorded_digest(
        workload, kind=change.kind, name=change.name, strategy=strategy, names=names
    )
    if recorded is not None:
        return recorded not in change.equivalent
    return change.changed_while_watched


def plan_restart(
    workload: Mapping[str, Any],
    changes: Sequence[ConfigChange],
    *,
    now: datetime,
    strategy: RestartStrategy = RestartStrategy.ENV_VARS,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
    auto_reload_all: bool = False,
) -> RestartPlan | None:
    """The single write restarting ``workload`` for ``changes``, or None when none is due.

    Each change is decided on (annotations, use by the pod) and compared with
    the workload's record; only changes that pass both are written, in one
    patch (or one Job for a CronJob). A Deployment with a pause period is
    paused in the same patch.
    """
    kind = workload_kind(workload)
    due: list[tuple[ConfigChange, str]] = []
    for change in changes:
        decision = decide(
            workload,
            config_kind=change.kind,
            config_name=change.name,
            config_annotations=change.annotations,
            names=names,
            auto_reload_all=auto_reload_all,
        )
        if decision.container is None:
            continue
        if needs_restart(workload, change, strategy=strategy, names=names):
            due.append((change, decision.container))
    if not due:
        return None
    template = copy.deepcopy(dict(pod_template(workload)))
    own_annotations: dict[str, str] = {}
    if strategy is RestartStrategy.ENV_VARS:
        containers = _write_env_vars(template, due)
    else:
        containers = _write_annotations(template, workload, due, names=names, now=now)
        own_annotations[names.config_digests] = _digest_record_after(workload, due, names=names)
    return _plan(
        workload,
        kind,
        template,
        due,
        containers,
        own_annotations,
        now=now,
        strategy=strategy,
        names=names,
    )


def _plan(
    workload: Mapping[str, Any],
    kind: WorkloadKind,
    template: dict[str, Any],
    due: Sequence[tuple[ConfigChange, str]],
    containers: tuple[str, ...],
    own_annotations: Mapping[str, str],
    *,
    now: datetime,
    strategy: RestartStrategy,
    names: RestarterAnnotations,
) -> RestartPlan:
    key = workload_key(workload)
    changes = tuple(change for change, _ in due)
    if kind is WorkloadKind.CRONJOB:
        # The CronJob itself is never written, so it keeps no record.
        job = job_from_cronjob(workload, template=template)
        return RestartPlan(key, RestartAction.CREATE_JOB, job, None, changes, containers)
    if kind is WorkloadKind.JOB:
        job = recreated_job(workload, template=template)
        if own_annotations:
            job["metadata"].setdefault("annotations", {}).update(own_annotations)
        return RestartPlan(key, RestartAction.RECREATE_JOB, job, None, changes, containers)
    shape = SHAPES[kind]
    if kind is WorkloadKind.ROLLOUT and (
        rollout_restart_mode(workload, annotation=names.rollout_strategy)
        is RolloutRestartMode.RESTART
    ):
        body: dict[str, Any] = {"spec": {"restartAt": rfc3339(now)}}
        return RestartPlan(key, RestartAction.PATCH, body, PatchType.MERGE, changes, containers)
    if strategy is RestartStrategy.ANNOTATIONS:
        annotations = template["metadata"]["annotations"]
        written = {names.last_reloaded_from: annotations[names.last_reloaded_from]}
        body = nest(shape.template_path, {"metadata": {"annotations": written}})
        body["metadata"] = {"annotations": dict(own_annotations)}
    elif shape.strategic_merge:
        # Containers and env merge by name: only the touched entries are sent.
        touched = [
            {"name": container["name"], "env": _stamped_env(container, due)}
            for container in template["spec"]["containers"]
            if container.get("name") in containers
        ]
        body = nest(shape.template_path, {"spec": {"containers": touched}})
    else:
        # A merge patch replaces lists whole: send every container, and only onto
        # the version they were read from, so a concurrent change cannot be undone
        # (the server answers 409 Conflict and the caller reads the workload again).
        body = nest(shape.template_path, {"spec": {"containers": template["spec"]["containers"]}})
        version = (workload.get("metadata") or {}).get("resourceVersion")
        if version:
            body["metadata"] = {"resourceVersion": str(version)}
    patch_type = PatchType.STRATEGIC_MERGE if shape.strategic_merge else PatchType.MERGE
    pause = pause_patch(workload, now=now, names=names) if kind is WorkloadKind.DEPLOYMENT else None
    if pause is not None:
        _deep_merge(body, pause)
    return RestartPlan(
        key, RestartAction.PATCH, body, patch_type, changes, containers, pauses=pause is not None
    )


def _write_env_vars(
    template: dict[str, Any], due: Sequence[tuple[ConfigChange, str]]
) -> tuple[str, ...]:
    spec = template.setdefault("spec", {})
    containers: list[dict[str, Any]] = spec.setdefault("containers", [])
    touched: dict[str, None] = {}
    for change, chosen in due:
        variable = env_var_name(change.kind, change.name)
        # Where the variable already is (put there by any Reloader release),
        # update it in place; otherwise add it to the chosen container.
        holder = next(
            (c for c in containers if any(e.get("name") == variable for e in c.get("env") or ())),
            None,
        )
        if holder is None:
            holder = next(c for c in containers if c.get("name") == chosen)
        env: list[dict[str, Any]] = holder.setdefault("env", [])
        entry = next((e for e in env if e.get("name") == variable), None)
        if entry is None:
            env.append({"name": variable, "value": change.digest})
        else:
            entry.clear()
            entry.update({"name": variable, "value": change.digest})
        touched[str(holder.get("name", ""))] = None
    return tuple(touched)


def _stamped_env(
    container: Mapping[str, Any], due: Sequence[tuple[ConfigChange, str]]
) -> list[dict[str, Any]]:
    wanted = {env_var_name(change.kind, change.name) for change, _ in due}
    return [dict(e) for e in container.get("env") or () if e.get("name") in wanted]


def _write_annotations(
    template: dict[str, Any],
    workload: Mapping[str, Any],
    due: Sequence[tuple[ConfigChange, str]],
    *,
    names: RestarterAnnotations,
    now: datetime,
) -> tuple[str, ...]:
    metadata = template.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = annotations
    last_change, last_container = due[-1]
    # Field order and compact separators as Go's json.Marshal writes them.
    source = {
        "type": last_change.kind.reloader_type,
        "name": last_change.name,
        "namespace": last_change.namespace,
        "hash": last_change.digest,
        "containerRefs": [last_container],
        "observedAt": int(now.timestamp()),
    }
    annotations[names.last_reloaded_from] = json.dumps(source, separators=(",", ":"))
    return tuple(dict.fromkeys(container for _, container in due))


def _digest_record_after(
    workload: Mapping[str, Any],
    due: Sequence[tuple[ConfigChange, str]],
    *,
    names: RestarterAnnotations,
) -> str:
    """The workload's digest record with ``due`` written in, as the annotation's value."""
    record = _digest_record(template_annotations(workload), names)
    record.update(_digest_record(workload_annotations(workload), names))
    for change, _ in due:
        record[_record_key(change.kind, change.name)] = change.digest
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def _env_record(
    workload: Mapping[str, Any], *, kind: ConfigKind, name: str, names: RestarterAnnotations
) -> str | None:
    variable = env_var_name(kind, name)
    spec = pod_spec(workload)
    for container in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
        for entry in container.get("env") or ():
            if entry.get("name") == variable and "valueFrom" not in entry:
                return str(entry.get("value", ""))
    return None


def _annotation_record(
    workload: Mapping[str, Any], *, kind: ConfigKind, name: str, names: RestarterAnnotations
) -> str | None:
    annotations = template_annotations(workload)
    try:
        source = json.loads(annotations.get(names.last_reloaded_from, "") or "null")
    except ValueError:
        source = None
    if isinstance(source, dict):
        # Reloader writes "type"; its newer rewrite writes "kind".
        source_kind = ConfigKind.parse(str(source.get("type") or source.get("kind") or ""))
        if source_kind is kind and source.get("name") == name and "hash" in source:
            return str(source["hash"])
    record_key = _record_key(kind, name)
    for holder in (workload_annotations(workload), annotations):
        found = _digest_record(holder, names).get(record_key)
        if found is not None:
            return found
    return None


def _digest_record(annotations: Mapping[str, str], names: RestarterAnnotations) -> dict[str, str]:
    try:
        record = json.loads(annotations.get(names.config_digests, "") or "{}")
    except ValueError:
        return {}
    if not isinstance(record, dict):
        return {}
    return {str(key): str(value) for key, value in record.items()}


def _record_key(kind: ConfigKind, name: str) -> str:
    return f"{kind.value}/{name}"


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
