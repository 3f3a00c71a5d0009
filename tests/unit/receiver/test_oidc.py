"""generic-oidc Receivers: tokens of a local OIDC issuer (discovery, JWKS), claims, validations."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from fluxd.receiver import ReceiverEntry, ReceiverWebhook
from fluxd.receiver.oidc import OIDCIssuers, OIDCSpecError, oidc_spec_problem
from fluxd.receiver.requests import receiver_filters

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issuer:
    url: str

    def token(self, *, key: rsa.RSAPrivateKey = _KEY, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "aud": "notification-controller",
            "sub": "repo:acme/app:ref:refs/heads/main",
            "repository_owner": "acme",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})

    def spec(self, **provider: Any) -> dict[str, Any]:
        return {
            "type": "generic-oidc",
            "resources": [{"kind": "GitRepository", "name": "app"}],
            "oidcProviders": [
                {
                    "issuerURL": self.url,
                    "variables": [{"name": "owner", "expression": "claims.repository_owner"}],
                    "validations": [
                        {"expression": "vars.owner == 'acme'", "message": "not an acme repository"}
                    ],
                    **provider,
                }
            ],
        }


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_KEY.public_key()))
    app = web.Application()
    server = TestServer(app)

    async def discovery(request: web.Request) -> web.Response:
        base = str(server.make_url("")).rstrip("/")
        return web.json_response(
            {
                "issuer": base,
                "jwks_uri": f"{base}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [{**jwk, "kid": "k1", "use": "sig"}]})

    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/keys", keys)
    await server.start_server()
    yield Issuer(str(server.make_url("")).rstrip("/"))
    await server.close()


async def test_a_token_of_the_issuer_that_passes_the_validations_is_accepted(
    issuer: Issuer,
) -> None:
    claims, problem = await OIDCIssuers().verify(issuer.spec(), f"Bearer {issuer.token()}")
    assert problem == ""
    assert claims is not None and claims["repository_owner"] == "acme"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        pytest.param(lambda i: f"Bearer {i.token(key=_OTHER)}", "failed to verify", id="forged"),
        pytest.param(
            lambda i: f"Bearer {i.token(repository_owner='mallory')}",
            "token validation failed: not an acme repository",
            id="validation-false",
        ),
        pytest.param(
            lambda i: f"Bearer {i.token(aud='someone-else')}", "failed to verify", id="audience"
        ),
        pytest.param(
            lambda i: f"Bearer {i.token(exp=int(time.time()) - 60)}", "expired", id="expired"
        ),
        pytest.param(
            lambda i: f"Bearer {i.token(iss='https://other.example')}",
            "no oidcProvider configured for issuer",
            id="unknown-issuer",
        ),
        pytest.param(lambda i: "Basic abc", "missing or malformed", id="no-bearer"),
    ],
)
async def test_a_token_that_is_not_the_issuer_s_or_fails_a_validation_is_refused(
    issuer: Issuer, make: Any, why: str
) -> None:
    claims, problem = await OIDCIssuers().verify(issuer.spec(), make(issuer))
    assert claims is None
    assert why in problem


async def test_the_provider_s_audience_is_the_one_expected(issuer: Issuer) -> None:
    spec = issuer.spec(audience="fluxd")
    claims, _ = await OIDCIssuers().verify(spec, f"Bearer {issuer.token(aud='fluxd')}")
    assert claims is not None
    claims, _ = await OIDCIssuers().verify(spec, f"Bearer {issuer.token()}")
    assert claims is None


def test_filters_of_a_generic_oidc_receiver_may_read_claims() -> None:
    spec = {
        "type": "generic-oidc",
        "resourceFilter": "claims.sub.endsWith(res.metadata.name)",
        "resources": [{"kind": "GitRepository", "name": "app"}],
    }
    ((expression,),) = receiver_filters(spec)
    res = {"metadata": {"name": "main"}}
    assert expression.evaluate_bool({"res": res, "req": {}, "claims": {"sub": "refs/heads/main"}})
    with pytest.raises(ValueError, match="undeclared reference to 'claims'"):
        receiver_filters({**spec, "type": "generic"})


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        pytest.param(
            {"type": "generic-oidc"},
            "ValidationFailed",
            "generic-oidc receiver requires at least one oidcProvider",
            id="no-provider",
        ),
        pytest.param(
            {"type": "github", "secretRef": {"name": "t"}, "oidcProviders": [{}]},
            "ValidationFailed",
            "oidcProviders can only be set when type is generic-oidc",
            id="providers-on-github",
        ),
        pytest.param(
            {
                "type": "generic-oidc",
                "secretRef": {"name": "t"},
                "oidcProviders": [{"issuerURL": "https://i", "validations": []}],
            },
            "ValidationFailed",
            "secretRef cannot be set when type is generic-oidc",
            id="secret-on-oidc",
        ),
        pytest.param(
            {"type": "github"},
            "ValidationFailed",
            "secretRef is required when type is not generic-oidc",
            id="no-secret",
        ),
        pytest.param(
            {"type": "generic-oidc", "oidcProviders": [{"issuerURL": "https://i"}]},
            "ValidationFailed",
            'oidcProviders[0] (issuerURL="https://i"): at least one validation is required',
            id="no-validation",
        ),
        pytest.param(
            {
                "type": "generic-oidc",
                "oidcProviders": [
                    {
                        "issuerURL": "https://i",
                        "validations": [{"expression": "claims.x ==", "message": "m"}],
                    }
                ],
            },
            "InvalidCELExpression",
            'oidcProviders[0] (issuerURL="https://i"): invalid expression for validation "m"',
            id="bad-expression",
        ),
    ],
)
def test_oidc_settings_that_do_not_fit_the_type_are_refused(
    spec: dict[str, Any], reason: str, message: str
) -> None:
    with pytest.raises(OIDCSpecError) as failure:
        oidc_spec_problem(spec)
    assert failure.value.reason == reason
    assert failure.value.message.startswith(message)


async def test_the_handler_hands_the_verified_claims_to_the_filters(issuer: Issuer) -> None:
    seen: list[Mapping[str, Any]] = []

    async def trigger(entry: ReceiverEntry, variables: Mapping[str, Any]) -> bool:
        seen.append(variables)
        return True

    receiver = {"metadata": {"name": "ci", "namespace": "apps"}, "spec": issuer.spec()}
    entry = ReceiverEntry(receiver=receiver, token="")

    class Directory:
        async def find(self, path: str) -> ReceiverEntry | None:
            return entry

    handler = ReceiverWebhook(directory=Directory(), trigger=trigger, body_limit=4096)
    app = web.Application()
    app.router.add_post("/hook/{digest}", handler.__call__)
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": f"Bearer {issuer.token()}", "Content-Type": "application/json"}
        async with client.post("/hook/x", data=b'{"ref": "main"}', headers=headers) as response:
            assert response.status == 200
        headers["Authorization"] = f"Bearer {issuer.token(repository_owner='mallory')}"
        async with client.post("/hook/x", data=b"{}", headers=headers) as response:
            assert response.status == 401
    assert len(seen) == 1
    assert seen[0]["req"] == {"ref": "main"}
    assert seen[0]["claims"]["repository_owner"] == "acme"
