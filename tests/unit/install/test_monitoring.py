"""manifests/monitoring: the PodMonitor finds fluxd, the dashboard plots what fluxd exports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fluxd.metrics import REGISTRY
from tests.support.install import MANIFESTS, NAMESPACE, Manifest, find, kustomize

DASHBOARD = MANIFESTS / "monitoring" / "dashboards" / "fluxd.json"
_METRIC = re.compile(r"\b(?:gotk|fluxd|reloader|process)_[a-z_]+\b")


@pytest.fixture(scope="module")
def monitoring() -> list[Manifest]:
    return kustomize(MANIFESTS / "monitoring")


def _exported() -> set[str]:
    """Every series name fluxd's /metrics can show (histogram and counter suffixes included)."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_pod_monitor_scrapes_the_fluxd_pods_metrics_port(
    monitoring: list[Manifest], installed: list[Manifest]
) -> None:
    monitor = find(monitoring, "PodMonitor", "fluxd")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    template = find(installed, "Deployment", "fluxd")["spec"]["template"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    )
    port_names = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"


def test_the_dashboard_is_shipped_for_grafanas_sidecar(monitoring: list[Manifest]) -> None:
    configmap = find(monitoring, "ConfigMap", "fluxd-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["fluxd.json"]) == json.loads(DASHBOARD.read_text())


def test_every_dashboard_query_uses_a_metric_fluxd_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in _expressions(dashboard) for name in _METRIC.findall(expr)}
    assert used - _exported() == set()
    # The headline series are all there: readiness, durations, queues, restarts, cost.
    assert {
        "gotk_reconcile_condition",
        "gotk_reconcile_duration_seconds_bucket",
        "gotk_suspend_status",
        "fluxd_workqueue_depth",
        "fluxd_leader",
        "reloader_reload_executed_total",
        "process_resident_memory_bytes",
    } <= used


def test_dashboard_panels_have_unique_ids_and_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert (
        all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
        and "datasource" in variables
    )
