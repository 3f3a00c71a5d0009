"""Build a source path into Kubernetes objects, as Flux's kustomize-controller does.

One entry point, :func:`build`: copy the artifact, generate or edit the
kustomization with the spec's options, run the official kustomize engine,
substitute ``postBuild`` variables and stamp ``commonMetadata``. With
``spec.decryption``, SOPS-encrypted inputs and objects are decrypted on the way
(see :mod:`fluxd.build.decrypt`); an object still encrypted at the end is
refused. Results are cached by a digest of their inputs when a
:class:`BuildCache` is given, except builds that use remote bases or decrypted
anything (see :mod:`fluxd.build.cache`). No
Kubernetes I/O happens here: ``substituteFrom`` data is fetched by the caller
and merged with :func:`collect_variables`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fluxd.build.cache import BuildCache, Built, build_key, tree_digest
from fluxd.build.decrypt import (
    DecryptionError,
    DecryptionKeys,
    EncryptedObjectError,
    decrypt_documents,
    decrypt_sources,
    open_decryptor,
    refuse_encrypted,
)
from fluxd.build.engine import choose_engine, close_engines, run_engine
from fluxd.build.errors import (
    BuildError,
    EngineError,
    EngineTimeoutError,
    ManifestError,
    RemoteBaseRefusedError,
    SourcePathError,
    SubstitutionError,
    SymlinkEscapeError,
)
from fluxd.build.generator import Workspace, apply_spec, ensure_kustomization, prepare_workspace
from fluxd.build.manifests import ManifestLoader, object_id, require_object, split_documents
from fluxd.build.manifests import load_object as _load_object
from fluxd.build.options import (
    BuildOptions,
    BuildSettings,
    EngineKind,
    Image,
    LoadRestrictor,
    Patch,
    PatchTarget,
    SubstituteReference,
)
from fluxd.build.remote import refuse_remote_bases, uses_remote_bases
from fluxd.build.substitute import (
    collect_variables,
    referenced_variables,
    substitute_document,
    substitution_runs,
    validate_variable_names,
)

__all__ = [
    "BuildCache",
    "BuildError",
    "BuildOptions",
    "BuildSettings",
    "DecryptionError",
    "DecryptionKeys",
    "EncryptedObjectError",
    "EngineError",
    "EngineKind",
    "EngineTimeoutError",
    "Image",
    "LoadRestrictor",
    "ManifestError",
    "ManifestLoader",
    "Patch",
    "PatchTarget",
    "RemoteBaseRefusedError",
    "SourcePathError",
    "SubstituteReference",
    "SubstitutionError",
    "SymlinkEscapeError",
    "build",
    "choose_engine",
    "close_engines",
    "collect_variables",
    "object_id",
    "referenced_variables",
]

_DEFAULT_SETTINGS = BuildSettings()


async def build(
    *,
    artifact_root: Path,
    path: str,
    options: BuildOptions,
    variables: Mapping[str, str] | None = None,
    settings: BuildSettings = _DEFAULT_SETTINGS,
    cache: BuildCache | None = None,
    artifact_digest: str | None = None,
    decryption_keys: DecryptionKeys | None = None,
) -> list[dict[str, Any]]:
    """Build ``path`` of the extracted artifact at ``artifact_root`` into objects.

    ``variables`` is the full substitution set (see :func:`collect_variables`);
    when ``None`` only the spec's inline ``postBuild.substitute`` is used.
    Objects come back as dicts in kustomize's output order. With a ``cache``,
    an unchanged input returns the cached objects without running kustomize;
    ``artifact_digest`` (the source's ``sha256:...``) saves hashing the tree.
    ``decryption_keys`` are the keys of ``spec.decryption`` (none: nothing
    encrypted can be decrypted); they are used only when ``options.decryption``.
    """
    effective = dict(options.substitute) if variables is None else dict(variables)
    keys: DecryptionKeys | None = None
    if options.decryption:
        keys = decryption_keys or DecryptionKeys(origin="(no decryption keys were given)")

    async def produce() -> Built:
        return await _build_uncached(
            artifact_root=artifact_root,
            path=path,
            options=options,
            variables=effective,
            settings=settings,
            keys=keys,
        )

    if cache is None:
        return (await produce()).objects
    digest = artifact_digest
    if digest is None:
        digest = await asyncio.to_thread(tree_digest, artifact_root)
    key = build_key(
        artifact_digest=digest,
        path=path,
        options=options,
        settings=settings,
        variables=effective,
        decryption=keys.fingerprint() if keys is not None else None,
    )
    return await cache.get_or_build(key, produce)


async def _build_uncached(
    *,
    artifact_root: Path,
    path: str,
    options: BuildOptions,
    variables: Mapping[str, str],
    settings: BuildSettings,
    keys: DecryptionKeys | None,
) -> Built:
    workspace, remote = await asyncio.to_thread(
        _prepare, artifact_root=artifact_root, path=path, options=options, settings=settings
    )
    try:
        if keys is None:
            output = await run_engine(
                directory=workspace.directory, workspace=workspace.root, settings=settings
            )
            documents = split_documents(output)
            decrypted = 0
        else:
            # The keys live beside the source copy, in the build's private directory,
            # and go with it.
            async with open_decryptor(
                keys,
                directory=workspace.root.parent / "sops",
                timeout_seconds=settings.timeout_seconds,
                workspace=workspace.root,
            ) as decryptor:
                await decrypt_sources(decryptor, root=workspace.root, directory=workspace.directory)
                output = await run_engine(
                    directory=workspace.directory, workspace=workspace.root, settings=settings
                )
                documents = await decrypt_documents(decryptor, split_documents(output))
                decrypted = decryptor.decrypted
    finally:
        await asyncio.to_thread(workspace.cleanup)
    objects = await asyncio.to_thread(
        _finish, documents=documents, options=options, variables=variables, settings=settings
    )
    refuse_encrypted(objects)
    # Plaintext is never kept past the reconcile that decrypted it.
    return Built(objects=objects, cacheable=not remote and decrypted == 0)


def _prepare(
    *, artifact_root: Path, path: str, options: BuildOptions, settings: BuildSettings
) -> tuple[Workspace, bool]:
    """The private workspace, and whether its build uses remote bases."""
    workspace = prepare_workspace(artifact_root=artifact_root, path=path)
    try:
        kustomization_file = ensure_kustomization(workspace)
        apply_spec(kustomization_file=kustomization_file, options=options, workspace=workspace)
        if not settings.allow_remote_bases:
            refuse_remote_bases(directory=workspace.directory, workspace=workspace.root)
            remote = False
        else:
            remote = uses_remote_bases(directory=workspace.directory, workspace=workspace.root)
    except BaseException:
        workspace.cleanup()
        raise
    return workspace, remote


def _finish(
    *,
    documents: list[str],
    options: BuildOptions,
    variables: Mapping[str, str],
    settings: BuildSettings,
) -> list[dict[str, Any]]:
    """Parse the built documents, substitute variables and apply commonMetadata."""
    substituting = substitution_runs(
        post_build=options.post_build, always=options.substitute_always, variables=variables
    )
    if substituting:
        validate_variable_names(variables)
    objects: list[dict[str, Any]] = []
    for document in documents:
        if substituting:
            obj = substitute_document(
                document, variables=variables, strict=settings.strict_substitution
            )
        else:
            obj = _load_object(document, source="build output")
        objects.append(require_object(obj, source=object_id(obj)))
    if options.common_labels or options.common_annotations:
        for obj in objects:
            _stamp_common_metadata(obj, options)
    return objects


def _stamp_common_metadata(obj: dict[str, Any], options: BuildOptions) -> None:
    # Flux sets these on the object's own metadata only (never on selectors or
    # pod templates), overriding keys that already exist.
    metadata = obj.setdefault("metadata", {})
    if options.common_labels:
        labels = metadata.get("labels") or {}
        labels.update(options.labels)
        metadata["labels"] = labels
    if options.common_annotations:
        annotations = metadata.get("annotations") or {}
        annotations.update(options.annotations)
        metadata["annotations"] = annotations
