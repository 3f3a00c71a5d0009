"""``fluxd export``: objects as clean YAML to keep in Git, as ``flux export`` prints them.

Only what a user writes is kept: apiVersion, kind, name, namespace, labels,
annotations and the spec; status and server-maintained metadata are dropped.
Each object is one ``---`` document with its keys in alphabetical order (Go's
YAML writer sorts them), and fields flux's Go types always write (a
Kustomization's ``prune``) are written even when false. ``create --export``
prints through the same function, so both commands agree with flux.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from fluxd.cli.failures import CommandError, UsageError
from fluxd.cli.kinds import GIT_REPOSITORIES, KUSTOMIZATIONS, CliKind
from fluxd.cli.session import Session
from fluxd.kube.client import Object
from fluxd.kube.resources import SECRET

# Spec fields flux's Go types have no ``omitempty`` on: written even when zero.
_ALWAYS: dict[str, dict[str, Any]] = {KUSTOMIZATIONS.kind: {"prune": False}}


def clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as ``flux export`` keeps it."""
    metadata = obj.get("metadata") or {}
    kept: dict[str, Any] = {"name": metadata.get("name", "")}
    if metadata.get("namespace"):
        kept["namespace"] = metadata["namespace"]
    for field in ("labels", "annotations"):
        if metadata.get(field):
            kept[field] = dict(metadata[field])
    spec = {**_ALWAYS.get(str(obj.get("kind", "")), {}), **(obj.get("spec") or {})}
    return {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "metadata": kept,
        "spec": spec,
    }


def clean_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret as ``flux export --with-credentials`` prints it: name, namespace, data, type."""
    metadata = secret.get("metadata") or {}
    kept = {"name": metadata.get("name", ""), "namespace": metadata.get("namespace", "")}
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": kept}
    for field in ("data", "type"):
        if secret.get(field):
            document[field] = secret[field]
    return document


def render(documents: Iterable[Mapping[str, Any]]) -> str:
    """``---`` then each document, as flux's ``printExport`` writes them."""
    parts = []
    for document in documents:
        text = yaml.safe_dump(
            dict(document), sort_keys=True, allow_unicode=True, width=1 << 20
        ).strip()
        parts.append(f"---\n{text}\n")
    return "".join(parts)


async def export(session: Session, args: argparse.Namespace) -> int:
    kind: CliKind = args.kind
    name: str | None = args.name
    if name is None and not args.all:
        raise UsageError("name is required")
    if name is not None:
        objects = [await session.get_named(kind, name)]
    else:
        resource = await session.ensure_served(kind)
        objects, _ = await session.kube.list_all(resource, namespace=session.namespace)
        objects.sort(key=lambda obj: str(obj["metadata"]["name"]))
        if not objects:
            raise CommandError(f"no objects found in {session.namespace} namespace")
    documents: list[dict[str, Any]] = []
    for obj in objects:
        documents.append(clean(obj))
        if kind is GIT_REPOSITORIES and getattr(args, "with_credentials", False):
            documents.extend(await _credentials(session, obj))
    session.terminal.data(render(documents))
    return 0


async def _credentials(session: Session, obj: Object) -> list[dict[str, Any]]:
    """The GitRepository's auth Secret, printed after it as flux does."""
    reference = ((obj.get("spec") or {}).get("secretRef") or {}).get("name")
    if not reference:
        return []
    namespace = str(obj["metadata"]["namespace"])
    secret = await session.kube.get_or_none(SECRET, str(reference), namespace=namespace)
    return [] if secret is None else [clean_secret(secret)]
