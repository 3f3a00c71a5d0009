"""Errors raised while turning a source path into Kubernetes objects.

Every failure of the build step is a :class:`BuildError`, so the Kustomization
reconciler needs one ``except`` to mark ``Ready=False``; ``reason`` carries the
Flux condition reason to report. Messages name the repo-relative file or path at
fault, never a temporary directory, and never a variable's value.

::

    BuildError                      reason BuildFailed
    ├── SourcePathError             reason ArtifactFailed: path missing, escaping the root
    │   └── SymlinkEscapeError      a symlink under the path resolves outside the root
    ├── RemoteBaseRefusedError      remote bases are disabled and one is referenced
    ├── EngineError                 kustomize itself failed (message: its first error line)
    │   └── EngineTimeoutError      kustomize did not finish in time
    ├── ManifestError               a file or build output is not valid Kubernetes YAML
    └── SubstitutionError           postBuild substitution failed (unset var, bad syntax or name)
"""

from __future__ import annotations

from typing import ClassVar


class BuildError(Exception):
    """The path could not be built into objects."""

    reason: ClassVar[str] = "BuildFailed"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The repo-relative file or directory at fault, when one is known.
        self.path = path

    def __str__(self) -> str:
        return self.message


class SourcePathError(BuildError):
    """``spec.path`` does not exist in the artifact or points outside of it."""

    reason: ClassVar[str] = "ArtifactFailed"


class SymlinkEscapeError(SourcePathError):
    """A symlink inside the build path points outside the artifact root."""


class RemoteBaseRefusedError(BuildError):
    """A kustomization references a remote base while remote bases are disabled."""


class EngineError(BuildError):
    """The kustomize engine exited with an error."""


class EngineTimeoutError(EngineError):
    """The kustomize engine did not finish within the build timeout."""


class ManifestError(BuildError):
    """A manifest is not valid Kubernetes YAML (apiVersion, kind and name)."""


class SubstitutionError(BuildError):
    """Post-build variable substitution failed for one object."""

    def __init__(self, message: str, *, object_id: str | None = None) -> None:
        super().__init__(message)
        #: ``Kind/namespace/name`` of the object whose substitution failed.
        self.object_id = object_id
