"""HelmRepository, HelmChart and Bucket against the real daemon, with the real helm CLI.

Charts are made by ``helm create`` / ``helm package`` and indexed by ``helm
repo index``; the repository is a static HTTP server with basic auth, which
is all an HTTP chart repository is. What fluxd publishes must be a chart
that ``helm template`` renders, whether pulled from the repository or
packaged from a GitRepository.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv import build
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from testenv.registry import Registry
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    events_for,
    git_repository,
    request_reconcile,
    secret,
    wait_condition,
)

SOURCES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/{plural}"
USER, PASSWORD = "charts", "chart-museum-pass-0123"
GIT_USER, GIT_PASSWORD = "k3s", "gitea-pat-helm-0123"
OCI_PASSWORD = "oci-charts-pass-0123"


def _path(namespace: str, plural: str, name: str) -> str:
    return f"{SOURCES.format(ns=namespace, plural=plural)}/{name}"


def _source(api: Api, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> str:
    plural = {"HelmRepository": "helmrepositories", "HelmChart": "helmcharts"}.get(
        kind, kind.lower() + "s"
    )
    path = _path(namespace, plural, name)
    api.apply(
        path,
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )
    return path


class _ChartRepository(ThreadingHTTPServer):
    """A directory served over HTTP behind basic auth: a Helm chart repository."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(directory)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/charts"


class _Handler(SimpleHTTPRequestHandler):
    server: _ChartRepository

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.server.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # The repository lives under /charts, as most do below a host.
        if not self.path.startswith("/charts/"):
            self.send_error(404)
            return
        self.path = self.path.removeprefix("/charts")
        super().do_GET()


@pytest.fixture(scope="module")
def helm() -> Path:
    return build.ensure_binaries(build.HELM) / "helm"


def _run(helm: Path, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(helm), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"HOME": str(cwd or Path.cwd()), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def _create_chart(helm: Path, workdir: Path, version: str) -> Path:
    """``helm create app`` with a given version: a Deployment, a Service, and so on."""
    if not (workdir / "app").exists():
        _run(helm, "create", "app", cwd=workdir)
    chart_file = workdir / "app" / "Chart.yaml"
    chart = yaml.safe_load(chart_file.read_text())
    chart["version"] = version
    chart_file.write_text(yaml.safe_dump(chart))
    return workdir / "app"


@pytest.fixture(scope="module")
def repository(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ChartRepository]:
    served = tmp_path_factory.mktemp("chart-repository")
    server = _ChartRepository(served)
    thread = threading.Thread(target=server.serve_forever, name="chart-repository", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _publish(helm: Path, repository: _ChartRepository, workdir: Path, version: str) -> None:
    chart = _create_chart(helm, workdir, version)
    _run(helm, "package", str(chart), "--destination", str(repository.directory), cwd=workdir)
    _run(helm, "repo", "index", str(repository.directory), cwd=workdir)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("oci-registry"), password=OCI_PASSWORD) as server:
        yield server


def _push(
    helm: Path, registry: Registry, workdir: Path, version: str, chart: Path | None = None
) -> None:
    """``helm package`` and ``helm push`` a chart version to ``oci://<registry>/charts``."""
    chart = chart or _create_chart(helm, workdir, version)
    _run(helm, "package", str(chart), "--destination", str(workdir), cwd=workdir)
    (workdir / "ca.crt").write_bytes(registry.ca_cert)
    _run(
        helm,
        "push",
        str(workdir / f"{chart.name}-{version}.tgz"),
        f"oci://{registry.host}/charts",
        f"--ca-file={workdir / 'ca.crt'}",
        f"--username={registry.username}",
        f"--password={registry.password}",
        cwd=workdir,
    )


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=GIT_USER, password=GIT_PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-helm"),
        extra_args=["--lease-name=helm-sources-tests", "--min-retry-delay=0.5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _download(url: str, target: Path) -> Path:
    with urllib.request.urlopen(url, timeout=10) as response:
        target.write_bytes(response.read())
    return target


def _rendered_kinds(helm: Path, chart: Path, *args: str) -> list[dict[str, Any]]:
    rendered = _run(helm, "template", "release", str(chart), *args, cwd=chart.parent)
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _flux(cluster: Cluster, *args: str) -> str:
    flux = build.ensure_binaries(build.FLUX_CLI) / "flux"
    result = subprocess.run(
        [str(flux), *args, f"--kubeconfig={cluster.kubeconfig}", "--timeout=60s"],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
    )
    assert result.returncode == 0, f"flux {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout + result.stderr


def test_a_chart_from_a_helm_repository_follows_a_version_bump(
    api: Api,
    cluster: Cluster,
    daemon: Fluxd,
    helm: Path,
    repository: _ChartRepository,
    namespace: str,
    tmp_path: Path,
) -> None:
    _publish(helm, repository, tmp_path, "0.1.0")
    secret(api, namespace, "charts-auth", {"username": USER, "password": PASSWORD})
    # Without the credentials the repository answers 401, and the object says so.
    anonymous = _source(
        api, namespace, "HelmRepository", "anonymous", {"interval": "1h", "url": repository.url}
    )
    failed = wait_condition(api, anonymous, status="False", reason="Failed")
    assert "401" in condition(failed, "FetchFailed")["message"]  # type: ignore[index]

    repo_path = _source(
        api,
        namespace,
        "HelmRepository",
        "charts",
        {"interval": "1h", "url": repository.url, "secretRef": {"name": "charts-auth"}},
    )
    ready = wait_condition(api, repo_path)
    artifact = ready["status"]["artifact"]
    digest = artifact["revision"].removeprefix("sha256:")
    assert artifact["path"] == f"helmrepository/{namespace}/charts/index-{digest}.yaml"
    # status.url is the latest index, as Flux links it.
    assert ready["status"]["url"].endswith(f"/helmrepository/{namespace}/charts/index.yaml")
    index = yaml.safe_load(urllib.request.urlopen(ready["status"]["url"], timeout=10).read())
    assert [entry["version"] for entry in index["entries"]["app"]] == ["0.1.0"]

    chart_path = _source(
        api,
        namespace,
        "HelmChart",
        "app",
        {
            "interval": "1h",
            "chart": "app",
            "version": "0.x",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"},
        },
    )
    chart = wait_condition(api, chart_path, reason="ChartPullSucceeded")
    assert chart["status"]["artifact"]["revision"] == "0.1.0"
    assert chart["status"]["artifact"]["path"] == f"helmchart/{namespace}/app/app-0.1.0.tgz"
    assert condition(chart)["message"] == "pulled 'app' chart with version '0.1.0'"  # type: ignore[index]
    pulled = _download(chart["status"]["artifact"]["url"], tmp_path / "pulled.tgz")
    kinds = {doc["kind"] for doc in _rendered_kinds(helm, pulled)}
    assert {"Deployment", "Service"} <= kinds

    # A new version in the index: a new index revision, then a new chart artifact.
    _publish(helm, repository, tmp_path, "0.2.0")
    request_reconcile(api, repo_path)
    bumped = wait_condition(
        api,
        chart_path,
        extra=lambda obj: obj["status"].get("artifact", {}).get("revision") == "0.2.0",
    )
    assert condition(bumped)["message"] == "pulled 'app' chart with version '0.2.0'"  # type: ignore[index]
    rendered = _download(bumped["status"]["artifact"]["url"], tmp_path / "bumped.tgz")
    labels = [
        doc["metadata"]["labels"].get("helm.sh/chart") for doc in _rendered_kinds(helm, rendered)
    ]
    assert "app-0.2.0" in labels
    reasons = [event.get("reason") for event in events_for(api, namespace, "app")]
    assert "ChartPullSucceeded" in reasons

    # The real flux CLI reads and reconciles them as its own.
    listed = _flux(cluster, "get", "sources", "chart", "app", "-n", namespace)
    assert "pulled 'app' chart with version '0.2.0'" in listed
    reconciled = _flux(cluster, "reconcile", "source", "helm", "charts", "-n", namespace)
    assert "fetched revision sha256:" in reconciled


def test_a_chart_from_a_git_repository_is_packaged_for_helm(
    api: Api, daemon: Fluxd, helm: Path, git: GitServer, namespace: str, tmp_path: Path
) -> None:
    chart_dir = _create_chart(helm, tmp_path, "1.4.0")
    files: dict[str, str | bytes | None] = {
        f"charts/app/{path.relative_to(chart_dir).as_posix()}": path.read_bytes()
        for path in sorted(chart_dir.rglob("*"))
        if path.is_file()
    }
    files["deploy/prod.yaml"] = "replicaCount: 3\n"
    repo = f"apps/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    sha = git.commit(repo, files)
    secret(api, namespace, "git-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    git_repository(
        api,
        namespace,
        "apps",
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": git.default_branch},
            "secretRef": {"name": "git-auth"},
        },
    )
    values_chart = _source(
        api,
        namespace,
        "HelmChart",
        "app-prod",
        {
            "interval": "1h",
            "chart": "./charts/app",
            "sourceRef": {"kind": "GitRepository", "name": "apps"},
            "valuesFiles": ["charts/app/values.yaml", "deploy/prod.yaml"],
        },
    )
    by_revision = _source(
        api,
        namespace,
        "HelmChart",
        "app-rev",
        {
            "interval": "1h",
            "chart": "charts/app",
            "sourceRef": {"kind": "GitRepository", "name": "apps"},
            "reconcileStrategy": "Revision",
        },
    )
    packaged = wait_condition(api, values_chart, reason="ChartPackageSucceeded")
    # The generation marks the version, so consumers see a change of values files.
    assert packaged["status"]["artifact"]["revision"] == "1.4.0+1"
    # As Flux: values files are recorded only with ignoreMissingValuesFiles.
    assert "observedValuesFiles" not in packaged["status"]
    assert packaged["status"]["url"].endswith(f"/helmchart/{namespace}/app-prod/latest.tar.gz")
    assert condition(packaged)["message"] == (  # type: ignore[index]
        "packaged 'app' chart with version '1.4.0+1' and merged values files "
        "[charts/app/values.yaml deploy/prod.yaml]"
    )
    archive = _download(packaged["status"]["artifact"]["url"], tmp_path / "prod.tgz")
    deployments = [d for d in _rendered_kinds(helm, archive) if d["kind"] == "Deployment"]
    assert [d["spec"]["replicas"] for d in deployments] == [3]
    _run(helm, "lint", str(archive), cwd=tmp_path)

    revisioned = wait_condition(api, by_revision, reason="ChartPackageSucceeded")
    assert revisioned["status"]["artifact"]["revision"] == f"1.4.0+{sha[:12]}"
    assert (
        revisioned["status"]["observedSourceArtifactRevision"] == f"{git.default_branch}@sha1:{sha}"
    )
    shutil.rmtree(chart_dir)


def test_a_bucket_is_stalled_and_an_oci_helm_repository_is_static(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    bucket = _source(
        api,
        namespace,
        "Bucket",
        "minio",
        {"interval": "5m", "bucketName": "manifests", "endpoint": "minio.example.com"},
    )
    stalled = wait_condition(api, bucket, kind="Stalled", reason="UnsupportedKind")
    assert condition(stalled, "Ready")["status"] == "False"  # type: ignore[index]
    assert condition(stalled)["message"].startswith("Bucket is not supported by fluxd")  # type: ignore[index]
    wait_for(
        lambda: any(
            event.get("reason") == "UnsupportedKind" and event.get("type") == "Warning"
            for event in events_for(api, namespace, "minio")
        ),
        timeout=30,
        what="a Warning Event naming the unsupported kind",
    )
    oci = _source(
        api,
        namespace,
        "HelmRepository",
        "oci",
        {"interval": "5m", "type": "oci", "url": "oci://ghcr.io/stefanprodan/charts"},
    )
    static = wait_condition(api, oci)
    assert condition(static)["message"] == "Helm repository is Ready"  # type: ignore[index]
    assert "artifact" not in static["status"]


def test_a_chart_from_an_oci_registry_follows_a_new_version_and_needs_credentials(
    api: Api, daemon: Fluxd, helm: Path, registry: Registry, namespace: str, tmp_path: Path
) -> None:
    _push(helm, registry, tmp_path, "0.1.0")
    _push(helm, registry, tmp_path, "1.0.0")
    secret(api, namespace, "oci-auth", {"username": registry.username, "password": OCI_PASSWORD})
    secret(api, namespace, "oci-wrong", {"username": registry.username, "password": "nope"})
    secret(api, namespace, "oci-ca", {"ca.crt": registry.ca_cert.decode()})
    url = f"oci://{registry.host}/charts"
    for name, auth in (("oci-charts", "oci-auth"), ("oci-wrong", "oci-wrong")):
        _source(
            api,
            namespace,
            "HelmRepository",
            name,
            {
                "interval": "1h",
                "type": "oci",
                "url": url,
                "secretRef": {"name": auth},
                "certSecretRef": {"name": "oci-ca"},
            },
        )
    chart_path = _source(
        api,
        namespace,
        "HelmChart",
        "oci-app",
        {
            "interval": "1h",
            "chart": "app",
            "version": "0.x",
            "sourceRef": {"kind": "HelmRepository", "name": "oci-charts"},
        },
    )
    chart = wait_condition(api, chart_path, reason="ChartPullSucceeded")
    # The highest version in the range, not the highest tag.
    assert chart["status"]["artifact"]["revision"] == "0.1.0"
    assert condition(chart)["message"] == "pulled 'app' chart with version '0.1.0'"  # type: ignore[index]
    assert chart["status"]["url"].endswith(f"/helmchart/{namespace}/oci-app/latest.tar.gz")
    pulled = _download(chart["status"]["artifact"]["url"], tmp_path / "oci-pulled.tgz")
    assert {"Deployment", "Service"} <= {doc["kind"] for doc in _rendered_kinds(helm, pulled)}

    # A second version in the range, pushed with build metadata ('+' becomes '_' in the tag).
    _push(helm, registry, tmp_path, "0.2.0+build.1")
    request_reconcile(api, chart_path)
    bumped = wait_condition(
        api,
        chart_path,
        extra=lambda obj: obj["status"].get("artifact", {}).get("revision") == "0.2.0+build.1",
    )
    rendered = _download(bumped["status"]["artifact"]["url"], tmp_path / "oci-bumped.tgz")
    labels = {
        doc["metadata"]["labels"].get("helm.sh/chart") for doc in _rendered_kinds(helm, rendered)
    }
    assert "app-0.2.0_build.1" in labels

    wrong = _source(
        api,
        namespace,
        "HelmChart",
        "oci-wrong",
        {
            "interval": "1h",
            "chart": "app",
            "version": "*",
            "sourceRef": {"kind": "HelmRepository", "name": "oci-wrong"},
        },
    )
    refused = wait_condition(api, wrong, status="False", reason="AuthenticationFailed")
    assert condition(refused)["message"].startswith(  # type: ignore[index]
        "failed to authenticate with the Helm repository: "
    )
    assert condition(refused, "FetchFailed")["reason"] == "AuthenticationFailed"  # type: ignore[index]


def test_a_chart_from_git_gets_its_http_oci_and_file_dependencies_packaged_in(
    api: Api,
    daemon: Fluxd,
    helm: Path,
    git: GitServer,
    repository: _ChartRepository,
    registry: Registry,
    namespace: str,
    tmp_path: Path,
) -> None:
    # 'app' comes from the HTTP chart repository and 'web' from the OCI registry (each
    # with its HelmRepository's credentials), 'lib' from the same source by a file://
    # reference; none is vendored in charts/.
    (tmp_path / "published").mkdir()
    _publish(helm, repository, tmp_path / "published", "0.5.0")
    pushed = tmp_path / "pushed"
    pushed.mkdir()
    _run(helm, "create", "web", cwd=pushed)
    _push(helm, registry, pushed, "0.1.0", chart=pushed / "web")
    secret(api, namespace, "oci-auth", {"username": registry.username, "password": OCI_PASSWORD})
    secret(api, namespace, "oci-ca", {"ca.crt": registry.ca_cert.decode()})
    _source(
        api,
        namespace,
        "HelmRepository",
        "deps-oci",
        {
            "interval": "1h",
            "type": "oci",
            "url": f"oci://{registry.host}/charts",
            "secretRef": {"name": "oci-auth"},
            "certSecretRef": {"name": "oci-ca"},
        },
    )
    source = tmp_path / "source"
    source.mkdir()
    _run(helm, "create", "umbrella", cwd=source)
    _run(helm, "create", "lib", cwd=source)
    chart_file = source / "umbrella" / "Chart.yaml"
    umbrella = yaml.safe_load(chart_file.read_text())
    umbrella["dependencies"] = [
        {"name": "app", "version": "0.x", "repository": repository.url},
        {"name": "lib", "version": ">=0.1.0", "repository": "file://../lib"},
        {"name": "web", "version": "0.x", "repository": f"oci://{registry.host}/charts/"},
    ]
    chart_file.write_text(yaml.safe_dump(umbrella))
    files: dict[str, str | bytes | None] = {
        f"charts/{path.relative_to(source).as_posix()}": path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file()
    }
    repo = f"apps/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    git.commit(repo, files)
    secret(api, namespace, "git-auth", {"username": GIT_USER, "password": GIT_PASSWORD})
    secret(api, namespace, "charts-auth", {"username": USER, "password": PASSWORD})
    _source(
        api,
        namespace,
        "HelmRepository",
        "deps",
        {"interval": "1h", "url": repository.url + "/", "secretRef": {"name": "charts-auth"}},
    )
    git_repository(
        api,
        namespace,
        "umbrella",
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": git.default_branch},
            "secretRef": {"name": "git-auth"},
        },
    )
    chart_path = _source(
        api,
        namespace,
        "HelmChart",
        "umbrella",
        {
            "interval": "1h",
            "chart": "charts/umbrella",
            "sourceRef": {"kind": "GitRepository", "name": "umbrella"},
        },
    )
    packaged = wait_condition(api, chart_path, reason="ChartPackageSucceeded")
    assert condition(packaged)["message"] == "packaged 'umbrella' chart with version '0.1.0'"  # type: ignore[index]
    archive = _download(packaged["status"]["artifact"]["url"], tmp_path / "umbrella.tgz")
    deployments = {
        doc["metadata"]["name"]: doc["metadata"]["labels"]["helm.sh/chart"]
        for doc in _rendered_kinds(helm, archive)
        if doc["kind"] == "Deployment"
    }
    assert deployments == {
        "release-umbrella": "umbrella-0.1.0",
        "release-app": "app-0.5.0",
        "release-lib": "lib-0.1.0",
        "release-web": "web-0.1.0",
    }
