"""Fixtures shared by every test: the real control plane for ``e2e`` tests.

The cluster is started once per session. When the control-plane binaries
cannot be built, every e2e test fails with the reason: a missing toolchain must
never pass quietly as skipped tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from testenv import build
from testenv.api import Api
from testenv.cluster import Cluster, ClusterError

_cluster_failure: str | None = None
_timings: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running control plane (etcd, apiserver, controller-manager, scheduler, kwok)."""
    global _cluster_failure
    if _cluster_failure is not None:
        pytest.fail(f"the test control plane is not available: {_cluster_failure}", pytrace=False)
    workdir = Path(tmp_path_factory.mktemp("cluster"))
    instance = Cluster(workdir=workdir, nodes=2, keep_workdir=True)
    try:
        instance.start()
    except (build.BuildError, ClusterError) as error:
        _cluster_failure = str(error)
        pytest.fail(f"the test control plane is not available: {error}", pytrace=False)
    _timings.append(
        f"control plane started in {instance.started_in:.1f}s at {instance.server} "
        f"(binaries in {build.bin_dir()})"
    )
    os.environ["FLUXD_TEST_KUBECONFIG"] = str(instance.kubeconfig)
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def remote_cluster(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second control plane, the remote a Kustomization's kubeConfig names.

    Started only for the tests that ask for it, after the local one; its own
    free ports and workdir; no nodes (its tests apply objects that need none).
    """
    instance = Cluster(workdir=Path(tmp_path_factory.mktemp("remote-cluster")), nodes=0)
    try:
        instance.start()
    except (build.BuildError, ClusterError) as error:
        pytest.fail(f"the remote test control plane is not available: {error}", pytrace=False)
    _timings.append(f"remote control plane started in {instance.started_in:.1f}s")
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def api(cluster: Cluster) -> Api:
    return cluster.api


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> list[str]:
    """fluxd's CRDs, installed once per session from manifests/crds."""
    from tests.support.crds import install_crds

    return install_crds(cluster.api)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _timings:
        terminalreporter.write_line(f"[testenv] {line}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and report.failed and "cluster" in getattr(item, "fixturenames", ()):
        instance = item.funcargs.get("cluster") if hasattr(item, "funcargs") else None
        if isinstance(instance, Cluster):
            report.sections.append(("control plane logs (tail)", instance.log_tails(15)))
    return report
