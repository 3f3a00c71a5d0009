"""Which Secrets and ConfigMaps a pod spec uses, and which container "owns" each.

A pod uses a config object through a volume (directly or as a projected
source) mounted by a container, through ``env[].valueFrom`` key references, or
through ``envFrom``; init containers count too. A SecretProviderClass is used
through a mounted CSI volume whose ``volumeAttributes.secretProviderClass``
names it. Reloader's auto modes react only
to objects used this way, and its env-var strategy writes the digest into the
container that uses the object (the first regular container when only an init
container does, because init containers do not restart on a rollout).

One deliberate difference: Reloader looks at the *first* volume naming the
object only; when that volume is unmounted but a second one is mounted, it
misses the use. fluxd counts every mounted volume.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fluxd.restarter.configs import ConfigKind


class ReferenceSource(StrEnum):
    """How a container gets at a config object."""

    VOLUME = "volume"
    PROJECTED_VOLUME = "projectedVolume"
    ENV = "env"
    ENV_FROM = "envFrom"


@dataclass(frozen=True)
class ConfigReference:
    """One use of a config object by one container."""

    kind: ConfigKind
    name: str
    container: str
    init_container: bool
    source: ReferenceSource


def pod_references(pod_spec: Mapping[str, Any]) -> tuple[ConfigReference, ...]:
    """Every use of a Secret or ConfigMap in ``pod_spec``, container by container."""
    volumes = _volume_sources(pod_spec)
    found: list[ConfigReference] = []
    for container, init in _all_containers(pod_spec):
        container_name = str(container.get("name", ""))
        for mount in container.get("volumeMounts") or ():
            for kind, name, source in volumes.get(str(mount.get("name", "")), ()):
                found.append(ConfigReference(kind, name, container_name, init, source))
        for kind, name, source in _env_sources(container):
            found.append(ConfigReference(kind, name, container_name, init, source))
    return tuple(dict.fromkeys(found))


def referenced_configs(pod_spec: Mapping[str, Any]) -> frozenset[tuple[ConfigKind, str]]:
    """The ``(kind, name)`` pairs the pod uses: what auto modes react to."""
    return frozenset((reference.kind, reference.name) for reference in pod_references(pod_spec))


def container_for(
    pod_spec: Mapping[str, Any], *, kind: ConfigKind, name: str, auto: bool
) -> str | None:
    """The container Reloader records the digest in, or None when none qualifies.

    Mounts are looked at before env references, regular containers before init
    containers; a use by an init container only selects the first regular
    container. For an explicit reload list (``auto=False``) an object the pod
    does not use at all still selects the first regular container.
    """
    containers: Sequence[Mapping[str, Any]] = pod_spec.get("containers") or ()
    if not containers:
        return None
    first = str(containers[0].get("name", ""))
    uses = [ref for ref in pod_references(pod_spec) if ref.kind is kind and ref.name == name]
    by_volume = [ref for ref in uses if ref.source in _VOLUME_SOURCES]
    by_env = [ref for ref in uses if ref.source not in _VOLUME_SOURCES]
    for group in (by_volume, by_env):
        for reference in group:
            if not reference.init_container:
                return reference.container
        if group:
            return first
    return None if auto else first


_VOLUME_SOURCES = frozenset({ReferenceSource.VOLUME, ReferenceSource.PROJECTED_VOLUME})

_VolumeSources = dict[str, tuple[tuple[ConfigKind, str, ReferenceSource], ...]]


def _all_containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    for container in pod_spec.get("containers") or ():
        yield container, False
    for container in pod_spec.get("initContainers") or ():
        yield container, True


def _volume_sources(pod_spec: Mapping[str, Any]) -> _VolumeSources:
    """Volume name → the config objects it draws from."""
    sources: _VolumeSources = {}
    for volume in pod_spec.get("volumes") or ():
        found: list[tuple[ConfigKind, str, ReferenceSource]] = []
        secret = volume.get("secret")
        if secret and secret.get("secretName"):
            found.append((ConfigKind.SECRET, str(secret["secretName"]), ReferenceSource.VOLUME))
        config_map = volume.get("configMap")
        if config_map and config_map.get("name"):
            found.append((ConfigKind.CONFIGMAP, str(config_map["name"]), ReferenceSource.VOLUME))
        provider_class = ((volume.get("csi") or {}).get("volumeAttributes") or {}).get(
            "secretProviderClass"
        )
        if provider_class:
            found.append(
                (ConfigKind.SECRET_PROVIDER_CLASS, str(provider_class), ReferenceSource.VOLUME)
            )
        for projection in (volume.get("projected") or {}).get("sources") or ():
            for field, kind in (("secret", ConfigKind.SECRET), ("configMap", ConfigKind.CONFIGMAP)):
                item = projection.get(field)
                if item and item.get("name"):
                    found.append((kind, str(item["name"]), ReferenceSource.PROJECTED_VOLUME))
        sources[str(volume.get("name", ""))] = tuple(found)
    return sources


def _env_sources(
    container: Mapping[str, Any],
) -> Iterator[tuple[ConfigKind, str, ReferenceSource]]:
    for variable in container.get("env") or ():
        value_from = variable.get("valueFrom") or {}
        for field, kind in (
            ("secretKeyRef", ConfigKind.SECRET),
            ("configMapKeyRef", ConfigKind.CONFIGMAP),
        ):
            ref = value_from.get(field)
            if ref and ref.get("name"):
                yield kind, str(ref["name"]), ReferenceSource.ENV
    for source in container.get("envFrom") or ():
        for field, kind in (
            ("secretRef", ConfigKind.SECRET),
            ("configMapRef", ConfigKind.CONFIGMAP),
        ):
            ref = source.get(field)
            if ref and ref.get("name"):
                yield kind, str(ref["name"]), ReferenceSource.ENV_FROM
