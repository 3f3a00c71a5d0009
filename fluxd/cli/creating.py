"""``fluxd create``: write a GitRepository, Kustomization, Receiver or Git Secret, as flux does.

The objects are built from the flags exactly as flux builds them (durations in
Go's spelling, ``1m0s``; a Kustomization's ``prune`` always written), so
``--export`` prints what ``flux create ... --export`` prints and the result can
be committed to Git. Without ``--export`` the object is applied (server-side,
field manager ``flux``) and the command waits, as flux does, until the daemon
reports it Ready.
"""

from __future__ import annotations

import argparse
import re
import time
import urllib.parse
from typing import Any

import anyio

from fluxd.api.duration import format_duration
from fluxd.cli.exporting import clean, render
from fluxd.cli.failures import ReconcileFailed, UsageError, WaitTimedOut
from fluxd.cli.kinds import GIT_REPOSITORIES, KUSTOMIZATIONS, RECEIVERS, CliKind, ready_condition
from fluxd.cli.session import Session
from fluxd.kube.client import Object
from fluxd.kube.resources import SECRET, Resource

FIELD_MANAGER = "flux"
POLL_SECONDS = 1.0
# RFC 1123 labels, as flux checks names before anything else.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(
            f"name '{name}' is invalid, it should adhere to standard defined in RFC 1123, "
            "the name can only contain alphanumeric characters or '-'"
        )


def parse_labels(values: list[str]) -> dict[str, str]:
    """``--label a=b,c=d`` (repeatable), as flux's ``parseLabels``."""
    labels: dict[str, str] = {}
    for value in values:
        for pair in value.split(","):
            key, separator, label = pair.partition("=")
            if not separator or not key:
                raise UsageError(f"invalid label format '{pair}', must be key=value")
            labels[key] = label
    return labels


def _metadata(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": args.name, "namespace": namespace}
    labels = parse_labels(args.label)
    if labels:
        metadata["labels"] = labels
    return metadata


def git_repository(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    url = args.url
    if not url:
        raise UsageError("url is required")
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("ssh", "http", "https"):
        raise UsageError(f"git URL scheme '{scheme}' not supported, can be: ssh, http and https")
    if not (args.branch or args.tag or args.tag_semver or args.commit or args.ref_name):
        raise UsageError(
            "a Git ref is required, use one of the following: "
            "--branch, --tag, --commit, --ref-name or --tag-semver"
        )
    ref: dict[str, str] = {}
    if args.commit:
        ref["commit"] = args.commit
        if args.branch:
            ref["branch"] = args.branch
    elif args.ref_name:
        ref["name"] = args.ref_name
    elif args.tag_semver:
        ref["semver"] = args.tag_semver
    elif args.tag:
        ref["tag"] = args.tag
    else:
        ref["branch"] = args.branch
    spec: dict[str, Any] = {"interval": format_duration(args.interval), "ref": ref, "url": url}
    if args.ignore_paths:
        spec["ignore"] = "\n".join(args.ignore_paths)
    if args.recurse_submodules:
        spec["recurseSubmodules"] = True
    if args.secret_ref:
        spec["secretRef"] = {"name": args.secret_ref}
    return _object(GIT_REPOSITORIES, _metadata(args, namespace), spec)


def _source_reference(text: str) -> dict[str, str]:
    """``--source [<kind>/]<name>[.<namespace>]``; the kind defaults to GitRepository."""
    kind, separator, rest = text.partition("/")
    if not separator:
        kind, rest = GIT_REPOSITORIES.kind, text
    if kind != GIT_REPOSITORIES.kind:
        raise UsageError(f"source kind '{kind}' is not supported, can be: GitRepository")
    name, _, namespace = rest.partition(".")
    if not name:
        raise UsageError("source is required")
    reference = {"kind": kind, "name": name}
    if namespace:
        reference["namespace"] = namespace
    return reference


def kustomization(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    path: str = args.path
    if not path:
        raise UsageError("path is required")
    if not path.startswith("./"):
        raise UsageError("path must begin with ./")
    if not args.source:
        raise UsageError("source is required")
    spec: dict[str, Any] = {
        "interval": format_duration(args.interval),
        "path": path,
        "prune": bool(args.prune),
        "sourceRef": _source_reference(args.source),
    }
    if args.target_namespace:
        spec["targetNamespace"] = args.target_namespace
    dependencies = [d for value in args.depends_on for d in value.split(",") if d]
    if dependencies:
        spec["dependsOn"] = [_dependency(d) for d in dependencies]
    if args.wait:
        spec["wait"] = True
        spec["timeout"] = format_duration(args.health_check_timeout)
    if args.service_account:
        spec["serviceAccountName"] = args.service_account
    if args.retry_interval:
        spec["retryInterval"] = format_duration(args.retry_interval)
    return _object(KUSTOMIZATIONS, _metadata(args, namespace), spec)


def _dependency(text: str) -> dict[str, str]:
    namespace, separator, name = text.partition("/")
    return {"name": name, "namespace": namespace} if separator else {"name": text}


def receiver(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    if not args.type:
        raise UsageError("Receiver type is required")
    if not args.secret_ref:
        raise UsageError("secret ref is required")
    resources = []
    for value in (r for item in args.resource for r in item.split(",") if r):
        kind, separator, name = value.partition("/")
        if not separator or not kind:
            raise UsageError(f"invalid event source '{value}', must be in format <kind>/<name>")
        resources.append({"kind": kind, "name": name})
    if not resources:
        raise UsageError("atleast one resource is required")
    spec: dict[str, Any] = {
        "resources": resources,
        "secretRef": {"name": args.secret_ref},
        "type": args.type,
    }
    events = [e for item in args.event for e in item.split(",") if e]
    if events:
        spec["events"] = events
    return _object(RECEIVERS, _metadata(args, namespace), spec)


def git_secret(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    """A basic-auth or bearer-token Secret for Git over HTTP/S, as ``flux create secret git``."""
    if not args.url:
        raise UsageError("url is required")
    scheme = urllib.parse.urlparse(args.url).scheme
    if scheme not in ("http", "https"):
        raise UsageError(
            f"git URL scheme '{scheme}' not supported by fluxd, can be: http and https"
        )
    if (not args.username or not args.password) and not args.bearer_token:
        raise UsageError(
            "for Git over HTTP/S the username and password, or a bearer token is required"
        )
    if args.username and args.password and args.bearer_token:
        raise UsageError("user credentials and bearer token cannot be used together")
    data: dict[str, str] = {}
    if args.username and args.password:
        data["username"], data["password"] = args.username, args.password
    if args.bearer_token:
        data["bearerToken"] = args.bearer_token
    if args.ca_crt_file:
        with open(args.ca_crt_file, encoding="utf-8") as ca:
            data["ca.crt"] = ca.read()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(args, namespace),
        "stringData": data,
    }


def _object(kind: CliKind, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": kind.api.api_version,
        "kind": kind.kind,
        "metadata": metadata,
        "spec": spec,
    }


_BUILDERS = {
    GIT_REPOSITORIES.kind: (git_repository, "source"),
    KUSTOMIZATIONS.kind: (kustomization, ""),
    RECEIVERS.kind: (receiver, ""),
}


def render_created(kind: CliKind, args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    check_name(args.name)
    builder, _ = _BUILDERS[kind.kind]
    return builder(args, namespace)


async def create(session: Session, args: argparse.Namespace) -> int:
    kind: CliKind = args.kind
    obj = render_created(kind, args, session.namespace)
    if args.export:
        session.terminal.data(render([clean(obj)]))
        return 0
    _, noun = _BUILDERS[kind.kind]
    what = f"{kind.kind} {noun}".strip()
    session.terminal.action(f"applying {what}")
    resource = await session.ensure_served(kind)
    applied = await session.kube.apply(resource, obj, field_manager=FIELD_MANAGER)
    session.terminal.success(f"{what} created")
    ready = await _wait_ready(session, kind, applied, what=what)
    if kind is GIT_REPOSITORIES:
        revision = ((ready.get("status") or {}).get("artifact") or {}).get("revision", "")
        session.terminal.success(f"fetched revision: {revision}")
    elif kind is KUSTOMIZATIONS:
        revision = (ready.get("status") or {}).get("lastAppliedRevision", "")
        session.terminal.success(f"applied revision {revision}")
    else:
        path = (ready.get("status") or {}).get("webhookPath", "")
        session.terminal.success(f"generated webhook URL {path}")
    return 0


async def create_secret(session: Session, args: argparse.Namespace) -> int:
    check_name(args.name)
    secret = git_secret(args, session.namespace)
    if args.export:
        session.terminal.data(render([secret]))
        return 0
    await session.kube.apply(SECRET, secret, field_manager=FIELD_MANAGER)
    session.terminal.action(f"git secret '{args.name}' created in '{session.namespace}' namespace")
    return 0


async def _wait_ready(session: Session, kind: CliKind, applied: Object, *, what: str) -> Object:
    """Until the daemon reports the new generation Ready (True: done; False: failed)."""
    session.terminal.waiting(f"waiting for {what} reconciliation")
    metadata = applied["metadata"]
    name, namespace = str(metadata["name"]), str(metadata["namespace"])
    generation = metadata.get("generation")
    deadline = time.monotonic() + session.timeout
    resource = Resource.of(kind.api)
    while True:
        obj = await session.kube.get(resource, name, namespace=namespace)
        condition = ready_condition(obj) or {}
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed == generation and condition.get("status") == "True":
            # flux says "GitRepository source reconciliation completed", "Kustomization x is ready"
            if what != kind.kind:
                session.terminal.success(f"{what} reconciliation completed")
            else:
                session.terminal.success(f"{kind.kind} {name} is ready")
            return obj
        # A retried failure leaves status.observedGeneration behind; its Ready condition is current.
        failed_now = generation in (observed, condition.get("observedGeneration"))
        if failed_now and condition.get("status") == "False":
            message = str(condition.get("message") or condition.get("reason") or "not ready")
            raise ReconcileFailed(f"{what} reconciliation failed: {message}")
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {format_duration(session.timeout)} waiting for "
                f"{kind.kind} '{namespace}/{name}' to be reconciled: is fluxd running?"
            )
        await anyio.sleep(POLL_SECONDS)
