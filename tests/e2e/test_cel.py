"""CEL in Kustomizations against a real control plane: healthCheckExprs and readyExpr.

A CustomResourceDefinition made here (``Widget``, with a status subresource)
stands in for a third-party custom resource; the tests play its controller by
writing its status through the status subresource.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.flux import (
    KUSTOMIZATIONS,
    condition,
    git_repository,
    kustomization,
    kustomization_path,
    request_reconcile,
    wait_condition,
)

GROUP = "cel.fluxd.test"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
SOURCE = "widgets"
TERMINAL = "Reconciliation failed terminally due to configuration error: "
# The widget's own controller would write status.phase; kstatus knows nothing of it.
PHASE_EXPRS = [
    {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "current": "status.phase == 'Running'",
        "failed": "status.phase == 'Broken'",
    }
]


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def widget_crd(cluster: Cluster) -> str:
    name = f"widgets.{GROUP}"
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    cluster.api.apply(
        f"{CRD_PATH}/{name}",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {
                "group": GROUP,
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                        "subresources": {"status": {}},
                    }
                ],
            },
        },
    )

    def established() -> bool:
        conditions = cluster.api.get(f"{CRD_PATH}/{name}").get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=60, what="the Widget CRD established")
    return name


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    # A short dependency requeue: readyExpr is re-evaluated on that interval, as in Flux.
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-cel"),
        extra_args=["--lease-name=cel-tests", "--max-retry-delay=5s", "--requeue-dependency=2s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _widget_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/v1/namespaces/{namespace}/widgets/{name}"


def _widget(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}}


def _source(api: Api, git: GitServer, namespace: str, files: dict[str, Any]) -> None:
    repo = f"cel/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    git.commit(repo, files)
    spec = {"interval": "1h", "url": git.url(repo), "ref": {"branch": "master"}}
    git_repository(api, namespace, SOURCE, spec)


def _set_phase(api: Api, namespace: str, name: str, phase: str) -> None:
    # Ready=True as well: kstatus alone would call the widget ready whatever its phase.
    api.merge_patch(
        f"{_widget_path(namespace, name)}/status",
        {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}},
    )


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "interval": "1h",
        "path": "./",
        "prune": True,
        "targetNamespace": extra.pop("targetNamespace"),
        "sourceRef": {"kind": "GitRepository", "name": SOURCE},
        **extra,
    }


def test_health_check_exprs_decide_when_a_custom_resource_is_ready(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, widget_crd: str
) -> None:
    _source(api, git, namespace, {"widget.yaml": yaml.safe_dump(_widget("w"))})
    # The widget exists before the apply, Ready=True but still starting.
    api.create(f"/apis/{GROUP}/v1/namespaces/{namespace}/widgets", _widget("w"))
    _set_phase(api, namespace, "w", "Starting")
    path = kustomization_path(namespace, "app")
    kustomization(
        api,
        namespace,
        "app",
        _spec(targetNamespace=namespace, wait=True, timeout="15s", healthCheckExprs=PHASE_EXPRS),
    )
    timed_out = wait_condition(api, path, status="False", reason="HealthCheckFailed", timeout=90)
    message = condition(timed_out)["message"]  # type: ignore[index]
    assert f"timeout waiting for: [Widget/{namespace}/w status: 'InProgress']" in message

    _set_phase(api, namespace, "w", "Running")
    request_reconcile(api, path)
    ready = wait_condition(api, path, timeout=90)
    assert condition(ready, "Healthy")["status"] == "True"  # type: ignore[index]


def test_a_failed_expression_fails_the_health_check_without_waiting_for_the_timeout(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, widget_crd: str
) -> None:
    _source(api, git, namespace, {"widget.yaml": yaml.safe_dump(_widget("w"))})
    api.create(f"/apis/{GROUP}/v1/namespaces/{namespace}/widgets", _widget("w"))
    _set_phase(api, namespace, "w", "Broken")
    path = kustomization_path(namespace, "app")
    kustomization(
        api,
        namespace,
        "app",
        _spec(targetNamespace=namespace, wait=True, timeout="1h", healthCheckExprs=PHASE_EXPRS),
    )
    # An hour's timeout, and the failure is reported within the wait's minute.
    failed = wait_condition(api, path, status="False", reason="HealthCheckFailed", timeout=60)
    assert (
        f"failed early due to stalled resources: [Widget/{namespace}/w status: 'Failed']"
        in condition(failed)["message"]  # type: ignore[index]
    )


def test_a_health_check_expression_that_does_not_compile_stalls(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    bad = [{"apiVersion": f"{GROUP}/v1", "kind": "Widget", "current": "status.phase =="}]
    path = kustomization_path(namespace, "app")
    kustomization(api, namespace, "app", _spec(targetNamespace=namespace, healthCheckExprs=bad))
    stalled = wait_condition(api, path, kind="Stalled", reason="InvalidCELExpression")
    assert condition(stalled)["message"].startswith(  # type: ignore[index]
        f"{TERMINAL}failed to create custom status evaluator for healthchecks[0]: failed to "
        "parse the expression Current: failed to parse the CEL expression 'status.phase ==': "
        "ERROR: <input>:1:16: Syntax error"
    )
    assert condition(stalled)["reason"] == "InvalidCELExpression"  # type: ignore[index]
    ready = condition(stalled, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "InvalidCELExpression")


def _labelled_kustomization(
    api: Api, namespace: str, name: str, version: str, spec: dict[str, Any]
) -> None:
    api.apply(
        f"{KUSTOMIZATIONS.format(ns=namespace)}/{name}",
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app/version": version}},
            "spec": spec,
        },
    )


LOCKSTEP = (
    "dep.metadata.labels['app/version'] == self.metadata.labels['app/version'] && "
    "dep.status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
)


def _configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"x": "1"}}
    )


def test_ready_expr_gates_a_dependent_until_it_holds(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    files = {"backend/cm.yaml": _configmap("backend"), "frontend/cm.yaml": _configmap("frontend")}
    _source(api, git, namespace, files)
    backend = _spec(targetNamespace=namespace, path="./backend")
    _labelled_kustomization(api, namespace, "backend", "v1", backend)
    wait_condition(api, kustomization_path(namespace, "backend"))

    frontend_spec = _spec(
        targetNamespace=namespace,
        path="./frontend",
        dependsOn=[{"name": "backend", "readyExpr": LOCKSTEP}],
    )
    _labelled_kustomization(api, namespace, "frontend", "v2", frontend_spec)
    frontend = kustomization_path(namespace, "frontend")
    waiting = wait_condition(api, frontend, status="False", reason="DependencyNotReady")
    assert condition(waiting)["message"] == (  # type: ignore[index]
        f"dependency '{namespace}/backend' is not ready according to readyExpr eval"
    )
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/frontend") is None

    # The backend reaches the same version: the expression holds and the frontend applies.
    _labelled_kustomization(api, namespace, "backend", "v2", backend)
    wait_condition(api, frontend, timeout=90)
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/frontend")["data"] == {"x": "1"}


def test_a_ready_expr_that_does_not_compile_stalls(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    _source(api, git, namespace, {"backend/cm.yaml": _configmap("backend")})
    kustomization(api, namespace, "backend", _spec(targetNamespace=namespace, path="./backend"))
    spec = _spec(
        targetNamespace=namespace,
        path="./backend",
        dependsOn=[{"name": "backend", "readyExpr": "dep.status.ready &&"}],
    )
    kustomization(api, namespace, "frontend", spec)
    stalled = wait_condition(
        api,
        kustomization_path(namespace, "frontend"),
        kind="Stalled",
        reason="InvalidCELExpression",
    )
    assert condition(stalled)["message"].startswith(  # type: ignore[index]
        f"{TERMINAL}failed to evaluate dependency backend: failed to parse the CEL expression "
        "'dep.status.ready &&': ERROR: <input>:1:20: Syntax error"
    )
