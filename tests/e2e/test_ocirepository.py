"""OCIRepository against a real OCI registry (distribution, TLS, htpasswd) as Kustomization source.

Artifacts are pushed with the real flux CLI (``flux push artifact``), the way
Flux users ship manifests through a registry; fluxd pulls them with the
credentials of a dockerconfigjson Secret and trusts the registry's CA from a
certSecretRef. One registry and one daemon serve every test of the module.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import ssl
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api
from testenv.cluster import Cluster
from testenv.registry import Registry
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    events_for,
    kustomization,
    kustomization_path,
    request_reconcile,
    wait_condition,
)

OCI_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/ocirepositories"
PASSWORD = "registry-pw-0123456789"
SOURCE = "https://gitea.example/k3s/realm-config"
FLUX_LAYER = "application/vnd.cncf.flux.content.v1.tar+gzip"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry_dir = tmp_path_factory.mktemp("registry")
    with Registry(registry_dir, password=PASSWORD, access_log=True) as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-oci"),
        extra_args=[
            "--lease-name=ocirepository-tests",
            "--max-retry-delay=5s",
            "--restarter=false",
        ],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _path(namespace: str, name: str) -> str:
    return f"{OCI_REPOSITORIES.format(ns=namespace)}/{name}"


def _oci_repository(api: Api, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    api.apply(_path(namespace, name), body)


def _secrets(api: Api, namespace: str, registry: Registry, *, password: str = PASSWORD) -> None:
    """The pull Secret (kubernetes.io/dockerconfigjson) and the CA Secret the specs name."""
    for name, kind, data in (
        (
            "pull",
            "kubernetes.io/dockerconfigjson",
            {".dockerconfigjson": registry.docker_config(password=password)},
        ),
        ("registry-ca", "Opaque", {"ca.crt": registry.ca_cert}),
    ):
        api.apply(
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "type": kind,
                "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
            },
        )


def _manifests(directory: Path, value: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configmap.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: realm-ix\ndata:\n  mode: {value}\n"
    )
    return directory


def _spec(registry: Registry, repository: str, **extra: Any) -> dict[str, Any]:
    return {
        "interval": "1m",
        "url": registry.url(repository),
        "secretRef": {"name": "pull"},
        "certSecretRef": {"name": "registry-ca"},
        **extra,
    }


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


def test_a_pushed_artifact_is_applied_and_a_new_push_of_the_tag_rolls_through(
    api: Api, daemon: Fluxd, registry: Registry, namespace: str, tmp_path: Path
) -> None:
    repository = f"k3s/realm-{uuid.uuid4().hex[:8]}"
    first = registry.push(
        repository,
        "production",
        _manifests(tmp_path / "v1", "udp"),
        source=SOURCE,
        revision="main@sha1:" + "1" * 40,
    )
    _secrets(api, namespace, registry)
    _oci_repository(api, namespace, "realm", _spec(registry, repository, ref={"tag": "production"}))
    kustomization(
        api,
        namespace,
        "realm-ix",
        {
            "interval": "10m",
            "path": "./",
            "prune": True,
            "targetNamespace": namespace,
            "sourceRef": {"kind": "OCIRepository", "name": "realm"},
        },
    )

    source = wait_condition(api, _path(namespace, "realm"))
    artifact = source["status"]["artifact"]
    assert artifact["revision"] == f"production@{first}"
    assert artifact["path"] == f"ocirepository/{namespace}/realm/{first}.tar.gz"
    assert condition(source)["message"] == f"stored artifact for digest 'production@{first}'"  # type: ignore[index]
    assert artifact["metadata"]["org.opencontainers.image.source"] == SOURCE
    assert artifact["metadata"]["org.opencontainers.image.revision"] == "main@sha1:" + "1" * 40
    tarball = _download(artifact["url"])
    assert artifact["digest"] == f"sha256:{hashlib.sha256(tarball).hexdigest()}"
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        assert [m.name for m in archive.getmembers() if m.isfile()] == ["configmap.yaml"]
    new_artifact = [e for e in events_for(api, namespace, "realm") if e["reason"] == "NewArtifact"]
    assert new_artifact and new_artifact[0]["message"] == (
        f"stored artifact with revision 'production@{first}' from '{registry.url(repository)}', "
        f"origin source '{SOURCE}', origin revision 'main@sha1:{'1' * 40}'"
    )
    wait_condition(
        api,
        kustomization_path(namespace, "realm-ix"),
        extra=lambda obj: obj["status"].get("lastAppliedRevision") == f"production@{first}",
    )
    configmap = api.get(f"/api/v1/namespaces/{namespace}/configmaps/realm-ix")
    assert configmap["data"] == {"mode": "udp"}

    # A poll of an unchanged tag asks for its digest and downloads nothing.
    heads, gets = registry.requests("HEAD"), registry.requests("GET")
    asked = request_reconcile(api, _path(namespace, "realm"))
    wait_condition(
        api,
        _path(namespace, "realm"),
        extra=lambda obj: obj["status"].get("lastHandledReconcileAt") == asked,
    )
    assert (registry.requests("HEAD") - heads, registry.requests("GET") - gets) == (1, 0)

    second = registry.push(
        repository,
        "production",
        _manifests(tmp_path / "v2", "tcp"),
        source=SOURCE,
        revision="main@sha1:" + "2" * 40,
    )
    assert second != first
    request_reconcile(api, _path(namespace, "realm"))
    wait_condition(
        api,
        kustomization_path(namespace, "realm-ix"),
        extra=lambda obj: obj["status"].get("lastAppliedRevision") == f"production@{second}",
    )
    configmap = api.get(f"/api/v1/namespaces/{namespace}/configmaps/realm-ix")
    assert configmap["data"] == {"mode": "tcp"}


def test_semver_picks_the_highest_tag_and_copy_stores_the_layer_as_pushed(
    api: Api, daemon: Fluxd, registry: Registry, namespace: str, tmp_path: Path
) -> None:
    repository = f"k3s/semver-{uuid.uuid4().hex[:8]}"
    registry.push(repository, "v1.0.0", _manifests(tmp_path / "a", "one"))
    newest = registry.push(repository, "v1.1.0", _manifests(tmp_path / "b", "two"))
    registry.push(repository, "v2.0.0", _manifests(tmp_path / "c", "three"))
    _secrets(api, namespace, registry)
    _oci_repository(
        api,
        namespace,
        "ranged",
        _spec(
            registry,
            repository,
            ref={"semver": ">=1.0.0 <2.0.0"},
            layerSelector={"mediaType": FLUX_LAYER, "operation": "copy"},
        ),
    )

    source = wait_condition(api, _path(namespace, "ranged"))
    artifact = source["status"]["artifact"]
    assert artifact["revision"] == f"v1.1.0@{newest}"
    # copy: the artifact is the layer blob itself, so its digest is the layer's.
    with urllib.request.urlopen(
        urllib.request.Request(
            f"https://{registry.host}/v2/{repository}/manifests/v1.1.0",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json",
                "Authorization": "Basic "
                + base64.b64encode(f"{registry.username}:{PASSWORD}".encode()).decode(),
            },
        ),
        context=ssl.create_default_context(cadata=registry.ca_cert.decode()),
        timeout=10,
    ) as response:
        layer = json.loads(response.read())["layers"][0]
    assert artifact["digest"] == layer["digest"]
    assert source["status"]["observedLayerSelector"] == {
        "mediaType": FLUX_LAYER,
        "operation": "copy",
    }


@pytest.mark.parametrize(
    ("password", "tag", "selector", "reason", "words"),
    [
        pytest.param(
            "wrong-password",
            "latest",
            None,
            "OCIArtifactPullFailed",
            "failed to determine artifact digest: GET https://{host}/v2/{repo}/manifests/latest: "
            "UNAUTHORIZED: authentication required",
            id="wrong-credentials",
        ),
        pytest.param(
            PASSWORD,
            "missing",
            None,
            "OCIArtifactPullFailed",
            "failed to determine artifact digest: GET https://{host}/v2/{repo}/manifests/missing: "
            "MANIFEST_UNKNOWN: manifest unknown",
            id="missing-tag",
        ),
        pytest.param(
            PASSWORD,
            "latest",
            {"mediaType": "application/vnd.example.not-there"},
            "OCIArtifactLayerOperationFailed",
            "failed to find layer with media type 'application/vnd.example.not-there' in artifact",
            id="wrong-layer-media-type",
        ),
    ],
)
def test_failures_say_why_and_the_daemon_stays_healthy(
    api: Api,
    daemon: Fluxd,
    registry: Registry,
    namespace: str,
    tmp_path: Path,
    password: str,
    tag: str,
    selector: dict[str, str] | None,
    reason: str,
    words: str,
) -> None:
    repository = f"k3s/failing-{uuid.uuid4().hex[:8]}"
    registry.push(repository, "latest", _manifests(tmp_path, "udp"))
    _secrets(api, namespace, registry, password=password)
    extra: dict[str, Any] = {"ref": {"tag": tag}}
    if selector is not None:
        extra["layerSelector"] = selector
    _oci_repository(api, namespace, "broken", _spec(registry, repository, **extra))

    obj = wait_condition(api, _path(namespace, "broken"), status="False", reason=reason)
    message = words.format(host=registry.host, repo=repository)
    assert condition(obj)["message"] == message  # type: ignore[index]
    assert condition(obj, "FetchFailed")["reason"] == reason  # type: ignore[index]
    warnings = [e for e in events_for(api, namespace, "broken") if e["type"] == "Warning"]
    assert any(e["reason"] == reason and e["message"] == message for e in warnings), warnings
    daemon.check_alive()
    assert daemon.get("/healthz")[0] == 200


def test_insecure_pulls_over_plain_http_and_ignore_leaves_files_out(
    api: Api, daemon: Fluxd, namespace: str, tmp_path: Path
) -> None:
    with Registry(tmp_path / "plain", password=PASSWORD, tls=False) as plain:
        repository = f"k3s/plain-{uuid.uuid4().hex[:8]}"
        content = _manifests(tmp_path / "content", "udp")
        (content / "README.md").write_text("notes, not manifests\n")
        digest = plain.push(repository, "latest", content)
        _secrets(api, namespace, plain)
        _oci_repository(
            api,
            namespace,
            "plain",
            {
                "interval": "1m",
                "url": plain.url(repository),
                "secretRef": {"name": "pull"},
                "insecure": True,
                "ignore": "*.md\n",
            },
        )
        source = wait_condition(api, _path(namespace, "plain"))
    artifact = source["status"]["artifact"]
    assert artifact["revision"] == f"latest@{digest}"
    assert source["status"]["observedIgnore"] == "*.md\n"
    with tarfile.open(fileobj=io.BytesIO(_download(artifact["url"])), mode="r:gz") as archive:
        assert [m.name for m in archive.getmembers() if m.isfile()] == ["configmap.yaml"]
