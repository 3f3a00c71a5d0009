"""OCIRepository from a multi-platform tag, and its status.url, without a cluster.

A tag may name an image index (``docker buildx``, ``crane index``): Flux's
revision is the index digest, and the content is the linux/amd64 image, as
go-containerregistry's default platform picks it. Every new artifact is
also linked as ``latest.tar.gz``, the stable status.url Flux publishes. A
small local registry serves the documents here, as the Distribution API
documents them, and the reconciler's Secret reads are never made (the
object names none).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxd.controllers.ocirepository import OCIRepositoryReconciler
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import Storage, unpack

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _layer(text: str) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        data = text.encode()
        info = tarfile.TarInfo("platform.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _IndexRegistry:
    """``k3s/app:v1`` is an index of an arm64 and an amd64 image, each one layer."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        children = []
        for architecture in ("arm64", "amd64"):
            layer = _layer(architecture)
            self.blobs[_digest(layer)] = layer
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": MANIFEST_TYPE,
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json"},
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": _digest(layer),
                            "size": len(layer),
                        }
                    ],
                }
            ).encode()
            self.manifests[_digest(manifest)] = (MANIFEST_TYPE, manifest)
            children.append(
                {
                    "mediaType": MANIFEST_TYPE,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"os": "linux", "architecture": architecture},
                }
            )
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": children}
        ).encode()
        self.index_digest = _digest(index)
        self.manifests[self.index_digest] = (INDEX_TYPE, index)
        self.manifests["v1"] = (INDEX_TYPE, index)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v2/k3s/app/manifests/{reference}", self.manifest)
        app.router.add_get("/v2/k3s/app/blobs/{digest}", self.blob)
        return app

    async def manifest(self, request: web.Request) -> web.Response:
        found = self.manifests.get(request.match_info["reference"])
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        media, body = found
        # As the registry does: an index is served only to a client that accepts it.
        if media not in request.headers.get("Accept", ""):
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        headers = {"Docker-Content-Digest": _digest(body), "Content-Type": media}
        return web.Response(body=b"" if request.method == "HEAD" else body, headers=headers)

    async def blob(self, request: web.Request) -> web.Response:
        return web.Response(body=self.blobs[request.match_info["digest"]])


@pytest.fixture
async def registry() -> AsyncIterator[tuple[_IndexRegistry, TestServer]]:
    served = _IndexRegistry()
    server = TestServer(served.app(), host="127.0.0.1")
    await server.start_server()
    yield served, server
    await server.close()


def _object(port: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "app", "generation": 1},
        "spec": {
            "url": f"oci://127.0.0.1:{port}/k3s/app",
            "ref": {"tag": "v1"},
            "insecure": True,
            "interval": "5m",
        },
        "status": {},
    }


async def test_an_index_tag_publishes_the_amd64_image_under_the_index_digest(
    registry: tuple[_IndexRegistry, TestServer], tmp_path: Path
) -> None:
    served, server = registry
    storage = Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=2)
    reconciler = OCIRepositoryReconciler(
        kube=cast(Kube, object()), storage=storage, settings=Settings()
    )
    try:
        done = await reconciler.reconcile(_object(cast(int, server.port)))
    finally:
        await reconciler.registries.session().close()
    artifact = done.status["artifact"]
    assert artifact["revision"] == f"v1@{served.index_digest}"
    unpack(storage.local_path(artifact["path"]), tmp_path / "out")
    assert (tmp_path / "out" / "platform.txt").read_text() == "amd64"
    # status.url is the stable link to the latest artifact, and it serves that artifact.
    assert done.status["url"] == "http://fluxd.test/ocirepository/apps/app/latest.tar.gz"
    latest = storage.local_path("ocirepository/apps/app/latest.tar.gz")
    assert latest.read_bytes() == storage.local_path(artifact["path"]).read_bytes()
