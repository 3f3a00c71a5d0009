"""The restarter service: roll workloads when the Secrets and ConfigMaps they use change.

Wires the pure engine in ``fluxd.restarter`` to the cluster, on the leader only:

* informers on Secrets and ConfigMaps keep digests, never data (each object is
  cut down by ``slim_config`` before it is stored); informers on Deployments,
  StatefulSets, DaemonSets, CronJobs, Jobs (and Argo Rollouts when enabled and
  installed) feed a ``WorkloadIndex`` with slim workloads;
* a changed digest finds the affected workloads in the index, the changes are
  coalesced per workload, and each due batch is planned on a freshly read
  workload and written as one patch (or one Job for a CronJob, or a plain
  Job deleted and created again), a bounded
  number at a time, one at a time per workload;
* a write that fails (429, 5xx, an admission denial, a conflict) is retried
  with the daemon's backoff (``min-retry-delay``..``max-retry-delay``) until it
  is done, or a newer change supersedes it, or it is no longer needed;
* every ``restarter-resync-interval`` the caches are compared again, and any
  workload whose record disagrees with its config's digest is restarted;
* with ``watch-namespaces`` every informer watches those namespaces only; in a
  shard (``watch-label-selector``) the restarter runs only with
  ``restarter-in-shard``, so two shards never both restart;
* the workload and config watches are separate streams, so a config change
  can be seen before the event of a workload written just before it (under
  load, seconds before). Reloader lists workloads live and would restart
  that workload; here each change seen while running is remembered with its
  resourceVersion for a while, and a workload event older than a remembered
  change (resourceVersions of one etcd increase with every write) queues the
  restart the change missed; the workload's record makes a duplicate a no-op;
* start-up catch-up falls out of the first list: every config object seen at
  start is compared with the digest recorded on the workloads that use it, so
  a change made while the daemon was down rolls its workloads once, and a
  workload already stamped (by fluxd or by Reloader) is left alone;
* with ``enable-csi-integration`` and the Secrets Store CSI driver's CRDs
  installed, an update of a SecretProviderClassPodStatus whose mounted
  objects' versions changed restarts the workloads that mount its
  SecretProviderClass, with the class's annotations deciding, as Reloader
  does (creations and deletions of pod statuses restart nothing);
* Deployments paused for their pause period are resumed when it is over, also
  after a restart of the daemon (the pause start is on the object).

Outcomes are reported as Reloader reports them: Events ``Reloaded`` and
``ReloadFail`` on the workload and ``reloader_reload_executed_total{success}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import structlog

from fluxd.aio import Backoff, Batch, Clock, Coalescer, SystemClock, supervise
from fluxd.controllers.manager import Components
from fluxd.dashboard import ConfigRef, Journal
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.client import PatchType as KubePatchType
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Change, Handler, Informer
from fluxd.kube.resources import (
    CONFIG_MAP,
    CRON_JOB,
    DAEMON_SET,
    DEPLOYMENT,
    JOB,
    NAMESPACE,
    SECRET,
    STATEFUL_SET,
    Resource,
)
from fluxd.metrics import (
    RESTART_LATENCY,
    record_config_event,
    record_dequeued,
    record_matched,
    record_queued,
    record_restart,
    record_scanned,
    record_skipped,
)
from fluxd.restarter import (
    DEFAULT_ANNOTATIONS,
    ConfigChange,
    ConfigFilter,
    ConfigKey,
    ConfigKind,
    DigestCache,
    InvalidLabelSelector,
    PauseSchedule,
    RestartAction,
    RestarterAnnotations,
    RestartPlan,
    RestartStrategy,
    WorkloadIndex,
    WorkloadKey,
    WorkloadKind,
    config_digests,
    evaluate,
    needs_restart,
    parse_label_selector,
    plan_restart,
    resume_patch,
    workload_key,
)
from fluxd.restarter.slim import (
    DIGEST_FIELD,
    compared_digest,
    config_change_of,
    same_but_version,
    slim_config,
    slim_pod_status,
    slim_provider_class,
    slim_workload,
)
from fluxd.settings import Settings, SettingsError

log = structlog.get_logger("fluxd.restarter")

# Reloader's Event reasons, so alerts and dashboards written for it keep matching.
RELOADED = "Reloaded"
RELOAD_FAILED = "ReloadFail"
EVENT_ACTION = "Reload"

CONFIG_RESOURCES: Mapping[ConfigKind, Resource] = {
    ConfigKind.SECRET: SECRET,
    ConfigKind.CONFIGMAP: CONFIG_MAP,
}
WORKLOAD_RESOURCES: Mapping[WorkloadKind, Resource] = {
    WorkloadKind.DEPLOYMENT: DEPLOYMENT,
    WorkloadKind.STATEFULSET: STATEFUL_SET,
    WorkloadKind.DAEMONSET: DAEMON_SET,
    WorkloadKind.CRONJOB: CRON_JOB,
    WorkloadKind.JOB: JOB,
}
ROLLOUT_API_VERSION = "argoproj.io/v1alpha1"
CSI_API_VERSION = "secrets-store.csi.x-k8s.io/v1"

# A merge patch onto a workload that changed since it was read is re-read and
# retried at once this many times in a row before it counts as a failure.
_CONFLICT_RETRIES = 5
# Longest sleep of the pause timer between looks (changes wake it earlier).
_PAUSE_RECHECK = 60.0
_PAUSE_FAILURE_DELAY = 5.0
# How long a change is remembered for workload events that arrive after it.
_RECENT_CHANGE_SECONDS = 600.0


class Restarter:
    """The leader-only service; ``run`` until cancelled (state is rebuilt on every run)."""

    def __init__(
        self,
        *,
        kube: Kube,
        recorder: EventRecorder,
        settings: Settings,
        names: RestarterAnnotations = DEFAULT_ANNOTATIONS,
        clock: Clock | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.journal = journal
        self.names = names
        self.clock: Clock = clock or SystemClock()
        self.strategy = RestartStrategy(settings.reload_strategy)
        self.auto_reload_all = settings.auto_reload_all
        self.reload_on_create = settings.reload_on_create
        self.reload_on_delete = settings.reload_on_delete
        self.window = settings.restart_coalesce_window
        self.concurrency = max(1, settings.restart_concurrency)
        self.argo_rollouts = settings.restart_argo_rollouts
        self.csi_integration = settings.enable_csi_integration
        # Reloader's --ignored-workload-types: kinds never watched, so never restarted.
        self.ignored_kinds = frozenset(
            {"jobs": WorkloadKind.JOB, "cronjobs": WorkloadKind.CRONJOB}[kind]
            for kind in settings.ignored_workload_types
        )
        self.filter = config_filter(settings)
        self.namespaces = settings.effective_restarter_namespaces
        self.resync_interval = settings.restarter_resync_interval
        self.retry_delays = (settings.min_retry_delay, settings.max_retry_delay)
        # Set once the first run has listed everything (start-up catch-up queued).
        self.ready = anyio.Event()
        self._reset()

    def _reset(self) -> None:
        self.digests = DigestCache()
        self.index = WorkloadIndex(names=self.names, auto_reload_all=self.auto_reload_all)
        self.coalescer: Coalescer[WorkloadKey, ConfigChange] = Coalescer(
            window=self.window, clock=self.clock
        )
        self.config_informers: dict[ConfigKind, Informer] = {}
        self.workload_informers: dict[WorkloadKind, Informer] = {}
        self.workload_resources: dict[WorkloadKind, Resource] = {
            kind: resource
            for kind, resource in WORKLOAD_RESOURCES.items()
            if kind not in self.ignored_kinds
        }
        self.namespace_informer: Informer | None = None
        # SecretProviderClasses (their annotations) and their pod statuses (the changes).
        self.csi_resources: tuple[Resource, Resource] | None = None
        self.provider_class_informer: Informer | None = None
        self.pod_status_informer: Informer | None = None
        self._first_seen: dict[WorkloadKey, float] = {}
        # Per namespace: changes seen while running, with their resourceVersion
        # and when they were seen, for workload events that arrive after them.
        self._recent: dict[str, dict[ConfigKey, _RecentChange]] = {}
        self._in_flight: set[WorkloadKey] = set()
        self._parked: dict[WorkloadKey, list[ConfigChange]] = {}
        # Jobs deleted for a recreate whose new Job is not created yet: a retry
        # creates it from here, since the Job to read it from is gone.
        self._recreating: dict[WorkloadKey, Object] = {}
        # Set to cut a restart's wait for its next attempt short (a newer change).
        self._retry_wake: dict[WorkloadKey, anyio.Event] = {}
        # A failed restart waits, then twice as long, ... (Flux's retry delays).
        base, cap = self.retry_delays
        self.retry_backoff = Backoff(base=base, cap=cap, jitter=0.1)
        self._resuming: dict[WorkloadKey, str] = {}
        self.pauses = PauseSchedule(names=self.names)
        self._batch_ready = anyio.Event()
        self._pause_changed = anyio.Event()

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        self._reset()
        await self._find_rollouts()
        await self._find_csi()
        self._build_informers()
        async with anyio.create_task_group() as group:
            # Workloads first: the config objects' first list is the catch-up,
            # which needs every workload indexed.
            first = list(self.workload_informers.values())
            if self.namespace_informer is not None:
                first.append(self.namespace_informer)
            for informer in first:
                group.start_soon(supervise, f"restarter {informer.name}", informer.run)
            for informer in first:
                await informer.synced.wait()
            for informer in self.config_informers.values():
                group.start_soon(supervise, f"restarter {informer.name}", informer.run)
            for csi_informer in (self.provider_class_informer, self.pod_status_informer):
                if csi_informer is not None:
                    group.start_soon(supervise, f"restarter {csi_informer.name}", csi_informer.run)
            group.start_soon(supervise, "restarter batches", self._run_batches)
            group.start_soon(supervise, "restarter pause timer", self._run_pause_timer)
            if self.resync_interval > 0:
                group.start_soon(supervise, "restarter resync", self._run_resync)
            for informer in self.config_informers.values():
                await informer.synced.wait()
            self.ready.set()
            log.info(
                "restarter watching",
                workloads=len(self.index),
                config_objects=len(self.digests),
                strategy=self.strategy.value,
                pending_restarts=len(self.coalescer),
            )

    async def _find_rollouts(self) -> None:
        if not self.argo_rollouts:
            return
        try:
            resource = await self.kube.resource_for(ROLLOUT_API_VERSION, WorkloadKind.ROLLOUT.value)
        except kube_errors.NotFound:
            log.info("Argo Rollouts are not installed; Rollouts will not be restarted")
            return
        self.workload_resources[WorkloadKind.ROLLOUT] = resource

    async def _find_csi(self) -> None:
        if not self.csi_integration:
            return
        try:
            classes = await self.kube.resource_for(CSI_API_VERSION, "SecretProviderClass")
            statuses = await self.kube.resource_for(CSI_API_VERSION, "SecretProviderClassPodStatus")
        except kube_errors.NotFound:
            log.info(
                "Secrets Store CSI driver CRDs are not installed; "
                "SecretProviderClass changes will not restart anything"
            )
            return
        self.csi_resources = (classes, statuses)

    def _build_informers(self) -> None:
        for kind, resource in CONFIG_RESOURCES.items():
            if kind in self.filter.ignored_kinds:
                continue
            informer = Informer(
                self.kube,
                resource,
                namespaces=self.namespaces,
                transform=self._config_transform(kind),
            )
            informer.add_handler(self._config_handler(kind, informer))
            self.config_informers[kind] = informer
        for workload_kind, resource in self.workload_resources.items():
            informer = Informer(
                self.kube, resource, namespaces=self.namespaces, transform=self._slim_workload
            )
            informer.add_handler(self._on_workload)
            self.workload_informers[workload_kind] = informer
        if self.filter.namespace_selector is not None:
            self.namespace_informer = Informer(self.kube, NAMESPACE, transform=_slim_namespace)
        if self.csi_resources is not None:
            classes, statuses = self.csi_resources
            names = self.names
            self.provider_class_informer = Informer(
                self.kube,
                classes,
                namespaces=self.namespaces,
                transform=lambda obj: slim_provider_class(obj, names=names),
            )
            self.pod_status_informer = Informer(
                self.kube, statuses, namespaces=self.namespaces, transform=slim_pod_status
            )
            self.pod_status_informer.add_handler(self._on_pod_status)

    def _config_transform(self, kind: ConfigKind) -> Callable[[Object], Object]:
        names = self.names

        def transform(obj: Object) -> Object:
            return slim_config(kind, obj, names=names)

        return transform

    def _slim_workload(self, obj: Object) -> Object:
        return slim_workload(obj, names=self.names)

    # -- events -------------------------------------------------------------------

    def _on_workload(self, change: Change, obj: Object, old: Object | None) -> None:
        key = workload_key(obj)
        pause_changed = False
        if change is Change.DELETED:
            self.index.remove(key)
            self.coalescer.discard(key)
            self._first_seen.pop(key, None)
            pause_changed = self._resuming.pop(key, None) is not None
            pause_changed = self.pauses.forget(key) or pause_changed
            wake = self._retry_wake.get(key)
            if wake is not None:
                # A restart waiting to retry finds the workload gone at once.
                wake.set()
        else:
            if old is None or not same_but_version(old, obj):
                # Most workload events are status writes, which the slim form drops:
                # the profile and the pause moment are then what they were.
                self.index.upsert(obj)
                if key.kind is WorkloadKind.DEPLOYMENT:
                    pause_changed = self.pauses.observe(obj)
            self._catch_up(key, obj)
            version = str(obj.get("metadata", {}).get("resourceVersion", ""))
            if self._resuming.get(key, version) != version:
                # The resume (or a later write) has arrived: look at this key again.
                del self._resuming[key]
                pause_changed = True
        if pause_changed:
            self._pause_changed.set()

    def _config_handler(self, kind: ConfigKind, informer: Informer) -> Handler:
        def handle(change: Change, obj: Object, old: Object | None) -> None:
            self._on_config(kind, change, obj, initial=not informer.synced.is_set())

        return handle

    def _on_config(self, kind: ConfigKind, change: Change, obj: Object, *, initial: bool) -> None:
        record_config_event(change.value, kind.value)
        metadata = obj.get("metadata", {})
        key = ConfigKey(str(metadata.get("namespace", "")), kind, str(metadata.get("name", "")))
        observed = config_change_of(obj)
        previous: str | None = None
        if change is Change.DELETED:
            previous = self.digests.get(key)
            self.digests.forget(key)
        elif observed is not None:
            previous = self.digests.observe(key, observed.digest)
        if not self._admits(key, metadata):
            if change is Change.MODIFIED:
                record_skipped("filtered")
            return
        if observed is None:
            log.warning("config object has data that does not decode; ignored", object=str(key))
            record_skipped("unreadable")
            return
        if change is Change.DELETED:
            if not self.reload_on_delete:
                self._deleted_without_restart(key, observed)
                return
            observed = _deleted(observed, previous=previous)
        else:
            if previous is None and not initial and self.reload_on_create:
                previous = ""  # created while watched: counts as a change
            if previous == observed.digest:
                # Labels, annotations or a resync: the content is the same.
                record_skipped("unchanged")
                return
            observed = dataclasses.replace(observed, previous=previous)
        record_scanned(workload.kind.value for workload in self.index.candidates(key))
        affected = self.index.affected(key, config_annotations=observed.annotations)
        if not observed.changed_while_watched:
            # First sight (start-up, relist): only workloads whose record disagrees.
            affected = [k for k in affected if self._record_differs(k, observed)]
        else:
            self._remember(observed, metadata, routed=affected)
            if not affected:
                record_skipped("no-workload")
        record_matched(workload.kind.value for workload in affected)
        for workload in affected:
            self._enqueue(workload, [observed])

    def _on_pod_status(self, change: Change, obj: Object, old: Object | None) -> None:
        """An updated SecretProviderClassPodStatus: Reloader's only SecretProviderClass event."""
        if change is not Change.MODIFIED or old is None:
            return
        metadata = obj.get("metadata", {})
        namespace = str(metadata.get("namespace", ""))
        class_name = str(obj.get("status", {}).get("secretProviderClassName", ""))
        digest = str(obj.get(DIGEST_FIELD, ""))
        previous = compared_digest(old)
        if digest == previous:
            record_skipped("unchanged")
            return
        key = ConfigKey(namespace, ConfigKind.SECRET_PROVIDER_CLASS, class_name)
        if not self._admits(key, metadata):
            record_skipped("filtered")
            return
        provider_class = (
            self.provider_class_informer.get(namespace, class_name)
            if self.provider_class_informer is not None
            else None
        )
        annotations = dict((provider_class or {}).get("metadata", {}).get("annotations") or {})
        observed = ConfigChange(
            namespace=namespace,
            kind=ConfigKind.SECRET_PROVIDER_CLASS,
            name=class_name,
            digest=digest,
            equivalent=frozenset({digest}),
            previous=previous,
            annotations=annotations,
        )
        record_scanned(workload.kind.value for workload in self.index.candidates(key))
        affected = self.index.affected(key, config_annotations=annotations)
        self._remember(observed, metadata, routed=affected)
        if not affected:
            record_skipped("no-workload")
        record_matched(workload.kind.value for workload in affected)
        for workload in affected:
            self._enqueue(workload, [observed])

    def _remember(
        self, change: ConfigChange, metadata: Mapping[str, Any], *, routed: Sequence[WorkloadKey]
    ) -> None:
        revision = _revision(metadata)
        if revision is None:
            return
        now = self.clock.now()
        recent = self._recent.setdefault(change.namespace, {})
        recent[change.key] = _RecentChange(revision, now, change, set(routed))
        for key, remembered in list(recent.items()):
            if now - remembered.seen > _RECENT_CHANGE_SECONDS:
                del recent[key]

    def _catch_up(self, key: WorkloadKey, workload: Object) -> None:
        """Queue the restarts of changes newer than this workload event, which missed it."""
        recent = self._recent.get(key.namespace)
        revision = _revision(workload.get("metadata", {}))
        profile = self.index.profile(key)
        if not recent or revision is None or profile is None:
            return
        for remembered in list(recent.values()):
            # Already routed here: a second Job from a CronJob (which keeps no
            # record) would be a second run.
            if remembered.revision <= revision or key in remembered.routed:
                continue
            change = remembered.change
            decision = evaluate(
                profile,
                config_kind=change.kind,
                config_name=change.name,
                config_annotations=change.annotations,
                names=self.names,
                auto_reload_all=self.auto_reload_all,
            )
            if decision.restart:
                remembered.routed.add(key)
                self._enqueue(key, [change])

    def _admits(self, key: ConfigKey, metadata: Mapping[str, Any]) -> bool:
        return self.filter.admits(
            key,
            labels=metadata.get("labels") or {},
            namespace_labels=self._namespace_labels(key),
        )

    def _deleted_without_restart(self, key: ConfigKey, observed: ConfigChange) -> None:
        record_skipped("deleted")
        users = self.index.affected(key, config_annotations=observed.annotations)
        if users:
            # Pods keep running with the content they have; say so where it matters.
            log.info(
                "config object deleted; its workloads are not restarted (reload-on-delete is off)",
                object=str(key),
                workloads=[str(user) for user in users],
            )
        else:
            log.debug("config object deleted", object=str(key))

    def _namespace_labels(self, key: ConfigKey) -> Mapping[str, str] | None:
        if self.namespace_informer is None:
            return None
        namespace = self.namespace_informer.get("", key.namespace)
        return None if namespace is None else namespace.get("metadata", {}).get("labels") or {}

    def _record_differs(self, key: WorkloadKey, change: ConfigChange) -> bool:
        informer = self.workload_informers.get(key.kind)
        slim = informer.get(key.namespace, key.name) if informer else None
        if slim is None:
            return False
        return needs_restart(slim, change, strategy=self.strategy, names=self.names)

    def _enqueue(self, workload: WorkloadKey, changes: Sequence[ConfigChange]) -> None:
        for change in changes:
            self.coalescer.add(workload, change, item_key=change.key)
        self._first_seen.setdefault(workload, self.clock.now())
        record_queued(len(self.coalescer))
        self._batch_ready.set()

    # -- restarts -----------------------------------------------------------------

    async def _run_batches(self) -> None:
        limiter = anyio.CapacityLimiter(self.concurrency)
        async with anyio.create_task_group() as group:
            while True:
                deadline = self.coalescer.next_deadline()
                delay = None if deadline is None else max(0.0, deadline - self.clock.now())
                if delay is None or delay > 0:
                    with anyio.move_on_after(delay):
                        await self._batch_ready.wait()
                    self._batch_ready = anyio.Event()
                for batch in self.coalescer.due():
                    seen = self._first_seen.get(batch.key)
                    record_dequeued(
                        waited_seconds=0.0 if seen is None else self.clock.now() - seen,
                        depth=len(self.coalescer),
                    )
                    if batch.key in self._in_flight:
                        # One write at a time per workload; this batch follows the running one.
                        self._parked.setdefault(batch.key, []).extend(batch.items)
                        wake = self._retry_wake.get(batch.key)
                        if wake is not None:
                            wake.set()
                        continue
                    self._in_flight.add(batch.key)
                    group.start_soon(self._restart_guarded, batch, limiter)

    async def _restart_guarded(
        self, batch: Batch[WorkloadKey, ConfigChange], limiter: anyio.CapacityLimiter
    ) -> None:
        try:
            await self._restart(batch.key, batch.items, limiter)
        except Exception:
            log.exception("restart failed unexpectedly", workload=str(batch.key))
        finally:
            self._in_flight.discard(batch.key)
            self._retry_wake.pop(batch.key, None)
            parked = self._parked.pop(batch.key, None)
            if parked:
                self._enqueue(batch.key, parked)

    async def _restart(
        self,
        key: WorkloadKey,
        changes: Sequence[ConfigChange],
        limiter: anyio.CapacityLimiter,
    ) -> None:
        """Restart ``key`` for ``changes``, retrying until it is done or no longer due.

        Every attempt reads the workload and plans on the latest digests, so a
        newer change of the same object supersedes the pending one, and a change
        back to what the workload records ends the retries with nothing to do.
        """
        resource = self.workload_resources[key.kind]
        pending = list(changes)
        conflicts = 0
        while True:
            pending = _merged(pending, self._parked.pop(key, ()))
            workload: Object | None = None
            try:
                async with limiter:
                    workload = await self.kube.get_or_none(
                        resource, key.name, namespace=key.namespace
                    )
                    if workload is None and key in self._recreating:
                        await self._finish_recreate(key, pending)
                        return
                    if workload is None:
                        raise kube_errors.NotFound(f"{key} is gone", status=404)
                    workload.setdefault("apiVersion", resource.api_version)
                    workload.setdefault("kind", resource.kind)
                    plan = plan_restart(
                        workload,
                        [self._current(change) for change in pending],
                        now=datetime.now(UTC),
                        strategy=self.strategy,
                        names=self.names,
                        auto_reload_all=self.auto_reload_all,
                    )
                    if plan is None:
                        record_skipped("up-to-date")
                        self._done(key)
                        return
                    written = await self._write(plan, resource)
            except kube_errors.NotFound:
                record_skipped("workload-gone")
                self._done(key)
                return
            except kube_errors.Conflict as error:
                conflicts += 1
                if conflicts <= _CONFLICT_RETRIES:
                    log.info(
                        "workload changed while restarting, reading it again",
                        workload=str(key),
                        error=str(error),
                    )
                    continue
                failure: kube_errors.KubeError = error
            except kube_errors.KubeError as error:
                failure = error
            else:
                self.retry_backoff.reset(key)
                await self._succeeded(key, workload, plan, written)
                return
            conflicts = 0
            delay = self.retry_backoff.next(key)
            if isinstance(failure, kube_errors.ApiError) and failure.retry_after:
                delay = max(delay, failure.retry_after)
            await self._failed(key, workload, pending, failure, retry_in=delay)
            await self._wait_for_retry(key, delay)

    async def _finish_recreate(self, key: WorkloadKey, pending: Sequence[ConfigChange]) -> None:
        """Create the Job an earlier attempt deleted (raises to retry, as any write)."""
        body = self._recreating[key]
        created = await self.kube.create(JOB, body, namespace=key.namespace)
        del self._recreating[key]
        self.retry_backoff.reset(key)
        containers = tuple(
            str(c.get("name", "")) for c in body["spec"]["template"]["spec"]["containers"]
        )
        plan = RestartPlan(key, RestartAction.RECREATE_JOB, body, None, tuple(pending), containers)
        await self._succeeded(key, created, plan, created)

    async def _wait_for_retry(self, key: WorkloadKey, delay: float) -> None:
        """Sleep ``delay``, or less when a newer change of the workload's config arrives."""
        wake = anyio.Event()
        self._retry_wake[key] = wake
        if self._parked.get(key):
            wake.set()
        with anyio.move_on_after(delay):
            await wake.wait()
        if wake.is_set():
            # New content is a new attempt, not one more of the same failure.
            self.retry_backoff.reset(key)

    def _done(self, key: WorkloadKey) -> None:
        self.retry_backoff.reset(key)
        self._first_seen.pop(key, None)
        self._recreating.pop(key, None)

    def _current(self, change: ConfigChange) -> ConfigChange:
        """The change with the object's latest digest (it may have moved on while waiting)."""
        informer = self.config_informers.get(change.kind)
        slim = informer.get(change.namespace, change.name) if informer else None
        latest = config_change_of(slim) if slim is not None else None
        if latest is None:
            return change
        return dataclasses.replace(
            change,
            digest=latest.digest,
            equivalent=latest.equivalent,
            annotations=latest.annotations,
        )

    async def _write(self, plan: RestartPlan, resource: Resource) -> Object:
        key = plan.workload
        if plan.action is RestartAction.CREATE_JOB:
            return await self.kube.create(JOB, plan.body, namespace=key.namespace)
        if plan.action is RestartAction.RECREATE_JOB:
            # Reloader's order: delete (pods go in the background), then create.
            await self.kube.delete(JOB, key.name, namespace=key.namespace)
            self._recreating[key] = plan.body
            created = await self.kube.create(JOB, plan.body, namespace=key.namespace)
            self._recreating.pop(key, None)
            return created
        patch_type = KubePatchType(str(plan.patch_type or KubePatchType.MERGE))
        return await self.kube.patch(
            resource, key.name, plan.body, namespace=key.namespace, patch_type=patch_type
        )

    async def _succeeded(
        self, key: WorkloadKey, workload: Object, plan: RestartPlan, written: Object
    ) -> None:
        seen = self._first_seen.pop(key, None)
        seconds = None if seen is None else max(0.0, self.clock.now() - seen)
        if seconds is not None:
            RESTART_LATENCY.observe(seconds)
        record_restart(
            success=True,
            namespace=key.namespace,
            workload_kind=key.kind.value,
            config_kinds=[change.kind.value for change in plan.changes],
            seconds=seconds,
        )
        self._journal(key, plan.changes, seconds=seconds)
        message = _reloaded_message(key, plan.changes)
        job = ""
        if plan.action is RestartAction.CREATE_JOB:
            job = str(written.get("metadata", {}).get("name", ""))
            message += f"; started Job '{job}'"
        log.info(
            "workload restarted",
            workload=str(key),
            changed=[str(change.key) for change in plan.changes],
            containers=list(plan.containers),
            paused=plan.pauses,
            job=job or None,
        )
        regarding = workload if plan.action is RestartAction.CREATE_JOB else written
        regarding.setdefault("apiVersion", workload.get("apiVersion"))
        regarding.setdefault("kind", workload.get("kind"))
        await self.recorder.record(
            regarding, type_="Normal", reason=RELOADED, message=message, action=EVENT_ACTION
        )

    async def _failed(
        self,
        key: WorkloadKey,
        workload: Object | None,
        changes: Sequence[ConfigChange],
        error: kube_errors.KubeError,
        *,
        retry_in: float,
    ) -> None:
        seen = self._first_seen.get(key)
        record_restart(
            success=False,
            namespace=key.namespace,
            workload_kind=key.kind.value,
            config_kinds=[change.kind.value for change in changes],
            seconds=None if seen is None else max(0.0, self.clock.now() - seen),
        )
        self._journal(key, changes, error=str(error))
        message = (
            f"Update for '{key.name}' of type '{key.kind}' in namespace '{key.namespace}' "
            f"failed with error {error}"
        )
        log.error(
            "workload restart failed",
            workload=str(key),
            changed=[str(change.key) for change in changes],
            attempt=self.retry_backoff.failures(key),
            retry_in=round(retry_in, 2),
            error=str(error),
        )
        regarding = workload or _reference_object(key, self.workload_resources[key.kind])
        await self.recorder.record(
            regarding, type_="Warning", reason=RELOAD_FAILED, message=message, action=EVENT_ACTION
        )

    def _journal(
        self,
        key: WorkloadKey,
        changes: Sequence[ConfigChange],
        *,
        seconds: float | None = None,
        error: str = "",
    ) -> None:
        if self.journal is None:
            return
        self.journal.record_restart(
            workload_kind=key.kind.value,
            namespace=key.namespace,
            name=key.name,
            configs=[
                ConfigRef(change.kind.value, change.namespace, change.name) for change in changes
            ],
            succeeded=not error,
            seconds=seconds,
            error=error,
        )

    # -- resync -------------------------------------------------------------------

    async def _run_resync(self) -> None:
        while True:
            await anyio.sleep(self.resync_interval)
            self.resync()

    def resync(self) -> int:
        """Queue a restart of every workload whose record disagrees with its config's digest.

        The safety net under the event path: whatever left a workload behind (a
        write that kept failing until leadership moved, a template re-applied
        with an old record), the next resync finds it from the caches, without
        an API list. Workloads being restarted are left to their retries.
        Returns the number of restarts queued.
        """
        stale: dict[WorkloadKey, list[ConfigChange]] = {}
        for informer in self.config_informers.values():
            for slim in informer.values():
                observed = config_change_of(slim)
                if observed is None or not self._admits(observed.key, slim.get("metadata", {})):
                    continue
                # First-sight semantics: only a recorded digest that differs counts.
                observed = dataclasses.replace(observed, previous=None)
                for workload in self.index.affected(
                    observed.key, config_annotations=observed.annotations
                ):
                    if workload in self._in_flight:
                        continue
                    if self._record_differs(workload, observed):
                        stale.setdefault(workload, []).append(observed)
        for workload, changes in stale.items():
            self._enqueue(workload, changes)
        if stale:
            log.info(
                "restarter resync found stale workloads",
                workloads=sorted(str(workload) for workload in stale),
            )
        else:
            log.debug("restarter resync found nothing stale", workloads=len(self.index))
        return len(stale)

    # -- pause period -------------------------------------------------------------

    async def _run_pause_timer(self) -> None:
        informer = self.workload_informers[WorkloadKind.DEPLOYMENT]
        await informer.synced.wait()
        while True:
            self._pause_changed = anyio.Event()
            now = datetime.now(UTC)
            failed = False
            for key in self.pauses.due(now=now, skip=self._resuming):
                failed = not await self._resume(key, informer) or failed
            moment = self.pauses.next_deadline(after=now, skip=self._resuming)
            delay = _PAUSE_RECHECK
            if moment is not None:
                delay = min(delay, max(0.0, (moment - datetime.now(UTC)).total_seconds()))
            if failed:
                delay = max(delay, _PAUSE_FAILURE_DELAY)
            with anyio.move_on_after(delay):
                await self._pause_changed.wait()

    async def _resume(self, key: WorkloadKey, informer: Informer) -> bool:
        """Resume one Deployment the pause period held; False when the write failed."""
        slim = informer.get(key.namespace, key.name)
        version = str((slim or {}).get("metadata", {}).get("resourceVersion", ""))
        try:
            resumed = await self.kube.patch(
                DEPLOYMENT,
                key.name,
                resume_patch(names=self.names),
                namespace=key.namespace,
                patch_type=KubePatchType.MERGE,
            )
        except kube_errors.NotFound:
            return True
        except kube_errors.KubeError as error:
            log.error("cannot resume paused deployment", workload=str(key), error=str(error))
            await self.recorder.record(
                slim or _reference_object(key, DEPLOYMENT),
                type_="Warning",
                reason=RELOAD_FAILED,
                message=f"Resuming '{key.name}' after its pause period failed with error {error}",
                action=EVENT_ACTION,
            )
            return False
        # Until the watch shows the resumed object, the cache still says "paused".
        self._resuming[key] = version
        log.info("paused deployment resumed", workload=str(key))
        resumed.setdefault("apiVersion", DEPLOYMENT.api_version)
        resumed.setdefault("kind", DEPLOYMENT.kind)
        await self.recorder.record(
            resumed,
            type_="Normal",
            reason=RELOADED,
            message=f"Pause period of Deployment '{key.name}' is over; rollout resumed",
            action=EVENT_ACTION,
        )
        return True


def config_filter(settings: Settings) -> ConfigFilter:
    """The restarter's filters from the daemon settings (Reloader's flags)."""
    ignored_kinds = {
        kind
        for kind in (ConfigKind.parse(item) for item in settings.resources_to_ignore)
        if kind is not None
    }
    try:
        namespace_selector = (
            parse_label_selector(settings.namespace_selector)
            if settings.namespace_selector
            else None
        )
        resource_selector = (
            parse_label_selector(settings.resource_label_selector)
            if settings.resource_label_selector
            else None
        )
    except InvalidLabelSelector as error:
        raise SettingsError(f"restarter: {error}") from error
    return ConfigFilter(
        namespaces=frozenset(settings.effective_restarter_namespaces) or None,
        ignored_namespaces=frozenset(settings.namespaces_to_ignore),
        namespace_selector=namespace_selector,
        resource_selector=resource_selector,
        ignored_kinds=frozenset(ignored_kinds),
    )


def annotation_names(settings: Settings) -> RestarterAnnotations:
    """Reloader's annotation names, as renamed by its flags (restarter-annotation-*)."""
    return dataclasses.replace(
        DEFAULT_ANNOTATIONS,
        configmap_reload=settings.restarter_annotation_configmap_reload,
        secret_reload=settings.restarter_annotation_secret_reload,
        auto=settings.restarter_annotation_auto,
        ignore=settings.restarter_annotation_ignore,
        configmap_auto=settings.restarter_annotation_configmap_auto,
        secret_auto=settings.restarter_annotation_secret_auto,
        search=settings.restarter_annotation_search,
        match=settings.restarter_annotation_match,
        pause_period=settings.restarter_annotation_pause_period,
        paused_at=settings.restarter_annotation_paused_at,
    )


def runs_restarter(settings: Settings) -> bool:
    """Whether this instance runs the restarter.

    The restarter is not sharded (Secrets and workloads carry no shard label),
    so of several shards' leaders only one may run it: an instance with a
    ``watch-label-selector`` runs it only when ``restarter-in-shard`` says so.
    """
    if not settings.restarter:
        return False
    return not settings.watch_label_selector or settings.restarter_in_shard


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    """Add the restarter as a leader-only service (unless switched off or in a shard)."""
    if not runs_restarter(settings):
        if settings.restarter:
            log.info(
                "restarter not run in a shard (watch-label-selector is set); "
                "restarter-in-shard runs it here",
                watch_label_selector=settings.watch_label_selector,
            )
        return
    restarter = Restarter(
        kube=kube,
        recorder=recorder,
        settings=settings,
        names=annotation_names(settings),
        journal=components.journal,
    )
    components.services["restarter"] = restarter.run


@dataclasses.dataclass
class _RecentChange:
    """A change seen while running, for workload events that arrive after it."""

    revision: int
    seen: float
    change: ConfigChange
    # Workloads the change was already queued for.
    routed: set[WorkloadKey]


def _revision(metadata: Mapping[str, Any]) -> int | None:
    """An object's resourceVersion as a number (None when it is not one)."""
    try:
        return int(str(metadata.get("resourceVersion", "")))
    except ValueError:
        return None


def _deleted(change: ConfigChange, *, previous: str | None) -> ConfigChange:
    """A deleted object as a change to empty content (how Reloader records a deletion)."""
    empty: Mapping[str, Any] = {"metadata": {"namespace": change.namespace, "name": change.name}}
    digest, equivalent = config_digests(change.kind, empty)
    return dataclasses.replace(
        change,
        digest=digest,
        equivalent=equivalent,
        previous=previous if previous is not None else change.digest,
    )


def _merged(pending: Sequence[ConfigChange], newer: Sequence[ConfigChange]) -> list[ConfigChange]:
    """``pending`` with ``newer`` changes added; a newer change of one object replaces its older."""
    by_object = {change.key: change for change in pending}
    for change in newer:
        by_object[change.key] = change
    return list(by_object.values())


def _reloaded_message(key: WorkloadKey, changes: Sequence[ConfigChange]) -> str:
    objects = ", ".join(
        f"'{change.name}' of type '{change.kind.reloader_type}'" for change in changes
    )
    return (
        f"Changes detected in {objects} in namespace '{key.namespace}', "
        f"Updated '{key.name}' of type '{key.kind}' in namespace '{key.namespace}'"
    )


def _reference_object(key: WorkloadKey, resource: Resource) -> Object:
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"namespace": key.namespace, "name": key.name},
    }


def _slim_namespace(obj: Object) -> Object:
    metadata = obj.get("metadata", {})
    return {
        "metadata": {
            "name": metadata.get("name", ""),
            "resourceVersion": metadata.get("resourceVersion", ""),
            "labels": dict(metadata.get("labels") or {}),
        }
    }
