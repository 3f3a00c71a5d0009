"""Staged server-side apply, garbage collection and health waits against the cluster.

This is the cluster-facing half of ``fluxd.apply``: it takes the objects a
build produced and makes the cluster match them the way Flux's
kustomize-controller does. Objects go in stages (cluster definitions, then
``*Class`` kinds, then the rest); every object of a stage is first applied as a
server-side *dry run*, which both validates the whole stage before anything is
written and tells, by comparing the dry-run result with the live object,
whether the object would be ``created``, ``configured`` or left ``unchanged``.
Before that comparison the fields of managers Flux takes over (``kubectl``
and friends, see ``fluxd.apply.takeover``) are handed to Flux's field manager,
and fields named by ``spec.ignore`` rules are left out of it and keep their
live values (``fluxd.apply.ignore``). Only objects that would change are then
applied for real, with Flux's field manager. After the first stage the applier
waits for CustomResourceDefinitions to be established and Namespaces to be
active, so the later stages can use them. Stale objects are deleted only when
they carry the owner labels of the Kustomization asking for it.

Errors::

    ApplyError                  an object could not be applied (Ready: ReconciliationFailed)
    ├── UnknownKindError        the server does not serve the object's kind (CRD missing)
    ├── NamespaceError          a namespaced object names no namespace
    ├── DryRunError             the API server rejected the object (invalid, immutable field)
    └── StageTimeoutError       CRDs/Namespaces of the first stage did not become ready
    PruneError                  some stale objects could not be deleted (Ready: PruneFailed)
    HealthCheckError            objects did not become ready in time (Ready: HealthCheckFailed)
    WaitInterrupted             a health wait was cancelled because newer input arrived
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from fluxd.apply.applied import AppliedMemory, Owner, digest
from fluxd.apply.cel import HealthCheckExprs
from fluxd.apply.changeset import Action, ChangeSet, ChangeSetEntry
from fluxd.apply.health import Health, Status, health
from fluxd.apply.ignore import IgnoreRule, ignored_paths, keep_live_values, without_paths
from fluxd.apply.inventory import ApplyPolicy, ObjectRef, is_owned_by, object_policy
from fluxd.apply.order import ApplyStage, apply_order, apply_stage, delete_order
from fluxd.apply.takeover import FieldManager, cleanup_patch, takeover_managers
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.resources import Resource

#: The field manager Flux's kustomize-controller applies with; keeping it lets a
#: cluster move between Flux and fluxd without field-ownership conflicts.
FIELD_MANAGER = "kustomize-controller"

# How long the first stage may take to become usable (Flux waits the same minute).
STAGE_TIMEOUT_SECONDS = 60.0
_STAGE_POLL_SECONDS = 0.5
# Requests in flight per apply; Flux's --concurrent-ssa default is 4.
DEFAULT_CONCURRENCY = 4

# Metadata the API server maintains itself; differences there are not drift.
_SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")
# Substrings the API server uses for changes it refuses to make in place.
_IMMUTABLE_MARKERS = (
    "field is immutable",
    "cannot change roleRef",
    "updates to statefulset spec for fields other than",
    "may not change once set",
)


class ApplyError(Exception):
    """An object could not be applied; ``changes`` holds what was applied before."""

    def __init__(self, message: str, *, subject: str = "", changes: ChangeSet | None = None):
        super().__init__(message)
        self.message = message
        #: ``Kind/namespace/name`` of the object at fault, when there is one.
        self.subject = subject
        self.changes = changes if changes is not None else ChangeSet()

    def __str__(self) -> str:
        return self.message


class UnknownKindError(ApplyError):
    """The API server does not know the object's apiVersion/kind."""


class NamespaceError(ApplyError):
    """A namespaced object has no namespace."""


class DryRunError(ApplyError):
    """The server-side dry run refused the object."""


class StageTimeoutError(ApplyError):
    """CustomResourceDefinitions or Namespaces did not become ready in time."""


class PruneError(Exception):
    """Some stale objects could not be deleted; they stay in the inventory."""

    def __init__(self, message: str, *, survivors: list[ObjectRef], changes: ChangeSet) -> None:
        super().__init__(message)
        self.message = message
        self.survivors = survivors
        self.changes = changes

    def __str__(self) -> str:
        return self.message


class HealthCheckError(Exception):
    """Objects were not ready when the timeout passed (or one failed)."""

    def __init__(self, message: str, *, unready: list[tuple[ObjectRef, Health]]) -> None:
        super().__init__(message)
        self.message = message
        self.unready = unready

    def __str__(self) -> str:
        return self.message


class WaitInterrupted(Exception):
    """A health wait stopped early because a newer revision is waiting to be applied."""


def subject_of(obj: Mapping[str, Any]) -> str:
    return ObjectRef.from_object(obj).subject


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without status and server-maintained metadata, for drift comparison."""
    trimmed = {key: value for key, value in obj.items() if key != "status"}
    metadata = dict(trimmed.get("metadata") or {})
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations")
    if annotations is not None and not annotations:
        metadata.pop("annotations")
    trimmed["metadata"] = metadata
    return trimmed


def has_drifted(
    live: Mapping[str, Any], dry_run: Mapping[str, Any], *, ignore: Sequence[IgnoreRule] = ()
) -> bool:
    """Whether applying would change the live object (``dry_run`` is the server's answer).

    Fields ``ignore`` selects on ``dry_run`` are left out of the comparison.
    """
    paths = ignored_paths(ignore, dry_run)
    if paths:
        live, dry_run = without_paths(live, paths), without_paths(dry_run, paths)
    return comparable(live) != comparable(dry_run)


def is_immutable_error(error: kube_errors.ApiError) -> bool:
    if not isinstance(error, kube_errors.Invalid | kube_errors.Forbidden | kube_errors.BadRequest):
        return False
    text = str(error)
    return any(marker in text for marker in _IMMUTABLE_MARKERS)


class _Unread:
    """The live object has not been read (yet)."""


_UNREAD = _Unread()


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _Planned:
    """One object of a stage after its dry run: what to do with it."""

    obj: dict[str, Any]
    resource: Resource | None
    action: Action
    recreate: bool = False
    #: What is sent when it differs from ``obj`` (ignored fields keep their live values).
    payload: dict[str, Any] | None = None
    #: The object's digest for the applied memory (``None`` without one).
    digest: bytes | None = None


@dataclass
class ResourceManager:
    """Applies, deletes and waits for one Kustomization's objects through ``kube``.

    ``kube`` may be an impersonating client (``spec.serviceAccountName``), so
    every request runs with the permissions of that account. ``ignore`` holds
    the Kustomization's ``spec.ignore`` rules; ``override_managers`` the extra
    field managers whose fields are taken over (``--override-manager``).
    With ``applied`` (the caller's, for objects of its own cluster only), an
    object applied or verified before is not dry-run again while neither it
    nor its live version has changed (see ``fluxd.apply.applied``).
    """

    kube: Kube
    owner_name: str
    owner_namespace: str
    field_manager: str = FIELD_MANAGER
    concurrency: int = DEFAULT_CONCURRENCY
    stage_timeout: float = STAGE_TIMEOUT_SECONDS
    ignore: Sequence[IgnoreRule] = ()
    override_managers: Sequence[str] = ()
    applied: AppliedMemory | None = None
    _limiter: asyncio.Semaphore = field(init=False, repr=False)
    _takeover: tuple[FieldManager, ...] = field(init=False, repr=False)
    _context: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._limiter = asyncio.Semaphore(self.concurrency)
        self._takeover = takeover_managers(self.field_manager, self.override_managers)
        self._context = repr((self.field_manager, self._takeover))
        if self.ignore:
            # Ignored fields keep live values: what is sent depends on the live object.
            self.applied = None

    @property
    def _owner(self) -> Owner:
        return self.owner_namespace, self.owner_name

    def _remember(self, plan: _Planned, written: Mapping[str, Any]) -> None:
        if self.applied is not None and plan.digest is not None:
            ref = ObjectRef.from_object(plan.obj)
            self.applied.remember(self._owner, ref, plan.digest, _version(written))

    # -- apply ---------------------------------------------------------------

    async def apply_all_staged(
        self, objects: Sequence[dict[str, Any]], *, force: bool = False
    ) -> ChangeSet:
        """Apply ``objects`` stage by stage; the change set lists every object.

        Raises :class:`ApplyError` (carrying what was applied so far) at the
        first stage that cannot be applied; later stages are not touched.
        """
        changes = ChangeSet()
        for stage in apply_order(objects):
            stage_objects = [obj for obj in stage if isinstance(obj, dict)]
            try:
                applied = await self.apply_stage(stage_objects, force=force)
            except ApplyError as error:
                error.changes.entries[:0] = changes.entries
                raise
            changes.extend(applied)
            if stage_objects and apply_stage(stage_objects[0]) is ApplyStage.CLUSTER_DEFINITIONS:
                await self._wait_for_definitions(applied, changes=changes)
        return changes

    async def apply_stage(
        self, objects: Sequence[dict[str, Any]], *, force: bool = False
    ) -> list[ChangeSetEntry]:
        """Dry-run every object, then apply the ones that would change."""
        planned = await self._gather([self._plan(obj, force=force) for obj in objects])
        await self._gather([self._execute(plan) for plan in planned if plan.action.changed])
        return [ChangeSetEntry(ref=ObjectRef.from_object(p.obj), action=p.action) for p in planned]

    async def _plan(self, obj: dict[str, Any], *, force: bool) -> _Planned:
        policy = object_policy(obj, force=force)
        subject = subject_of(obj)
        if policy.skip_apply:
            return _Planned(obj=obj, resource=None, action=Action.SKIPPED)
        resource = await self._resource(obj)
        metadata = obj.setdefault("metadata", {})
        if resource.namespaced and not metadata.get("namespace"):
            raise NamespaceError(f"{subject} namespace not specified", subject=subject)
        if not resource.namespaced and "namespace" in metadata:
            # Cluster-scoped kinds have no namespace; kustomize may have set one anyway.
            del metadata["namespace"]
            subject = subject_of(obj)
        known: bytes | None = None
        remembered = False
        if self.applied is not None:
            known = digest(obj, self._context)
            ref = ObjectRef.from_object(obj)
            remembered = self.applied.known(self._owner, ref, known)
        async with self._limiter:
            # Read first only when the answer may make the dry run unneeded; otherwise
            # the dry run comes first and tells whether the object exists.
            live: Object | _Unread | None = _UNREAD
            if policy.apply is ApplyPolicy.IF_NOT_PRESENT or remembered:
                live = await self.kube.get_or_none(
                    resource, metadata["name"], namespace=metadata.get("namespace")
                )
                if live is not None and policy.apply is ApplyPolicy.IF_NOT_PRESENT:
                    return _Planned(obj=obj, resource=resource, action=Action.SKIPPED)
                if (
                    remembered
                    and live is not None
                    and self.applied is not None
                    and known is not None
                    and self.applied.unchanged(self._owner, ref, known, _version(live))
                ):
                    return _Planned(obj=obj, resource=resource, action=Action.UNCHANGED)
            try:
                dry_run = await self.kube.apply(
                    resource, obj, field_manager=self.field_manager, force=True, dry_run=True
                )
            except kube_errors.ApiError as error:
                # Only an update can touch an immutable field: the object exists.
                if live is not None and is_immutable_error(error):
                    if policy.force:
                        return _Planned(
                            obj=obj, resource=resource, action=Action.CREATED, recreate=True
                        )
                    raise DryRunError(
                        f"{subject} dry-run failed ({_reason(error)}): {error}; "
                        "the change needs the object to be recreated: set "
                        "'kustomize.toolkit.fluxcd.io/force: enabled' on it or spec.force",
                        subject=subject,
                    ) from error
                raise DryRunError(
                    f"{subject} dry-run failed ({_reason(error)}): {error}", subject=subject
                ) from error
            if isinstance(live, _Unread):
                # A dry run that would create the object has no resourceVersion yet.
                live = None
                if _version(dry_run):
                    live = await self.kube.get_or_none(
                        resource, metadata["name"], namespace=metadata.get("namespace")
                    )
            if live is None:
                return _Planned(obj=obj, resource=resource, action=Action.CREATED, digest=known)
            taken_over = await self._take_over(resource, obj, live)
        if taken_over is not None:
            live = taken_over
        elif not has_drifted(live, dry_run, ignore=self.ignore):
            unchanged = _Planned(obj=obj, resource=resource, action=Action.UNCHANGED, digest=known)
            self._remember(unchanged, live)
            return unchanged
        payload = None
        if self.ignore:
            payload = copy.deepcopy(obj)
            keep_live_values(
                payload,
                live=live,
                dry_run=dry_run,
                rules=self.ignore,
                field_manager=self.field_manager,
            )
        return _Planned(
            obj=obj, resource=resource, action=Action.CONFIGURED, payload=payload, digest=known
        )

    async def _take_over(
        self, resource: Resource, obj: Mapping[str, Any], live: Mapping[str, Any]
    ) -> Object | None:
        """Hand the fields of the managers Flux takes over to ours; the patched object, if any."""
        patch = cleanup_patch(obj, live, field_manager=self.field_manager, managers=self._takeover)
        if not patch:
            return None
        metadata = live["metadata"]
        subject = subject_of(obj)
        try:
            return await self.kube.patch(
                resource,
                metadata["name"],
                patch,
                namespace=metadata.get("namespace"),
                patch_type=PatchType.JSON,
            )
        except kube_errors.ApiError as error:
            raise ApplyError(
                f"{subject} metadata.managedFields cleanup failed ({_reason(error)}): {error}",
                subject=subject,
            ) from error

    async def _execute(self, plan: _Planned) -> None:
        assert plan.resource is not None
        metadata = plan.obj["metadata"]
        subject = subject_of(plan.obj)
        async with self._limiter:
            try:
                if plan.recreate:
                    await self.kube.delete(
                        plan.resource,
                        metadata["name"],
                        namespace=metadata.get("namespace"),
                        propagation="Foreground",
                    )
                    await self._wait_gone(plan.resource, plan.obj)
                written = await self.kube.apply(
                    plan.resource,
                    plan.obj if plan.payload is None else plan.payload,
                    field_manager=self.field_manager,
                    force=True,
                )
            except kube_errors.ApiError as error:
                raise ApplyError(
                    f"{subject} apply failed ({_reason(error)}): {error}", subject=subject
                ) from error
        self._remember(plan, written)

    async def _wait_gone(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        metadata = obj["metadata"]
        with anyio.move_on_after(self.stage_timeout):
            while True:
                live = await self.kube.get_or_none(
                    resource, metadata["name"], namespace=metadata.get("namespace")
                )
                if live is None:
                    return
                await anyio.sleep(_STAGE_POLL_SECONDS)

    async def _wait_for_definitions(
        self, entries: Sequence[ChangeSetEntry], *, changes: ChangeSet
    ) -> None:
        """Wait until applied CRDs are established and Namespaces active; refresh discovery."""
        waiting = [
            entry.ref
            for entry in entries
            if entry.action is not Action.SKIPPED
            and entry.ref.kind in ("CustomResourceDefinition", "Namespace")
        ]
        if not waiting:
            return
        try:
            await self.wait_for_ready(
                waiting, timeout=self.stage_timeout, interval=_STAGE_POLL_SECONDS
            )
        except HealthCheckError as error:
            raise StageTimeoutError(
                f"cluster definitions are not ready: {error}", changes=changes
            ) from error
        if any(
            entry.ref.kind == "CustomResourceDefinition" and entry.action.changed
            for entry in entries
        ):
            self.kube.forget_discovery()

    async def _resource(self, obj: Mapping[str, Any]) -> Resource:
        api_version = str(obj.get("apiVersion", ""))
        kind = str(obj.get("kind", ""))
        try:
            return await self.kube.resource_for(api_version, kind)
        except kube_errors.NotFound as error:
            subject = subject_of(obj)
            raise UnknownKindError(
                f"{subject} dry-run failed: no matches for kind '{kind}' in version "
                f"'{api_version}' (is its CustomResourceDefinition installed?)",
                subject=subject,
            ) from error

    async def _gather(self, steps: Iterable[Any]) -> list[Any]:
        """Run ``steps`` concurrently; re-raise the first failure in input order."""
        results = await asyncio.gather(*steps, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    # -- delete --------------------------------------------------------------

    async def delete_stale(self, refs: Sequence[ObjectRef]) -> ChangeSet:
        """Delete ``refs`` (reverse apply order) that carry our owner labels and allow it.

        Objects without our labels, or opted out with ``prune: disabled`` /
        ``reconcile: disabled``, are reported as skipped and left alone.
        Raises :class:`PruneError` listing the objects that could not be deleted.
        """
        changes = ChangeSet()
        survivors: list[ObjectRef] = []
        failures: list[str] = []
        stubs = [_stub(ref) for ref in refs]
        for stub in delete_order(stubs):
            ref = ObjectRef.from_object(stub)
            try:
                action = await self._delete_one(ref)
            except kube_errors.KubeError as error:
                survivors.append(ref)
                failures.append(f"{ref.subject} delete failed: {error}")
                continue
            if action is not None:
                changes.add(ref, action)
        if failures:
            raise PruneError("\n".join(failures), survivors=survivors, changes=changes)
        return changes

    async def _delete_one(self, ref: ObjectRef) -> Action | None:
        if self.applied is not None:
            self.applied.discard(self._owner, ref)
        try:
            resource = await self.kube.resource_for(ref.api_version, ref.kind)
        except kube_errors.NotFound:
            # The kind is gone (its CRD was removed): so are its objects.
            return None
        namespace = ref.namespace or None
        live = await self.kube.get_or_none(resource, ref.name, namespace=namespace)
        if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
            return None
        if not is_owned_by(live, name=self.owner_name, namespace=self.owner_namespace):
            return Action.SKIPPED
        if object_policy(live).skip_prune:
            return Action.SKIPPED
        await self.kube.delete(resource, ref.name, namespace=namespace)
        return Action.DELETED

    async def wait_for_termination(
        self, refs: Sequence[ObjectRef], *, timeout: float, interval: float = 2.0
    ) -> list[ObjectRef]:
        """Wait until ``refs`` are gone; returns those still present at the timeout."""
        remaining = list(refs)
        with anyio.move_on_after(timeout):
            while remaining:
                still = []
                for ref in remaining:
                    if await self._read(ref) is not None:
                        still.append(ref)
                remaining = still
                if remaining:
                    await anyio.sleep(interval)
        return remaining

    # -- health --------------------------------------------------------------

    async def wait_for_ready(
        self,
        refs: Sequence[ObjectRef],
        *,
        timeout: float,
        interval: float = 2.0,
        interrupt: anyio.Event | None = None,
        on_poll: Callable[[], None] | None = None,
        exprs: HealthCheckExprs | None = None,
    ) -> None:
        """Poll ``refs`` with kstatus rules (or ``exprs`` where they apply) until all are Current.

        Raises :class:`HealthCheckError` when ``timeout`` passes first (or an
        object reports Failed), and :class:`WaitInterrupted` as soon as
        ``interrupt`` is set.
        """
        deadline = anyio.current_time() + timeout
        while True:
            if interrupt is not None and interrupt.is_set():
                raise WaitInterrupted()
            verdicts = [(ref, await self._health(ref, exprs)) for ref in refs]
            if on_poll is not None:
                on_poll()
            unready = [(ref, verdict) for ref, verdict in verdicts if not verdict.ready]
            if not unready:
                return
            failed = [(ref, verdict) for ref, verdict in unready if verdict.status is Status.FAILED]
            if failed:
                raise HealthCheckError(
                    f"failed early due to stalled resources: [{_describe(failed)}]",
                    unready=failed,
                )
            left = deadline - anyio.current_time()
            if left <= 0:
                raise HealthCheckError(
                    f"timeout waiting for: [{_describe(unready)}]", unready=unready
                )
            pause = min(interval, left)
            if interrupt is None:
                await anyio.sleep(pause)
            else:
                with anyio.move_on_after(pause):
                    await interrupt.wait()

    async def _health(self, ref: ObjectRef, exprs: HealthCheckExprs | None) -> Health:
        try:
            return health(await self._read(ref), exprs=exprs)
        except kube_errors.KubeError as error:
            return Health(Status.IN_PROGRESS, f"cannot read object: {error}")

    async def _read(self, ref: ObjectRef) -> Object | None:
        try:
            resource = await self.kube.resource_for(ref.api_version, ref.kind)
        except kube_errors.NotFound:
            return None
        obj = await self.kube.get_or_none(resource, ref.name, namespace=ref.namespace or None)
        if obj is not None:
            obj.setdefault("apiVersion", ref.api_version)
            obj.setdefault("kind", ref.kind)
        return obj


def _describe(verdicts: Sequence[tuple[ObjectRef, Health]]) -> str:
    return ", ".join(
        f"{ref.subject} status: '{verdict.status.value}'"
        + (f": {verdict.error}" if verdict.error else "")
        for ref, verdict in verdicts
    )


def _reason(error: kube_errors.ApiError) -> str:
    return error.reason or type(error).__name__


def _stub(ref: ObjectRef) -> dict[str, Any]:
    """A minimal object for ``ref``, so inventory entries can be ranked like objects."""
    metadata: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def normalise_objects(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Private copies of built objects, safe to stamp and send."""
    return [copy.deepcopy(obj) for obj in objects]
