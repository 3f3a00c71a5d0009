"""Every Receiver type of the CRD, verified as Flux verifies it.

The table has one case per ``spec.type`` the Receiver CRD accepts; a type
added to the enum without a case fails here (``generic-oidc``, which
discovers its issuer over the network, has its cases in ``test_oidc.py``). Each case sends a genuine
delivery (accepted, reconciles), a forged one (refused) and, where the type
filters on ``spec.events``, a genuine delivery of an unwanted event
(refused); where it does not, the same delivery is accepted, since Flux
ignores ``spec.events`` for that type.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import typing
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fluxd.api.crds import custom_resources
from fluxd.api.notification import ReceiverType
from fluxd.receiver import verify_receiver_request
from fluxd.receiver.verify import VERIFIED_TYPES

TOKEN = "s3cr3t-t0ken"
EMAIL = "pusher@project.iam.gserviceaccount.com"
AUDIENCE = "https://fluxd.example/hook/abc"
JSON = {"Content-Type": "application/json"}

_GOOGLE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
# Google's certs endpoint serves its public keys as a JWKS document.
GOOGLE_JWKS = {
    "keys": [
        {
            **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(_GOOGLE_KEY.public_key())),
            "kid": "k1",
            "alg": "RS256",
            "use": "sig",
        }
    ]
}
GOOGLE_KEYS = jwt.PyJWKSet.from_dict(GOOGLE_JWKS)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Case:
    genuine: Delivery
    # None: only the secret path guards the type, nothing in a request can be forged.
    forged: Delivery | None
    # spec.events that do not list the genuine delivery's event
    unwanted_events: list[str] = field(default_factory=lambda: ["some-other-event"])
    filters_events: bool = False
    forged_status: int = 401


def hexmac(body: bytes, algorithm: Any = hashlib.sha256, key: str = TOKEN) -> str:
    return hmac.new(key.encode(), body, algorithm).hexdigest()


def id_token(*, key: rsa.RSAPrivateKey = _GOOGLE_KEY, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": EMAIL,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


PUSH = json.dumps({"ref": "refs/heads/main"}).encode()
DOCKERHUB = json.dumps(
    {"push_data": {"tag": "1.2"}, "repository": {"repo_url": "https://hub.docker.com/r/a/b"}}
).encode()
QUAY = json.dumps({"docker_url": "quay.io/a/b", "updated_tags": ["1.2"]}).encode()
ACR = json.dumps({"action": "push", "target": {"repository": "a/b", "tag": "1.2"}}).encode()
NEXUS = json.dumps({"action": "CREATED", "repositoryName": "docker-hosted"}).encode()
CDEVENT = json.dumps(
    {
        "context": {
            "version": "0.4.1",
            "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
            "source": "/event/source/123",
            "type": "dev.cdevents.change.merged.0.2.0",
            "timestamp": "2023-03-20T14:27:05.315384Z",
        },
        "subject": {"id": "mySubject123", "source": "/event/source/123", "content": {}},
    }
).encode()
GCR_EVENT = {"action": "INSERT", "digest": "gcr.io/p/app@sha256:ab", "tag": "gcr.io/p/app:1.2"}
GCR = json.dumps(
    {
        "message": {
            "data": base64.b64encode(json.dumps(GCR_EVENT).encode()).decode(),
            "messageId": "1",
            "subscription": "projects/p/subscriptions/flux",
        }
    }
).encode()

CASES: dict[str, Case] = {
    "generic": Case(
        genuine=Delivery({}, b"anything"),
        forged=None,
    ),
    "generic-hmac": Case(
        genuine=Delivery({"X-Signature": f"sha256={hexmac(PUSH)}"}, PUSH),
        forged=Delivery({"X-Signature": f"sha256={hexmac(PUSH, key='guess')}"}, PUSH),
    ),
    "github": Case(
        genuine=Delivery(
            {"X-Hub-Signature-256": f"sha256={hexmac(PUSH)}", "X-GitHub-Event": "push"}, PUSH
        ),
        forged=Delivery(
            {"X-Hub-Signature-256": f"sha256={hexmac(b'{}')}", "X-GitHub-Event": "push"}, PUSH
        ),
        filters_events=True,
    ),
    "gitea": Case(
        genuine=Delivery({"X-Gitea-Signature": hexmac(PUSH), "X-Gitea-Event": "push"}, PUSH),
        forged=Delivery({"X-Gitea-Event": "push"}, PUSH),
        filters_events=True,
    ),
    "gitlab": Case(
        genuine=Delivery({"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"}, PUSH),
        forged=Delivery({"X-Gitlab-Token": "guess", "X-Gitlab-Event": "Push Hook"}, PUSH),
        filters_events=True,
    ),
    "bitbucket": Case(
        genuine=Delivery(
            {"X-Hub-Signature": f"sha256={hexmac(PUSH)}", "X-Event-Key": "repo:refs_changed"},
            PUSH,
        ),
        forged=Delivery({"X-Event-Key": "repo:refs_changed"}, PUSH),
        filters_events=True,
    ),
    "harbor": Case(
        genuine=Delivery({"Authorization": TOKEN}, b'{"type":"PUSH_ARTIFACT"}'),
        forged=Delivery({"Authorization": f"Bearer {TOKEN}"}, b'{"type":"PUSH_ARTIFACT"}'),
    ),
    "dockerhub": Case(
        genuine=Delivery(JSON, DOCKERHUB),
        # No credential but the path: a body that is not DockerHub's payload is refused.
        forged=Delivery(JSON, b'{"push_data": "1.2"}'),
        forged_status=400,
    ),
    "quay": Case(
        genuine=Delivery(JSON, QUAY),
        forged=Delivery(JSON, b'{"updated_tags": "1.2"}'),
        forged_status=400,
    ),
    "gcr": Case(
        genuine=Delivery({"Authorization": f"Bearer {id_token()}", **JSON}, GCR),
        forged=Delivery({"Authorization": f"Bearer {id_token(key=_OTHER_KEY)}", **JSON}, GCR),
    ),
    "nexus": Case(
        genuine=Delivery({"X-Nexus-Webhook-Signature": hexmac(NEXUS, hashlib.sha1)}, NEXUS),
        forged=Delivery(
            {"X-Nexus-Webhook-Signature": hexmac(NEXUS, hashlib.sha1, key="guess")}, NEXUS
        ),
    ),
    "acr": Case(
        genuine=Delivery(JSON, ACR),
        forged=Delivery(JSON, b'["push"]'),
        forged_status=400,
    ),
    "cdevents": Case(
        genuine=Delivery({"Ce-Type": "dev.cdevents.change.merged.0.2.0", **JSON}, CDEVENT),
        forged=Delivery(
            {"Ce-Type": "dev.cdevents.change.merged.0.2.0", **JSON},
            CDEVENT.replace(b"change.merged", b"change.teleported"),
        ),
        forged_status=400,
        filters_events=True,
    ),
}


def crd_types() -> set[str]:
    (receiver,) = [r for r in custom_resources() if r.kind.kind == "Receiver"]
    spec = receiver.openapi_schema()["properties"]["spec"]
    return set(spec["properties"]["type"]["enum"])


def check(receiver_type: str, delivery: Delivery, *, events: list[str] | None = None) -> Any:
    spec: dict[str, Any] = {"type": receiver_type, "events": events or []}
    return verify_receiver_request(
        spec,
        headers=delivery.headers,
        body=delivery.body,
        token=TOKEN,
        secret={"token": TOKEN, "email": EMAIL, "audience": AUDIENCE},
        google_keys=GOOGLE_KEYS,
    )


# Types whose check needs the network, with the module that has their cases.
NETWORK_CHECKED = {"generic-oidc": "tests/unit/receiver/test_oidc.py"}


def test_every_type_of_the_crd_has_a_case_and_a_check() -> None:
    types = crd_types()
    assert types == set(typing.get_args(ReceiverType))
    assert types - set(CASES) - set(NETWORK_CHECKED) == set(), "a Receiver type has no case here"
    assert types - VERIFIED_TYPES == set(), "a Receiver type has no check"


@pytest.mark.parametrize("receiver_type", sorted(CASES))
def test_a_genuine_delivery_is_accepted(receiver_type: str) -> None:
    verdict = check(receiver_type, CASES[receiver_type].genuine)
    assert (verdict.accepted, verdict.status, verdict.reconcile) == (True, 200, True), verdict


@pytest.mark.parametrize("receiver_type", sorted(t for t, case in CASES.items() if case.forged))
def test_a_forged_delivery_is_refused(receiver_type: str) -> None:
    case = CASES[receiver_type]
    assert case.forged is not None
    verdict = check(receiver_type, case.forged)
    assert (verdict.accepted, verdict.status) == (False, case.forged_status), verdict
    assert TOKEN not in verdict.reason


@pytest.mark.parametrize("receiver_type", sorted(CASES))
def test_an_unwanted_event_is_refused_where_the_type_filters_events(receiver_type: str) -> None:
    case = CASES[receiver_type]
    verdict = check(receiver_type, case.genuine, events=case.unwanted_events)
    if case.filters_events:
        assert (verdict.accepted, verdict.status) == (False, 403), verdict
    else:
        assert (verdict.accepted, verdict.reconcile) == (True, True), verdict


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        pytest.param({"aud": "https://elsewhere/hook"}, "audience", id="other-audience"),
        pytest.param({"iss": "https://evil.example"}, "issuer", id="other-issuer"),
        pytest.param({"email": "someone@else.com"}, "email", id="other-account"),
        pytest.param({"email_verified": False}, "not verified", id="unverified-email"),
        pytest.param({"exp": int(time.time()) - 60}, "expired", id="expired"),
    ],
)
def test_gcr_refuses_a_google_signed_token_for_someone_else(
    claims: dict[str, Any], why: str
) -> None:
    delivery = Delivery({"Authorization": f"Bearer {id_token(**claims)}"}, GCR)
    verdict = check("gcr", delivery)
    assert (verdict.accepted, verdict.status) == (False, 401)
    assert why in verdict.reason


def test_gcr_hands_the_unwrapped_registry_event_to_resource_filters() -> None:
    verdict = check("gcr", CASES["gcr"].genuine)
    assert json.loads(verdict.payload or b"") == GCR_EVENT


@pytest.mark.parametrize("missing", ["email", "audience"])
def test_gcr_without_email_or_audience_in_the_secret_is_refused(missing: str) -> None:
    secret = {"token": TOKEN, "email": EMAIL, "audience": AUDIENCE}
    del secret[missing]
    delivery = CASES["gcr"].genuine
    verdict = verify_receiver_request(
        {"type": "gcr"},
        headers=delivery.headers,
        body=delivery.body,
        token=TOKEN,
        secret=secret,
        google_keys=GOOGLE_KEYS,
    )
    assert (verdict.accepted, verdict.status) == (False, 401)
    assert f"'{missing}'" in verdict.reason


def test_nexus_signature_in_uppercase_hex_is_refused_as_flux_does() -> None:
    headers = {"X-Nexus-Webhook-Signature": hexmac(NEXUS, hashlib.sha1).upper()}
    assert not check("nexus", Delivery(headers, NEXUS)).accepted
