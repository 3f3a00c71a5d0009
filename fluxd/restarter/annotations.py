"""Reloader's annotations and its decision: does this config change restart this workload?

The decision follows Reloader v1.4's order (``ShouldReload`` plus the
strategy's "which container" step, which can still say no):

1. the changed object says ``reloader.stakater.com/ignore: "true"`` → no;
2. its name is in the workload's exclusion list for its kind
   (``secrets.exclude…`` / ``configmaps.exclude…``; exact names) → no;
3. the typed reload list (``secret.…/reload`` / ``configmap.…/reload``, comma
   separated, each item a regular expression anchored at both ends) matches
   the name → yes, whether or not the pod uses the object;
4. ``reloader.stakater.com/search: "true"`` on the workload and
   ``reloader.stakater.com/match: "true"`` on the object → yes, provided the
   pod uses the object (Reloader stops here: an unused object is not looked
   at by the auto modes either);
5. ``reloader.stakater.com/auto``, or the typed ``secret.…/auto`` /
   ``configmap.…/auto``, is true (Go's ``ParseBool``: 1, t, T, TRUE, true,
   True), or neither is set and the daemon runs with auto-reload-all → yes,
   provided the pod uses the object;
6. otherwise no.

The first rule that matches decides the trigger reported and whether the
digest may fall back to the first container (reload lists only): a workload
with both a matching reload list and auto is restarted for its list.

Where the annotations are read: the workload's own metadata when it carries
any of reload-list, search, auto or typed-auto *for the changed kind*,
otherwise the pod template's metadata. Exclusion lists are only read from the
workload's metadata.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fluxd.restarter.configs import ConfigKind
from fluxd.restarter.references import container_for, referenced_configs
from fluxd.restarter.workloads import pod_spec, template_annotations, workload_annotations


@dataclass(frozen=True)
class RestarterAnnotations:
    """Annotation names, Reloader's by default; each can be renamed in the settings."""

    auto: str = "reloader.stakater.com/auto"
    configmap_auto: str = "configmap.reloader.stakater.com/auto"
    secret_auto: str = "secret.reloader.stakater.com/auto"
    configmap_reload: str = "configmap.reloader.stakater.com/reload"
    secret_reload: str = "secret.reloader.stakater.com/reload"
    configmap_exclude: str = "configmaps.exclude.reloader.stakater.com/reload"
    secret_exclude: str = "secrets.exclude.reloader.stakater.com/reload"
    ignore: str = "reloader.stakater.com/ignore"
    search: str = "reloader.stakater.com/search"
    match: str = "reloader.stakater.com/match"
    rollout_strategy: str = "reloader.stakater.com/rollout-strategy"
    pause_period: str = "deployment.reloader.stakater.com/pause-period"
    paused_at: str = "deployment.reloader.stakater.com/paused-at"
    last_reloaded_from: str = "reloader.stakater.com/last-reloaded-from"
    # fluxd's own addition for the annotations strategy: Reloader's annotation
    # only remembers the last object, this one (on the workload's metadata, not
    # its pod template) remembers every object's digest.
    config_digests: str = "restarter.fluxd.dev/config-digests"
    secret_provider_class_auto: str = "secretproviderclass.reloader.stakater.com/auto"
    secret_provider_class_reload: str = "secretproviderclass.reloader.stakater.com/reload"
    secret_provider_class_exclude: str = (
        "secretproviderclasses.exclude.reloader.stakater.com/reload"
    )

    def typed_auto(self, kind: ConfigKind) -> str:
        return _by_kind(
            kind, self.secret_auto, self.configmap_auto, self.secret_provider_class_auto
        )

    def reload_list(self, kind: ConfigKind) -> str:
        return _by_kind(
            kind, self.secret_reload, self.configmap_reload, self.secret_provider_class_reload
        )

    def exclude_list(self, kind: ConfigKind) -> str:
        return _by_kind(
            kind, self.secret_exclude, self.configmap_exclude, self.secret_provider_class_exclude
        )

    def config_object_keys(self) -> tuple[str, str]:
        """The only annotations of a Secret/ConfigMap the decision reads."""
        return (self.ignore, self.match)


def _by_kind(kind: ConfigKind, secret: str, configmap: str, secret_provider_class: str) -> str:
    if kind is ConfigKind.SECRET:
        return secret
    return configmap if kind is ConfigKind.CONFIGMAP else secret_provider_class


DEFAULT_ANNOTATIONS = RestarterAnnotations()


class Trigger(StrEnum):
    """Which rule decided to restart."""

    AUTO = "auto"
    TYPED_AUTO = "typed-auto"
    AUTO_RELOAD_ALL = "auto-reload-all"
    RELOAD_LIST = "reload-list"
    SEARCH_MATCH = "search-match"


@dataclass(frozen=True)
class KindProfile:
    """What the decision reads from one workload for one config kind."""

    auto: str
    typed_auto: str
    reload_list: tuple[str, ...]
    search: str
    excluded: frozenset[str]


@dataclass(frozen=True)
class WorkloadProfile:
    """The small part of a workload the decision needs: annotation values and used objects.

    Small enough to keep for every workload in the cluster (the index does).
    """

    secret: KindProfile
    configmap: KindProfile
    secret_provider_class: KindProfile
    references: frozenset[tuple[ConfigKind, str]]

    def for_kind(self, kind: ConfigKind) -> KindProfile:
        if kind is ConfigKind.SECRET:
            return self.secret
        return self.configmap if kind is ConfigKind.CONFIGMAP else self.secret_provider_class

    def uses(self, kind: ConfigKind, name: str) -> bool:
        return (kind, name) in self.references


@dataclass(frozen=True)
class Decision:
    """Whether to restart, why, and into which container the digest goes."""

    restart: bool
    reason: str
    trigger: Trigger | None = None
    # True for auto/search decisions: only a container that uses the object
    # may carry the digest. False for reload lists (first container fallback).
    auto: bool = False
    container: str | None = None
    # Annotation values that could not be used (a bad regular expression).
    problems: tuple[str, ...] = ()


def profile_workload(
    workload: Mapping[str, Any], *, names: RestarterAnnotations = DEFAULT_ANNOTATIONS
) -> WorkloadProfile:
    """Read the decision's inputs from a workload object once."""
    own = workload_annotations(workload)
    template = template_annotations(workload)
    return WorkloadProfile(
        secret=_kind_profile(ConfigKind.SECRET, own=own, template=template, names=names),
        configmap=_kind_profile(ConfigKind.CONFIGMAP, own=own, template=template, names=names),
        secret_provider_class=_kind_profile(
            ConfigKind.SECRET_PROVIDER_CLASS, own=own, template=template, names=names
        ),
        references=referenced_configs(pod_spec(workload)),
    )


def evaluate(
    profile: WorkloadProfile,
    *,
    config_kind: ConfigKind,
    config_name: str,
    config_annotations: Mapping[str, str],
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
    auto_reload_all: bool = False,
) -> Decision:
    """Reloader's decision for one workload profile and one changed object."""
    if config_annotations.get(names.ignore) == "true":
        return Decision(False, f"{config_kind} {config_name} is marked {names.ignore}")
    kind_profile = profile.for_kind(config_kind)
    if config_name in kind_profile.excluded:
        return Decision(False, f"{config_kind} {config_name} is excluded by the workload")
    used = profile.uses(config_kind, config_name)
    problems: list[str] = []
    for pattern in kind_profile.reload_list:
        compiled = _anchored(pattern)
        if compiled is None:
            problems.append(f"reload list item {pattern!r} is not a valid regular expression")
            continue
        if compiled.search(config_name):
            reason = f"reload list item {pattern!r} matches"
            return Decision(True, reason, Trigger.RELOAD_LIST, auto=False, problems=tuple(problems))
    if kind_profile.search == "true" and config_annotations.get(names.match) == "true":
        if used:
            reason = "the workload searches and the object is marked to match"
            return Decision(True, reason, Trigger.SEARCH_MATCH, auto=True, problems=tuple(problems))
        reason = "the object is marked to match but the pod does not use it"
        return Decision(False, reason, problems=tuple(problems))
    auto_trigger = _auto_trigger(kind_profile, auto_reload_all=auto_reload_all)
    if auto_trigger is not None and used:
        reason = f"{auto_trigger} and the pod uses it"
        return Decision(True, reason, auto_trigger, auto=True, problems=tuple(problems))
    reason = "no annotation selects it" if used else "the pod does not use it and no list names it"
    return Decision(False, reason, problems=tuple(problems))


def decide(
    workload: Mapping[str, Any],
    *,
    config_kind: ConfigKind,
    config_name: str,
    config_annotations: Mapping[str, str],
    names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
    auto_reload_all: bool = False,
) -> Decision:
    """Reloader's decision for a full workload object, including the target container."""
    decision = evaluate(
        profile_workload(workload, names=names),
        config_kind=config_kind,
        config_name=config_name,
        config_annotations=config_annotations,
        names=names,
        auto_reload_all=auto_reload_all,
    )
    if not decision.restart:
        return decision
    container = container_for(
        pod_spec(workload), kind=config_kind, name=config_name, auto=decision.auto
    )
    if container is None:
        return Decision(False, "the pod has no container to record the digest in")
    return Decision(
        True,
        decision.reason,
        decision.trigger,
        auto=decision.auto,
        container=container,
        problems=decision.problems,
    )


def parse_go_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``, with anything unparsable counting as false."""
    return value in {"1", "t", "T", "TRUE", "true", "True"}


def split_list(value: str) -> tuple[str, ...]:
    """Reloader's comma lists: items trimmed, nothing else (empty items stay)."""
    return tuple(item.strip() for item in value.split(",")) if value else ()


def _kind_profile(
    kind: ConfigKind,
    *,
    own: Mapping[str, str],
    template: Mapping[str, str],
    names: RestarterAnnotations,
) -> KindProfile:
    keys = (names.reload_list(kind), names.search, names.auto, names.typed_auto(kind))
    source = own if any(key in own for key in keys) else template
    excluded = frozenset(split_list(own.get(names.exclude_list(kind), ""))) - {""}
    return KindProfile(
        auto=source.get(names.auto, ""),
        typed_auto=source.get(names.typed_auto(kind), ""),
        reload_list=split_list(source.get(names.reload_list(kind), "")),
        search=source.get(names.search, ""),
        excluded=excluded,
    )


def _auto_trigger(profile: KindProfile, *, auto_reload_all: bool) -> Trigger | None:
    if parse_go_bool(profile.auto):
        return Trigger.AUTO
    if parse_go_bool(profile.typed_auto):
        return Trigger.TYPED_AUTO
    if auto_reload_all and profile.auto == "" and profile.typed_auto == "":
        return Trigger.AUTO_RELOAD_ALL
    return None


@functools.lru_cache(maxsize=1024)
def _anchored(pattern: str) -> re.Pattern[str] | None:
    # Reloader compiles "^" + item + "$" and searches (unanchored), so an
    # alternation like "a|b" is only anchored on its outer ends; kept as is.
    # "\Z" stands for Go's "$": the very end, not "before a final newline".
    try:
        return re.compile("^" + pattern + r"\Z")
    except re.error:
        return None
