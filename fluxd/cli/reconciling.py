"""``fluxd reconcile``, ``suspend`` and ``resume``: ask the daemon to act now, or to stop.

A reconcile request is the ``reconcile.fluxcd.io/requestedAt`` annotation set
to the current time in Go's RFC3339Nano layout, exactly as ``flux reconcile``
sets it; the daemon copies the value to ``status.lastHandledReconcileAt`` in
the status write that ends the reconcile, which is what the command waits
for. Ready=False after that write is a failed reconcile (exit 1).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

import anyio

from fluxd.api.duration import format_duration
from fluxd.api.meta import RECONCILE_REQUEST_ANNOTATION
from fluxd.cli.failures import CommandError, ReconcileFailed, WaitTimedOut
from fluxd.cli.kinds import (
    KUSTOMIZATIONS,
    SOURCES,
    CliKind,
    is_suspended,
    ready_condition,
)
from fluxd.cli.session import Session
from fluxd.cli.terminal import rfc3339_nano
from fluxd.kube.client import Object
from fluxd.kube.resources import Resource

POLL_SECONDS = 1.0


def request_stamp() -> str:
    """Now, as ``flux reconcile`` writes it (local time, RFC3339Nano)."""
    offset = datetime.now().astimezone().utcoffset()
    assert offset is not None
    return rfc3339_nano(epoch_ns=time.time_ns(), utc_offset=offset)


def handled(obj: Object, stamp: str) -> bool:
    """Whether the daemon finished the reconcile asked for at ``stamp`` with a verdict."""
    status = obj.get("status") or {}
    if status.get("lastHandledReconcileAt") != stamp:
        return False
    condition = ready_condition(obj)
    return condition is not None and condition.get("status") in ("True", "False")


async def wait_for_reconcile(
    session: Session, kind: CliKind, *, name: str, namespace: str, stamp: str, deadline: float
) -> Object:
    session.terminal.waiting(f"waiting for {kind.kind} reconciliation")
    while True:
        obj = await session.get_named(kind, name, namespace=namespace)
        if handled(obj, stamp):
            break
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {format_duration(session.timeout)} waiting for "
                f"{kind.kind} '{namespace}/{name}' to be reconciled: is fluxd running?"
            )
        await anyio.sleep(POLL_SECONDS)
    condition = ready_condition(obj) or {}
    if condition.get("status") == "False":
        message = str(condition.get("message") or condition.get("reason") or "not ready")
        raise ReconcileFailed(f"{kind.kind} reconciliation failed: {message}")
    session.terminal.success(kind.success(obj))
    return obj


async def reconcile_one(
    session: Session, kind: CliKind, *, name: str, namespace: str, deadline: float
) -> Object:
    obj = await session.get_named(kind, name, namespace=namespace)
    if is_suspended(obj):
        raise CommandError(
            f"{kind.kind.lower()} '{name}' in namespace '{namespace}' is suspended: "
            f"resume it with 'fluxd resume {kind.command} {name} -n {namespace}'"
        )
    session.terminal.action(f"annotating {kind.kind} {name} in {namespace} namespace")
    stamp = request_stamp()
    await _patch(session, kind, name=name, namespace=namespace, patch=_request_patch(stamp))
    session.terminal.success(f"{kind.kind} annotated")
    return await wait_for_reconcile(
        session, kind, name=name, namespace=namespace, stamp=stamp, deadline=deadline
    )


def _request_patch(stamp: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: stamp}}}


async def _patch(
    session: Session, kind: CliKind, *, name: str, namespace: str, patch: dict[str, Any]
) -> Object:
    return await session.kube.patch(Resource.of(kind.api), name, patch, namespace=namespace)


def _source_of(obj: Object) -> tuple[CliKind, str, str]:
    reference = (obj.get("spec") or {}).get("sourceRef") or {}
    source_kind = str(reference.get("kind", ""))
    served = {kind.kind: kind for kind in SOURCES}
    if source_kind not in served:
        raise CommandError(
            f"source kind '{source_kind}' of kustomization '{obj['metadata']['name']}' "
            f"is not served by fluxd (only {', '.join(served)} are)"
        )
    namespace = str(reference.get("namespace") or obj["metadata"]["namespace"])
    return served[source_kind], str(reference.get("name", "")), namespace


async def reconcile(session: Session, args: argparse.Namespace) -> int:
    kind: CliKind = args.kind
    deadline = time.monotonic() + session.timeout
    if getattr(args, "with_source", False) and kind is KUSTOMIZATIONS:
        obj = await session.get_named(kind, args.name)
        source_kind, source_name, source_namespace = _source_of(obj)
        await reconcile_one(
            session, source_kind, name=source_name, namespace=source_namespace, deadline=deadline
        )
    await reconcile_one(
        session, kind, name=args.name, namespace=session.namespace, deadline=deadline
    )
    return 0


async def suspend(session: Session, args: argparse.Namespace) -> int:
    kind: CliKind = args.kind
    name: str = args.name
    await session.get_named(kind, name)
    noun = kind.kind.lower()
    session.terminal.action(f"suspending {noun} {name} in {session.namespace} namespace")
    await _patch(
        session, kind, name=name, namespace=session.namespace, patch={"spec": {"suspend": True}}
    )
    session.terminal.success(f"{noun} suspended")
    return 0


async def resume(session: Session, args: argparse.Namespace) -> int:
    kind: CliKind = args.kind
    name: str = args.name
    deadline = time.monotonic() + session.timeout
    await session.get_named(kind, name)
    noun = kind.kind.lower()
    session.terminal.action(f"resuming {noun} {name} in {session.namespace} namespace")
    stamp = request_stamp()
    patch = {"spec": {"suspend": False}, **_request_patch(stamp)}
    await _patch(session, kind, name=name, namespace=session.namespace, patch=patch)
    session.terminal.success(f"{noun} resumed")
    if args.wait:
        await wait_for_reconcile(
            session, kind, name=name, namespace=session.namespace, stamp=stamp, deadline=deadline
        )
    return 0
