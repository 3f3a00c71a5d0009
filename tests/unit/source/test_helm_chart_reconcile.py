"""When a HelmChart built from a GitRepository publishes a new artifact, and when it keeps its own.

As Flux: with ``reconcileStrategy: ChartVersion`` (the default) a new commit
that leaves the chart's version alone publishes nothing new; with
``Revision`` every commit does (its hash goes into the version's build
metadata); a spec change with ``valuesFiles`` does too (the generation goes
there). No cluster: the GitRepository is read from a fake, its artifact is
really stored.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxd.controllers.helmchart import HelmChartReconciler
from fluxd.controllers.outcomes import Reconciled, Stalled, Transient
from fluxd.kube.client import Kube
from fluxd.source import Storage, unpack
from fluxd.source.helm import package_chart

COMMITS = ("a" * 40, "b" * 40)


class _Sources:
    """The objects HelmCharts name, by name."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    async def get_or_none(
        self, resource: object, name: str, *, namespace: str
    ) -> dict[str, Any] | None:
        return self.objects.get(name)

    async def list_all(
        self, resource: object, *, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        # HelmRepositories, looked up by URL for a chart's dependencies: none here.
        return [], "1"


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=2)


@pytest.fixture
def sources() -> _Sources:
    return _Sources()


@pytest.fixture
def reconciler(storage: Storage, sources: _Sources) -> HelmChartReconciler:
    return HelmChartReconciler(kube=cast(Kube, sources), storage=storage)


async def _commit(
    storage: Storage, sources: _Sources, tmp_path: Path, commit: str, *, version: str
) -> None:
    tree = tmp_path / f"tree-{commit[:4]}"
    chart = tree / "charts" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: app\nversion: {version}\n")
    (chart / "values.yaml").write_text("replicas: 1\n")
    (chart / "templates" / "cm.yaml").write_text(f"# {commit}\nkind: ConfigMap\n")
    (tree / "prod.yaml").write_text("replicas: 2\n")
    artifact = await storage.store(
        namespace="apps",
        name="repo",
        revision=f"main@sha1:{commit}",
        commit=commit,
        source_dir=tree,
    )
    sources.objects["repo"] = {
        "metadata": {"namespace": "apps", "name": "repo"},
        "spec": {},
        "status": {"artifact": dict(artifact)},
    }


def _chart(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "app", "generation": generation},
        "spec": {
            "chart": "charts/app",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
        "status": {},
    }


def _after(chart: dict[str, Any], done: Reconciled) -> dict[str, Any]:
    """The object as the controller leaves it: status patched, generation observed."""
    generation = chart["metadata"]["generation"]
    status = {**chart["status"], **done.status, "observedGeneration": generation}
    status["conditions"] = [{"type": "Ready", "status": "True", "message": done.message}]
    return {**chart, "status": status}


async def test_the_default_strategy_keeps_the_artifact_while_the_version_stays(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
    first = await reconciler.reconcile(_chart())
    chart = _after(_chart(), first)
    assert first.reason == "ChartPackageSucceeded"
    assert chart["status"]["artifact"]["revision"] == "1.0.0"

    await _commit(storage, sources, tmp_path, COMMITS[1], version="1.0.0")
    again = await reconciler.reconcile(chart)
    assert again.status["artifact"] == chart["status"]["artifact"]
    assert again.status["observedSourceArtifactRevision"] == f"main@sha1:{COMMITS[1]}"
    assert again.events == []


async def test_the_revision_strategy_publishes_every_commit(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    spec: dict[str, Any] = {"reconcileStrategy": "Revision"}
    await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
    first = await reconciler.reconcile(_chart(**spec))
    chart = _after(_chart(**spec), first)
    assert chart["status"]["artifact"]["revision"] == f"1.0.0+{COMMITS[0][:12]}"

    await _commit(storage, sources, tmp_path, COMMITS[1], version="1.0.0")
    again = await reconciler.reconcile(chart)
    assert again.status["artifact"]["revision"] == f"1.0.0+{COMMITS[1][:12]}"
    assert again.status["artifact"]["path"] == f"helmchart/apps/app/app-1.0.0+{COMMITS[1][:12]}.tgz"
    assert [event.reason for event in again.events] == ["ChartPackageSucceeded"]


async def test_a_new_generation_with_values_files_publishes_a_new_version(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
    first = await reconciler.reconcile(_chart(valuesFiles=["prod.yaml"]))
    chart = _after(_chart(valuesFiles=["prod.yaml"]), first)
    assert chart["status"]["artifact"]["revision"] == "1.0.0+1"
    # As Flux: the values files are recorded only when missing ones may be skipped.
    assert chart["status"]["observedValuesFiles"] is None
    assert chart["status"]["url"] == "http://fluxd.test/helmchart/apps/app/latest.tar.gz"

    edited = {**chart, "metadata": {**chart["metadata"], "generation": 2}}
    edited["spec"] = {**chart["spec"], "valuesFiles": ["charts/app/values.yaml", "prod.yaml"]}
    again = await reconciler.reconcile(edited)
    assert again.status["artifact"]["revision"] == "1.0.0+2"
    assert again.message == (
        "packaged 'app' chart with version '1.0.0+2' and merged values files "
        "[charts/app/values.yaml prod.yaml]"
    )


async def test_skipped_values_files_are_recorded(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
    spec: dict[str, Any] = {"valuesFiles": ["missing.yaml", "prod.yaml"]}
    done = await reconciler.reconcile(_chart(ignoreMissingValuesFiles=True, **spec))
    assert done.status["observedValuesFiles"] == ["prod.yaml"]


async def test_a_missing_values_file_stalls_the_chart(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
    with pytest.raises(Stalled) as raised:
        await reconciler.reconcile(_chart(valuesFiles=["staging.yaml"]))
    assert raised.value.reason == "ValuesFilesError"
    assert [c.type for c in raised.value.conditions] == ["BuildFailed"]


async def test_a_source_without_an_artifact_is_waited_for(
    reconciler: HelmChartReconciler, sources: _Sources
) -> None:
    sources.objects["repo"] = {"metadata": {"namespace": "apps", "name": "repo"}, "status": {}}
    with pytest.raises(Transient) as raised:
        await reconciler.reconcile(_chart())
    assert raised.value.reason == "NoSourceArtifact"
    assert raised.value.message == "no artifact available for GitRepository source 'repo'"


async def test_a_chart_from_a_bucket_waits_for_a_source_that_never_comes(
    reconciler: HelmChartReconciler,
) -> None:
    bucket = _chart()
    bucket["spec"]["sourceRef"] = {"kind": "Bucket", "name": "minio"}
    with pytest.raises(Transient, match="no artifact available for Bucket source 'minio'"):
        await reconciler.reconcile(bucket)


async def test_a_dependency_without_a_helm_repository_is_fetched_from_its_url(
    reconciler: HelmChartReconciler, storage: Storage, sources: _Sources, tmp_path: Path
) -> None:
    # As Flux: no HelmRepository has the dependency's URL, so the URL itself is asked,
    # anonymously; the subchart goes under charts/, and an unchanged version is not rebuilt.
    redis = tmp_path / "redis"
    (redis / "templates").mkdir(parents=True)
    (redis / "Chart.yaml").write_text("apiVersion: v2\nname: redis\nversion: 1.4.0\n")
    (redis / "templates" / "sts.yaml").write_text("kind: StatefulSet\n")
    package = package_chart(redis).content
    asked: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        asked.append(f"{request.path} {request.headers.get('Authorization')}")
        if request.path == "/charts/index.yaml":
            entry = {"name": "redis", "version": "1.4.0", "urls": ["redis-1.4.0.tgz"]}
            index = {"apiVersion": "v1", "entries": {"redis": [entry]}}
            return web.Response(body=yaml.safe_dump(index).encode())
        return web.Response(body=package)

    app = web.Application()
    app.router.add_get("/{path:.*}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        await _commit(storage, sources, tmp_path, COMMITS[0], version="1.0.0")
        tree = storage.local_path(sources.objects["repo"]["status"]["artifact"]["path"])
        source = tmp_path / "with-dependency"
        unpack(tree, source)
        chart_file = source / "charts" / "app" / "Chart.yaml"
        url = server.make_url("/charts")
        chart_file.write_text(
            chart_file.read_text()
            + f"dependencies:\n- {{name: redis, version: 1.x, repository: '{url}'}}\n"
        )
        artifact = await storage.store(
            namespace="apps",
            name="repo",
            revision="main@sha1:" + "c" * 40,
            commit="c" * 40,
            source_dir=source,
        )
        sources.objects["repo"]["status"] = {"artifact": dict(artifact)}
        done = await reconciler.reconcile(_chart())
        again = await reconciler.reconcile(_after(_chart(), done))
    finally:
        await server.close()
    assert asked == ["/charts/index.yaml None", "/charts/redis-1.4.0.tgz None"]
    with tarfile.open(storage.local_path(done.status["artifact"]["path"]), "r:gz") as archive:
        names = archive.getnames()
    assert "app/charts/redis/templates/sts.yaml" in names
    assert again.status["artifact"] == done.status["artifact"]
