"""``fluxd check``: is this cluster ready for fluxd, and is fluxd working in it?

In order: the API server answers and is recent enough; every CRD fluxd serves
is installed, established and identical to the one this fluxd generates
(``fluxd gen crds``); fluxd's identity may do what the daemon does (asked with
SubjectAccessReviews for its ServiceAccount, or SelfSubjectAccessReviews for the
current credentials); the leader Lease is held and fresh; and the webhook URL
answers. ``--pre`` stops after the first step. Each finding is one ✔/✗ line;
any ✗ makes the exit code 1.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from fluxd.aio import LeaseRecord
from fluxd.api.crds import all_kinds, crd_manifest
from fluxd.cli.failures import INSTALL_CRDS_HINT, connection_problem
from fluxd.cli.session import Session
from fluxd.cli.terminal import human_duration
from fluxd.kube import errors as kube_errors
from fluxd.kube.resources import CRD, LEASE, Resource

MINIMUM_KUBERNETES = (1, 26, 0)
DEFAULT_SERVICE_ACCOUNT = "fluxd"
SUBJECT_ACCESS_REVIEW = Resource(
    "authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False
)
SELF_SUBJECT_ACCESS_REVIEW = Resource(
    "authorization.k8s.io",
    "v1",
    "SelfSubjectAccessReview",
    "selfsubjectaccessreviews",
    namespaced=False,
)
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Permission:
    """Verbs fluxd needs on one resource; ``namespace`` None means cluster-wide."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    subresource: str = ""
    in_lease_namespace: bool = False

    def label(self) -> str:
        """``gitrepositories.source.toolkit.fluxcd.io/status``, as kubectl names resources."""
        if self.resource == "*":
            return "every resource"
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{name}/{self.subresource}" if self.subresource else name


_WATCHED = ("get", "list", "watch")
_OWNED = ("get", "list", "watch", "patch", "update")


def _own(group: str, plural: str) -> list[Permission]:
    return [
        Permission(group, plural, _OWNED),
        Permission(group, plural, ("patch",), subresource="status"),
        Permission(group, plural, ("update",), subresource="finalizers"),
    ]


#: What the daemon does: its own kinds, reads of Secrets/ConfigMaps, Events, the
#: Lease, rolling restarts, and applying whatever a Kustomization holds (Flux's
#: kustomize-controller is bound to cluster-admin for that last one).
PERMISSIONS: tuple[Permission, ...] = (
    *[p for kind in all_kinds() for p in _own(kind.group, kind.plural)],
    Permission("", "secrets", _WATCHED),
    Permission("", "configmaps", _WATCHED),
    Permission("events.k8s.io", "events", ("create", "patch")),
    Permission(
        "coordination.k8s.io", "leases", ("get", "create", "update"), in_lease_namespace=True
    ),
    Permission("apps", "deployments", ("get", "list", "watch", "patch")),
    Permission("apps", "statefulsets", ("get", "list", "watch", "patch")),
    Permission("apps", "daemonsets", ("get", "list", "watch", "patch")),
    Permission("*", "*", ("get", "create", "patch", "delete")),
)


def parse_version(text: str) -> tuple[int, int, int] | None:
    found = _VERSION.match(text.strip())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def contains(expected: Any, live: Any) -> bool:
    """Whether ``live`` holds everything ``expected`` says (the server may add defaults)."""
    if isinstance(expected, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(value, live[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(live, list)
            and len(expected) == len(live)
            and all(contains(a, b) for a, b in zip(expected, live, strict=True))
        )
    return bool(expected == live)


def lease_finding(
    lease: Mapping[str, Any] | None, *, label: str, now: datetime
) -> tuple[bool, str]:
    """(ok, line) for the leader Lease."""
    if lease is None:
        return False, (
            f"no leader lease {label}: fluxd is not running here "
            "(or runs with another --lease-name/--lease-namespace)"
        )
    record = LeaseRecord.from_lease(lease)
    if not record.holder_identity or record.renew_time is None:
        return False, f"leader lease {label} is not held by anyone: is fluxd running?"
    since = now - record.renew_time
    ago = human_duration(since)
    if since > timedelta(seconds=max(record.lease_duration_seconds, 1)):
        return False, (
            f"leader lease {label} expired: last renewed {ago} ago by "
            f"'{record.holder_identity}'; is fluxd running?"
        )
    return True, f"leader lease {label} held by '{record.holder_identity}', renewed {ago} ago"


@dataclass
class Report:
    session: Session
    failed: bool = False

    def result(self, ok: bool, line: str) -> None:
        if ok:
            self.session.terminal.success(line)
        else:
            self.failed = True
            self.session.terminal.failure(line)


async def check_prerequisites(report: Report) -> None:
    report.session.terminal.action("checking prerequisites")
    version = await report.session.kube.server_version()
    text = str(version.get("gitVersion", ""))
    parsed = parse_version(text)
    minimum = ".".join(str(part) for part in MINIMUM_KUBERNETES)
    shown = text.lstrip("v").split("+")[0] or "(unknown)"
    report.result(
        parsed is not None and parsed >= MINIMUM_KUBERNETES, f"Kubernetes {shown} >={minimum}-0"
    )


async def check_crds(report: Report) -> None:
    report.session.terminal.action("checking crds")
    for kind in all_kinds():
        live = await report.session.kube.get_or_none(CRD, kind.crd_name)
        label = f"{kind.crd_name}/{kind.version}"
        if live is None:
            report.result(False, f"{kind.crd_name}: not installed: {INSTALL_CRDS_HINT}")
            continue
        established = any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (live.get("status") or {}).get("conditions") or []
        )
        if not contains(crd_manifest(kind)["spec"], live.get("spec") or {}):
            report.result(
                False, f"{label}: outdated (differs from 'fluxd gen crds'): {INSTALL_CRDS_HINT}"
            )
        elif not established:
            report.result(False, f"{label}: not established yet")
        else:
            report.result(True, label)


async def _allowed(
    session: Session, *, user: str | None, permission: Permission, verb: str, namespace: str | None
) -> bool:
    attributes: dict[str, Any] = {
        "group": permission.group,
        "resource": permission.resource,
        "verb": verb,
    }
    if permission.subresource:
        attributes["subresource"] = permission.subresource
    if namespace:
        attributes["namespace"] = namespace
    spec: dict[str, Any] = {"resourceAttributes": attributes}
    resource = SELF_SUBJECT_ACCESS_REVIEW
    if user is not None:
        resource = SUBJECT_ACCESS_REVIEW
        spec["user"] = user
        account_namespace = user.split(":")[2]
        spec["groups"] = [
            "system:serviceaccounts",
            f"system:serviceaccounts:{account_namespace}",
            "system:authenticated",
        ]
    review = {"apiVersion": resource.api_version, "kind": resource.kind, "spec": spec}
    answer = await session.kube.create(resource, review)
    return bool((answer.get("status") or {}).get("allowed"))


async def check_permissions(report: Report, *, service_account: str, lease_namespace: str) -> None:
    session = report.session
    user = (
        f"system:serviceaccount:{session.namespace}:{service_account}" if service_account else None
    )
    who = user or "the current credentials"
    session.terminal.action(f"checking permissions of {who}")
    for permission in PERMISSIONS:
        namespace = lease_namespace if permission.in_lease_namespace else None
        try:
            denied = [
                verb
                for verb in permission.verbs
                if not await _allowed(
                    session, user=user, permission=permission, verb=verb, namespace=namespace
                )
            ]
        except kube_errors.Forbidden as error:
            report.result(False, f"cannot review permissions: {error}")
            return
        where = f" in namespace {namespace}" if namespace else ""
        if denied:
            report.result(False, f"{who} cannot {', '.join(denied)} {permission.label()}{where}")
        else:
            report.result(True, f"{', '.join(permission.verbs)} {permission.label()}{where}")


async def check_leader(report: Report, *, name: str, namespace: str) -> None:
    report.session.terminal.action("checking leader election")
    lease = await report.session.kube.get_or_none(LEASE, name, namespace=namespace)
    ok, line = lease_finding(lease, label=f"{namespace}/{name}", now=datetime.now(UTC))
    report.result(ok, line)


async def check_webhook(report: Report, *, url: str) -> None:
    report.session.terminal.action("checking webhook")
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url) as response:
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        report.result(False, f"webhook {url} is not reachable: {connection_problem(error)}")
        return
    report.result(status < 500, f"webhook {url} answers (HTTP {status})")


async def check(session: Session, args: argparse.Namespace) -> int:
    report = Report(session)
    await check_prerequisites(report)
    if args.pre:
        return _conclude(report, passed="prerequisites checks passed")
    await check_crds(report)
    lease_namespace = args.lease_namespace or session.namespace
    await check_permissions(
        report, service_account=args.service_account, lease_namespace=lease_namespace
    )
    await check_leader(report, name=args.lease_name, namespace=lease_namespace)
    if args.webhook_url:
        await check_webhook(report, url=args.webhook_url)
    return _conclude(report, passed="all checks passed")


def _conclude(report: Report, *, passed: str) -> int:
    if report.failed:
        report.session.terminal.failure("check failed")
        return 1
    report.session.terminal.success(passed)
    return 0
