"""Prometheus metrics, named as Flux and Reloader name them so dashboards keep working.

All metrics live in one registry (``REGISTRY``) that ``/metrics`` serves, with
the process collector for RSS and CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

# Flux's runtime metrics (fluxcd/pkg runtime/metrics).
RECONCILE_DURATION = Histogram(
    "gotk_reconcile_duration_seconds",
    "The duration in seconds of a GitOps Toolkit resource reconciliation.",
    ["kind", "name", "namespace"],
    buckets=(0.01, 0.1, 1.0, 10.0, 100.0),
    registry=REGISTRY,
)
RECONCILE_CONDITION = Gauge(
    "gotk_reconcile_condition",
    "The current condition status of a GitOps Toolkit resource reconciliation.",
    ["kind", "name", "namespace", "type", "status"],
    registry=REGISTRY,
)
SUSPEND_STATUS = Gauge(
    "gotk_suspend_status",
    "The current suspend status of a GitOps Toolkit resource.",
    ["kind", "name", "namespace"],
    registry=REGISTRY,
)

# Work queues.
QUEUE_DEPTH = Gauge(
    "fluxd_workqueue_depth", "Keys waiting in a work queue.", ["name"], registry=REGISTRY
)
QUEUE_ADDS = Counter(
    "fluxd_workqueue_adds_total", "Keys added to a work queue.", ["name"], registry=REGISTRY
)
QUEUE_RETRIES = Counter(
    "fluxd_workqueue_retries_total", "Keys requeued after a failure.", ["name"], registry=REGISTRY
)
QUEUE_LATENCY = Histogram(
    "fluxd_workqueue_queue_duration_seconds",
    "Time a key waited between being due and being worked on.",
    ["name"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120),
    registry=REGISTRY,
)
QUEUE_WORK = Histogram(
    "fluxd_workqueue_work_duration_seconds",
    "Time a worker spent on one key.",
    ["name"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120),
    registry=REGISTRY,
)

# Kustomizations: where a reconcile spends its time.
KUSTOMIZATION_PHASE = Histogram(
    "fluxd_kustomization_phase_duration_seconds",
    "Time spent in each phase of a Kustomization reconcile.",
    ["phase"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 120),
    registry=REGISTRY,
)

LEADER = Gauge("fluxd_leader", "1 when this replica holds the leader lease.", registry=REGISTRY)

# Restarter: Reloader v1.4's series (internal/pkg/metrics), same names, types and
# labels, so its dashboards and alerts keep working; fluxd's own finer ones follow.
RELOADS = Counter(
    "reloader_reload_executed_total",
    "Counter of reloads executed by Reloader.",
    ["success"],
    registry=REGISTRY,
)
# Reloader shows both at 0 from the start, so rate() works before the first restart.
RELOADS.labels(success="true")
RELOADS.labels(success="false")
RELOADER_RECONCILES = Counter(
    "reloader_reconcile_total",
    "Total number of reconcile/handler invocations by result.",
    ["result"],
    registry=REGISTRY,
)
RELOADER_RECONCILE_DURATION = Histogram(
    "reloader_reconcile_duration_seconds",
    "Time spent in reconcile/handler in seconds.",
    ["result"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
RELOADER_ACTIONS = Counter(
    "reloader_action_total",
    "Total number of reload actions by workload kind and result.",
    ["workload_kind", "result"],
    registry=REGISTRY,
)
RELOADER_ACTION_LATENCY = Histogram(
    "reloader_action_latency_seconds",
    "Time from event received to action applied in seconds.",
    ["workload_kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RELOADER_SKIPPED = Counter(
    "reloader_skipped_total",
    "Total number of skipped operations by reason.",
    ["reason"],
    registry=REGISTRY,
)
RELOADER_ERRORS = Counter(
    "reloader_errors_total", "Total number of errors by type.", ["type"], registry=REGISTRY
)
RELOADER_RETRIES = Counter(
    "reloader_retries_total", "Total number of retry attempts.", registry=REGISTRY
)
RELOADER_EVENTS_RECEIVED = Counter(
    "reloader_events_received_total",
    "Total number of events received by type and resource.",
    ["event_type", "resource_type"],
    registry=REGISTRY,
)
RELOADER_EVENTS_PROCESSED = Counter(
    "reloader_events_processed_total",
    "Total number of events processed by type, resource, and result.",
    ["event_type", "resource_type", "result"],
    registry=REGISTRY,
)

# The restarter's queue is its coalescer: a workload waiting for its restart.
RELOADER_QUEUE_DEPTH = Gauge(
    "reloader_workqueue_depth", "Current depth of the work queue.", registry=REGISTRY
)
RELOADER_QUEUE_ADDS = Counter(
    "reloader_workqueue_adds_total",
    "Total number of items added to the work queue.",
    registry=REGISTRY,
)
RELOADER_QUEUE_LATENCY = Histogram(
    "reloader_workqueue_latency_seconds",
    "Time spent in the work queue in seconds.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
RELOADER_WORKLOADS_SCANNED = Counter(
    "reloader_workloads_scanned_total",
    "Total number of workloads scanned by kind.",
    ["kind"],
    registry=REGISTRY,
)
RELOADER_WORKLOADS_MATCHED = Counter(
    "reloader_workloads_matched_total",
    "Total number of workloads matched for reload by kind.",
    ["kind"],
    registry=REGISTRY,
)


class _ByNamespace(Collector):
    """``reloader_reload_executed_total_by_namespace``, shown as Reloader spells it.

    prometheus_client would name a counter family ``…_by_namespace_total``; this
    keeps Reloader's sample name, so the family is exposed untyped.
    """

    name = "reloader_reload_executed_total_by_namespace"

    def __init__(self) -> None:
        self.counts = Counter(self.name, "", ["success", "namespace"], registry=None)

    def collect(self) -> Iterable[Metric]:
        family = Metric(
            self.name, "Counter of reloads executed by Reloader by namespace.", "unknown"
        )
        for sample in self._samples():
            family.add_sample(self.name, sample.labels, sample.value)
        yield family

    def _samples(self) -> Iterator[Any]:
        for metric in self.counts.collect():
            yield from (s for s in metric.samples if s.name.endswith("_total"))


RELOADS_BY_NAMESPACE = _ByNamespace()
# Reloader's by-namespace counter is only there with METRICS_COUNT_BY_NAMESPACE=enabled
# (setting metrics-count-by-namespace): one series per namespace can be many.
_count_by_namespace = False


def count_by_namespace(enabled: bool) -> None:
    """Show (or hide) the per-namespace restart counter on /metrics."""
    global _count_by_namespace
    if enabled and not _count_by_namespace:
        REGISTRY.register(RELOADS_BY_NAMESPACE)
    elif not enabled and _count_by_namespace:
        REGISTRY.unregister(RELOADS_BY_NAMESPACE)
    _count_by_namespace = enabled


# fluxd's skip reasons that Reloader counts too, under its names.
_RELOADER_SKIP_REASONS = {
    "filtered": "ignored_or_not_selected",
    "unchanged": "no_data_change",
    "up-to-date": "strategy_not_updated",
}
# Informer changes in Reloader's event_type words.
_RELOADER_EVENT_TYPES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}


def record_config_event(change: str, kind: str) -> None:
    """A Secret/ConfigMap watch event (``kind`` as Kubernetes spells it: Secret, ConfigMap)."""
    RELOADER_EVENTS_RECEIVED.labels(
        event_type=_RELOADER_EVENT_TYPES.get(change, change.lower()),
        resource_type=_resource_type(kind),
    ).inc()


def record_skipped(reason: str) -> None:
    """A config change that restarted nothing, and why."""
    RESTART_SKIPPED.labels(reason=reason).inc()
    reloader_reason = _RELOADER_SKIP_REASONS.get(reason)
    if reloader_reason is not None:
        RELOADER_SKIPPED.labels(reason=reloader_reason).inc()


def record_queued(depth: int) -> None:
    """A workload joined the restarter's queue, which now holds ``depth``."""
    RELOADER_QUEUE_ADDS.inc()
    RELOADER_QUEUE_DEPTH.set(depth)


def record_dequeued(*, waited_seconds: float, depth: int) -> None:
    """A workload left the queue for its restart after ``waited_seconds``."""
    RELOADER_QUEUE_LATENCY.observe(waited_seconds)
    RELOADER_QUEUE_DEPTH.set(depth)


def record_scanned(workload_kinds: Iterable[str]) -> None:
    """Workloads a config change was checked against (``kind`` as Kubernetes spells it)."""
    for kind in workload_kinds:
        RELOADER_WORKLOADS_SCANNED.labels(kind=kind).inc()


def record_matched(workload_kinds: Iterable[str]) -> None:
    """Workloads a config change selected for a restart (``kind`` as Kubernetes spells it)."""
    for kind in workload_kinds:
        RELOADER_WORKLOADS_MATCHED.labels(kind=kind).inc()


def record_restart(
    *,
    success: bool,
    namespace: str,
    workload_kind: str,
    config_kinds: Sequence[str],
    seconds: float | None,
) -> None:
    """One restart attempt's outcome (a failed one is always retried)."""
    outcome = "true" if success else "false"
    result = "success" if success else "error"
    RELOADS.labels(success=outcome).inc()
    if _count_by_namespace:
        RELOADS_BY_NAMESPACE.counts.labels(success=outcome, namespace=namespace).inc()
    RELOADER_ACTIONS.labels(workload_kind=workload_kind, result=result).inc()
    RELOADER_RECONCILES.labels(result=result).inc()
    if seconds is not None:
        RELOADER_ACTION_LATENCY.labels(workload_kind=workload_kind).observe(seconds)
        RELOADER_RECONCILE_DURATION.labels(result=result).observe(seconds)
    if success:
        for kind in sorted(set(config_kinds)):
            RELOADER_EVENTS_PROCESSED.labels(
                event_type="unknown", resource_type=_resource_type(kind), result="success"
            ).inc()
        return
    RELOADER_ERRORS.labels(type="handler_error").inc()
    RELOADER_RETRIES.inc()


def _resource_type(kind: str) -> str:
    # Reloader's resource names: configmaps, secrets.
    return kind.lower() + "s"


RESTART_LATENCY = Histogram(
    "fluxd_restarter_latency_seconds",
    "Time from a config change seen to the workload patched.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
RESTART_SKIPPED = Counter(
    "fluxd_restarter_skipped_total",
    "Config changes that restarted nothing, by reason.",
    ["reason"],
    registry=REGISTRY,
)

# Notifications.
NOTIFICATIONS = Counter(
    "fluxd_notification_deliveries_total",
    "Alert deliveries by provider type and outcome.",
    ["provider", "outcome"],
    registry=REGISTRY,
)
NOTIFICATION_DURATION = Histogram(
    "fluxd_notification_delivery_duration_seconds",
    "Time from the first attempt to a delivered alert, by provider type.",
    ["provider"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60),
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "fluxd_receiver_requests_total",
    "Webhook requests by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


class QueueMetrics:
    """Feeds a work queue's observations into the metrics above."""

    def on_add(self, name: str) -> None:
        QUEUE_ADDS.labels(name).inc()

    def on_depth(self, name: str, depth: int) -> None:
        QUEUE_DEPTH.labels(name).set(depth)

    def on_latency(self, name: str, seconds: float) -> None:
        QUEUE_LATENCY.labels(name).observe(seconds)

    def on_work_duration(self, name: str, seconds: float) -> None:
        QUEUE_WORK.labels(name).observe(seconds)

    def on_retry(self, name: str) -> None:
        QUEUE_RETRIES.labels(name).inc()
