"""Which files of a checkout go into the artifact: Flux's exclusion rules.

The rules, as Flux's source-controller applies them (fluxcd/pkg sourceignore):

* VCS files (``.git/``, ``.gitignore``, ``.gitmodules``, ``.gitattributes``)
  are always excluded.
* ``.sourceignore`` files, in the root or any subdirectory, hold gitignore
  patterns scoped to the directory they are in; deeper files come later and
  so win over shallower ones.
* ``spec.ignore`` holds gitignore patterns scoped to the root, read after all
  ``.sourceignore`` files, so they can overrule them.
* The default exclusions (images, archives, CI configs, ``.sops.yaml``...)
  apply only when neither ``.sourceignore`` files nor ``spec.ignore`` give any
  pattern: any user pattern replaces them, as in Flux's archive filter.

Matching is gitignore's: the last matching pattern decides, ``!`` re-includes,
and a pattern matching a directory matches everything below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pathspec

__all__ = [
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "VCS_PATTERNS",
    "IgnoreRules",
]

IGNORE_FILE = ".sourceignore"
VCS_PATTERNS: tuple[str, ...] = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
DEFAULT_PATTERNS: tuple[str, ...] = (
    # file extensions
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
    # CI configs
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
    # CLI configs and Flux v1 config
    "**/.goreleaser.yml",
    "**/.sops.yaml",
    "**/.flux.yaml",
)


@dataclass(frozen=True)
class _ScopedPatterns:
    """Patterns from one source, applying below ``domain`` (path parts from the root)."""

    domain: tuple[str, ...]
    spec: pathspec.GitIgnoreSpec

    def verdict(self, parts: tuple[str, ...], *, is_dir: bool) -> bool | None:
        """True: excluded, False: re-included, None: no pattern here matches."""
        depth = len(self.domain)
        if len(parts) <= depth or parts[:depth] != self.domain:
            return None
        relative = "/".join(parts[depth:]) + ("/" if is_dir else "")
        return self.spec.check_file(relative).include


def _patterns(lines: list[str]) -> list[str]:
    # Like Flux: comments and blank lines are dropped, everything else is a pattern.
    return [line for line in lines if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class IgnoreRules:
    """The exclusion rules for one checkout; ask :meth:`excluded` about each path."""

    scopes: tuple[_ScopedPatterns, ...]

    @classmethod
    def load(cls, root: Path, *, spec_ignore: str | None = None) -> IgnoreRules:
        """Read every ``.sourceignore`` under ``root`` and combine with ``spec.ignore``."""
        user: list[_ScopedPatterns] = []
        for domain, lines in _sourceignore_files(root):
            patterns = _patterns(lines)
            if patterns:
                user.append(_ScopedPatterns(domain, pathspec.GitIgnoreSpec.from_lines(patterns)))
        if spec_ignore is not None:
            patterns = _patterns(spec_ignore.splitlines())
            if patterns:
                user.append(_ScopedPatterns((), pathspec.GitIgnoreSpec.from_lines(patterns)))
        base = list(VCS_PATTERNS) if user else [*VCS_PATTERNS, *DEFAULT_PATTERNS]
        return cls((_ScopedPatterns((), pathspec.GitIgnoreSpec.from_lines(base)), *user))

    def excluded(self, relpath: str, *, is_dir: bool = False) -> bool:
        """Whether the path (``/``-separated, relative to the root) is left out."""
        parts = tuple(part for part in relpath.strip("/").split("/") if part)
        decision = False
        for scope in self.scopes:
            verdict = scope.verdict(parts, is_dir=is_dir)
            if verdict is not None:
                decision = verdict
        return decision


def _sourceignore_files(root: Path) -> list[tuple[tuple[str, ...], list[str]]]:
    """Every ``.sourceignore`` with its directory, root first then depth-first by name."""
    found: list[tuple[tuple[str, ...], list[str]]] = []

    def visit(directory: Path, domain: tuple[str, ...]) -> None:
        ignore_file = directory / IGNORE_FILE
        if ignore_file.is_file() and not ignore_file.is_symlink():
            found.append((domain, ignore_file.read_text(errors="replace").splitlines()))
        for child in sorted(directory.iterdir(), key=lambda entry: entry.name):
            if child.name != ".git" and child.is_dir() and not child.is_symlink():
                visit(child, (*domain, child.name))

    visit(root, ())
    return found
