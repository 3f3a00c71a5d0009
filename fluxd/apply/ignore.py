"""``spec.ignore``: fields the cluster may change without Flux putting them back.

Each rule names JSON pointers (RFC 6901) and, optionally, the objects they
apply to (a kustomize-style selector: regular expressions on group, version,
kind, name and namespace, label selectors on labels and annotations). As in
Flux's ``ssa`` package, rules only matter for objects that already exist:

* drift detection compares the live object and the dry-run result with the
  ignored fields removed from both, so a hand-set value is not drift;
* when the object is applied anyway (something else changed), each ignored
  field whose live value differs is either removed from the payload, when
  another ``Apply`` field manager owns it, or given the live value, when no
  other applier does, so the apply keeps what the cluster has.

A new object is applied whole: there is no live value to keep.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class IgnoreRuleError(ValueError):
    """A rule cannot be used (bad regular expression, label selector or pointer)."""


class LabelMatcher(Protocol):
    def matches(self, labels: Mapping[str, str] | None) -> bool: ...


@dataclass(frozen=True)
class TargetSelector:
    """Which objects a rule applies to; an empty selector selects every object."""

    group: re.Pattern[str] | None = None
    version: re.Pattern[str] | None = None
    kind: re.Pattern[str] | None = None
    name: re.Pattern[str] | None = None
    namespace: re.Pattern[str] | None = None
    labels: LabelMatcher | None = None
    annotations: LabelMatcher | None = None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        checks = (
            (self.group, group),
            (self.version, version),
            (self.kind, str(obj.get("kind", ""))),
            (self.name, str(metadata.get("name", ""))),
            (self.namespace, str(metadata.get("namespace", ""))),
        )
        if any(pattern is not None and not pattern.match(text) for pattern, text in checks):
            return False
        if self.labels is not None and not self.labels.matches(metadata.get("labels") or {}):
            return False
        return self.annotations is None or self.annotations.matches(
            metadata.get("annotations") or {}
        )


@dataclass(frozen=True)
class IgnoreRule:
    paths: tuple[str, ...]
    target: TargetSelector = TargetSelector()


def compile_ignore_rules(
    raw: Sequence[Mapping[str, Any]], *, parse_selector: Callable[[str], LabelMatcher]
) -> tuple[IgnoreRule, ...]:
    """``spec.ignore`` as rules; ``parse_selector`` reads a label-selector expression."""
    rules = []
    for index, entry in enumerate(raw):
        where = f"spec.ignore[{index}]"
        paths = tuple(str(path) for path in entry.get("paths") or ())
        for path in paths:
            if not path.startswith("/"):
                raise IgnoreRuleError(f"{where}.paths: {path!r} is not a JSON pointer")
        target = entry.get("target") or {}
        try:
            selector = TargetSelector(
                group=_anchored(target.get("group")),
                version=_anchored(target.get("version")),
                kind=_anchored(target.get("kind")),
                name=_anchored(target.get("name")),
                namespace=_anchored(target.get("namespace")),
                labels=_selector(target.get("labelSelector"), parse_selector),
                annotations=_selector(target.get("annotationSelector"), parse_selector),
            )
        except (re.error, ValueError) as error:
            raise IgnoreRuleError(f"{where}.target is invalid: {error}") from error
        rules.append(IgnoreRule(paths=paths, target=selector))
    return tuple(rules)


def _anchored(pattern: object) -> re.Pattern[str] | None:
    # Flux anchors every selector expression: 'web' selects 'web', not 'webhook'.
    return re.compile(f"^(?:{pattern})$") if pattern else None


def _selector(
    expression: object, parse_selector: Callable[[str], LabelMatcher]
) -> LabelMatcher | None:
    return parse_selector(str(expression)) if expression else None


def ignored_paths(rules: Sequence[IgnoreRule], obj: Mapping[str, Any]) -> list[str]:
    """Pointers the rules ignore on ``obj`` (selectors are matched against ``obj``)."""
    return [path for rule in rules if rule.target.matches(obj) for path in rule.paths]


def without_paths(obj: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A copy of ``obj`` with the fields at ``paths`` removed; missing paths are no error."""
    trimmed = copy.deepcopy(dict(obj))
    for path in paths:
        _remove(trimmed, _segments(path))
    return trimmed


def keep_live_values(
    payload: dict[str, Any],
    *,
    live: Mapping[str, Any],
    dry_run: Mapping[str, Any],
    rules: Sequence[IgnoreRule],
    field_manager: str,
) -> None:
    """Make ``payload`` leave each drifted ignored field of ``live`` as it is (in place)."""
    applied_by_others = [
        entry.get("fieldsV1") or {}
        for entry in (live.get("metadata") or {}).get("managedFields") or []
        if entry.get("operation") == "Apply"
        and not entry.get("subresource")
        and entry.get("manager") != field_manager
    ]
    for path in ignored_paths(rules, dry_run):
        segments = _segments(path)
        found_live, live_value = _lookup(live, segments)
        found_dry, dry_value = _lookup(dry_run, segments)
        if found_live == found_dry and live_value == dry_value:
            continue
        # Another applier owns it: leave it to them. Otherwise send the live value,
        # so our ownership stays and the value does not change.
        adopt = found_live and not _owned_by_any(live, segments, applied_by_others)
        if not (adopt and _replace(payload, segments, copy.deepcopy(live_value))):
            _remove(payload, segments)


# ------------------------------------------------------------------ JSON pointers


def _segments(pointer: str) -> list[str]:
    if pointer in ("", "/"):
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _step(node: object, segment: str) -> tuple[bool, object]:
    if isinstance(node, Mapping):
        return (segment in node, node.get(segment))
    if isinstance(node, list) and segment.lstrip("-").isdigit():
        index = int(segment)
        if -len(node) <= index < len(node):
            return True, node[index]
    return False, None


def _lookup(obj: object, segments: Sequence[str]) -> tuple[bool, object]:
    node = obj
    for segment in segments:
        found, node = _step(node, segment)
        if not found:
            return False, None
    return True, node


def _parent(obj: object, segments: Sequence[str]) -> object:
    found, parent = _lookup(obj, segments[:-1])
    return parent if found else None


def _remove(obj: object, segments: Sequence[str]) -> None:
    if not segments:
        return
    parent, last = _parent(obj, segments), segments[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and _step(parent, last)[0]:
        del parent[int(last)]


def _replace(obj: object, segments: Sequence[str], value: object) -> bool:
    if not segments:
        return False
    parent, last = _parent(obj, segments), segments[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
        return True
    if isinstance(parent, list) and _step(parent, last)[0]:
        parent[int(last)] = value
        return True
    return False


# ------------------------------------------------------------------ field ownership


def _owned_by_any(
    live: Mapping[str, Any], segments: Sequence[str], field_sets: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether one of ``field_sets`` (``fieldsV1`` tries) holds the field at ``segments``."""
    return any(_in_field_set(live, segments, fields) for fields in field_sets)


def _in_field_set(live: object, segments: Sequence[str], fields: Mapping[str, Any]) -> bool:
    node: object = fields
    value: object = live
    for segment in segments:
        if not isinstance(node, Mapping):
            return False
        if isinstance(value, list):
            found, item = _step(value, segment)
            key = _item_key(node, item) if found else None
            if key is None:
                return False
            node, value = node[key], item
        else:
            key = f"f:{segment}"
            if key not in node:
                return False
            node = node[key]
            value = value.get(segment) if isinstance(value, Mapping) else None
    return True


def _item_key(node: Mapping[str, Any], item: object) -> str | None:
    """The ``k:{...}`` (or ``v:...``) key of ``node`` that stands for list ``item``."""
    for key in node:
        if key.startswith("k:") and isinstance(item, Mapping):
            try:
                wanted = json.loads(key[2:])
            except ValueError:
                continue
            if all(item.get(name) == expected for name, expected in wanted.items()):
                return str(key)
        elif key.startswith("v:"):
            try:
                if json.loads(key[2:]) == item:
                    return str(key)
            except ValueError:
                continue
    return None
