"""Recognising remote kustomize bases, to refuse them when they are disabled.

Kustomize fetches a ``resources`` entry such as
``https://github.com/stakater/Reloader/deployments/kubernetes?ref=v1.0.10`` with
``git clone``. Flux's ``--no-remote-bases`` forbids that; fluxd checks every
kustomization reachable from the build path before the engine runs, so the user
gets one clear message naming the file and the entry. The same walk tells the
build cache that a result depends on the network and must not be reused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from fluxd.build.errors import ManifestError, RemoteBaseRefusedError
from fluxd.build.manifests import ManifestLoader

KUSTOMIZATION_FILE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# The prefixes kustomize's repo-spec parser treats as remote, compared case-insensitively.
_REMOTE_PREFIXES = (
    "git::",
    "gh:",
    "ssh://",
    "https://",
    "http://",
    "git@",
    "github.com:",
    "github.com/",
)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_REMOTE_QUERY = re.compile(r"[?&](?:ref|version|submodules|timeout)=")
_REFERENCE_FIELDS = ("resources", "bases", "components")


def is_remote_reference(entry: str) -> bool:
    """Whether kustomize would fetch ``entry`` from the network."""
    lowered = entry.lower()
    if lowered.startswith("file://"):
        return False
    if any(lowered.startswith(prefix) for prefix in _REMOTE_PREFIXES):
        return True
    return bool(_URL_SCHEME.match(entry) or _REMOTE_QUERY.search(entry))


def is_local_relative_path(entry: str) -> bool:
    """A path inside the source: not remote and not absolute."""
    if is_remote_reference(entry):
        return False
    stripped = entry[len("file://") :] if entry.lower().startswith("file://") else entry
    return not Path(stripped).is_absolute()


def find_kustomization_file(directory: Path) -> Path | None:
    """The kustomization file kustomize would read in ``directory``, if any."""
    for name in KUSTOMIZATION_FILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def remote_references(*, directory: Path, workspace: Path) -> Iterator[tuple[str, str]]:
    """``(kustomization file, entry)`` for each remote base reachable from ``directory``.

    The file is relative to ``workspace``; local bases and components are followed.
    """
    pending = [directory.resolve()]
    seen: set[Path] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        kustomization = find_kustomization_file(current)
        if kustomization is None:
            continue
        for entry in _references(kustomization, workspace=workspace):
            if is_remote_reference(entry):
                yield kustomization.relative_to(workspace.resolve()).as_posix(), entry
                continue
            target = (current / entry).resolve()
            if target.is_dir():
                pending.append(target)


def refuse_remote_bases(*, directory: Path, workspace: Path) -> None:
    """Raise if any kustomization reachable from ``directory`` references a remote base."""
    for relative, entry in remote_references(directory=directory, workspace=workspace):
        raise RemoteBaseRefusedError(
            f"remote bases are disabled: '{relative}' references '{entry}'",
            path=relative,
        )


def uses_remote_bases(*, directory: Path, workspace: Path) -> bool:
    """Whether building ``directory`` fetches anything from the network."""
    return next(remote_references(directory=directory, workspace=workspace), None) is not None


def _references(kustomization: Path, *, workspace: Path) -> list[str]:
    relative = kustomization.relative_to(workspace.resolve()).as_posix()
    try:
        document: Any = yaml.load(kustomization.read_text(encoding="utf-8"), Loader=ManifestLoader)
    except yaml.YAMLError as error:
        raise ManifestError(f"invalid kustomization {relative}: {error}", path=relative) from error
    if not isinstance(document, dict):
        return []
    entries: list[str] = []
    for field in _REFERENCE_FIELDS:
        values = document.get(field)
        if isinstance(values, list):
            entries.extend(value for value in values if isinstance(value, str))
    return entries
