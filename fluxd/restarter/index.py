"""What the restarter remembers between events: digests, workload profiles, filters.

* ``DigestCache``: ``(namespace, kind, name) → digest`` of every watched
  Secret/ConfigMap, never their data; comparing a new digest with the cached
  one tells a real change from a no-op update (labels, resync).
* ``WorkloadIndex``: for every workload a ``WorkloadProfile`` (a few
  annotation values and the names its pods use), indexed by the objects it
  uses and by namespace for workloads with reload lists, so a changed object
  finds exactly the workloads Reloader's rules would restart without listing
  workloads.
* ``ConfigFilter``: which namespaces and objects are watched at all
  (Reloader's namespace list/ignore list, namespace selector, resource label
  selector, ignored kinds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fluxd.restarter.annotations import (
    DEFAULT_ANNOTATIONS,
    RestarterAnnotations,
    WorkloadProfile,
    evaluate,
    profile_workload,
)
from fluxd.restarter.configs import ConfigKey, ConfigKind
from fluxd.restarter.label_selectors import LabelSelector
from fluxd.restarter.workloads import WorkloadKey, workload_key

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class ConfigFilter:
    """Which Secrets and ConfigMaps the restarter reacts to."""

    # Watch only these namespaces; None watches every namespace.
    namespaces: frozenset[str] | None = None
    ignored_namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector | None = None
    resource_selector: LabelSelector | None = None
    ignored_kinds: frozenset[ConfigKind] = frozenset()

    def admits_namespace(
        self, namespace: str, *, namespace_labels: Mapping[str, str] | None = None
    ) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        if namespace in self.ignored_namespaces:
            return False
        if self.namespace_selector is not None:
            return self.namespace_selector.matches(namespace_labels)
        return True

    def admits(
        self,
        key: ConfigKey,
        *,
        labels: Mapping[str, str] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> bool:
        """Whether a change of object ``key`` (with ``labels``) may restart anything."""
        if key.kind in self.ignored_kinds:
            return False
        if not self.admits_namespace(key.namespace, namespace_labels=namespace_labels):
            return False
        return self.resource_selector is None or self.resource_selector.matches(labels)


class DigestCache:
    """Last digest seen per config object; digests only, never data."""

    def __init__(self) -> None:
        self._digests: dict[ConfigKey, str] = {}

    def observe(self, key: ConfigKey, digest: str) -> str | None:
        """Remember ``digest`` for ``key``; return the one it replaces (None if first)."""
        previous = self._digests.get(key)
        self._digests[key] = digest
        return previous

    def get(self, key: ConfigKey) -> str | None:
        return self._digests.get(key)

    def forget(self, key: ConfigKey) -> None:
        self._digests.pop(key, None)

    def __len__(self) -> int:
        return len(self._digests)


class WorkloadIndex:
    """Workloads by the config objects that can restart them."""

    def __init__(
        self, *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS, auto_reload_all: bool = False
    ) -> None:
        self._names = names
        self._auto_reload_all = auto_reload_all
        self._profiles: dict[WorkloadKey, WorkloadProfile] = {}
        self._users: dict[ConfigKey, set[WorkloadKey]] = {}
        # Workloads with a non-empty reload list for a kind, per namespace: a
        # list may name (by pattern) objects the pods do not use.
        self._listing: dict[tuple[str, ConfigKind], set[WorkloadKey]] = {}

    def upsert(self, workload: Mapping[str, Any]) -> WorkloadKey:
        """Add or refresh a workload after an add/update event."""
        key = workload_key(workload)
        self.remove(key)
        profile = profile_workload(workload, names=self._names)
        self._profiles[key] = profile
        for kind, name in profile.references:
            self._users.setdefault(ConfigKey(key.namespace, kind, name), set()).add(key)
        for kind in ConfigKind:
            if any(profile.for_kind(kind).reload_list):
                self._listing.setdefault((key.namespace, kind), set()).add(key)
        return key

    def remove(self, key: WorkloadKey) -> None:
        """Forget a workload after a delete event (no-op when unknown)."""
        profile = self._profiles.pop(key, None)
        if profile is None:
            return
        for kind, name in profile.references:
            _discard(self._users, ConfigKey(key.namespace, kind, name), member=key)
        for kind in ConfigKind:
            _discard(self._listing, (key.namespace, kind), member=key)

    def profile(self, key: WorkloadKey) -> WorkloadProfile | None:
        return self._profiles.get(key)

    def affected(
        self,
        key: ConfigKey,
        *,
        config_annotations: Mapping[str, str] | None = None,
    ) -> list[WorkloadKey]:
        """Workloads that Reloader's rules restart when object ``key`` changes, sorted."""
        candidates = self.candidates(key)
        annotations = config_annotations or {}
        chosen = [
            candidate
            for candidate in candidates
            if evaluate(
                self._profiles[candidate],
                config_kind=key.kind,
                config_name=key.name,
                config_annotations=annotations,
                names=self._names,
                auto_reload_all=self._auto_reload_all,
            ).restart
        ]
        return sorted(chosen)

    def candidates(self, key: ConfigKey) -> set[WorkloadKey]:
        """Workloads the decision looks at for ``key``: its users and those that list it."""
        return self._users.get(key, set()) | self._listing.get((key.namespace, key.kind), set())

    def __len__(self) -> int:
        return len(self._profiles)


def _discard(index: dict[K, set[V]], key: K, *, member: V) -> None:
    members = index.get(key)
    if members is None:
        return
    members.discard(member)
    if not members:
        del index[key]
