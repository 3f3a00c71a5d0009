"""CEL in a Kustomization's reconcile: readyExpr gates dependents, healthCheckExprs end waits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from fluxd.apply import ObjectRef
from fluxd.apply.cel import HealthCheckExprs
from fluxd.apply.ssa import HealthCheckError, ResourceManager
from fluxd.build import BuildCache
from fluxd.controllers.kustomization import KustomizationReconciler
from fluxd.controllers.outcomes import Stalled, Waiting
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.resources import Resource
from fluxd.settings import Settings
from fluxd.source import ArtifactCache

WIDGET = Resource("example.com", "v1", "Widget", "widgets", namespaced=True)


class FakeKube:
    """Reads only: what the dependency check and the health wait ask of the API."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def put(self, obj: dict[str, Any]) -> None:
        metadata = obj["metadata"]
        self.objects[(obj["kind"], metadata["namespace"], metadata["name"])] = obj

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        if (api_version, kind) == (WIDGET.api_version, WIDGET.kind):
            return WIDGET
        raise kube_errors.NotFound(f"no kind {kind}", status=404)

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        found = self.objects.get((resource.kind, namespace or "", name))
        return copy.deepcopy(found) if found is not None else None


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


def reconciler(kube: FakeKube, tmp_path: Path, **settings: Any) -> KustomizationReconciler:
    return KustomizationReconciler(
        kube=cast(Kube, kube),
        settings=Settings(requeue_dependency=30.0, **settings),
        artifacts=ArtifactCache(tmp_path / "storage", max_entries=2, workdir=tmp_path / "x"),
        build_cache=BuildCache(max_entries=2),
    )


def kustomization(name: str, *, version: str, ready: bool, **dep: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": 1,
            "labels": {"app/version": version},
        },
        "spec": {
            "sourceRef": {"kind": "GitRepository", "name": "src"},
            "dependsOn": [{"name": "backend", **dep}] if dep else [],
        },
        "status": {
            "observedGeneration": 1,
            "lastAppliedRevision": "r1",
            "lastAttemptedRevision": "r1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


SAME_VERSION = "dep.metadata.labels['app/version'] == self.metadata.labels['app/version']"


async def test_ready_expr_holds_a_dependent_back_until_it_is_true(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.put(kustomization("backend", version="v1", ready=True))
    frontend = kustomization("frontend", version="v2", ready=False, readyExpr=SAME_VERSION)
    with pytest.raises(Waiting) as raised:
        await reconciler(kube, tmp_path)._check_dependencies(frontend, {"revision": "r1"})
    assert raised.value.reason == "DependencyNotReady"
    assert raised.value.message == (
        "dependency 'ns/backend' is not ready according to readyExpr eval"
    )

    kube.put(kustomization("backend", version="v2", ready=True))
    await reconciler(kube, tmp_path)._check_dependencies(frontend, {"revision": "r1"})


async def test_ready_expr_replaces_the_built_in_check_unless_additive(
    kube: FakeKube, tmp_path: Path
) -> None:
    # The expression says ready although the dependency's Ready condition is False.
    kube.put(kustomization("backend", version="v2", ready=False))
    frontend = kustomization("frontend", version="v2", ready=False, readyExpr=SAME_VERSION)
    await reconciler(kube, tmp_path)._check_dependencies(frontend, {"revision": "r1"})

    additive = reconciler(kube, tmp_path, additive_cel_dependency_check=True)
    with pytest.raises(Waiting) as raised:
        await additive._check_dependencies(frontend, {"revision": "r1"})
    assert raised.value.message == "dependency 'ns/backend' is not ready"


async def test_a_ready_expr_that_cannot_compile_stalls(kube: FakeKube, tmp_path: Path) -> None:
    kube.put(kustomization("backend", version="v1", ready=True))
    frontend = kustomization("frontend", version="v1", ready=False, readyExpr="dep.metadata ==")
    with pytest.raises(Stalled) as raised:
        await reconciler(kube, tmp_path)._check_dependencies(frontend, {"revision": "r1"})
    assert raised.value.reason == "InvalidCELExpression"
    assert raised.value.message.startswith(
        "Reconciliation failed terminally due to configuration error: failed to evaluate "
        "dependency backend: failed to parse the CEL expression 'dep.metadata =='"
    )


async def test_a_ready_expr_on_a_missing_field_waits_with_the_error(
    kube: FakeKube, tmp_path: Path
) -> None:
    backend = kustomization("backend", version="v1", ready=True)
    del backend["metadata"]["labels"]
    kube.put(backend)
    frontend = kustomization("frontend", version="v1", ready=False, readyExpr=SAME_VERSION)
    with pytest.raises(Waiting) as raised:
        await reconciler(kube, tmp_path)._check_dependencies(frontend, {"revision": "r1"})
    assert raised.value.message == (
        f"failed to evaluate the CEL expression '{SAME_VERSION}': no such key: labels"
    )


# -- health waits with healthCheckExprs ------------------------------------------------

PHASE = HealthCheckExprs.from_spec(
    [
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "current": "status.phase == 'Running'",
            "failed": "status.phase == 'Broken'",
        }
    ]
)
REF = ObjectRef(namespace="ns", name="w", group="example.com", kind="Widget", version="v1")


def widget(phase: str | None) -> dict[str, Any]:
    # A Ready=False condition: kstatus alone would keep waiting on it.
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "False"}]}
    if phase is not None:
        status["phase"] = phase
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns"},
        "status": status,
    }


def manager(kube: FakeKube) -> ResourceManager:
    return ResourceManager(cast(Kube, kube), owner_name="app", owner_namespace="ns")


async def test_a_current_expression_ends_the_wait(kube: FakeKube) -> None:
    kube.put(widget("Running"))
    await manager(kube).wait_for_ready([REF], timeout=30, interval=0.01, exprs=PHASE)


async def test_a_failed_expression_fails_the_wait_at_once(kube: FakeKube) -> None:
    kube.put(widget("Broken"))
    # Far shorter than the timeout: a Failed verdict never waits for it.
    with anyio.fail_after(10), pytest.raises(HealthCheckError) as raised:
        await manager(kube).wait_for_ready([REF], timeout=3600, interval=0.01, exprs=PHASE)
    assert str(raised.value) == (
        "failed early due to stalled resources: [Widget/ns/w status: 'Failed']"
    )


async def test_an_expression_that_cannot_evaluate_is_reported_on_timeout(kube: FakeKube) -> None:
    kube.put(widget(None))
    with pytest.raises(HealthCheckError) as raised:
        await manager(kube).wait_for_ready([REF], timeout=0.05, interval=0.01, exprs=PHASE)
    assert str(raised.value) == (
        "timeout waiting for: [Widget/ns/w status: 'Unknown': failed to evaluate the CEL "
        "expression 'status.phase == 'Broken'': no such key: phase]"
    )
