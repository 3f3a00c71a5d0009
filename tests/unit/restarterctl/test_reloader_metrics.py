"""/metrics shows Reloader v1.4's restart series, as its dashboards and alerts query them.

The series are copied from Reloader's internal/pkg/metrics/prometheus.go (name,
type, label names) as data; the restarter runs against the fake API of
test_restarter_service and /metrics is read as Prometheus would scrape it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from fluxd import metrics
from fluxd.kube import errors as kube_errors
from fluxd.metrics import REGISTRY
from tests.unit.restarter.restarter_objects import NAMESPACE, secret, workload
from tests.unit.restarterctl.test_restarter_service import AUTO, FakeApi, eventually, running

ROOT = Path(__file__).resolve().parents[3]

# Reloader v1.4: (name as scraped, type, label names).
RELOADER_SERIES = [
    ("reloader_reload_executed_total", "counter", {"success"}),
    ("reloader_reconcile_total", "counter", {"result"}),
    ("reloader_reconcile_duration_seconds", "histogram", {"result"}),
    ("reloader_action_total", "counter", {"workload_kind", "result"}),
    ("reloader_action_latency_seconds", "histogram", {"workload_kind"}),
    ("reloader_skipped_total", "counter", {"reason"}),
    ("reloader_errors_total", "counter", {"type"}),
    ("reloader_retries_total", "counter", set()),
    ("reloader_events_received_total", "counter", {"event_type", "resource_type"}),
    ("reloader_events_processed_total", "counter", {"event_type", "resource_type", "result"}),
    ("reloader_workloads_matched_total", "counter", {"kind"}),
    ("reloader_workqueue_depth", "gauge", set()),
    ("reloader_workqueue_adds_total", "counter", set()),
    ("reloader_workqueue_latency_seconds", "histogram", set()),
    ("reloader_workloads_scanned_total", "counter", {"kind"}),
]
# Only with METRICS_COUNT_BY_NAMESPACE=enabled.
BY_NAMESPACE = ("reloader_reload_executed_total_by_namespace", {"success", "namespace"})
# Reloader's series that describe client-go, which fluxd does not have;
# docs/reloader-migration.md names what to query instead.
NOT_EXPORTED = [
    "rest_client_requests_total",
    "rest_client_request_duration_seconds",
]

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? ")


def scrape() -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """/metrics as Prometheus reads it: family types, and each sample's labels by name."""
    types: dict[str, str] = {}
    samples: dict[str, list[dict[str, str]]] = {}
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or "")
        samples.setdefault(match["name"], []).append(dict(pairs))
    return types, samples


def label_sets(samples: dict[str, list[dict[str, str]]], name: str, kind: str) -> list[set[str]]:
    if kind == "histogram":
        return [set(labels) - {"le"} for labels in samples.get(f"{name}_bucket", [])]
    return [set(labels) for labels in samples.get(name, [])]


@pytest.fixture
def by_namespace() -> Iterator[None]:
    metrics.count_by_namespace(True)
    yield
    metrics.count_by_namespace(False)


async def record_a_skip_a_success_and_a_failure(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    # The first patch fails (and is retried), the second goes through.
    api.failing["realm-ix"] = [kube_errors.ServerError("etcd is slow", status=500)]
    async with running(api, min_retry_delay=0.01, max_retry_delay=0.02):
        relabelled = secret()
        relabelled["metadata"]["labels"] = {"team": "edge"}
        await api.emit("MODIFIED", relabelled)  # same data: skipped
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
        await eventually(lambda: api.writes, what="the retried patch")


async def test_every_reloader_series_is_exported_with_its_labels(by_namespace: None) -> None:
    await record_a_skip_a_success_and_a_failure(FakeApi())
    types, samples = scrape()
    for name, kind, labels in RELOADER_SERIES:
        assert types.get(name) == kind, name
        found = label_sets(samples, name, kind)
        assert found, f"{name} has no sample after a restart"
        assert all(seen == labels for seen in found), (name, found)
    name, labels = BY_NAMESPACE
    # Reloader's sample name: a counter family of that name cannot be typed counter here.
    assert types.get(name) == "untyped"
    assert {"success": "true", "namespace": NAMESPACE} in samples[name]
    assert {"success": "false", "namespace": NAMESPACE} in samples[name]
    assert all(set(sample) == labels for sample in samples[name])


async def test_a_restart_counts_as_reloader_counts_it() -> None:
    ok = REGISTRY.get_sample_value("reloader_reload_executed_total", {"success": "true"}) or 0
    failed = REGISTRY.get_sample_value("reloader_reload_executed_total", {"success": "false"}) or 0
    action = {"workload_kind": "Deployment", "result": "success"}
    actions = REGISTRY.get_sample_value("reloader_action_total", action) or 0
    matched = REGISTRY.get_sample_value("reloader_workloads_matched_total", {"kind": "Deployment"})
    await record_a_skip_a_success_and_a_failure(FakeApi())
    assert (
        REGISTRY.get_sample_value("reloader_reload_executed_total", {"success": "true"}) == ok + 1
    )
    assert (
        REGISTRY.get_sample_value("reloader_reload_executed_total", {"success": "false"})
        == failed + 1
    )
    assert REGISTRY.get_sample_value("reloader_action_total", action) == actions + 1
    # One Deployment uses the changed Secret.
    assert (
        REGISTRY.get_sample_value("reloader_workloads_matched_total", {"kind": "Deployment"})
        == (matched or 0) + 1
    )


def test_reloaders_restart_counters_are_zero_before_the_first_restart() -> None:
    # A fresh process: this one's counters have seen the other tests' restarts.
    exposition = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from prometheus_client import generate_latest; "
            "from fluxd.metrics import REGISTRY; "
            "sys.stdout.buffer.write(generate_latest(REGISTRY))",
        ],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout.decode()
    assert 'reloader_reload_executed_total{success="true"} 0.0' in exposition
    assert 'reloader_reload_executed_total{success="false"} 0.0' in exposition


def test_the_per_namespace_counter_is_off_unless_asked_for() -> None:
    types, _ = scrape()
    assert BY_NAMESPACE[0] not in types


def test_the_series_fluxd_does_not_export_are_documented() -> None:
    guide = (ROOT / "docs" / "reloader-migration.md").read_text()
    types, _ = scrape()
    for name in NOT_EXPORTED:
        assert name not in types
        assert name in guide, name
