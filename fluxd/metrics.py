"""Prometheus metrics, named as Flux and Reloader name them so dashboards keep working.

All metrics live in one registry (``REGISTRY``) that ``/metrics`` serves, with
the process collector for RSS and CPU.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

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

# Restarter, with Reloader's own counter name.
RELOADS = Counter(
    "reloader_reload_executed_total",
    "Counter of reloads executed by Reloader.",
    ["success"],
    registry=REGISTRY,
)
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
