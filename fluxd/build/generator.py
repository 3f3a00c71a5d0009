"""Flux's additions to kustomize, applied to a private copy of the source.

A Flux Kustomization may point at a directory of plain manifests: Flux then
generates a ``kustomization.yaml`` listing them. Its spec can also set a target
namespace, name prefix/suffix, patches, images and components; Flux writes those
into the path's kustomization file before building, and so does fluxd, with the
same rules (e.g. ``namePrefix`` replaces the file's own, an image entry with the
same name is replaced). Everything happens in a temporary copy of the artifact
root, after refusing paths and symlinks that lead outside of it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from fluxd.build.errors import BuildError, ManifestError, SourcePathError, SymlinkEscapeError
from fluxd.build.manifests import ManifestLoader, load_documents
from fluxd.build.options import BuildOptions
from fluxd.build.remote import find_kustomization_file, is_local_relative_path

GENERATED_FILE_NAME = "kustomization.yaml"
_KUSTOMIZATION_API_VERSION = "kustomize.config.k8s.io/v1beta1"
_MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Workspace:
    """A private copy of the artifact root and the directory to build inside it."""

    root: Path
    directory: Path
    #: ``spec.path`` normalised, relative to the artifact root (``.`` for the root).
    relative_path: str

    def cleanup(self) -> None:
        shutil.rmtree(self.root.parent, ignore_errors=True)


def normalise_path(path: str) -> str:
    """Validate ``spec.path`` and return it relative to the artifact root."""
    candidate = PurePosixPath(path.strip() or ".")
    if candidate.is_absolute() or path.startswith("\\"):
        raise SourcePathError(
            f"kustomization path '{path}' must be relative to the source root", path=path
        )
    parts: list[str] = []
    for part in candidate.parts:
        if part == "..":
            if not parts:
                raise SourcePathError(
                    f"kustomization path '{path}' points outside the source root", path=path
                )
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or "."


def prepare_workspace(*, artifact_root: Path, path: str) -> Workspace:
    """Copy the artifact root to a new temporary directory and locate the build path in it.

    The caller owns the result and must call :meth:`Workspace.cleanup`.
    """
    relative = normalise_path(path)
    if not artifact_root.is_dir():
        raise SourcePathError(f"artifact root '{artifact_root}' is not a directory")
    root = Path(tempfile.mkdtemp(prefix="fluxd-build-")) / "source"
    workspace = Workspace(root=root, directory=root / relative, relative_path=relative)
    try:
        shutil.copytree(artifact_root, root, symlinks=True)
        _drop_escaping_symlinks(root=root, build_directory=workspace.directory)
        if not workspace.directory.is_dir():
            raise SourcePathError(f"kustomization path not found: '{relative}'", path=relative)
        if not workspace.directory.resolve().is_relative_to(root.resolve()):
            raise SymlinkEscapeError(
                f"kustomization path '{relative}' resolves outside the source root",
                path=relative,
            )
    except BaseException:
        workspace.cleanup()
        raise
    return workspace


def _drop_escaping_symlinks(*, root: Path, build_directory: Path) -> None:
    """Refuse symlinks out of the root under the build path; remove them elsewhere.

    Removing the others keeps kustomize (which may read ``../base``) from ever
    following one, while an unrelated stray link elsewhere in the repository
    does not break this build.
    """
    resolved_root = root.resolve()
    for current, directories, files in os.walk(root):
        for name in [*directories, *files]:
            entry = Path(current) / name
            if not entry.is_symlink():
                continue
            target = Path(os.path.normpath(entry.parent / os.readlink(entry)))
            if target.resolve().is_relative_to(resolved_root):
                continue
            relative = entry.relative_to(root).as_posix()
            if _is_within(entry, build_directory) or _is_within(build_directory, entry):
                raise SymlinkEscapeError(
                    f"symlink '{relative}' points outside the source root", path=relative
                )
            entry.unlink()


def _is_within(candidate: Path, directory: Path) -> bool:
    return candidate == directory or directory in candidate.parents


def ensure_kustomization(workspace: Workspace) -> Path:
    """Return the path's kustomization file, generating one for plain manifests."""
    existing = find_kustomization_file(workspace.directory)
    if existing is not None:
        return existing
    resources = scan_manifests(directory=workspace.directory, root=workspace.root)
    document = {
        "apiVersion": _KUSTOMIZATION_API_VERSION,
        "kind": "Kustomization",
        "resources": resources,
    }
    generated = workspace.directory / GENERATED_FILE_NAME
    generated.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return generated


def scan_manifests(*, directory: Path, root: Path) -> list[str]:
    """The resources of a generated kustomization, in Flux's (lexical walk) order.

    Every ``.yaml``/``.yml`` file must hold Kubernetes objects; a sub-directory
    with its own kustomization file is listed as one resource and not descended.
    """
    resources: list[str] = []

    def walk(current: Path) -> None:
        for name in sorted(os.listdir(current)):
            entry = current / name
            relative_to_build = "./" + entry.relative_to(directory).as_posix()
            if entry.is_dir() and not entry.is_symlink():
                if find_kustomization_file(entry) is not None:
                    resources.append(relative_to_build)
                else:
                    walk(entry)
                continue
            if entry.suffix not in _MANIFEST_SUFFIXES:
                continue
            _check_manifest_file(entry, source=entry.relative_to(root).as_posix())
            resources.append(relative_to_build)

    walk(directory)
    return resources


def _check_manifest_file(file: Path, *, source: str) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"failed to read {source}: {error}", path=source) from error
    for document in load_documents(text, source=source):
        if document is None:
            continue
        if not (isinstance(document, dict) and document.get("apiVersion") and document.get("kind")):
            raise ManifestError(
                f"failed to decode Kubernetes YAML from {source}: missing apiVersion or kind",
                path=source,
            )


def apply_spec(*, kustomization_file: Path, options: BuildOptions, workspace: Workspace) -> None:
    """Write the spec's namespace, prefix/suffix, patches, components and images into the file."""
    if not options.needs_kustomization_edit():
        return
    relative = kustomization_file.relative_to(workspace.root).as_posix()
    try:
        loaded: Any = yaml.load(kustomization_file.read_text(encoding="utf-8"), ManifestLoader)
    except yaml.YAMLError as error:
        raise ManifestError(f"invalid kustomization {relative}: {error}", path=relative) from error
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ManifestError(f"invalid kustomization {relative}: not a map", path=relative)
    kustomization: dict[str, Any] = loaded
    kustomization.setdefault("apiVersion", _KUSTOMIZATION_API_VERSION)
    kustomization.setdefault("kind", "Kustomization")
    if options.target_namespace:
        kustomization["namespace"] = options.target_namespace
    if options.name_prefix:
        kustomization["namePrefix"] = options.name_prefix
    if options.name_suffix:
        kustomization["nameSuffix"] = options.name_suffix
    if options.patches:
        patches = _list_field(kustomization, "patches", relative)
        patches.extend(patch.to_kustomize() for patch in options.patches)
    if options.components:
        components = _list_field(kustomization, "components", relative)
        for component in options.components:
            if not is_local_relative_path(component):
                raise BuildError(f"component path '{component}' must be local and relative")
            if options.ignore_missing_components and not (workspace.directory / component).exists():
                continue
            components.append(component)
    if options.images:
        images = _list_field(kustomization, "images", relative)
        for image in options.images:
            replacement = image.to_kustomize()
            for index, existing in enumerate(images):
                if isinstance(existing, dict) and existing.get("name") == image.name:
                    images[index] = replacement
                    break
            else:
                images.append(replacement)
    kustomization_file.write_text(
        yaml.safe_dump(kustomization, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )


def _list_field(kustomization: dict[str, Any], field: str, relative: str) -> list[Any]:
    value = kustomization.setdefault(field, [])
    if value is None:
        value = kustomization[field] = []
    if not isinstance(value, list):
        raise ManifestError(f"invalid kustomization {relative}: {field} is not a list")
    return value
