"""The registry client's protocol decisions: token challenges, digest fallback, paging, TLS.

The distribution registry in the e2e tests asks for Basic auth; public
registries (ghcr.io, Docker Hub) answer with a Bearer challenge and a token
service instead. A small local server plays that part here, answering as the
Distribution token spec documents, and counts what the client asks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fluxd.source.errors import AuthenticationFailed
from fluxd.source.oci import (
    OCIAddress,
    OCIPullFailed,
    RegistryClient,
    RegistryCredentials,
    registry_tls,
)
from testenv.certs import issue, make_ca

MANIFEST = json.dumps({"schemaVersion": 2, "layers": []}).encode()
DIGEST = f"sha256:{hashlib.sha256(MANIFEST).hexdigest()}"


@dataclass
class TokenRegistry:
    """A registry behind a Bearer token service, as ghcr.io is."""

    head_digest: bool = True
    requests: list[str] = field(default_factory=list)
    issued: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.token)
        app.router.add_route("*", "/v2/k3s/app/manifests/{reference}", self.manifest)
        app.router.add_get("/v2/k3s/app/tags/list", self.tags)
        return app

    async def token(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"me:pw").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"errors": [{"code": "DENIED"}]}, status=401)
        assert request.query["scope"] == "repository:k3s/app:pull"
        assert request.query["service"] == "registry.test"
        self.issued += 1
        return web.json_response({"token": "tok", "expires_in": 300})

    def _challenge(self, request: web.Request) -> web.Response | None:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.headers.get("Authorization") == "Bearer tok":
            return None
        realm = f"http://{request.host}/token"
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="{realm}",service="registry.test",'
                    'scope="repository:k3s/app:pull"'
                )
            },
        )

    async def manifest(self, request: web.Request) -> web.Response:
        refused = self._challenge(request)
        if refused is not None:
            return refused
        if request.match_info["reference"] != "v1":
            return web.json_response(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                status=404,
            )
        headers = {"Docker-Content-Digest": DIGEST} if self.head_digest else {}
        body = b"" if request.method == "HEAD" else MANIFEST
        return web.Response(body=body, headers=headers)

    async def tags(self, request: web.Request) -> web.Response:
        refused = self._challenge(request)
        if refused is not None:
            return refused
        if request.query.get("last") == "v2":
            return web.json_response({"tags": ["v3"]})
        return web.json_response(
            {"tags": ["v1", "v2"]},
            headers={"Link": '</v2/k3s/app/tags/list?n=2&last=v2>; rel="next"'},
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        yield client


async def _client(
    registry: TokenRegistry,
    session: aiohttp.ClientSession,
    tokens: dict[tuple[str, ...], tuple[str, float]],
) -> tuple[RegistryClient, TestServer]:
    server = TestServer(registry.app(), host="127.0.0.1")
    await server.start_server()
    address = OCIAddress(f"127.0.0.1:{server.port}", "k3s/app")
    client = RegistryClient(
        address,
        session=session,
        credentials=RegistryCredentials("me", "pw"),
        tls=registry_tls(None),
        insecure=True,
        tokens=tokens,
    )
    return client, server


async def test_a_bearer_challenge_is_answered_once_and_the_token_reused(
    session: aiohttp.ClientSession,
) -> None:
    registry = TokenRegistry()
    tokens: dict[tuple[str, ...], tuple[str, float]] = {}
    client, server = await _client(registry, session, tokens)
    try:
        assert await client.resolve("v1") == DIGEST
        # The next poll (a new client, the same shared cache) sends the token at once.
        registry.requests.clear()
        again = RegistryClient(
            client.address,
            session=session,
            credentials=RegistryCredentials("me", "pw"),
            tls=registry_tls(None),
            insecure=True,
            tokens=tokens,
        )
        assert await again.resolve("v1") == DIGEST
    finally:
        await server.close()
    assert registry.issued == 1
    assert registry.requests == ["HEAD /v2/k3s/app/manifests/v1"]


async def test_without_a_digest_header_the_manifest_is_fetched_and_hashed(
    session: aiohttp.ClientSession,
) -> None:
    registry = TokenRegistry(head_digest=False)
    client, server = await _client(registry, session, {})
    try:
        assert await client.resolve("v1") == DIGEST
    finally:
        await server.close()
    assert registry.requests[-1] == "GET /v2/k3s/app/manifests/v1"


async def test_a_missing_tag_names_the_registrys_error(session: aiohttp.ClientSession) -> None:
    client, server = await _client(TokenRegistry(), session, {})
    try:
        with pytest.raises(OCIPullFailed) as raised:
            await client.resolve("nope")
    finally:
        await server.close()
    assert raised.value.message.endswith(
        "/v2/k3s/app/manifests/nope: MANIFEST_UNKNOWN: manifest unknown"
    )


async def test_tags_are_listed_across_pages(session: aiohttp.ClientSession) -> None:
    client, server = await _client(TokenRegistry(), session, {})
    try:
        assert await client.list_tags() == ["v1", "v2", "v3"]
    finally:
        await server.close()


def _pem(pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> dict[str, bytes]:
    cert, key = pair
    return {
        "tls.crt": cert.public_bytes(serialization.Encoding.PEM),
        "tls.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }


def test_a_client_certificate_and_a_ca_are_loaded() -> None:
    ca = make_ca("registry-ca")
    data = {
        "ca.crt": ca[0].public_bytes(serialization.Encoding.PEM),
        **_pem(issue(ca=ca, common_name="fluxd", client=True)),
    }
    context = registry_tls(data, secret_name="registry-tls")
    assert any(
        cert["subject"] == ((("commonName", "registry-ca"),),) for cert in context.get_ca_certs()
    )


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        pytest.param("tls.crt", "'tls.key' is missing", id="no-key"),
        pytest.param("tls.key", "'tls.crt' is missing", id="no-cert"),
    ],
)
def test_half_a_client_key_pair_is_an_authentication_failure(keep: str, message: str) -> None:
    pair = _pem(issue(ca=make_ca("registry-ca"), common_name="fluxd", client=True))
    with pytest.raises(AuthenticationFailed, match=message):
        registry_tls({keep: pair[keep]}, secret_name="registry-tls")


def test_a_key_that_does_not_match_the_certificate_is_refused() -> None:
    ca = make_ca("registry-ca")
    one = _pem(issue(ca=ca, common_name="fluxd", client=True))
    other = _pem(issue(ca=ca, common_name="other", client=True))
    with pytest.raises(AuthenticationFailed, match="are not a key pair"):
        registry_tls({"tls.crt": one["tls.crt"], "tls.key": other["tls.key"]}, secret_name="t")
