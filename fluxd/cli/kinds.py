"""The kinds the command line speaks about, and how ``flux`` shows each of them.

One row per kind: its API identity, the words used on the command line
(``source git``, ``kustomization``), the columns ``flux get`` prints for it and
the sentence ``flux reconcile`` ends with. Columns read the same status fields
flux reads, so an object looks the same in both tools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fluxd.api import meta
from fluxd.api.bucket import BUCKET
from fluxd.api.helm import HELM_CHART, HELM_REPOSITORY, HELM_REPOSITORY_TYPE_OCI
from fluxd.api.kustomize import KUSTOMIZATION
from fluxd.api.meta import ResourceKind
from fluxd.api.notification import ALERT, PROVIDER, RECEIVER
from fluxd.api.oci import OCI_REPOSITORY
from fluxd.api.source import GIT_REPOSITORY
from fluxd.cli.terminal import truncate_hex

Object = Mapping[str, Any]
Cell = Callable[[Object], str]


def ready_condition(obj: Object) -> Mapping[str, Any] | None:
    condition = meta.condition_of(obj, meta.ConditionType.READY)
    return dict(condition) if condition is not None else None


def ready_and_message(obj: Object) -> tuple[str, str]:
    """flux's READY and MESSAGE cells: the Ready condition, or 'waiting to be reconciled'."""
    condition = ready_condition(obj)
    if condition is None:
        return "False", "waiting to be reconciled"
    return str(condition.get("status", "Unknown")), str(condition.get("message", ""))


def is_suspended(obj: Object) -> bool:
    return bool((obj.get("spec") or {}).get("suspend"))


def _suspended(obj: Object) -> str:
    return "True" if is_suspended(obj) else "False"


def _ready(obj: Object) -> str:
    return ready_and_message(obj)[0]


def _message(obj: Object) -> str:
    return truncate_hex(ready_and_message(obj)[1])


def _artifact_revision(obj: Object) -> str:
    artifact = (obj.get("status") or {}).get("artifact") or {}
    return truncate_hex(str(artifact.get("revision", "")))


def _applied_revision(obj: Object) -> str:
    return truncate_hex(str((obj.get("status") or {}).get("lastAppliedRevision", "")))


def _static_ready(kind: str) -> tuple[Cell, Cell]:
    """Alerts and Providers have no status in flux's v1beta3 API: flux shows them as ready."""

    def ready(obj: Object) -> str:
        return _ready(obj) if ready_condition(obj) else "True"

    def message(obj: Object) -> str:
        return _message(obj) if ready_condition(obj) else f"{kind} is Ready"

    return ready, message


@dataclass(frozen=True)
class Column:
    header: str
    cell: Cell


@dataclass(frozen=True)
class CliKind:
    """One kind as the command line names, lists and reconciles it."""

    api: ResourceKind
    #: The words after the verb: ``source git``, ``kustomization``.
    words: tuple[str, ...]
    columns: tuple[Column, ...]
    #: What ``reconcile`` prints once the object is ready again.
    success: Callable[[Object], str]

    @property
    def kind(self) -> str:
        return self.api.kind

    @property
    def command(self) -> str:
        return " ".join(self.words)


_NAME = Column("Name", lambda obj: str(obj["metadata"]["name"]))
_REVISION_OF_ARTIFACT = Column("Revision", _artifact_revision)
_SUSPENDED = Column("Suspended", _suspended)
_READY = Column("Ready", _ready)
_MESSAGE = Column("Message", _message)
_ALERT_READY, _ALERT_MESSAGE = _static_ready("Alert")
_PROVIDER_READY, _PROVIDER_MESSAGE = _static_ready("Provider")

GIT_REPOSITORIES = CliKind(
    api=GIT_REPOSITORY,
    words=("source", "git"),
    columns=(_NAME, _REVISION_OF_ARTIFACT, _SUSPENDED, _READY, _MESSAGE),
    success=lambda obj: (
        "fetched revision "
        + str(((obj.get("status") or {}).get("artifact") or {}).get("revision", ""))
    ),
)
OCI_REPOSITORIES = CliKind(
    api=OCI_REPOSITORY,
    words=("source", "oci"),
    columns=(_NAME, _REVISION_OF_ARTIFACT, _SUSPENDED, _READY, _MESSAGE),
    success=lambda obj: (
        "fetched revision "
        + str(((obj.get("status") or {}).get("artifact") or {}).get("revision", ""))
    ),
)


def _fetched_revision(obj: Object) -> str:
    return "fetched revision " + str(
        ((obj.get("status") or {}).get("artifact") or {}).get("revision", "")
    )


def _is_oci(obj: Object) -> bool:
    return (obj.get("spec") or {}).get("type") == HELM_REPOSITORY_TYPE_OCI


def _helm_ready(obj: Object) -> str:
    # flux shows an OCI HelmRepository, a static object, as ready.
    return "True" if _is_oci(obj) else _ready(obj)


def _helm_message(obj: Object) -> str:
    return "Helm repository is Ready" if _is_oci(obj) else _message(obj)


def _helm_success(obj: Object) -> str:
    if _is_oci(obj):
        return str((ready_condition(obj) or {}).get("message", ""))
    return _fetched_revision(obj)


HELM_REPOSITORIES = CliKind(
    api=HELM_REPOSITORY,
    words=("source", "helm"),
    columns=(
        _NAME,
        _REVISION_OF_ARTIFACT,
        _SUSPENDED,
        Column("Ready", _helm_ready),
        Column("Message", _helm_message),
    ),
    success=_helm_success,
)
HELM_CHARTS = CliKind(
    api=HELM_CHART,
    words=("source", "chart"),
    columns=(_NAME, _REVISION_OF_ARTIFACT, _SUSPENDED, _READY, _MESSAGE),
    success=_fetched_revision,
)
BUCKETS = CliKind(
    api=BUCKET,
    words=("source", "bucket"),
    columns=(_NAME, _REVISION_OF_ARTIFACT, _SUSPENDED, _READY, _MESSAGE),
    success=_fetched_revision,
)
KUSTOMIZATIONS = CliKind(
    api=KUSTOMIZATION,
    words=("kustomization",),
    columns=(_NAME, Column("Revision", _applied_revision), _SUSPENDED, _READY, _MESSAGE),
    success=lambda obj: (
        "applied revision " + str((obj.get("status") or {}).get("lastAppliedRevision", ""))
    ),
)
RECEIVERS = CliKind(
    api=RECEIVER,
    words=("receiver",),
    columns=(_NAME, _SUSPENDED, _READY, _MESSAGE),
    success=lambda obj: "Receiver reconciliation completed",
)
ALERTS = CliKind(
    api=ALERT,
    words=("alert",),
    columns=(_NAME, _SUSPENDED, Column("Ready", _ALERT_READY), Column("Message", _ALERT_MESSAGE)),
    success=lambda obj: "Alert reconciliation completed",
)
PROVIDERS = CliKind(
    api=PROVIDER,
    words=("alert-provider",),
    columns=(_NAME, Column("Ready", _PROVIDER_READY), Column("Message", _PROVIDER_MESSAGE)),
    success=lambda obj: "Provider reconciliation completed",
)

SOURCES: tuple[CliKind, ...] = (
    GIT_REPOSITORIES,
    OCI_REPOSITORIES,
    HELM_REPOSITORIES,
    HELM_CHARTS,
    BUCKETS,
)
ALL: tuple[CliKind, ...] = (
    GIT_REPOSITORIES,
    OCI_REPOSITORIES,
    HELM_REPOSITORIES,
    HELM_CHARTS,
    BUCKETS,
    KUSTOMIZATIONS,
    RECEIVERS,
    ALERTS,
    PROVIDERS,
)


def by_kind_name(text: str) -> CliKind | None:
    """The kind called ``text`` (``Kustomization``, ``kustomization``, ``ks``, ``gitrepo``)."""
    wanted = text.lower()
    for candidate in ALL:
        names = {candidate.kind.lower(), candidate.api.plural, *candidate.api.short_names}
        if wanted in names:
            return candidate
    return None
