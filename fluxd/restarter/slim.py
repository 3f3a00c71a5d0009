"""Cut watched objects down to what the restarter needs, before they are cached.

The restarter watches every Secret, ConfigMap and workload in the cluster; keeping
the objects whole would hold every Secret's data and every pod template in
memory. These functions run on each object as it arrives from a list or watch:

* a config object becomes its identity, its labels (for the resource label
  selector), the two annotations the decision reads, and a ``ConfigChange``
  carrying its digests; the data is dropped at once;
* a SecretProviderClassPodStatus becomes its identity, labels, the name of
  its SecretProviderClass and Reloader's digest of its mounted objects
  (``slim_pod_status``); a SecretProviderClass, its identity and the two
  decision annotations (``slim_provider_class``);
* a workload keeps the annotations the decision and the pause period read,
  ``spec.paused``, and a pod template reduced to what ``profile_workload``,
  ``recorded_digest`` and ``pause_state`` look at: volumes that draw from a
  config object, container names, mounts, config references and the
  ``STAKATER_*`` records.

A slim object answers those functions exactly as the full one does; the
restart itself is planned on a freshly read full object.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from fluxd.restarter.annotations import DEFAULT_ANNOTATIONS, RestarterAnnotations
from fluxd.restarter.configs import ConfigKind
from fluxd.restarter.errors import InvalidConfigData
from fluxd.restarter.hashing import DigestAlgorithm, config_digests
from fluxd.restarter.strategies import ENV_VAR_PREFIX, ConfigChange
from fluxd.restarter.workloads import SHAPES, nest, workload_kind

# Where a slim config object keeps its ConfigChange (None when its data is unreadable).
CHANGE_FIELD = "change"
# Where a slim SecretProviderClassPodStatus keeps Reloader's digest of it, and
# whether its status lists any objects yet.
DIGEST_FIELD = "digest"
LISTS_OBJECTS_FIELD = "listsObjects"


def slim_config(
    kind: ConfigKind,
    obj: Mapping[str, Any],
    *,
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
    algorithm: DigestAlgorithm = DigestAlgorithm.SHA1,
) -> dict[str, Any]:
    """Identity, labels, decision annotations and digests of a Secret/ConfigMap; no data."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    change: ConfigChange | None
    try:
        change = ConfigChange.from_object(kind, obj, names=names, algorithm=algorithm)
    except InvalidConfigData:
        change = None
    slim_metadata: dict[str, Any] = {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion")
        if key in metadata
    }
    if metadata.get("labels"):
        slim_metadata["labels"] = dict(metadata["labels"])
    kept = {key: annotations[key] for key in names.config_object_keys() if key in annotations}
    if kept:
        slim_metadata["annotations"] = kept
    return {
        "apiVersion": obj.get("apiVersion", "v1"),
        "kind": kind.value,
        "metadata": slim_metadata,
        CHANGE_FIELD: change,
    }


def slim_pod_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Identity, labels, SecretProviderClass name and digest of a SecretProviderClassPodStatus."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    slim_metadata = _identity(metadata)
    if metadata.get("labels"):
        slim_metadata["labels"] = dict(metadata["labels"])
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", "SecretProviderClassPodStatus"),
        "metadata": slim_metadata,
        "status": {"secretProviderClassName": status.get("secretProviderClassName", "")},
        DIGEST_FIELD: config_digests(ConfigKind.SECRET_PROVIDER_CLASS, obj)[0],
        LISTS_OBJECTS_FIELD: status.get("objects") is not None,
    }


def compared_digest(slim_status: Mapping[str, Any]) -> str:
    """The digest an update of this (older) status is compared with.

    Reloader compares with an empty digest while ``status.objects`` is unset.
    """
    return str(slim_status.get(DIGEST_FIELD, "")) if slim_status.get(LISTS_OBJECTS_FIELD) else ""


def slim_provider_class(
    obj: Mapping[str, Any], *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS
) -> dict[str, Any]:
    """Identity and the decision annotations (ignore, match) of a SecretProviderClass."""
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    slim_metadata = _identity(metadata)
    slim_metadata["annotations"] = {
        key: annotations[key] for key in names.config_object_keys() if key in annotations
    }
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "metadata": slim_metadata,
    }


def _identity(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion")
        if key in metadata
    }


def config_change_of(slim: Mapping[str, Any]) -> ConfigChange | None:
    """The ``ConfigChange`` a slim config object carries (None when unreadable)."""
    change = slim.get(CHANGE_FIELD)
    return change if isinstance(change, ConfigChange) else None


def slim_workload(
    workload: Mapping[str, Any], *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS
) -> dict[str, Any]:
    """A workload reduced to what the index, the digest records and the pause period read."""
    kind = workload_kind(workload)
    metadata = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    node: Any = workload
    for step in SHAPES[kind].template_path:
        node = node.get(step) if isinstance(node, Mapping) else None
    template: Mapping[str, Any] = node if isinstance(node, Mapping) else {}
    pod_spec: Mapping[str, Any] = template.get("spec") or {}
    template_metadata: Mapping[str, Any] = template.get("metadata") or {}
    slim_template: dict[str, Any] = {
        "metadata": {
            "annotations": _kept_annotations(
                template_metadata.get("annotations") or {}, _template_keys(names)
            )
        },
        "spec": {
            "volumes": _config_volumes(pod_spec.get("volumes") or ()),
            "containers": [_slim_container(c) for c in pod_spec.get("containers") or ()],
            "initContainers": [_slim_container(c) for c in pod_spec.get("initContainers") or ()],
        },
    }
    slim: dict[str, Any] = nest(SHAPES[kind].template_path, slim_template)
    if "paused" in spec:
        slim["spec"]["paused"] = spec["paused"]
    slim_metadata: dict[str, Any] = {
        key: metadata[key]
        for key in ("name", "namespace", "uid", "resourceVersion")
        if key in metadata
    }
    slim_metadata["annotations"] = _kept_annotations(
        metadata.get("annotations") or {}, _workload_keys(names)
    )
    slim.update(
        {
            "apiVersion": workload.get("apiVersion", SHAPES[kind].api_version),
            "kind": kind.value,
            "metadata": slim_metadata,
        }
    )
    return slim


def same_but_version(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True when two slim objects differ at most in their resourceVersion."""
    if old.keys() != new.keys():
        return False
    for field, value in new.items():
        if field != "metadata":
            if old[field] != value:
                return False
            continue
        before = old[field]
        if before.keys() != value.keys():
            return False
        if any(before[key] != item for key, item in value.items() if key != "resourceVersion"):
            return False
    return True


@functools.cache
def _workload_keys(names: RestarterAnnotations) -> frozenset[str]:
    return frozenset(
        {
            names.auto,
            names.configmap_auto,
            names.secret_auto,
            names.configmap_reload,
            names.secret_reload,
            names.configmap_exclude,
            names.secret_exclude,
            names.secret_provider_class_auto,
            names.secret_provider_class_reload,
            names.secret_provider_class_exclude,
            names.search,
            names.rollout_strategy,
            names.pause_period,
            names.paused_at,
            names.config_digests,
        }
    )


@functools.cache
def _template_keys(names: RestarterAnnotations) -> frozenset[str]:
    return frozenset(
        {
            names.auto,
            names.configmap_auto,
            names.secret_auto,
            names.configmap_reload,
            names.secret_reload,
            names.secret_provider_class_auto,
            names.secret_provider_class_reload,
            names.search,
            names.last_reloaded_from,
            names.config_digests,
        }
    )


def _kept_annotations(annotations: Mapping[str, str], keys: frozenset[str]) -> dict[str, str]:
    return {key: value for key, value in annotations.items() if key in keys}


def _config_volumes(volumes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for volume in volumes:
        slim: dict[str, Any] = {}
        secret = volume.get("secret")
        if secret and secret.get("secretName"):
            slim["secret"] = {"secretName": secret["secretName"]}
        config_map = volume.get("configMap")
        if config_map and config_map.get("name"):
            slim["configMap"] = {"name": config_map["name"]}
        provider_class = ((volume.get("csi") or {}).get("volumeAttributes") or {}).get(
            "secretProviderClass"
        )
        if provider_class:
            slim["csi"] = {"volumeAttributes": {"secretProviderClass": provider_class}}
        sources = [
            {field: {"name": source[field]["name"]}}
            for source in (volume.get("projected") or {}).get("sources") or ()
            for field in ("secret", "configMap")
            if (source.get(field) or {}).get("name")
        ]
        if sources:
            slim["projected"] = {"sources": sources}
        if slim:
            slim["name"] = volume.get("name", "")
            kept.append(slim)
    return kept


def _slim_container(container: Mapping[str, Any]) -> dict[str, Any]:
    env = [
        dict(entry)
        for entry in container.get("env") or ()
        if _is_config_reference(entry) or str(entry.get("name", "")).startswith(ENV_VAR_PREFIX)
    ]
    slim: dict[str, Any] = {"name": container.get("name", "")}
    if env:
        slim["env"] = env
    env_from = [dict(source) for source in container.get("envFrom") or ()]
    if env_from:
        slim["envFrom"] = env_from
    mounts = [{"name": mount.get("name", "")} for mount in container.get("volumeMounts") or ()]
    if mounts:
        slim["volumeMounts"] = mounts
    return slim


def _is_config_reference(entry: Mapping[str, Any]) -> bool:
    value_from = entry.get("valueFrom") or {}
    return bool(value_from.get("secretKeyRef") or value_from.get("configMapKeyRef"))
