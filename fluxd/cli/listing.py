"""``fluxd get``: the status of fluxd's objects, as ``flux get`` shows it.

Tables carry flux's columns (NAME, REVISION, SUSPENDED, READY, MESSAGE, with
NAMESPACE first under ``-A``); ``-o wide`` adds AGE, ``-o json|yaml`` prints the
objects themselves, ``-l`` keeps those whose labels match a selector.
``--watch`` keeps printing one row per change until ``--timeout`` or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import anyio
import yaml

from fluxd.cli.failures import ObjectNotFound, UsageError
from fluxd.cli.kinds import CliKind
from fluxd.cli.session import Session
from fluxd.cli.terminal import age, render_table
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Object
from fluxd.kube.resources import Resource

OUTPUT_FORMATS = ("table", "wide", "json", "yaml")


def header(kind: CliKind, *, all_namespaces: bool, wide: bool) -> list[str]:
    columns = [column.header for column in kind.columns]
    if wide:
        columns.append("Age")
    return ["Namespace", *columns] if all_namespaces else columns


def row(
    kind: CliKind, obj: Object, *, all_namespaces: bool, wide: bool, with_kind: bool = False
) -> list[str]:
    cells = [column.cell(obj) for column in kind.columns]
    if with_kind:
        cells[0] = f"{kind.kind.lower()}/{cells[0]}"
    if wide:
        cells.append(age(obj.get("metadata", {}).get("creationTimestamp")))
    if all_namespaces:
        cells.insert(0, str(obj.get("metadata", {}).get("namespace", "")))
    return cells


def status_matches(obj: Object, selector: tuple[str, str] | None) -> bool:
    """``--status-selector ready=false``: the condition type and status, case-insensitive."""
    if selector is None:
        return True
    wanted_type, wanted_status = selector
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if str(condition.get("type", "")).lower() == wanted_type:
            return str(condition.get("status", "")).lower() == wanted_status
    return False


def parse_status_selector(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    condition, separator, status = text.partition("=")
    if not separator or not condition or not status:
        raise UsageError(f"expected status selector in type=status format, but found: {text}")
    return condition.lower(), status.lower()


def render_objects(objects: Sequence[Object], *, output: str, single: bool) -> str:
    if output == "json":
        document: Any = objects[0] if single else _list_of(objects)
        return json.dumps(document, indent=2) + "\n"
    document = objects[0] if single else _list_of(objects)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _list_of(objects: Sequence[Object]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(objects)}


async def _list(
    session: Session, kind: CliKind, *, namespace: str | None, label_selector: str = ""
) -> tuple[list[Object], str]:
    resource = await session.ensure_served(kind)
    items, version = await session.kube.list_all(
        resource, namespace=namespace, label_selector=label_selector or None
    )
    items.sort(key=lambda obj: (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
    return items, version


async def get(session: Session, args: argparse.Namespace) -> int:
    kinds: tuple[CliKind, ...] = args.kinds
    all_namespaces: bool = args.all_namespaces
    namespace = None if all_namespaces else session.namespace
    name: str | None = args.name
    output: str = args.output
    wide = output == "wide"
    selector = parse_status_selector(args.status_selector)
    labels: str = args.label_selector
    with_kind = len(kinds) > 1 or bool(args.with_kind)
    if args.watch and len(kinds) > 1:
        raise UsageError("--watch needs a single kind, e.g. 'fluxd get sources git --watch'")

    found: list[tuple[CliKind, Object]] = []
    versions: dict[CliKind, str] = {}
    for kind in kinds:
        items, version = await _list(session, kind, namespace=namespace, label_selector=labels)
        versions[kind] = version
        found.extend(
            (kind, obj)
            for obj in items
            if (name is None or obj["metadata"]["name"] == name) and status_matches(obj, selector)
        )

    if not found and name is not None and selector is None and not args.watch:
        raise ObjectNotFound(kind=kinds[0].kind, name=name, namespace=namespace or "any")
    if output in ("json", "yaml"):
        session.terminal.data(
            render_objects([obj for _, obj in found], output=output, single=name is not None)
        )
        return 0
    if not found and not args.watch:
        where = "any namespace" if all_namespaces else f"namespace '{session.namespace}'"
        words = " or ".join(kind.kind for kind in kinds)
        session.terminal.failure(f"no {words} objects found in {where}")
        return 0
    printed_header = False
    for kind in kinds:
        rows = [
            row(kind, obj, all_namespaces=all_namespaces, wide=wide, with_kind=with_kind)
            for owner, obj in found
            if owner is kind
        ]
        if not rows and (len(kinds) > 1 or args.watch):
            continue
        table_header = (
            None if args.no_header else header(kind, all_namespaces=all_namespaces, wide=wide)
        )
        if printed_header and len(kinds) > 1:
            session.terminal.data("\n")
        session.terminal.data(render_table(table_header, rows))
        printed_header = True
    if args.watch:
        await _watch(
            session,
            kinds[0],
            namespace=namespace,
            name=name,
            version=versions[kinds[0]],
            selector=selector,
            labels=labels,
            all_namespaces=all_namespaces,
            wide=wide,
            header_printed=printed_header or bool(args.no_header),
        )
    return 0


async def _watch(
    session: Session,
    kind: CliKind,
    *,
    namespace: str | None,
    name: str | None,
    version: str,
    selector: tuple[str, str] | None,
    labels: str,
    all_namespaces: bool,
    wide: bool,
    header_printed: bool,
) -> None:
    """Print a row for every change until --timeout passes (like flux, a quiet end)."""
    resource = Resource.of(kind.api)
    with anyio.move_on_after(session.timeout):
        while True:
            try:
                async for event in session.kube.watch(
                    resource,
                    namespace=namespace,
                    resource_version=version,
                    label_selector=labels or None,
                ):
                    obj = event.get("object") or {}
                    version = str(obj.get("metadata", {}).get("resourceVersion", version))
                    if event.get("type") not in ("ADDED", "MODIFIED"):
                        continue
                    if name is not None and obj["metadata"]["name"] != name:
                        continue
                    if not status_matches(obj, selector):
                        continue
                    table_header = None
                    if not header_printed:
                        table_header = header(kind, all_namespaces=all_namespaces, wide=wide)
                        header_printed = True
                    cells = row(kind, obj, all_namespaces=all_namespaces, wide=wide)
                    session.terminal.data(render_table(table_header, [cells]))
            except kube_errors.Gone:
                _, version = await _list(session, kind, namespace=namespace, label_selector=labels)
