"""The reconcile skeleton every kind shares, written once.

get → (deleting? finalize) → ensure finalizer → suspended? stop → reconcile →
one status patch, whatever happened. A ``Controller`` feeds its work queue from
an informer (spec changes, deletions and ``reconcile.fluxcd.io/requestedAt``,
never our own status writes) and turns each outcome into conditions, an Event,
metrics and the queue's next step.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import structlog

from fluxd.aio import Backoff, Result, WorkQueue
from fluxd.api import meta
from fluxd.api.duration import parse_duration
from fluxd.api.support import refused_fields
from fluxd.controllers.outcomes import (
    ConditionUpdate,
    Deferred,
    EventNote,
    Reconciled,
    ReconcileFailure,
    Stalled,
    Transient,
    Waiting,
)
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Change, Informer, Key
from fluxd.kube.resources import Resource
from fluxd.metrics import (
    RECONCILE_CONDITION,
    RECONCILE_DURATION,
    SUSPEND_STATUS,
    QueueMetrics,
)
from fluxd.settings import Settings

log = structlog.get_logger("fluxd.controllers")

_CONDITION_STATUSES = ("True", "False", "Unknown")


def requested_at(obj: Object) -> str | None:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    value = annotations.get(meta.RECONCILE_REQUEST_ANNOTATION)
    return str(value) if value is not None else None


def spec_interval(obj: Object, field: str = "interval", default: float = 600.0) -> float:
    value = obj.get("spec", {}).get(field)
    if not value:
        return default
    try:
        return parse_duration(str(value))
    except ValueError:
        return default


class Reconciler(ABC):
    """One kind's logic; the Controller runs the skeleton around it."""

    resource: Resource
    finalizer: str | None = meta.FINALIZER
    #: Conditions this reconciler writes besides Ready/Reconciling/Stalled.
    owned_conditions: tuple[str, ...] = ()

    @abstractmethod
    async def reconcile(self, obj: Object) -> Reconciled:
        """Make the world match ``obj``; raise a ReconcileFailure when it cannot."""

    async def finalize(self, obj: Object) -> None:
        """Clean up before the object goes away (only kinds with a finalizer)."""
        return None

    def interval(self, obj: Object) -> float:
        return spec_interval(obj)

    def retry_interval(self, obj: Object) -> float | None:
        """A fixed delay after failures (Kustomization.spec.retryInterval); None: backoff."""
        return None

    def forget(self, key: Key) -> None:
        """The object is gone: drop whatever is cached for it."""
        return None

    #: Set by the Controller, which reads objects from its informer's cache.
    write_observer: Callable[[Object], None] | None = None

    def wrote(self, written: Object) -> None:
        """Tell the Controller of a write of this kind's object made outside the skeleton."""
        if self.write_observer is not None:
            self.write_observer(written)


class Controller:
    """Informer → work queue → reconciler, for one kind."""

    def __init__(
        self,
        *,
        kube: Kube,
        reconciler: Reconciler,
        recorder: EventRecorder,
        settings: Settings,
        namespace: str | None = None,
    ) -> None:
        self.kube = kube
        self.reconciler = reconciler
        self.recorder = recorder
        self.settings = settings
        self.resource = reconciler.resource
        self.informer = Informer(
            kube,
            reconciler.resource,
            namespace=namespace,
            namespaces=settings.watch_namespaces,
            label_selector=settings.watch_label_selector or None,
        )
        self.informer.add_handler(self._on_change)
        reconciler.write_observer = self.informer.expect_version
        self.queue: WorkQueue[Key] = WorkQueue(
            reconciler.resource.kind.lower(),
            concurrency=self._concurrency(settings),
            backoff=Backoff(base=settings.min_retry_delay, cap=settings.max_retry_delay),
            jitter=settings.interval_jitter,
            observer=QueueMetrics(),
        )
        self.after_reconcile: list[Callable[[Object, Object], Any]] = []

    def _concurrency(self, settings: Settings) -> int:
        kind = self.resource.kind
        if kind in ("GitRepository", "OCIRepository"):
            return settings.gitrepository_concurrency
        if kind == "Kustomization":
            return settings.kustomization_concurrency
        return settings.notification_concurrency

    @property
    def kind(self) -> str:
        return self.resource.kind

    # -- feeding the queue ------------------------------------------------

    def _on_change(self, change: Change, obj: Object, old: Object | None) -> None:
        metadata = obj.get("metadata", {})
        key: Key = (metadata.get("namespace", ""), metadata["name"])
        if change == Change.DELETED:
            self.reconciler.forget(key)
            self.queue.forget(key)
            self._clear_metrics(key)
            return
        if old is None or self._worth_reconciling(obj, old):
            self.queue.add(key)

    @staticmethod
    def _worth_reconciling(obj: Object, old: Object) -> bool:
        new_meta, old_meta = obj.get("metadata", {}), old.get("metadata", {})
        if new_meta.get("generation") != old_meta.get("generation"):
            return True
        if requested_at(obj) != requested_at(old):
            return True
        if bool(new_meta.get("deletionTimestamp")) != bool(old_meta.get("deletionTimestamp")):
            return True
        return bool(new_meta.get("labels") != old_meta.get("labels"))

    def request(self, namespace: str, name: str) -> None:
        """Reconcile this object now (a dependency or source changed)."""
        self.queue.add((namespace, name))

    # -- the skeleton -----------------------------------------------------------

    async def run_one(self, key: Key) -> Result:
        namespace, name = key
        # Bound for the whole reconcile, so the reconciler's own lines name the object too.
        with structlog.contextvars.bound_contextvars(
            kind=self.kind, namespace=namespace, name=name, reconcile_id=uuid.uuid4().hex[:12]
        ):
            return await self._run_one(key)

    async def _run_one(self, key: Key) -> Result:
        namespace, name = key
        bound = log
        try:
            found = await self.informer.read(namespace, name)
        except kube_errors.KubeError as error:
            bound.warning("cannot read object", error=str(error))
            return Result.retry()
        if found is None:
            self.reconciler.forget(key)
            return Result.stop()
        obj = found
        obj.setdefault("apiVersion", self.resource.api_version)
        obj.setdefault("kind", self.kind)
        metadata = obj["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        finalizer = self.reconciler.finalizer

        if metadata.get("deletionTimestamp"):
            if finalizer and finalizer in finalizers:
                try:
                    await self.reconciler.finalize(obj)
                except ReconcileFailure as failure:
                    bound.warning("finalizing failed", reason=failure.reason, error=failure.message)
                    return Result.retry()
                try:
                    await self._remove_finalizer(obj, finalizer)
                except kube_errors.KubeError as error:
                    # Written against the version read: another writer came first, read again.
                    bound.info("cannot remove finalizer yet", error=str(error))
                    return Result.retry()
            self.reconciler.forget(key)
            self._clear_metrics(key)
            return Result.stop()

        if finalizer and finalizer not in finalizers:
            try:
                # The whole list is replaced, so only against the version it was read from.
                written = await self.kube.patch(
                    self.resource,
                    name,
                    {
                        "metadata": {
                            "finalizers": [*finalizers, finalizer],
                            "resourceVersion": metadata.get("resourceVersion"),
                        }
                    },
                    namespace=namespace or None,
                    patch_type=PatchType.MERGE,
                )
            except kube_errors.KubeError as error:
                bound.warning("cannot add finalizer", error=str(error))
                return Result.retry()
            self.informer.expect_version(written)

        suspended = bool(obj.get("spec", {}).get("suspend"))
        SUSPEND_STATUS.labels(self.kind, name, namespace).set(1 if suspended else 0)
        if suspended:
            bound.info("reconciliation is suspended for this object")
            return Result.stop()

        started = time.monotonic()
        bound.debug("reconciling")
        outcome: Reconciled | ReconcileFailure
        refusals = refused_fields(self.kind, obj)
        try:
            if refusals:
                # Never half-honoured: nothing of an object with a refused field is acted on.
                raise Stalled(meta.Reason.UNSUPPORTED_FIELD, "; ".join(refusals))
            outcome = await self.reconciler.reconcile(obj)
        except ReconcileFailure as failure:
            outcome = failure
        except kube_errors.KubeError as error:
            outcome = Transient(meta.Reason.RECONCILIATION_FAILED, str(error))
        except Exception as error:  # a bug must not kill the worker; it is logged and retried
            bound.exception("reconcile crashed")
            outcome = Transient(
                meta.Reason.RECONCILIATION_FAILED,
                f"internal error: {type(error).__name__}: {error}",
            )
        elapsed = time.monotonic() - started
        RECONCILE_DURATION.labels(self.kind, name, namespace).observe(elapsed)
        if isinstance(outcome, Deferred):
            bound.info("reconcile deferred", reason=outcome.reason, detail=outcome.message)
            return Result.done(outcome.requeue_after)
        status = self._status_after(obj, outcome)
        if not _status_unchanged(obj.get("status") or {}, status):
            try:
                written = await self.kube.patch_status(
                    self.resource, name, status, namespace=namespace or None
                )
            except kube_errors.NotFound:
                return Result.stop()
            except kube_errors.KubeError as error:
                bound.warning("cannot write status", error=str(error))
                return Result.retry()
            self.informer.expect_version(written)
        self._record_condition_metrics(key, status)
        await self._emit(obj, outcome, bound)
        new_obj = {**obj, "status": {**obj.get("status", {}), **status}}
        for callback in self.after_reconcile:
            try:
                callback(obj, new_obj)
            except Exception:
                bound.exception("after-reconcile hook failed")

        if isinstance(outcome, Reconciled):
            bound.info("reconciled", message=outcome.message, seconds=round(elapsed, 3))
            after = (
                outcome.requeue_after
                if outcome.requeue_after is not None
                else self.reconciler.interval(obj)
            )
            return Result.done(after)
        level = bound.warning if not isinstance(outcome, Waiting) else bound.info
        level("reconcile failed", reason=outcome.reason, error=outcome.message)
        if isinstance(outcome, Stalled):
            return Result.stop()
        if isinstance(outcome, Waiting):
            return Result.done(outcome.requeue_after)
        fixed = self.reconciler.retry_interval(obj)
        if fixed is not None:
            return Result.done(fixed)
        # Back off, but never wait longer than the object's own interval.
        return Result.retry(at_most=self.reconciler.interval(obj))

    # -- status -------------------------------------------------------------------

    def _status_after(self, obj: Object, outcome: Reconciled | ReconcileFailure) -> dict[str, Any]:
        generation = int(obj["metadata"].get("generation", 0))
        conditions: list[meta.Condition] = list(obj.get("status", {}).get("conditions") or [])
        updates: list[ConditionUpdate] = list(outcome.conditions)
        if isinstance(outcome, Reconciled):
            conditions = meta.remove_condition(conditions, meta.ConditionType.RECONCILING)
            conditions = meta.remove_condition(conditions, meta.ConditionType.STALLED)
            updates.append(
                ConditionUpdate(meta.ConditionType.READY, "True", outcome.reason, outcome.message)
            )
        elif isinstance(outcome, Stalled):
            conditions = meta.mark_stalled(
                conditions,
                reason=outcome.reason,
                message=outcome.message,
                observed_generation=generation,
            )
            updates.append(
                ConditionUpdate(meta.ConditionType.READY, "False", outcome.reason, outcome.message)
            )
        else:
            conditions = meta.mark_reconciling(
                conditions,
                reason=meta.Reason.PROGRESSING_WITH_RETRY,
                message=outcome.message,
                observed_generation=generation,
            )
            if isinstance(outcome, Waiting):
                # Waiting is not a failure in progress: it is reported on Ready only.
                conditions = meta.remove_condition(conditions, meta.ConditionType.RECONCILING)
            updates.append(
                ConditionUpdate(meta.ConditionType.READY, "False", outcome.reason, outcome.message)
            )
        for update in updates:
            if update.status is None:
                conditions = meta.remove_condition(conditions, update.type)
            else:
                conditions = meta.set_condition(
                    conditions,
                    condition_type=update.type,
                    status=update.status,  # type: ignore[arg-type]
                    reason=update.reason,
                    message=update.message,
                    observed_generation=generation,
                )
        status: dict[str, Any] = {**outcome.status, "conditions": conditions}
        if isinstance(outcome, Reconciled | Stalled):
            status["observedGeneration"] = generation
        request = requested_at(obj)
        if request is not None:
            status["lastHandledReconcileAt"] = request
        return status

    async def _remove_finalizer(self, obj: Object, finalizer: str) -> None:
        metadata = obj["metadata"]
        remaining = [f for f in metadata.get("finalizers") or [] if f != finalizer]
        patch = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": metadata["resourceVersion"],
            },
            {"op": "replace", "path": "/metadata/finalizers", "value": remaining},
        ]
        with contextlib.suppress(kube_errors.NotFound):
            await self.kube.patch(
                self.resource,
                metadata["name"],
                patch,
                namespace=metadata.get("namespace"),
                patch_type=PatchType.JSON,
            )

    def _record_condition_metrics(self, key: Key, status: dict[str, Any]) -> None:
        namespace, name = key
        for condition in status.get("conditions", []):
            if condition["type"] != meta.ConditionType.READY:
                continue
            for value in _CONDITION_STATUSES:
                RECONCILE_CONDITION.labels(self.kind, name, namespace, "Ready", value).set(
                    1 if condition["status"] == value else 0
                )

    def _clear_metrics(self, key: Key) -> None:
        """Drop every series labelled with a deleted object, or /metrics grows forever."""
        namespace, name = key
        for value in _CONDITION_STATUSES:
            with contextlib.suppress(KeyError):
                RECONCILE_CONDITION.remove(self.kind, name, namespace, "Ready", value)
        for metric in (SUSPEND_STATUS, RECONCILE_DURATION):
            with contextlib.suppress(KeyError):
                metric.remove(self.kind, name, namespace)

    async def _emit(self, obj: Object, outcome: Reconciled | ReconcileFailure, bound: Any) -> None:
        notes: list[EventNote] = list(outcome.events)
        if (
            isinstance(outcome, ReconcileFailure)
            and outcome.event
            and not isinstance(outcome, Waiting)
        ):
            notes.append(EventNote("Warning", outcome.reason, outcome.message))
        for note in notes:
            await self.recorder.record(
                obj,
                type_=note.type,
                reason=note.reason,
                message=note.message,
                metadata=note.metadata,
            )


def _status_unchanged(current: dict[str, Any], update: dict[str, Any]) -> bool:
    """True when merge-patching ``update`` onto ``current`` would change nothing."""
    for key, value in update.items():
        if value is None:
            if key in current:
                return False
        elif current.get(key) != value:
            return False
    return True
