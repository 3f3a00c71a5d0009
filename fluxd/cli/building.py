"""``fluxd build kustomization`` and ``fluxd diff kustomization``: a local checkout, rendered.

``build`` renders a directory exactly as the daemon would render the same path
of its artifact: the Kustomization's spec from the cluster (or from
``--kustomization-file``), kustomize with Flux's additions, ``postBuild``
substitution with the ``substituteFrom`` ConfigMaps and Secrets read from the
cluster, and the owner labels the applier adds. Nothing is written to the
cluster; ``--dry-run`` does not even read it. A Kustomization with
``spec.decryption`` is decrypted with the private keys of
``--decryption-key-file`` (age identities, or armored OpenPGP keys), never
with keys read from the cluster; without one, encrypted input fails the build.

``diff`` sends every built object to the API server as a server-side *dry-run*
apply with the daemon's field manager and prints a unified diff of the live
object against the server's answer (Secret values masked as flux masks them),
plus the objects that would be created or pruned. It exits 1 when anything
would change, like ``flux diff``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import yaml

from fluxd.api.kustomize import KUSTOMIZATION
from fluxd.apply import (
    apply_order,
    inventory_from_objects,
    object_policy,
    parse_inventory,
    stale_objects,
    stamp_owner,
)
from fluxd.apply.inventory import InventoryError, ObjectRef
from fluxd.apply.ssa import FIELD_MANAGER, comparable, has_drifted
from fluxd.build import (
    BuildError,
    BuildOptions,
    BuildSettings,
    DecryptionKeys,
    build,
    collect_variables,
    referenced_variables,
)
from fluxd.cli.failures import CommandError, UsageError
from fluxd.cli.kinds import KUSTOMIZATIONS
from fluxd.cli.session import Session
from fluxd.cli.terminal import Terminal
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import CONFIG_MAP, SECRET

MASK = "***"
MASK_BEFORE = "*** (before)"
MASK_AFTER = "*** (after)"


# -- the Kustomization and the directory --------------------------------------------


def kustomization_from_file(path: Path, *, name: str) -> Object:
    """The Kustomization called ``name`` in a YAML file (one or many documents)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --kustomization-file {path}: {error.strerror}") from error
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError as error:
        raise UsageError(f"--kustomization-file {path} is not valid YAML: {error}") from error
    candidates = [
        doc
        for doc in documents
        if doc.get("kind") == KUSTOMIZATION.kind
        and str(doc.get("apiVersion", "")).startswith(f"{KUSTOMIZATION.group}/")
    ]
    for doc in candidates:
        if (doc.get("metadata") or {}).get("name") == name:
            return doc
    found = ", ".join(repr((doc.get("metadata") or {}).get("name")) for doc in candidates)
    raise UsageError(
        f"--kustomization-file {path} has no Kustomization named '{name}'"
        + (f" (found {found})" if found else "")
    )


def source_root(directory: Path) -> tuple[Path, str]:
    """The checkout root holding ``directory`` (its Git work tree, else itself) and the path in it.

    Building from the work tree's root lets ``../base`` references resolve
    exactly as they do in the daemon's artifact of the same repository.
    """
    if not directory.is_dir():
        raise UsageError(f"--path {directory} is not a directory")
    resolved = directory.resolve()
    for candidate in (resolved, *resolved.parents):
        if (candidate / ".git").exists():
            return candidate, resolved.relative_to(candidate).as_posix() or "."
    return resolved, "."


async def substitution_variables(
    kube: Kube | None, options: BuildOptions, *, namespace: str, terminal: Terminal
) -> dict[str, str] | None:
    """The full substitution set, as the daemon collects it; None without ``postBuild``."""
    if not options.post_build:
        return None
    referenced: list[Mapping[str, str]] = []
    for reference in options.substitute_from:
        if kube is None:
            terminal.warning(
                f"substituteFrom {reference.kind}/{reference.name} is not read in --dry-run mode"
            )
            continue
        resource = SECRET if reference.kind == "Secret" else CONFIG_MAP
        found = await kube.get_or_none(resource, reference.name, namespace=namespace)
        if found is None:
            if reference.optional:
                continue
            raise CommandError(
                f"substitute from '{reference.kind}/{reference.name}' failed: "
                f"{reference.kind} '{namespace}/{reference.name}' not found"
            )
        referenced.append(referenced_variables(reference.kind, found))
    return collect_variables(inline=dict(options.substitute), referenced=referenced)


def decryption_keys_from_files(paths: Sequence[str]) -> DecryptionKeys:
    """Keys for ``spec.decryption`` from local files: ``.asc`` is OpenPGP, anything else age.

    The files are read like the entries of a decryption Secret, so a key exported
    from the cluster's Secret works unchanged.
    """
    if not paths:
        return DecryptionKeys(origin="(no --decryption-key-file given)")
    entries: dict[str, bytes] = {}
    for number, name in enumerate(paths):
        path = Path(name)
        try:
            content = path.read_bytes()
        except OSError as error:
            raise UsageError(
                f"cannot read --decryption-key-file {path}: {error.strerror}"
            ) from error
        suffix = ".asc" if path.suffix == ".asc" else ".agekey"
        entries[f"{number}-{path.stem}{suffix}"] = content
    origin = "--decryption-key-file " + ", ".join(paths)
    try:
        return DecryptionKeys.from_secret_data(entries, origin=origin)
    except BuildError as error:
        raise UsageError(error.message) from error


async def render(
    kube: Kube | None,
    kustomization: Object,
    *,
    directory: Path,
    terminal: Terminal,
    decryption_key_files: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The objects the daemon would apply for ``kustomization`` if its path held ``directory``."""
    metadata = kustomization.get("metadata") or {}
    name = str(metadata.get("name", ""))
    namespace = str(metadata.get("namespace") or "")
    spec = kustomization.get("spec") or {}
    root, path = await anyio.to_thread.run_sync(source_root, directory)
    try:
        options = BuildOptions.from_spec(spec)
        variables = await substitution_variables(
            kube, options, namespace=namespace, terminal=terminal
        )
        # Without the cluster, unset variables cannot be told from unread ones.
        settings = BuildSettings(strict_substitution=kube is not None)
        keys = decryption_keys_from_files(decryption_key_files) if options.decryption else None
        objects = await build(
            artifact_root=root,
            path=path,
            options=options,
            variables=variables,
            settings=settings,
            decryption_keys=keys,
        )
    except BuildError as error:
        raise CommandError(f"build failed: {error}") from error
    objects = [copy.deepcopy(obj) for obj in objects]
    stamp_owner(objects, name=name, namespace=namespace)
    return objects


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    return "---\n".join(
        yaml.safe_dump(dict(obj), sort_keys=False, allow_unicode=True) for obj in objects
    )


async def _kustomization(session: Session | None, args: argparse.Namespace) -> Object:
    name: str = args.name
    if args.kustomization_file:
        found = kustomization_from_file(Path(args.kustomization_file), name=name)
        found.setdefault("metadata", {}).setdefault("namespace", args.namespace)
        return found
    if session is None:
        raise UsageError(
            "--dry-run needs --kustomization-file: the spec cannot come from the cluster"
        )
    return await session.get_named(KUSTOMIZATIONS, name)


# -- commands -----------------------------------------------------------------------


async def build_offline(args: argparse.Namespace, terminal: Terminal) -> int:
    """``build --dry-run``: no cluster at all."""
    kustomization = await _kustomization(None, args)
    objects = await render(
        None,
        kustomization,
        directory=Path(args.path),
        terminal=terminal,
        decryption_key_files=args.decryption_key_file,
    )
    terminal.data(to_yaml(objects))
    return 0


async def build_command(session: Session, args: argparse.Namespace) -> int:
    kustomization = await _kustomization(session, args)
    objects = await render(
        session.kube,
        kustomization,
        directory=Path(args.path),
        terminal=session.terminal,
        decryption_key_files=args.decryption_key_file,
    )
    session.terminal.data(to_yaml(objects))
    return 0


async def diff_command(session: Session, args: argparse.Namespace) -> int:
    kustomization = await _kustomization(session, args)
    objects = await render(
        session.kube,
        kustomization,
        directory=Path(args.path),
        terminal=session.terminal,
        decryption_key_files=args.decryption_key_file,
    )
    report, changed, problems = await diff_objects(session.kube, objects)
    spec = kustomization.get("spec") or {}
    if spec.get("prune") and not problems:
        try:
            previous = parse_inventory((kustomization.get("status") or {}).get("inventory"))
        except InventoryError:
            previous = []
        for ref in stale_objects(previous, inventory_from_objects(objects)):
            report.append(f"► {ref.subject} deleted\n")
            changed = True
    session.terminal.data("".join(report))
    for problem in problems:
        session.terminal.failure(problem)
    if problems:
        return 1
    if changed:
        session.terminal.failure("identified at least one change, exiting with non-zero exit code")
        return 1
    return 0


# -- the diff -----------------------------------------------------------------------


def mask_secret_data(live: dict[str, Any], merged: dict[str, Any]) -> None:
    """Replace Secret values with flux's masks: ``***``, or ``*** (before)``/``*** (after)``."""
    old = dict(live.get("data") or {})
    new = dict(merged.get("data") or {})
    for key in set(old) | set(new):
        if key in old and key in new and old[key] != new[key]:
            old[key], new[key] = MASK_BEFORE, MASK_AFTER
            continue
        if key in old:
            old[key] = MASK
        if key in new:
            new[key] = MASK
    if old:
        live["data"] = old
    if new:
        merged["data"] = new


def unified_diff(live: Mapping[str, Any], merged: Mapping[str, Any], *, subject: str) -> str:
    before = comparable(live)
    after = comparable(merged)
    if before.get("kind") == "Secret":
        mask_secret_data(before, after)
    lines = difflib.unified_diff(
        yaml.safe_dump(before, sort_keys=True, allow_unicode=True).splitlines(keepends=True),
        yaml.safe_dump(after, sort_keys=True, allow_unicode=True).splitlines(keepends=True),
        fromfile=f"{subject} (live)",
        tofile=f"{subject} (merged)",
    )
    return "".join(lines)


async def diff_objects(
    kube: Kube, objects: Sequence[dict[str, Any]]
) -> tuple[list[str], bool, list[str]]:
    """The report lines, whether anything would change, and the objects that could not be diffed."""
    report: list[str] = []
    problems: list[str] = []
    changed = False
    defined_here = {
        (
            str(obj.get("spec", {}).get("group", "")),
            str(obj.get("spec", {}).get("names", {}).get("kind", "")),
        )
        for obj in objects
        if obj.get("kind") == "CustomResourceDefinition"
    }
    for stage in apply_order(objects):
        for planned in stage:
            obj = dict(planned)
            if object_policy(obj).skip_apply:
                continue
            subject = ObjectRef.from_object(obj).subject
            api_version = str(obj.get("apiVersion", ""))
            try:
                resource = await kube.resource_for(api_version, str(obj.get("kind", "")))
            except kube_errors.NotFound:
                if (api_version.rpartition("/")[0], str(obj.get("kind", ""))) in defined_here:
                    report.append(f"► {subject} created\n")
                    changed = True
                else:
                    problems.append(
                        f"{subject}: no kind {obj.get('kind')} in {api_version} on the server "
                        "(is its CustomResourceDefinition installed?)"
                    )
                continue
            metadata = obj.setdefault("metadata", {})
            if not resource.namespaced:
                metadata.pop("namespace", None)
                subject = ObjectRef.from_object(obj).subject
            elif not metadata.get("namespace"):
                problems.append(f"{subject} namespace not specified")
                continue
            live = await kube.get_or_none(
                resource, metadata["name"], namespace=metadata.get("namespace")
            )
            if live is None:
                report.append(f"► {subject} created\n")
                changed = True
                continue
            try:
                merged = await kube.apply(
                    resource, obj, field_manager=FIELD_MANAGER, force=True, dry_run=True
                )
            except kube_errors.ApiError as error:
                problems.append(f"{subject} dry-run failed: {error}")
                continue
            if has_drifted(live, merged):
                report.append(f"► {subject} drifted\n")
                report.append(unified_diff(live, merged, subject=subject))
                changed = True
    return report, changed, problems
