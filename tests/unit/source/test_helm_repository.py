"""A HelmRepository reconcile against a static HTTP server: artifacts, events, credentials.

No cluster: the reconciler reads no Secret here, and the repository is a
directory served over HTTP on loopback, which is what a chart repository is.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization

from fluxd.controllers.helmrepository import HelmRepositoryReconciler
from fluxd.controllers.outcomes import Stalled, Transient
from fluxd.kube.client import Kube
from fluxd.source import AuthenticationFailed, Storage
from fluxd.source.helm_http import HelmCredentials, download
from testenv.certs import issue, make_ca

INDEX = (
    "apiVersion: v1\nentries:\n  app:\n  - name: app\n    version: {version}\n    urls: [app.tgz]\n"
)


class _Recorder(SimpleHTTPRequestHandler):
    seen: list[str | None]

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        super().do_GET()


def _serve(directory: Path) -> tuple[ThreadingHTTPServer, list[str | None]]:
    handler: type[_Recorder] = type("Handler", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.seen


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, list[str | None]]]:
    root = tmp_path / "charts"
    root.mkdir()
    server, seen = _serve(root)
    yield f"http://127.0.0.1:{server.server_address[1]}", root, seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def reconciler(tmp_path: Path) -> HelmRepositoryReconciler:
    return HelmRepositoryReconciler(
        kube=cast(Kube, object()),
        storage=Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=2),
    )


def _repository(url: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "charts", "generation": 1},
        "spec": {"url": url, **spec},
        "status": {},
    }


async def test_a_new_index_is_stored_and_announced_then_found_up_to_date(
    reconciler: HelmRepositoryReconciler, served: tuple[str, Path, list[str | None]]
) -> None:
    url, root, _ = served
    (root / "index.yaml").write_text(INDEX.format(version="1.0.0"))
    done = await reconciler.reconcile(_repository(url))
    artifact = done.status["artifact"]
    assert artifact["path"] == (
        f"helmrepository/apps/charts/index-{artifact['revision'].removeprefix('sha256:')}.yaml"
    )
    assert done.message == f"stored artifact: revision '{artifact['revision']}'"
    (event,) = done.events
    assert (event.reason, event.message) == (
        "NewArtifact",
        f"stored fetched index of size {artifact['size']}B from '{url}'",
    )

    again = await reconciler.reconcile({**_repository(url), "status": done.status})
    assert again.status["artifact"] == artifact
    assert [(e.type, e.reason) for e in again.events] == [("Trace", "ArtifactUpToDate")]

    (root / "index.yaml").write_text(INDEX.format(version="1.1.0"))
    bumped = await reconciler.reconcile({**_repository(url), "status": done.status})
    assert bumped.status["artifact"]["revision"] != artifact["revision"]


async def test_an_unreachable_index_fails_as_flux_words_it(
    reconciler: HelmRepositoryReconciler, served: tuple[str, Path, list[str | None]]
) -> None:
    url, _, _ = served
    with pytest.raises(Transient) as raised:
        await reconciler.reconcile(_repository(url))
    assert raised.value.reason == "Failed"
    assert raised.value.message.startswith("failed to fetch Helm repository index: ")
    assert "404" in raised.value.message


async def test_an_oci_url_needs_type_oci_and_type_oci_is_static(
    reconciler: HelmRepositoryReconciler,
) -> None:
    with pytest.raises(Stalled, match="'oci' URL scheme cannot be used with 'default'"):
        await reconciler.reconcile(_repository("oci://ghcr.io/charts"))
    done = await reconciler.reconcile(_repository("oci://ghcr.io/charts", type="oci"))
    assert done.message == "Helm repository is Ready"
    assert done.status == {"artifact": None, "url": None}


async def test_credentials_go_to_another_host_only_with_pass_credentials(tmp_path: Path) -> None:
    (tmp_path / "app.tgz").write_bytes(b"chart")
    other, seen = _serve(tmp_path)
    chart_url = f"http://127.0.0.1:{other.server_address[1]}/app.tgz"
    repository = "http://127.0.0.1:1/charts"
    try:
        for passing in (False, True):
            credentials = HelmCredentials(username="u", password="p", pass_credentials=passing)
            data = await download(
                chart_url,
                repository_url=repository,
                credentials=credentials,
                timeout=5,
                max_size=100,
            )
            assert data == b"chart"
    finally:
        other.shutdown()
        other.server_close()
    assert seen == [None, "Basic dTpw"]


@pytest.fixture
def mutual_tls(tmp_path: Path) -> Iterator[tuple[str, bytes, bytes, bytes]]:
    """An HTTPS chart repository that wants a client certificate signed by its CA."""
    ca = make_ca("fluxd test helm CA")
    ca_pem = ca[0].public_bytes(serialization.Encoding.PEM)
    server_cert, server_key = issue(ca=ca, common_name="127.0.0.1", hosts=("127.0.0.1",))
    client_cert, client_key = issue(ca=ca, common_name="fluxd", client=True)
    (tmp_path / "index.yaml").write_text(INDEX.format(version="1.0.0"))
    (tmp_path / "server.crt").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(_pem_key(server_key))
    server, _ = _serve(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.load_verify_locations(cadata=ca_pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield (
        f"https://127.0.0.1:{server.server_address[1]}",
        ca_pem,
        client_cert.public_bytes(serialization.Encoding.PEM),
        _pem_key(client_key),
    )
    server.shutdown()
    server.server_close()


def _pem_key(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def test_cert_secret_ref_brings_the_ca_and_the_client_certificate(
    mutual_tls: tuple[str, bytes, bytes, bytes],
) -> None:
    url, ca, cert, key = mutual_tls
    tls = {"ca.crt": ca, "tls.crt": cert, "tls.key": key}
    credentials = HelmCredentials.from_secrets(auth=None, tls=tls)
    index = await download(
        f"{url}/index.yaml", repository_url=url, credentials=credentials, timeout=5, max_size=10**6
    )
    assert b"version: 1.0.0" in index
    # Without the CA the server is not trusted, and the failure says it is TLS.
    with pytest.raises(AuthenticationFailed, match="tls"):
        await download(
            f"{url}/index.yaml",
            repository_url=url,
            credentials=HelmCredentials(),
            timeout=5,
            max_size=10**6,
        )
