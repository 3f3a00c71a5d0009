"""Label selectors for the restarter's namespace and resource filters.

Reloader's ``--namespace-selector`` and ``--resource-label-selector`` take a
list of items joined into one Kubernetes label selector (``env=prod``,
``tier!=db``, ``team``, ``!legacy``, ``zone in (a,b)``, ``zone notin (c)``),
and still accept the older ``key:value`` spelling and ``*`` as "any value"
(``key:*``, ``key=*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fluxd.restarter.errors import InvalidLabelSelector


class Operator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    NOT_EXISTS = "!"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case Operator.EXISTS:
                return present
            case Operator.NOT_EXISTS:
                return not present
            case Operator.EQUALS | Operator.IN:
                return present and value in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold; an empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        present = labels or {}
        return all(requirement.matches(present) for requirement in self.requirements)


_SET_BASED = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQUALITY = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTENCE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def parse_label_selector(items: str | Iterable[str]) -> LabelSelector:
    """Parse one selector string, or Reloader's list of selector items."""
    text = items if isinstance(items, str) else ",".join(items)
    requirements = [_parse_requirement(part, text) for part in _split_top_level(text)]
    return LabelSelector(tuple(requirements))


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses, dropping empty parts."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _parse_requirement(part: str, whole: str) -> Requirement:
    legacy = re.fullmatch(r"\s*([^\s:=!(),]+)\s*:\s*(\S*)\s*", part)
    if legacy:
        key, value = legacy.groups()
        if value == "*":
            return Requirement(key, Operator.EXISTS)
        return Requirement(key, Operator.EQUALS, frozenset({value}))
    set_based = _SET_BASED.match(part)
    if set_based:
        negated, key, operator, values = set_based.groups()
        if negated:
            raise InvalidLabelSelector(whole, reason=f"unexpected '!' in {part!r}")
        parsed = frozenset(value.strip() for value in values.split(",") if value.strip())
        return Requirement(key, Operator(operator), parsed)
    equality = _EQUALITY.match(part)
    if equality:
        key, operator, value = equality.groups()
        if value == "*" and operator != "!=":
            return Requirement(key, Operator.EXISTS)
        chosen = Operator.NOT_EQUALS if operator == "!=" else Operator.EQUALS
        return Requirement(key, chosen, frozenset({value}))
    existence = _EXISTENCE.match(part)
    if existence:
        negated, key = existence.groups()
        return Requirement(key, Operator.NOT_EXISTS if negated else Operator.EXISTS)
    raise InvalidLabelSelector(whole, reason=f"cannot parse requirement {part!r}")
