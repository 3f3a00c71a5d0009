"""SemVer ranges as Flux writes them in ``spec.ref.semver``, for picking a tag.

Flux checks tags against a range in the syntax of the Go Masterminds/semver
library: comparators joined by spaces or commas (all must hold), alternatives
joined by ``||``, hyphen ranges (``1.2 - 1.4``), tilde (``~1.2``), caret
(``^1.2``) and wildcards (``1.2.x``, ``*``). Tags may carry a leading ``v`` and
may omit minor or patch (``v1.2``). The ``semver`` package compares versions;
this module parses the ranges it does not understand.

A pre-release tag only matches a range that itself names a pre-release, as in
Masterminds: ``>=1.0.0`` does not pick ``1.1.0-rc.1``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import semver

__all__ = ["SemverRange", "highest_match", "parse_tag_version"]

_VERSION = re.compile(
    r"^[vV]?(?P<major>0|[1-9]\d*|[xX*])"
    r"(?:\.(?P<minor>0|[1-9]\d*|[xX*]))?"
    r"(?:\.(?P<patch>0|[1-9]\d*|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?"
    r"(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_COMPARATOR = re.compile(r"^(?P<op>!=|>=|<=|=>|=<|~>|[=<>~^])?\s*(?P<version>\S+)$")
_WILDCARDS = frozenset({"x", "X", "*"})

Check = Callable[[semver.Version, semver.Version], bool]
_OPS: dict[str, Check] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


def parse_tag_version(tag: str) -> semver.Version | None:
    """The version a tag names (``v1.2.3``, ``1.2``), or None if it is not a version."""
    match = _VERSION.match(tag.strip())
    if match is None or any(match[part] in _WILDCARDS for part in ("major", "minor", "patch")):
        return None
    return semver.Version(
        int(match["major"]),
        int(match["minor"] or 0),
        int(match["patch"] or 0),
        prerelease=match["pre"],
        build=match["build"],
    )


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: semver.Version

    def holds(self, version: semver.Version) -> bool:
        return _OPS[self.op](version, self.version)


@dataclass(frozen=True)
class _Partial:
    """A version in a range, whose missing or wildcard parts are None."""

    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    @classmethod
    def parse(cls, text: str, source: str) -> _Partial:
        match = _VERSION.match(text)
        if match is None:
            raise ValueError(f"invalid version '{text}' in semver range '{source}'")

        def number(part: str) -> int | None:
            value = match[part]
            return None if value is None or value in _WILDCARDS else int(value)

        major, minor, patch = number("major"), number("minor"), number("patch")
        # A wildcard makes everything after it a wildcard too.
        if major is None:
            minor = patch = None
        if minor is None:
            patch = None
        return cls(major, minor, patch, match["pre"])

    def floor(self) -> semver.Version:
        return semver.Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)

    def next_up(self) -> semver.Version | None:
        """The first version above every version this partial covers."""
        if self.major is None:
            return None
        if self.minor is None:
            return semver.Version(self.major + 1, 0, 0)
        if self.patch is None:
            return semver.Version(self.major, self.minor + 1, 0)
        return None


def _expand(op: str, partial: _Partial) -> list[_Comparator]:
    """Rewrite one comparator into plain comparisons of full versions."""
    op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(op, op)
    floor, ceiling = partial.floor(), partial.next_up()
    if partial.major is None:  # '*', 'x', '>=*'...
        return [] if op in ("", "=", ">=", "<=", "~", "^") else [_Comparator("<", floor)]
    if op == "~":
        upper = (
            semver.Version(partial.major + 1, 0, 0)
            if partial.minor is None
            else semver.Version(partial.major, partial.minor + 1, 0)
        )
        return [_Comparator(">=", floor), _Comparator("<", upper)]
    if op == "^":
        if partial.major > 0 or partial.minor is None:
            upper = semver.Version(partial.major + 1, 0, 0)
        elif partial.minor > 0 or partial.patch is None:
            upper = semver.Version(0, partial.minor + 1, 0)
        else:
            upper = semver.Version(0, 0, (partial.patch or 0) + 1)
        return [_Comparator(">=", floor), _Comparator("<", upper)]
    if ceiling is None:
        return [_Comparator(op or "=", floor)]
    # A partial version stands for a whole range of versions.
    if op in ("", "="):
        return [_Comparator(">=", floor), _Comparator("<", ceiling)]
    if op == "!=":
        return [_Comparator("!=", floor)]  # approximation: rarely written with partials
    if op == ">":
        return [_Comparator(">=", ceiling)]
    if op == ">=":
        return [_Comparator(">=", floor)]
    if op == "<":
        return [_Comparator("<", floor)]
    return [_Comparator("<", ceiling)]  # "<="


@dataclass(frozen=True)
class _Alternative:
    comparators: tuple[_Comparator, ...]
    allows_prerelease: bool

    def holds(self, version: semver.Version) -> bool:
        if version.prerelease and not self.allows_prerelease:
            return False
        return all(comparator.holds(version) for comparator in self.comparators)


@dataclass(frozen=True)
class SemverRange:
    """A parsed ``spec.ref.semver`` range."""

    text: str
    alternatives: tuple[_Alternative, ...]

    @classmethod
    def parse(cls, text: str) -> SemverRange:
        """Parse a range; raise ValueError with a readable message if it is not one."""
        if not text.strip():
            raise ValueError("semver range is empty")
        alternatives = []
        for branch in text.split("||"):
            alternatives.append(_parse_alternative(branch, text))
        return cls(text, tuple(alternatives))

    def matches(self, version: semver.Version) -> bool:
        # Build metadata never affects precedence.
        plain = version.replace(build=None)
        return any(alternative.holds(plain) for alternative in self.alternatives)


def _parse_alternative(branch: str, source: str) -> _Alternative:
    tokens = branch.replace(",", " ").split()
    if not tokens:
        raise ValueError(f"empty alternative in semver range '{source}'")
    # Glue operators written apart from their version ('>= 1.0').
    glued: list[str] = []
    for token in tokens:
        if glued and re.fullmatch(r"!=|>=|<=|=>|=<|~>|[=<>~^]", glued[-1]):
            glued[-1] += token
        else:
            glued.append(token)
    comparators: list[_Comparator] = []
    allows_prerelease = False
    index = 0
    while index < len(glued):
        token = glued[index]
        if index + 2 < len(glued) and glued[index + 1] == "-":
            low = _Partial.parse(token, source)
            high = _Partial.parse(glued[index + 2], source)
            comparators += _expand(">=", low) + _expand("<=", high)
            allows_prerelease |= bool(low.pre or high.pre)
            index += 3
            continue
        match = _COMPARATOR.match(token)
        if match is None:
            raise ValueError(f"invalid comparator '{token}' in semver range '{source}'")
        partial = _Partial.parse(match["version"], source)
        comparators += _expand(match["op"] or "", partial)
        allows_prerelease |= bool(partial.pre)
        index += 1
    return _Alternative(tuple(comparators), allows_prerelease)


def highest_match(rng: SemverRange, tags: Iterable[str]) -> str | None:
    """The tag with the highest version in ``rng``; ties (build metadata) go to the last name."""
    best: tuple[semver.Version, str] | None = None
    for tag in sorted(tags):
        version = parse_tag_version(tag)
        if version is None or not rng.matches(version):
            continue
        comparable = version.replace(build=None)
        if best is None or comparable >= best[0]:
            best = (comparable, tag)
    return None if best is None else best[1]
