"""Vocabulary shared by every kind fluxd serves: identities, conditions, well-known keys.

These are Flux's own strings (condition types and reasons from fluxcd/pkg
``apis/meta`` and the controllers, annotation and label keys, the finalizer
name), so that status written by fluxd reads exactly like status written by
Flux to the ``flux`` CLI, kstatus and dashboards.  The condition helpers work on
plain lists of dicts and follow fluxcd/pkg's ``runtime/conditions`` setter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired, TypedDict, cast

from fluxd.api.duration import format_duration
from fluxd.api.schema import Doc, Format, Length, Minimum, Pattern, Schema


@dataclass(frozen=True)
class ResourceKind:
    """Identity of a Kubernetes resource type: enough to build every URL and CRD name."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``group/version``, or just ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        """The CustomResourceDefinition's ``metadata.name``: ``<plural>.<group>``."""
        return f"{self.plural}.{self.group}"


class ConditionType(StrEnum):
    """Condition types Flux's controllers write; abnormal-true ones appear only when True."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    HEALTHY = "Healthy"
    ARTIFACT_IN_STORAGE = "ArtifactInStorage"
    ARTIFACT_OUTDATED = "ArtifactOutdated"
    SOURCE_VERIFIED = "SourceVerified"
    FETCH_FAILED = "FetchFailed"
    BUILD_FAILED = "BuildFailed"
    STORAGE_OPERATION_FAILED = "StorageOperationFailed"
    INCLUDE_UNAVAILABLE = "IncludeUnavailable"


class Reason(StrEnum):
    """Condition and event reasons Flux uses; dashboards colour objects by these."""

    # Generic (fluxcd/pkg apis/meta).
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PROGRESSING = "Progressing"
    PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
    SUSPENDED = "Suspended"
    DEPENDENCY_NOT_READY = "DependencyNotReady"
    RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
    RECONCILIATION_FAILED = "ReconciliationFailed"
    # kustomize-controller.
    ARTIFACT_FAILED = "ArtifactFailed"
    BUILD_FAILED = "BuildFailed"
    HEALTH_CHECK_FAILED = "HealthCheckFailed"
    PRUNE_FAILED = "PruneFailed"
    INVALID_CEL_EXPRESSION = "InvalidCELExpression"
    # source-controller.
    GIT_OPERATION_SUCCEEDED = "GitOperationSucceeded"
    GIT_OPERATION_FAILED = "GitOperationFailed"
    AUTHENTICATION_FAILED = "AuthenticationFailed"
    URL_INVALID = "URLInvalid"
    VERIFICATION_ERROR = "VerificationError"
    DIRECTORY_CREATION_FAILED = "DirectoryCreationFailed"
    STAT_OPERATION_FAILED = "StatOperationFailed"
    READ_OPERATION_FAILED = "ReadOperationFailed"
    ACQUIRE_LOCK_FAILED = "AcquireLockFailed"
    INVALID_PATH = "InvalidPath"
    ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"
    SYMLINK_UPDATE_FAILED = "SymlinkUpdateFailed"
    ARTIFACT_UP_TO_DATE = "ArtifactUpToDate"
    CACHE_OPERATION_FAILED = "CacheOperationFailed"
    NEW_ARTIFACT = "NewArtifact"
    # fluxd's own: the object sets a field fluxd refuses (see fluxd.api.support).
    UNSUPPORTED_FIELD = "UnsupportedField"


# Finalizer every Flux controller puts on the objects it reconciles.
FINALIZER = "finalizers.fluxcd.io"

# Any change of this annotation's value asks for a reconcile now (``flux reconcile``).
RECONCILE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
# A one-off forced reconcile; honoured when its value equals the request annotation's.
FORCE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/forceAt"

# Ownership labels kustomize-controller puts on everything it applies.
KUSTOMIZE_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"

# Per-object annotations a user puts in manifests to steer apply, prune and substitution.
SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"  # Merge | IfNotPresent | Ignore
PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"  # disabled
FORCE_ANNOTATION = "kustomize.toolkit.fluxcd.io/force"  # enabled
RECONCILE_ANNOTATION = "kustomize.toolkit.fluxcd.io/reconcile"  # disabled
SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"  # disabled
ENABLED_VALUE = "enabled"
DISABLED_VALUE = "disabled"
SSA_MERGE_VALUE = "Merge"
SSA_IF_NOT_PRESENT_VALUE = "IfNotPresent"
SSA_IGNORE_VALUE = "Ignore"

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(TypedDict):
    """Condition contains details for one aspect of the current state of this API Resource."""

    type: Annotated[
        str,
        Doc("Type of condition in CamelCase or in foo.example.com/CamelCase."),
        Length(max=316),
        Pattern(
            r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        ),
    ]
    status: Annotated[ConditionStatus, Doc("Status of the condition, one of True, False, Unknown.")]
    observedGeneration: NotRequired[
        Annotated[
            int,
            Doc("The .metadata.generation that the condition was set based upon."),
            Minimum(0),
        ]
    ]
    lastTransitionTime: Annotated[
        str,
        Doc("Last time the condition transitioned from one status to another."),
        Format("date-time"),
    ]
    reason: Annotated[
        str,
        Doc("Programmatic identifier for the condition's last transition, in CamelCase."),
        Length(min=1, max=1024),
        Pattern(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ]
    message: Annotated[
        str,
        Doc("Human readable message indicating details about the transition."),
        Length(max=32768),
    ]


class LocalObjectReference(TypedDict):
    """Reference to an object in the same namespace."""

    name: Annotated[str, Doc("Name of the referent.")]


class ObjectMeta(TypedDict, total=False):
    """The parts of ``metadata`` fluxd reads; the apiserver owns its schema."""

    name: str
    namespace: str
    uid: str
    generation: int
    resourceVersion: str
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]


# The metadata field of every kind: validated by the apiserver, so only "an object" here.
Metadata = Annotated[ObjectMeta, Schema({"type": "object"})]


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC at whole seconds, as ``metav1.Time`` serialises."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of the given type, or None."""
    for condition in conditions:
        if condition["type"] == condition_type:
            return condition
    return None


def condition_status(conditions: Sequence[Condition], condition_type: str) -> ConditionStatus:
    """Status of the condition of the given type; ``Unknown`` when it is absent."""
    condition = find_condition(conditions, condition_type)
    return "Unknown" if condition is None else condition.get("status", "Unknown")


def conditions_of(obj: Mapping[str, Any]) -> list[Condition]:
    """``status.conditions`` of any object as the API returned it, skipping malformed entries."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return [
        cast(Condition, condition)
        for condition in conditions
        if isinstance(condition, Mapping) and "type" in condition
    ]


def condition_of(obj: Mapping[str, Any], condition_type: str) -> Condition | None:
    """The object's condition of the given type, or None."""
    return find_condition(conditions_of(obj), condition_type)


def object_is_ready(obj: Mapping[str, Any]) -> bool:
    """True when the object's ``Ready`` condition is ``True``: the one "is Ready" of fluxd."""
    return is_ready(conditions_of(obj))


def is_true(conditions: Sequence[Condition], condition_type: str) -> bool:
    return condition_status(conditions, condition_type) == "True"


def is_false(conditions: Sequence[Condition], condition_type: str) -> bool:
    return condition_status(conditions, condition_type) == "False"


def is_ready(conditions: Sequence[Condition]) -> bool:
    return is_true(conditions, ConditionType.READY)


# Stalled, Reconciling and Ready lead, as kubectl and Flux show them; the rest sort by type.
_CONDITION_WEIGHTS = {
    ConditionType.STALLED.value: 0,
    ConditionType.RECONCILING.value: 1,
    ConditionType.READY.value: 2,
}


def _order(condition: Condition) -> tuple[int, str]:
    return _CONDITION_WEIGHTS.get(condition["type"], len(_CONDITION_WEIGHTS)), condition["type"]


def set_condition(
    conditions: Sequence[Condition],
    *,
    condition_type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime | None = None,
) -> list[Condition]:
    """Return ``conditions`` with the condition of ``condition_type`` set, the way Flux sets it.

    As in fluxcd/pkg's conditions setter, ``lastTransitionTime`` moves to ``now``
    only when status, reason or message changed; ``observedGeneration`` is
    always refreshed; the list comes back sorted Stalled, Reconciling, Ready,
    then by type.  The input list is left untouched.
    """
    updated: Condition = {
        "type": str(condition_type),
        "status": status,
        "observedGeneration": observed_generation,
        "lastTransitionTime": format_time(now or datetime.now(UTC)),
        "reason": str(reason),
        "message": message,
    }
    existing = find_condition(conditions, condition_type)
    if existing is not None and (
        existing.get("status"),
        existing.get("reason"),
        existing.get("message"),
    ) == (updated["status"], updated["reason"], updated["message"]):
        updated["lastTransitionTime"] = existing.get(
            "lastTransitionTime", updated["lastTransitionTime"]
        )
    result = [c.copy() for c in conditions if c["type"] != condition_type]
    result.append(updated)
    result.sort(key=_order)
    return result


def remove_condition(conditions: Sequence[Condition], condition_type: str) -> list[Condition]:
    """Return ``conditions`` without the condition of the given type."""
    return [condition for condition in conditions if condition["type"] != condition_type]


def mark_reconciling(
    conditions: Sequence[Condition],
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime | None = None,
) -> list[Condition]:
    """Reconciling=True and no Stalled: the start of a reconcile, as Flux marks it."""
    return set_condition(
        remove_condition(conditions, ConditionType.STALLED),
        condition_type=ConditionType.RECONCILING,
        status="True",
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        now=now,
    )


def mark_stalled(
    conditions: Sequence[Condition],
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime | None = None,
) -> list[Condition]:
    """Stalled=True and no Reconciling: the user must act before anything changes."""
    return set_condition(
        remove_condition(conditions, ConditionType.RECONCILING),
        condition_type=ConditionType.STALLED,
        status="True",
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        now=now,
    )


HISTORY_MAX_SIZE = 5


def upsert_history(
    history: Sequence[Mapping[str, Any]],
    *,
    digest: str,
    status: str,
    duration_seconds: float,
    metadata: Mapping[str, str],
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """``status.history`` after one more reconcile, as fluxcd/pkg's ``History.Upsert`` keeps it.

    A snapshot per (digest of what was applied, outcome reason): a repeat
    moves to the front with its count, times and metadata refreshed; a new one
    is put first; at most ``HISTORY_MAX_SIZE`` are kept, newest first.
    """
    moment = format_time(now or datetime.now(UTC))
    duration = format_duration(duration_seconds)
    snapshots = [dict(snapshot) for snapshot in history if isinstance(snapshot, Mapping)]
    for index, snapshot in enumerate(snapshots):
        if snapshot.get("digest") == digest and snapshot.get("lastReconciledStatus") == status:
            snapshot.update(
                lastReconciled=moment,
                lastReconciledDuration=duration,
                totalReconciliations=int(snapshot.get("totalReconciliations", 0)) + 1,
                metadata=dict(metadata),
            )
            snapshots.insert(0, snapshots.pop(index))
            return snapshots[:HISTORY_MAX_SIZE]
    snapshots.insert(
        0,
        {
            "digest": digest,
            "firstReconciled": moment,
            "lastReconciled": moment,
            "lastReconciledDuration": duration,
            "lastReconciledStatus": status,
            "totalReconciliations": 1,
            "metadata": dict(metadata),
        },
    )
    return snapshots[:HISTORY_MAX_SIZE]
