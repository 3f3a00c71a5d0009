"""``fluxd events``: the Kubernetes Events of fluxd's objects, as ``flux events`` lists them.

Columns are LAST SEEN, TYPE, REASON, OBJECT, MESSAGE (NAMESPACE first under
``-A``), oldest first. Without ``--for`` only events about fluxd's kinds are
shown; ``--for Kustomization/name`` narrows to one object and, like flux, also
shows the events of the Kustomization's source.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio

from fluxd.cli.failures import UsageError
from fluxd.cli.kinds import ALL, KUSTOMIZATIONS, CliKind, by_kind_name
from fluxd.cli.session import Session
from fluxd.cli.terminal import human_duration, parse_timestamp, render_table
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Object
from fluxd.kube.resources import Resource

CORE_EVENT = Resource("", "v1", "Event", "events")
HEADER = ("Last seen", "Type", "Reason", "Object", "Message")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def last_seen(event: Mapping[str, Any]) -> datetime | None:
    """When an event last happened: series, lastTimestamp, eventTime, then creation."""
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        moment = parse_timestamp(value)
        if moment is not None:
            return moment
    return None


def event_row(
    event: Mapping[str, Any], *, all_namespaces: bool, now: datetime | None = None
) -> list[str]:
    involved = event.get("involvedObject") or {}
    seen = last_seen(event)
    when = "<unknown>" if seen is None else human_duration((now or datetime.now(UTC)) - seen)
    cells = [
        when,
        str(event.get("type", "")),
        str(event.get("reason", "")),
        f"{involved.get('kind', '')}/{involved.get('name', '')}",
        str(event.get("message", "")).strip(),
    ]
    if all_namespaces:
        cells.insert(0, str((event.get("metadata") or {}).get("namespace", "")))
    return cells


def parse_for(text: str) -> tuple[CliKind, str]:
    kind_name, separator, name = text.partition("/")
    kind = by_kind_name(kind_name)
    if not separator or not name or kind is None:
        kinds = ", ".join(k.kind for k in ALL)
        raise UsageError(f"--for expects Kind/name with Kind one of {kinds}; got '{text}'")
    return kind, name


def is_about_fluxd(event: Mapping[str, Any]) -> bool:
    involved = event.get("involvedObject") or {}
    group = str(involved.get("apiVersion", "")).rpartition("/")[0]
    return any(kind.kind == involved.get("kind") and kind.api.group == group for kind in ALL)


async def _subjects(session: Session, kind: CliKind, name: str) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of the object asked about, plus its source for a Kustomization."""
    subjects = [(kind.kind, session.namespace, name)]
    if kind is KUSTOMIZATIONS:
        obj = await session.kube.get_or_none(
            Resource.of(kind.api), name, namespace=session.namespace
        )
        reference = ((obj or {}).get("spec") or {}).get("sourceRef") or {}
        if reference.get("kind") and reference.get("name"):
            subjects.append(
                (
                    str(reference["kind"]),
                    str(reference.get("namespace") or session.namespace),
                    str(reference["name"]),
                )
            )
    return subjects


def _matches(event: Mapping[str, Any], subjects: Sequence[tuple[str, str, str]] | None) -> bool:
    if subjects is None:
        return is_about_fluxd(event)
    involved = event.get("involvedObject") or {}
    key = (involved.get("kind"), involved.get("namespace"), involved.get("name"))
    return key in subjects


async def events(session: Session, args: argparse.Namespace) -> int:
    all_namespaces: bool = args.all_namespaces
    namespace = None if all_namespaces else session.namespace
    subjects: list[tuple[str, str, str]] | None = None
    if args.for_object:
        if all_namespaces:
            raise UsageError("--for works in one namespace: drop -A/--all-namespaces")
        kind, name = parse_for(args.for_object)
        subjects = await _subjects(session, kind, name)
    types = {t.strip().lower() for t in args.types.split(",")} if args.types else None

    def wanted(event: Mapping[str, Any]) -> bool:
        if types is not None and str(event.get("type", "")).lower() not in types:
            return False
        return _matches(event, subjects)

    listed, version = await session.kube.list_all(CORE_EVENT, namespace=namespace)
    chosen = sorted((e for e in listed if wanted(e)), key=lambda e: last_seen(e) or _EPOCH)
    header = None if args.no_header else _header(all_namespaces)
    if chosen:
        rows = [event_row(event, all_namespaces=all_namespaces) for event in chosen]
        session.terminal.data(render_table(header, rows))
        header = None
    elif not args.watch:
        where = "any namespace" if all_namespaces else f"namespace '{session.namespace}'"
        session.terminal.failure(f"no events found in {where}")
        return 0
    if args.watch:
        await _watch(session, namespace, version, wanted, all_namespaces, header)
    return 0


def _header(all_namespaces: bool) -> list[str]:
    return ["Namespace", *HEADER] if all_namespaces else list(HEADER)


async def _watch(
    session: Session,
    namespace: str | None,
    version: str,
    wanted: Any,
    all_namespaces: bool,
    header: list[str] | None,
) -> None:
    with anyio.move_on_after(session.timeout):
        while True:
            try:
                async for change in session.kube.watch(
                    CORE_EVENT, namespace=namespace, resource_version=version
                ):
                    event: Object = change.get("object") or {}
                    version = str(event.get("metadata", {}).get("resourceVersion", version))
                    if change.get("type") not in ("ADDED", "MODIFIED") or not wanted(event):
                        continue
                    cells = event_row(event, all_namespaces=all_namespaces)
                    session.terminal.data(render_table(header, [cells]))
                    header = None
            except kube_errors.Gone:
                _, version = await session.kube.list_all(CORE_EVENT, namespace=namespace)
