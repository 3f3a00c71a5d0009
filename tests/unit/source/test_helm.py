"""Helm sources without Helm: index artifacts, picking a chart version, packaging a chart."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxd.controllers.helmrepository import link_latest
from fluxd.controllers.outcomes import Reconciled
from fluxd.source import InvalidSource, Storage
from fluxd.source.helm import (
    ChartBuildFailed,
    ChartDependency,
    ChartVersion,
    IndexationFailed,
    chart_download_url,
    dependency_repository_url,
    index_artifact,
    local_chart_dir,
    local_dependency_dir,
    merge_values,
    missing_dependencies,
    package_chart,
    repackage_chart,
    select_chart_version,
    with_version_metadata,
)
from fluxd.source.helm_http import HelmCredentials

INDEX: dict[str, Any] = {
    "apiVersion": "v1",
    "entries": {
        "podinfo": [
            {"name": "podinfo", "version": "6.5.0", "urls": ["podinfo-6.5.0.tgz"]},
            {"name": "podinfo", "version": "6.6.0-rc.1", "urls": ["podinfo-6.6.0-rc.1.tgz"]},
            {"name": "podinfo", "version": "6.4.1", "urls": ["podinfo-6.4.1.tgz"]},
            {"name": "podinfo", "version": "5.2.0", "urls": ["podinfo-5.2.0.tgz"]},
        ],
        "empty": [],
    },
}


@pytest.mark.parametrize(
    ("version", "picked"),
    [
        pytest.param("*", "6.5.0", id="latest-stable"),
        pytest.param("", "6.5.0", id="empty-is-latest"),
        pytest.param("6.4.1", "6.4.1", id="exact"),
        pytest.param("6.6.0-rc.1", "6.6.0-rc.1", id="exact-prerelease"),
        pytest.param("~6.4", "6.4.1", id="tilde"),
        pytest.param(">=5.0.0 <6.0.0", "5.2.0", id="range"),
        pytest.param(">=6.6.0-0", "6.6.0-rc.1", id="range-naming-prerelease"),
    ],
)
def test_the_chart_version_is_picked_as_flux_picks_it(version: str, picked: str) -> None:
    assert select_chart_version(INDEX, "podinfo", version).version == picked


def test_equal_versions_go_to_the_one_created_last() -> None:
    index = {
        "apiVersion": "v1",
        "entries": {
            "app": [
                {"version": "1.0.0+b", "created": "2024-01-02T00:00:00Z", "urls": ["new.tgz"]},
                {"version": "1.0.0+a", "created": "2024-01-01T00:00:00Z", "urls": ["old.tgz"]},
            ]
        },
    }
    assert select_chart_version(index, "app", "1.x").urls == ("new.tgz",)


@pytest.mark.parametrize(
    ("chart", "version", "message"),
    [
        pytest.param("nginx", "*", "no chart name found", id="no-such-chart"),
        pytest.param("empty", "*", "no chart version found", id="no-versions"),
        pytest.param(
            "podinfo", "7.x", "no 'podinfo' chart with version matching '7.x' found", id="no-match"
        ),
    ],
)
def test_a_reference_the_index_cannot_satisfy_is_a_persistent_error(
    chart: str, version: str, message: str
) -> None:
    with pytest.raises(ChartBuildFailed) as raised:
        select_chart_version(INDEX, chart, version)
    assert raised.value.reason == "InvalidChartReference"
    assert raised.value.persistent
    assert raised.value.message == (
        f"invalid chart reference: failed to get chart version for remote reference: {message}"
    )


@pytest.mark.parametrize(
    ("repository", "url", "resolved"),
    [
        pytest.param(
            "https://charts.example.com/stable",
            "podinfo-1.0.0.tgz",
            "https://charts.example.com/stable/podinfo-1.0.0.tgz",
            id="relative-to-the-repository-path",
        ),
        pytest.param(
            "https://charts.example.com/stable/",
            "charts/podinfo-1.0.0.tgz",
            "https://charts.example.com/stable/charts/podinfo-1.0.0.tgz",
            id="relative-subdirectory",
        ),
        pytest.param(
            "https://charts.example.com",
            "https://cdn.example.org/podinfo-1.0.0.tgz",
            "https://cdn.example.org/podinfo-1.0.0.tgz",
            id="absolute",
        ),
    ],
)
def test_a_chart_url_is_resolved_against_the_repository(
    repository: str, url: str, resolved: str
) -> None:
    chart = ChartVersion("podinfo", "1.0.0", (url,), None)
    assert chart_download_url(repository, chart) == resolved


def test_the_index_revision_is_the_digest_of_what_was_served() -> None:
    served = (
        b"apiVersion: v1\nentries:\n  app:\n  - version: 1.0.0\n    created: 2024-01-01T00:00:00Z\n"
    )
    revision, filename, content = index_artifact(served)
    assert revision == "sha256:" + hashlib.sha256(served).hexdigest()
    assert filename == f"index-{revision.removeprefix('sha256:')}.yaml"
    # Stored as JSON, timestamps as written.
    assert json.loads(content)["entries"]["app"][0]["created"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("served", "message"),
    [
        pytest.param(b"", "index.yaml file is empty", id="empty"),
        pytest.param(b"entries: {}\n", "no API version specified", id="no-api-version"),
        pytest.param(b"apiVersion: [\n", "failed to load", id="not-yaml"),
    ],
)
def test_an_index_helm_would_refuse_is_refused(served: bytes, message: str) -> None:
    with pytest.raises(IndexationFailed, match=message) as raised:
        index_artifact(served)
    assert raised.value.reason == "IndexationFailed"


def _chart(root: Path, *, version: str = "0.1.0", values: str = "replicas: 1\n") -> Path:
    chart = root / "charts" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: app\nversion: {version}\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "cm.yaml").write_text("kind: ConfigMap\n")
    (chart / "notes.txt~").write_text("editor backup\n")
    (chart / ".helmignore").write_text("*~\n")
    return chart


def _members(content: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive
            if member.isfile()
        }


def test_a_chart_is_packaged_as_helm_package_lays_it_out(tmp_path: Path) -> None:
    chart = package_chart(_chart(tmp_path))
    assert chart.filename == "app-0.1.0.tgz"
    assert chart.summary() == "packaged 'app' chart with version '0.1.0'"
    with tarfile.open(fileobj=io.BytesIO(chart.content), mode="r:gz") as archive:
        names = archive.getnames()
    assert names[0] == "app/Chart.yaml"
    # Every file under the chart's own name; .helmignore and what it ignores left out.
    assert sorted(names) == ["app/Chart.yaml", "app/templates/cm.yaml", "app/values.yaml"]
    assert gzip.decompress(chart.content)  # a plain gzip stream
    assert package_chart(_chart(tmp_path / "again")).content == chart.content


def test_values_files_are_merged_into_values_yaml_and_mark_the_version(tmp_path: Path) -> None:
    root = tmp_path / "source"
    _chart(root, values="replicas: 1\nimage: {repository: app, tag: '1'}\n")
    (root / "prod.yaml").write_text("image: {tag: '2'}\n")
    (root / "extra.yaml").write_text("replicas: 3\n")
    chart = package_chart(
        local_chart_dir(root, "./charts/app"),
        version_metadata="7",
        values_files=["charts/app/values.yaml", "prod.yaml", "extra.yaml"],
        values_root=root,
    )
    assert chart.version == "0.1.0+7"
    assert chart.summary() == (
        "packaged 'app' chart with version '0.1.0+7' and merged values files "
        "[charts/app/values.yaml prod.yaml extra.yaml]"
    )
    members = _members(chart.content)
    assert yaml.safe_load(members["app/values.yaml"]) == {
        "replicas": 3,
        "image": {"repository": "app", "tag": "2"},
    }
    assert yaml.safe_load(members["app/Chart.yaml"])["version"] == "0.1.0+7"
    # As Flux documents: the chart's values.yaml is in the merge only when it is listed.
    alone = package_chart(root / "charts" / "app", values_files=["prod.yaml"], values_root=root)
    assert yaml.safe_load(_members(alone.content)["app/values.yaml"]) == {"image": {"tag": "2"}}


def test_a_missing_values_file_fails_unless_told_to_ignore_it(tmp_path: Path) -> None:
    root = tmp_path / "source"
    chart_dir = _chart(root)
    with pytest.raises(ChartBuildFailed) as raised:
        package_chart(chart_dir, values_files=["missing.yaml"], values_root=root)
    assert raised.value.reason == "ValuesFilesError"
    assert raised.value.persistent
    chart = package_chart(
        chart_dir, values_files=["missing.yaml"], values_root=root, ignore_missing_values_files=True
    )
    assert chart.values_files == ()
    assert yaml.safe_load(_members(chart.content)["app/values.yaml"]) == {"replicas": 1}


def test_a_values_file_outside_the_source_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "source"
    chart_dir = _chart(root)
    (tmp_path / "secret.yaml").write_text("password: hunter2\n")
    with pytest.raises(ChartBuildFailed, match="no values file found"):
        package_chart(chart_dir, values_files=["../secret.yaml"], values_root=root)


def test_a_pulled_chart_with_values_files_is_packaged_again(tmp_path: Path) -> None:
    source = tmp_path / "source"
    chart_dir = _chart(source)
    (chart_dir / "values-prod.yaml").write_text("replicas: 5\n")
    pulled = package_chart(chart_dir).content
    chart = repackage_chart(
        pulled,
        tmp_path / "scratch",
        version_metadata="2",
        values_files=["values-prod.yaml"],
        ignore_missing_values_files=False,
    )
    assert chart.summary() == (
        "pulled 'app' chart with version '0.1.0+2' and merged values files [values-prod.yaml]"
    )
    assert yaml.safe_load(_members(chart.content)["app/values.yaml"]) == {"replicas": 5}


def test_a_chart_path_leaving_the_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSource):
        local_chart_dir(tmp_path, "../elsewhere")


def test_build_metadata_replaces_the_versions_own() -> None:
    assert with_version_metadata("1.2.3+old", "abc123") == "1.2.3+abc123"
    assert with_version_metadata("1.2.3", "") == "1.2.3"
    with pytest.raises(ChartBuildFailed) as raised:
        with_version_metadata("latest", "1")
    assert raised.value.reason == "MetadataPatchError"


def test_values_merge_maps_deeply_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_values(base, {"a": {"c": [3]}, "d": {"e": 1}}) == {
        "a": {"b": 1, "c": [3]},
        "d": {"e": 1},
    }


def test_credentials_need_both_username_and_password() -> None:
    with pytest.raises(InvalidSource, match="required fields 'username' and 'password'"):
        HelmCredentials.from_secrets(auth={"username": b"u"}, tls=None, auth_name="ns/auth")
    tls = {"ca.crt": b"CA", "tls.crt": b"C", "tls.key": b"K"}
    credentials = HelmCredentials.from_secrets(
        auth={"username": b"u", "password": b"p", "caFile": b"old"}, tls=tls
    )
    # certSecretRef takes precedence over the deprecated keys of secretRef.
    assert (credentials.username, credentials.ca, credentials.cert) == ("u", b"CA", b"C")


def test_old_helm_artifacts_are_collected_by_the_same_retention(tmp_path: Path) -> None:
    storage = Storage(tmp_path, base_url="http://fluxd", retention=2)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        artifact = storage.store_file_sync(
            kind="HelmChart",
            namespace="ns",
            name="app",
            filename=f"app-{version}.tgz",
            revision=version,
            content=version.encode(),
        )
        url = storage.link_latest_sync(relpath=artifact["path"], link_name="latest.tar.gz")
    assert artifact["path"] == "helmchart/ns/app/app-1.2.0.tgz"
    assert artifact["url"] == "http://fluxd/helmchart/ns/app/app-1.2.0.tgz"
    assert url == "http://fluxd/helmchart/ns/app/latest.tar.gz"
    assert storage.collect_garbage_sync(current=artifact["path"]) == []
    directory = tmp_path / "helmchart" / "ns" / "app"
    # The link to the latest artifact is neither an artifact kept nor one collected.
    assert sorted(p.name for p in directory.iterdir()) == [
        "app-1.1.0.tgz",
        "app-1.2.0.tgz",
        "latest.tar.gz",
    ]
    assert (directory / "latest.tar.gz").read_bytes() == b"1.2.0"


async def test_the_latest_link_is_kept_pointing_at_the_artifact_of_each_reconcile(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path, base_url="http://fluxd", retention=2)
    stored = [
        storage.store_file_sync(
            kind="HelmChart",
            namespace="ns",
            name="app",
            filename=f"app-{version}.tgz",
            revision=version,
            content=version.encode(),
        )
        for version in ("1.0.0", "1.1.0")
    ]
    link = tmp_path / "helmchart" / "ns" / "app" / "latest.tar.gz"
    for artifact, content in ((stored[0], b"1.0.0"), (stored[0], b"1.0.0"), (stored[1], b"1.1.0")):
        done = Reconciled("Succeeded", "ok", status={"artifact": artifact})
        await link_latest(storage, done, "latest.tar.gz")
        assert done.status["url"] == "http://fluxd/helmchart/ns/app/latest.tar.gz"
        assert link.read_bytes() == content
    link.unlink()
    done = Reconciled("Succeeded", "ok", status={"artifact": stored[1]})
    await link_latest(storage, done, "latest.tar.gz")
    assert link.read_bytes() == b"1.1.0"


def test_a_chart_with_dependencies_not_vendored_is_refused(tmp_path: Path) -> None:
    chart_dir = _chart(tmp_path)
    chart_file = chart_dir / "Chart.yaml"
    chart_file.write_text(
        chart_file.read_text()
        + "dependencies:\n- name: redis\n  version: 1.x\n  repository: https://charts.example\n"
    )
    with pytest.raises(ChartBuildFailed) as raised:
        package_chart(chart_dir)
    assert raised.value.reason == "DependencyBuildError"
    assert "['redis']" in raised.value.message
    # Vendored (as helm dependency build leaves it), the chart is packaged with it.
    redis = tmp_path / "redis"
    redis.mkdir()
    (redis / "Chart.yaml").write_text("apiVersion: v2\nname: redis\nversion: 1.2.0\n")
    (chart_dir / "charts").mkdir()
    (chart_dir / "charts" / "redis-1.2.0.tgz").write_bytes(package_chart(redis).content)
    assert missing_dependencies(chart_dir) == []
    assert "app/charts/redis-1.2.0.tgz" in _members(package_chart(chart_dir).content)


def _dependent(tmp_path: Path, dependencies: str) -> Path:
    chart_dir = _chart(tmp_path)
    chart_file = chart_dir / "Chart.yaml"
    chart_file.write_text(chart_file.read_text() + "dependencies:\n" + dependencies)
    return chart_dir


def test_missing_dependencies_are_those_not_vendored_by_name_or_alias(tmp_path: Path) -> None:
    chart_dir = _dependent(
        tmp_path,
        "- {name: lib, version: 0.x, repository: 'file://../lib'}\n"
        "- {name: redis, version: 1.x, repository: 'https://charts.example', alias: cache}\n"
        "- {name: web, version: '*', repository: 'oci://registry.example/charts'}\n",
    )
    web = chart_dir / "charts" / "web"
    web.mkdir(parents=True)
    (web / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 3.0.0\n")
    missing = missing_dependencies(chart_dir)
    assert [(dep.chart_name, dep.local) for dep in missing] == [("lib", True), ("cache", False)]
    assert dependency_repository_url(missing[1]) == "https://charts.example/"


def test_chart_lock_entries_take_the_place_of_chart_yaml_ones(tmp_path: Path) -> None:
    chart_dir = _dependent(
        tmp_path, "- {name: redis, version: 1.x, repository: 'https://c.example'}\n"
    )
    (chart_dir / "Chart.lock").write_text(
        "dependencies:\n- {name: redis, version: 1.4.2, repository: 'https://c.example'}\n"
    )
    assert [dep.version for dep in missing_dependencies(chart_dir)] == ["1.4.2"]


def test_a_file_dependency_is_taken_from_the_source_and_packaged_under_charts(
    tmp_path: Path,
) -> None:
    chart_dir = _dependent(
        tmp_path, "- {name: lib, version: 0.x, repository: 'file://../lib', alias: common}\n"
    )
    lib = tmp_path / "charts" / "lib"
    (lib / "templates").mkdir(parents=True)
    (lib / "Chart.yaml").write_text("apiVersion: v2\nname: lib\nversion: 0.3.0\n")
    (lib / "templates" / "cm.yaml").write_text("kind: ConfigMap\n")
    (dependency,) = missing_dependencies(chart_dir)
    found = local_dependency_dir(tmp_path, "./charts/app", dependency)
    assert found == lib
    members = _members(package_chart(chart_dir, subcharts={"common": found}).content)
    assert members["app/charts/common/templates/cm.yaml"] == b"kind: ConfigMap\n"
    # The alias is the subchart's name inside the parent, as Helm loads it.
    assert yaml.safe_load(members["app/charts/common/Chart.yaml"])["name"] == "common"


@pytest.mark.parametrize(
    ("repository", "version", "words"),
    [
        pytest.param("file://../nowhere", "*", "no chart found at '/charts/nowhere'", id="missing"),
        pytest.param(
            "file://../lib", "1.x", "can't get a valid version for constraint '1.x'", id="range"
        ),
        pytest.param("file://../../../etc", "*", "no chart found", id="outside-the-source"),
    ],
)
def test_a_file_dependency_that_cannot_be_used_is_a_dependency_build_error(
    tmp_path: Path, repository: str, version: str, words: str
) -> None:
    chart_dir = _dependent(
        tmp_path, f"- {{name: lib, version: '{version}', repository: '{repository}'}}\n"
    )
    lib = tmp_path / "charts" / "lib"
    lib.mkdir(parents=True)
    (lib / "Chart.yaml").write_text("apiVersion: v2\nname: lib\nversion: 0.3.0\n")
    (dependency,) = missing_dependencies(chart_dir)
    with pytest.raises(ChartBuildFailed) as raised:
        local_dependency_dir(tmp_path, "charts/app", dependency)
    assert raised.value.reason == "DependencyBuildError"
    assert words in raised.value.message


@pytest.mark.parametrize(
    ("repository", "words"),
    [
        pytest.param("@stable", "aliased repository dependency is not supported", id="alias"),
        pytest.param("ftp://charts.example", "invalid dependency repository URL", id="scheme"),
    ],
)
def test_a_repository_flux_cannot_resolve_is_refused_with_its_words(
    repository: str, words: str
) -> None:
    dependency = ChartDependency(name="redis", version="*", repository=repository, alias="")
    with pytest.raises(ChartBuildFailed) as raised:
        dependency_repository_url(dependency)
    assert raised.value.reason == "DependencyBuildError"
    assert words in raised.value.message
