"""Charts of an OCI HelmRepository: picking a version among tags, the secretRef, a pull."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxd.controllers.helmchart import HelmChartReconciler
from fluxd.kube.client import Kube
from fluxd.source import Storage
from fluxd.source.errors import AuthenticationFailed, InvalidSource
from fluxd.source.helm import ChartBuildFailed, package_chart
from fluxd.source.helm_oci import (
    is_full_version,
    oci_chart_address,
    oci_chart_credentials,
    select_oci_chart_version,
)
from fluxd.source.oci import HELM_CHART_LAYER, OCIAddress, RegistryCredentials

# As a registry lists them: Helm wrote each version's '+' as '_'.
TAGS = ["0.1.0", "0.2.0", "0.3.0-rc.1", "0.2.1_build.7", "1.0.0", "latest", "v0.9.0", "1.1"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param("0.x", "0.2.1+build.7", id="range-reads-underscore-as-plus"),
        pytest.param("", "1.0.0", id="empty-is-latest-stable"),
        pytest.param("*", "1.0.0", id="star-is-latest-stable"),
        pytest.param(">=0.3.0-0 <1.0.0", "0.3.0-rc.1", id="prerelease-when-asked"),
        pytest.param("0.2.1+build.7", "0.2.1+build.7", id="exact-match-first"),
        pytest.param("~0.1", "0.1.0", id="tilde"),
    ],
)
def test_the_chart_version_is_picked_among_tags_as_flux_does(version: str, expected: str) -> None:
    assert select_oci_chart_version(TAGS, "app", version) == expected


def test_tags_that_are_not_strict_versions_are_not_candidates() -> None:
    # 'v0.9.0' and '1.1' are not what Helm pushes, so they are never picked.
    assert select_oci_chart_version(["v0.9.0", "1.1", "0.1.0"], "app", "*") == "0.1.0"
    with pytest.raises(ChartBuildFailed) as raised:
        select_oci_chart_version(["latest", "v2.0.0"], "app", "*")
    assert raised.value.reason == "ChartPullError"
    assert "unable to locate any tags in provided repository: app" in raised.value.message


def test_no_tag_in_the_range_is_a_pull_error_with_flux_words() -> None:
    with pytest.raises(ChartBuildFailed) as raised:
        select_oci_chart_version(TAGS, "app", ">=2.0.0")
    assert raised.value.reason == "ChartPullError"
    assert raised.value.message == (
        "chart pull error: failed to get chart version for remote reference: "
        "could not locate a version matching provided version string >=2.0.0"
    )


@pytest.mark.parametrize(
    ("version", "full"),
    [("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1+b", True), ("1.2", False), ("1.x", False)],
)
def test_only_a_three_part_version_skips_the_tag_listing(version: str, full: bool) -> None:
    assert is_full_version(version) is full


def test_the_chart_is_a_repository_below_the_helm_repository_url() -> None:
    assert oci_chart_address("oci://127.0.0.1:5000/charts/", "app") == OCIAddress(
        "127.0.0.1:5000", "charts/app"
    )
    with pytest.raises(InvalidSource):
        oci_chart_address("https://127.0.0.1:5000/charts", "app")


def test_the_secret_ref_is_basic_auth_or_a_docker_config() -> None:
    basic = {"username": b"me", "password": b"pw"}
    assert oci_chart_credentials(basic, registry="r:1", secret_name="s") == RegistryCredentials(
        "me", "pw"
    )
    config = json.dumps({"auths": {"r:1": {"username": "bot", "password": "tok"}}}).encode()
    docker = {".dockerconfigjson": config}
    assert oci_chart_credentials(docker, registry="r:1", secret_name="s") == RegistryCredentials(
        "bot", "tok"
    )
    assert oci_chart_credentials(None, registry="r:1", secret_name="s").anonymous
    with pytest.raises(AuthenticationFailed):
        oci_chart_credentials({"username": b"me"}, registry="r:1", secret_name="s")


class _ChartRegistry:
    """A plain-HTTP registry holding chart 'app' at 1.0.0 and 1.1.0+b.1 (tag '1.1.0_b.1')."""

    def __init__(self, tmp_path: Path) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.asked: list[str] = []
        for version in ("1.0.0", "1.1.0+b.1"):
            chart = tmp_path / f"app-{version}"
            chart.mkdir()
            (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: app\nversion: {version}\n")
            (chart / "values.yaml").write_text("replicas: 1\n")
            (chart / "prod.yaml").write_text("replicas: 3\n")
            layer = package_chart(chart).content
            digest = f"sha256:{hashlib.sha256(layer).hexdigest()}"
            self.blobs[digest] = layer
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json"},
                    "layers": [
                        {"mediaType": HELM_CHART_LAYER, "digest": digest, "size": len(layer)}
                    ],
                }
            ).encode()
            self.manifests[version.replace("+", "_")] = manifest
            self.manifests[f"sha256:{hashlib.sha256(manifest).hexdigest()}"] = manifest

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/charts/app/tags/list", self.tags)
        app.router.add_route("*", "/v2/charts/app/manifests/{reference}", self.manifest)
        app.router.add_get("/v2/charts/app/blobs/{digest}", self.blob)
        return app

    async def tags(self, request: web.Request) -> web.Response:
        self.asked.append("tags")
        return web.json_response({"tags": ["1.0.0", "1.1.0_b.1", "latest"]})

    async def manifest(self, request: web.Request) -> web.Response:
        body = self.manifests[request.match_info["reference"]]
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        return web.Response(
            body=b"" if request.method == "HEAD" else body,
            headers={"Docker-Content-Digest": digest},
        )

    async def blob(self, request: web.Request) -> web.Response:
        return web.Response(body=self.blobs[request.match_info["digest"]])


class _Objects:
    def __init__(self, repository: dict[str, Any]) -> None:
        self.repository = repository

    async def get_or_none(
        self, resource: object, name: str, *, namespace: str
    ) -> dict[str, Any] | None:
        return self.repository


@pytest.mark.parametrize(
    ("version", "values_files", "revision", "asked"),
    [
        pytest.param("1.x", [], "1.1.0+b.1", ["tags"], id="range-lists-tags"),
        pytest.param("1.0.0", [], "1.0.0", [], id="full-version-pulls-the-tag"),
        pytest.param("1.0.0", ["prod.yaml"], "1.0.0+1", [], id="values-files-merged"),
    ],
)
async def test_a_chart_is_pulled_from_an_insecure_oci_helm_repository(
    tmp_path: Path, version: str, values_files: list[str], revision: str, asked: list[str]
) -> None:
    registry = _ChartRegistry(tmp_path)
    server = TestServer(registry.app(), host="127.0.0.1")
    await server.start_server()
    repository = {
        "metadata": {"namespace": "apps", "name": "charts"},
        "spec": {"type": "oci", "url": f"oci://127.0.0.1:{server.port}/charts", "insecure": True},
        "status": {},
    }
    storage = Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=2)
    reconciler = HelmChartReconciler(kube=cast(Kube, _Objects(repository)), storage=storage)
    chart = {
        "metadata": {"namespace": "apps", "name": "app", "generation": 1},
        "spec": {
            "chart": "app",
            "version": version,
            "valuesFiles": values_files,
            "sourceRef": {"kind": "HelmRepository", "name": "charts"},
        },
        "status": {},
    }
    try:
        done = await reconciler.reconcile(chart)
    finally:
        await reconciler.registries.session().close()
        await server.close()
    assert done.reason == "ChartPullSucceeded"
    assert done.status["artifact"]["revision"] == revision
    assert registry.asked == asked
    with tarfile.open(storage.local_path(done.status["artifact"]["path"]), "r:gz") as archive:
        values = archive.extractfile("app/values.yaml")
        assert values is not None
        assert yaml.safe_load(values.read()) == {"replicas": 3 if values_files else 1}
