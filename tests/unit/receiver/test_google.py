"""Google's signing keys for gcr Receivers, fetched over HTTP from a local stand-in for Google."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from fluxd.receiver import JsonWebKeys, ReceiverEntry, ReceiverWebhook
from fluxd.receiver.google import id_token_problem
from tests.unit.notifyctl.notifyctl_fakes import FakeClock
from tests.unit.receiver.test_every_type import (
    AUDIENCE,
    EMAIL,
    GCR,
    GCR_EVENT,
    GOOGLE_JWKS,
    GOOGLE_KEYS,
    id_token,
)


@dataclass
class Certs:
    """Serves a JWKS document as Google's certs endpoint does (with a max-age)."""

    document: dict[str, Any]
    status: int = 200
    fetches: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches.append(request.path)
        if self.status != 200:
            return web.Response(status=self.status)
        return web.json_response(
            self.document, headers={"Cache-Control": "public, max-age=300, must-revalidate"}
        )


@pytest.fixture
async def certs() -> AsyncIterator[tuple[Certs, str]]:
    served = Certs(GOOGLE_JWKS)
    app = web.Application()
    app.router.add_get("/oauth2/v3/certs", served.handle)
    server = TestServer(app)
    await server.start_server()
    yield served, str(server.make_url("/oauth2/v3/certs"))
    await server.close()


async def test_a_token_signed_by_a_served_key_is_google_s(certs: tuple[Certs, str]) -> None:
    served, url = certs
    keys = await JsonWebKeys(url=url).key_set()
    problem = id_token_problem(f"Bearer {id_token()}", keys=keys, email=EMAIL, audience=AUDIENCE)
    assert problem == ""
    assert served.fetches == ["/oauth2/v3/certs"]


async def test_keys_are_fetched_again_only_after_their_max_age(certs: tuple[Certs, str]) -> None:
    served, url = certs
    clock = FakeClock()
    keys = JsonWebKeys(url=url, clock=clock)
    await keys.key_set()
    clock.advance(299)
    await keys.key_set()
    assert len(served.fetches) == 1
    clock.advance(2)
    await keys.key_set()
    assert len(served.fetches) == 2


async def test_a_failed_refresh_keeps_the_keys_it_had(certs: tuple[Certs, str]) -> None:
    served, url = certs
    clock = FakeClock()
    keys = JsonWebKeys(url=url, clock=clock)
    first = await keys.key_set()
    served.status = 503
    clock.advance(301)
    assert await keys.key_set() is first


async def test_no_keys_at_all_refuses_every_token(certs: tuple[Certs, str]) -> None:
    served, url = certs
    served.status = 500
    keys = await JsonWebKeys(url=url).key_set()
    assert keys is None
    problem = id_token_problem(f"Bearer {id_token()}", keys=keys, email=EMAIL, audience=AUDIENCE)
    assert "not available" in problem


def test_a_token_that_is_no_jwt_is_refused() -> None:
    problem = id_token_problem("Bearer not-a-jwt", keys=GOOGLE_KEYS, email=EMAIL, audience=AUDIENCE)
    assert problem.startswith("invalid ID token")
    assert id_token_problem("Basic abc", keys=GOOGLE_KEYS, email=EMAIL, audience=AUDIENCE)


@dataclass
class Recording:
    requests: list[Mapping[str, Any]] = field(default_factory=list)

    async def __call__(self, entry: ReceiverEntry, variables: Mapping[str, Any]) -> bool:
        self.requests.append(variables)
        return True


@dataclass
class OneReceiver:
    entry: ReceiverEntry

    async def find(self, path: str) -> ReceiverEntry | None:
        return self.entry if path == "/hook/gcr" else None


async def test_a_pub_sub_push_reaches_the_trigger_with_the_registry_event(
    certs: tuple[Certs, str],
) -> None:
    _, url = certs
    receiver = {"metadata": {"name": "gar", "namespace": "apps"}, "spec": {"type": "gcr"}}
    entry = ReceiverEntry(
        receiver=receiver,
        token="t",
        secret={"token": "t", "email": EMAIL, "audience": AUDIENCE},
    )
    trigger = Recording()
    handler = ReceiverWebhook(
        directory=OneReceiver(entry),
        trigger=trigger,
        body_limit=64 * 1024,
        google_keys=JsonWebKeys(url=url),
    )
    app = web.Application()
    app.router.add_post("/hook/{digest}", handler.__call__)
    async with TestClient(TestServer(app)) as client:
        genuine = {"Authorization": f"Bearer {id_token()}", "Content-Type": "application/json"}
        async with client.post("/hook/gcr", data=GCR, headers=genuine) as response:
            assert response.status == 200
        forged = {**genuine, "Authorization": f"Bearer {id_token(aud='https://other/hook')}"}
        async with client.post("/hook/gcr", data=GCR, headers=forged) as response:
            assert response.status == 401
    assert trigger.requests == [{"req": GCR_EVENT}]


async def test_a_token_signed_by_a_rotated_in_key_fetches_the_keys_again(
    certs: tuple[Certs, str],
) -> None:
    served, url = certs
    clock = FakeClock()
    keys = JsonWebKeys(url=url, clock=clock)
    await keys.key_set()
    # Google publishes a new key before signing with it; the cached set lacks it.
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rotated.public_key()))
    served.document = {"keys": [*GOOGLE_JWKS["keys"], {**new_key, "kid": "k2", "alg": "RS256"}]}
    token = jwt.encode(
        jwt.decode(id_token(), options={"verify_signature": False}),
        rotated,
        algorithm="RS256",
        headers={"kid": "k2"},
    )
    clock.advance(31)

    found = await keys.key_set(key_id="k2")

    assert len(served.fetches) == 2
    assert id_token_problem(f"Bearer {token}", keys=found, email=EMAIL, audience=AUDIENCE) == ""
    # An unknown key id soon after does not fetch again (a forger cannot make it flood Google).
    await keys.key_set(key_id="k3")
    assert len(served.fetches) == 2
