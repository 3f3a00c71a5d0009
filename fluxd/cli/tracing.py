"""``fluxd tree`` and ``fluxd trace``: what a Kustomization manages, and what manages an object.

``tree kustomization NAME`` walks ``status.inventory``, descending into the
Kustomizations it applied, and draws it as ``flux tree`` does (``├──``,
``└──``, ``Kind/namespace/name``). ``trace NAME --kind K --api-version V``
(or ``trace deployment NAME``, ``trace cm/NAME``, as kubectl names kinds) reads
the owner labels fluxd (and kustomize-controller) stamp on everything they
apply, then prints the Kustomization and its GitRepository in ``flux trace``'s
layout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import yaml

from fluxd.api import meta
from fluxd.apply.inventory import InventoryError, ObjectRef, parse_inventory
from fluxd.cli.failures import CommandError, UsageError
from fluxd.cli.kinds import GIT_REPOSITORIES, KUSTOMIZATIONS, ready_condition
from fluxd.cli.session import Session
from fluxd.cli.terminal import parse_timestamp
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Object

_MIDDLE, _LAST, _CONTINUE, _EMPTY = "├── ", "└── ", "│   ", "    "
_COMPACT_GROUP = "toolkit.fluxcd.io"


@dataclass
class Node:
    ref: ObjectRef
    children: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """flux's JSON/YAML shape: the object's metadata and its resources."""
        document: dict[str, Any] = {
            "resource": {
                "Namespace": self.ref.namespace,
                "Name": self.ref.name,
                "Group": self.ref.group,
                "Kind": self.ref.kind,
            }
        }
        if self.children:
            document["resources"] = [child.as_dict() for child in self.children]
        return document


def draw(root: Node) -> str:
    """The tree as ``flux tree`` prints it."""
    lines = [root.ref.subject]

    def walk(children: list[Node], spaces: list[bool]) -> None:
        for index, child in enumerate(children):
            last = index == len(children) - 1
            prefix = "".join(_EMPTY if space else _CONTINUE for space in spaces)
            lines.append(f"{prefix}{_LAST if last else _MIDDLE}{child.ref.subject}")
            walk(child.children, [*spaces, last])

    walk(root.children, [])
    return "\n".join(lines) + "\n"


def _inventory(obj: Mapping[str, Any]) -> list[ObjectRef]:
    try:
        return parse_inventory((obj.get("status") or {}).get("inventory"))
    except InventoryError as error:
        raise CommandError(f"invalid inventory: {error}") from error


def _is_kustomization(ref: ObjectRef) -> bool:
    return ref.group == KUSTOMIZATIONS.api.group and ref.kind == KUSTOMIZATIONS.kind


async def _grow(session: Session, node: Node, obj: Object, *, compact: bool) -> None:
    metadata = obj["metadata"]
    for ref in _inventory(obj):
        if compact and _COMPACT_GROUP not in ref.group:
            continue
        if _is_kustomization(ref) and (ref.namespace, ref.name) == (
            metadata.get("namespace"),
            metadata.get("name"),
        ):
            continue
        child = Node(ref)
        node.children.append(child)
        remote = bool((obj.get("spec") or {}).get("kubeConfig"))
        if _is_kustomization(ref) and not remote:
            nested = await session.kube.get_or_none(
                await session.ensure_served(KUSTOMIZATIONS), ref.name, namespace=ref.namespace
            )
            if nested is None:
                raise CommandError(
                    f"failed to find object: Kustomization '{ref.namespace}/{ref.name}' not found"
                )
            await _grow(session, child, nested, compact=compact)


async def tree(session: Session, args: argparse.Namespace) -> int:
    obj = await session.get_named(KUSTOMIZATIONS, args.name)
    metadata = obj["metadata"]
    root = Node(
        ObjectRef(
            namespace=str(metadata["namespace"]),
            name=str(metadata["name"]),
            group=KUSTOMIZATIONS.api.group,
            kind=KUSTOMIZATIONS.kind,
        )
    )
    await _grow(session, root, obj, compact=args.compact)
    if args.output == "json":
        session.terminal.data(json.dumps(root.as_dict(), indent=2) + "\n")
    elif args.output == "yaml":
        session.terminal.data(yaml.safe_dump(root.as_dict(), sort_keys=False))
    else:
        session.terminal.data(draw(root) + "\n")
    return 0


# -- trace ------------------------------------------------------------------------------


def go_time(value: object) -> str:
    """A condition's time as Go's ``time.Time.String`` prints it (what flux trace shows)."""
    parsed = parse_timestamp(value)
    if parsed is None:
        return str(value or "")
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _line(label: str, value: object) -> str:
    return f"{label + ':':<17}{value}"


def report(
    *,
    obj: Mapping[str, Any],
    kustomization: Mapping[str, Any],
    repository: Mapping[str, Any] | None,
) -> str:
    """``flux trace``'s report for an object applied by ``kustomization``."""
    metadata = obj.get("metadata") or {}
    lines = ["", _line("Object", f"{obj.get('kind')}/{metadata.get('name')}")]
    if metadata.get("namespace"):
        lines.append(_line("Namespace", metadata["namespace"]))
    lines.append(_line("Status", "Managed by Flux"))

    ks_metadata, ks_spec = kustomization.get("metadata") or {}, kustomization.get("spec") or {}
    ks_status = kustomization.get("status") or {}
    lines += [
        "---",
        _line("Kustomization", ks_metadata.get("name", "")),
        _line("Namespace", ks_metadata.get("namespace", "")),
    ]
    if ks_spec.get("targetNamespace"):
        lines.append(_line("Target", ks_spec["targetNamespace"]))
    lines += [
        _line("Path", ks_spec.get("path", "")),
        _line("Revision", ks_status.get("lastAppliedRevision", "")),
    ]
    ready = ready_condition(kustomization)
    if ready is not None:
        lines += [
            _line("Status", f"Last reconciled at {go_time(ready.get('lastTransitionTime'))}"),
            _line("Message", ready.get("message", "")),
        ]
    else:
        lines.append(_line("Status", "Unknown"))

    if repository is not None:
        source_metadata = repository.get("metadata") or {}
        spec = repository.get("spec") or {}
        ref = spec.get("ref") or {}
        lines += [
            "---",
            _line("GitRepository", source_metadata.get("name", "")),
            _line("Namespace", source_metadata.get("namespace", "")),
            _line("URL", spec.get("url", "")),
        ]
        if ref.get("tag"):
            lines.append(_line("Tag", ref["tag"]))
        elif ref.get("semver"):
            lines.append(_line("Tag", ref["semver"]))
        elif ref.get("branch"):
            lines.append(_line("Branch", ref["branch"]))
        artifact = (repository.get("status") or {}).get("artifact")
        if artifact:
            lines.append(_line("Revision", artifact.get("revision", "")))
        source_ready = ready_condition(repository)
        if source_ready is not None:
            when = go_time(source_ready.get("lastTransitionTime"))
            verdict = (
                "Last reconciliation failed at"
                if source_ready.get("status") == "False"
                else "Last reconciled at"
            )
            lines += [
                _line("Status", f"{verdict} {when}"),
                _line("Message", source_ready.get("message", "")),
            ]
        else:
            lines.append(_line("Status", "Unknown"))
    return "\n".join(lines) + "\n"


def _matches(entry: Mapping[str, Any], word: str) -> bool:
    names = {
        str(entry.get("name", "")),
        str(entry.get("singularName", "")),
        str(entry.get("kind", "")).lower(),
        *(str(short) for short in entry.get("shortNames") or []),
    }
    return word.lower() in names


async def resolve_kind(session: Session, word: str) -> tuple[str, str]:
    """``(apiVersion, Kind)`` of a kubectl-style resource word: ``deployment``, ``cm``, ``ks``.

    The core group is asked first, then every group's preferred version, as
    kubectl's REST mapper does.
    """
    candidates = ["/api/v1"]
    groups = await session.kube.request("GET", "/apis")
    for group in groups.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        if preferred:
            candidates.append(f"/apis/{preferred}")
    for path in candidates:
        try:
            listing = await session.kube.request("GET", path)
        except kube_errors.NotFound:
            continue
        for entry in listing.get("resources") or []:
            if "/" not in str(entry.get("name", "")) and _matches(entry, word):
                api_version = path.removeprefix("/apis/").removeprefix("/api/")
                return api_version, str(entry["kind"])
    raise CommandError(f'the server doesn\'t have a resource type "{word}"')


async def _targets(session: Session, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(apiVersion, Kind, name)`` of every object named on the command line, as flux reads them.

    ``--kind`` and ``--api-version`` go together; without them the words are
    ``<resource> <name> [<name> ...]`` or ``<resource>/<name> ...``.
    """
    words: list[str] = args.objects
    if bool(args.kind) != bool(args.api_version):
        raise UsageError("both --kind and --api-version are needed, or neither")
    if args.kind:
        if not words:
            raise UsageError("object name is required")
        kind = args.kind
        try:
            resource = await session.kube.resource_for(args.api_version, kind)
        except kube_errors.NotFound:
            # flux accepts --kind=helmrelease: the kind as any case
            _, kind = await resolve_kind(session, kind)
            resource = await session.kube.resource_for(args.api_version, kind)
        return [(args.api_version, resource.kind, name) for name in words]
    if not words:
        raise UsageError("a resource and a name are required, e.g. 'deployment my-app'")
    targets: list[tuple[str, str, str]] = []
    if all("/" in word for word in words):
        for word in words:
            resource_word, _, name = word.partition("/")
            api_version, kind = await resolve_kind(session, resource_word)
            targets.append((api_version, kind, name))
        return targets
    if len(words) < 2 or any("/" in word for word in words):
        raise UsageError("expected '<resource> <name> [<name> ...]' or '<resource>/<name> ...'")
    api_version, kind = await resolve_kind(session, words[0])
    return [(api_version, kind, name) for name in words[1:]]


async def _trace_one(session: Session, api_version: str, kind: str, name: str) -> str:
    resource = await session.kube.resource_for(api_version, kind)
    namespace = session.namespace if resource.namespaced else None
    obj = await session.kube.get_or_none(resource, name, namespace=namespace)
    if obj is None:
        where = f" in namespace '{namespace}'" if namespace else ""
        raise CommandError(f"failed to find object: {kind} '{name}' not found{where}")
    obj.setdefault("kind", kind)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    owner_name = labels.get(meta.KUSTOMIZE_NAME_LABEL)
    owner_namespace = labels.get(meta.KUSTOMIZE_NAMESPACE_LABEL)
    if not owner_name or not owner_namespace:
        raise CommandError("object not managed by Flux")
    try:
        kustomization = await session.get_named(
            KUSTOMIZATIONS, owner_name, namespace=owner_namespace
        )
    except CommandError as error:
        raise CommandError(f"failed to find kustomization: {error.message}") from error
    repository: Object | None = None
    reference = (kustomization.get("spec") or {}).get("sourceRef") or {}
    if reference.get("kind") == GIT_REPOSITORIES.kind:
        source_namespace = str(reference.get("namespace") or owner_namespace)
        try:
            repository = await session.get_named(
                GIT_REPOSITORIES, str(reference.get("name", "")), namespace=source_namespace
            )
        except CommandError as error:
            raise CommandError(f"failed to find GitRepository: {error.message}") from error
    return report(obj=obj, kustomization=kustomization, repository=repository)


async def trace(session: Session, args: argparse.Namespace) -> int:
    targets = await _targets(session, args)
    if len(targets) == 1:
        session.terminal.data(await _trace_one(session, *targets[0]))
        return 0
    # Several objects: each report in turn, '---' between, a failure reported and skipped.
    failed = False
    for index, (api_version, kind, name) in enumerate(targets):
        try:
            session.terminal.data(await _trace_one(session, api_version, kind, name))
        except CommandError as error:
            failed = True
            session.terminal.failure(
                f"failed to trace {kind}/{name} in namespace {session.namespace}: {error.message}"
            )
        if index < len(targets) - 1:
            session.terminal.data("---\n")
    return 1 if failed else 0
