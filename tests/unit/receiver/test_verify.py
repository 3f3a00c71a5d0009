"""Webhook verification for every Receiver type, and the webhook path."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

import pytest

from fluxd.receiver import verify_receiver_request, webhook_path

TOKEN = "receiver-token"
BODY = b'{"ref":"refs/heads/master","after":"0123456789abcdef"}'


def hexmac(body: bytes, *, algorithm: str = "sha256", key: str = TOKEN) -> str:
    return hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def gitea_headers(event: str = "push", *, body: bytes = BODY, key: str = TOKEN) -> dict[str, str]:
    """The headers Gitea sends with a signed delivery."""
    signature = hexmac(body, key=key)
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Signature": signature,
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": f"sha256={signature}",
    }


@pytest.mark.parametrize(
    ("spec", "headers", "accepted", "status", "reconcile"),
    [
        pytest.param({"type": "generic"}, {}, True, 200, True, id="generic-needs-nothing"),
        pytest.param(
            {"type": "generic-hmac"},
            {"X-Signature": f"sha256={hexmac(BODY)}"},
            True,
            200,
            True,
            id="generic-hmac-sha256",
        ),
        pytest.param(
            {"type": "generic-hmac"},
            {"X-Signature": f"sha1={hexmac(BODY, algorithm='sha1')}"},
            True,
            200,
            True,
            id="generic-hmac-sha1",
        ),
        pytest.param(
            {"type": "generic-hmac"},
            {"X-Signature": f"sha256={hexmac(BODY, key='other')}"},
            False,
            401,
            False,
            id="generic-hmac-wrong-key",
        ),
        pytest.param({"type": "generic-hmac"}, {}, False, 401, False, id="generic-hmac-missing"),
        pytest.param(
            {"type": "generic-hmac"},
            {"X-Signature": f"md5={hexmac(BODY)}"},
            False,
            400,
            False,
            id="generic-hmac-unknown-algorithm",
        ),
        pytest.param(
            {"type": "gitea", "events": ["push"]},
            gitea_headers(),
            True,
            200,
            True,
            id="gitea-push",
        ),
        pytest.param(
            {"type": "gitea"},
            gitea_headers(key="stale-token"),
            False,
            401,
            False,
            id="gitea-bad-signature",
        ),
        pytest.param(
            {"type": "gitea"},
            {"X-Gitea-Event": "push"},
            False,
            401,
            False,
            id="gitea-unsigned",
        ),
        pytest.param(
            {"type": "gitea", "events": ["push"]},
            gitea_headers("issues"),
            False,
            403,
            False,
            id="gitea-event-not-wanted",
        ),
        pytest.param(
            {"type": "github", "events": ["push"]},
            gitea_headers(),
            True,
            200,
            True,
            id="gitea-as-github-type-like-flux-docs",
        ),
        pytest.param(
            {"type": "github", "events": ["Push"]},
            {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={hexmac(BODY)}"},
            True,
            200,
            True,
            id="github-event-case-insensitive",
        ),
        pytest.param(
            {"type": "github"},
            {"X-GitHub-Event": "push", "X-Hub-Signature": f"sha1={hexmac(BODY, algorithm='sha1')}"},
            True,
            200,
            True,
            id="github-legacy-sha1",
        ),
        pytest.param(
            {"type": "github", "events": ["push"]},
            {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={hexmac(BODY)}"},
            True,
            200,
            False,
            id="github-ping-acknowledged-not-reconciled",
        ),
        pytest.param(
            {"type": "github", "events": ["ping", "push"]},
            {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={hexmac(BODY)}"},
            True,
            200,
            True,
            id="github-ping-listed",
        ),
        pytest.param(
            {"type": "github", "events": ["push"]},
            {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={hexmac(BODY, key='x')}"},
            False,
            401,
            False,
            id="github-forged-ping",
        ),
        pytest.param(
            {"type": "github"},
            {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=zz-not-hex"},
            False,
            401,
            False,
            id="github-garbage-signature",
        ),
        pytest.param(
            {"type": "gitlab", "events": ["Push Hook"]},
            {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"},
            True,
            200,
            True,
            id="gitlab-push",
        ),
        pytest.param(
            {"type": "gitlab"},
            {"X-Gitlab-Token": "guess", "X-Gitlab-Event": "Push Hook"},
            False,
            401,
            False,
            id="gitlab-wrong-token",
        ),
        pytest.param(
            {"type": "gitlab", "events": ["Tag Push Hook"]},
            {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"},
            False,
            403,
            False,
            id="gitlab-event-not-wanted",
        ),
        pytest.param(
            {"type": "bitbucket", "events": ["repo:refs_changed"]},
            {"X-Hub-Signature": f"sha256={hexmac(BODY)}", "X-Event-Key": "repo:refs_changed"},
            True,
            200,
            True,
            id="bitbucket-server-push",
        ),
        pytest.param(
            {"type": "bitbucket", "events": ["repo:refs_changed"]},
            {"X-Hub-Signature": f"sha256={hexmac(BODY)}", "X-Event-Key": "diagnostics:ping"},
            True,
            200,
            False,
            id="bitbucket-test-connection",
        ),
        pytest.param({"type": "svn"}, {}, False, 400, False, id="unknown-type"),
    ],
)
def test_receiver_verification(
    spec: dict[str, Any],
    headers: dict[str, str],
    accepted: bool,
    status: int,
    reconcile: bool,
) -> None:
    verdict = verify_receiver_request(spec, headers=headers, body=BODY, token=TOKEN)
    assert (verdict.accepted, verdict.status, verdict.reconcile) == (accepted, status, reconcile)
    if not accepted:
        assert verdict.reason  # something to log
        assert TOKEN not in verdict.reason


def test_tampered_body_is_rejected() -> None:
    verdict = verify_receiver_request(
        {"type": "gitea"}, headers=gitea_headers(), body=BODY + b" ", token=TOKEN
    )
    assert (verdict.accepted, verdict.status) == (False, 401)


def test_gitea_form_delivery_is_verified_over_the_json_payload() -> None:
    form_body = urlencode({"payload": BODY.decode()}).encode()
    headers = gitea_headers() | {"Content-Type": "application/x-www-form-urlencoded"}
    verdict = verify_receiver_request(
        {"type": "gitea"}, headers=headers, body=form_body, token=TOKEN
    )
    assert verdict.accepted


def test_receiver_without_token_fails_closed() -> None:
    verdict = verify_receiver_request(
        {"type": "github"},
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={hexmac(BODY, key='')}"},
        body=BODY,
        token="",
    )
    assert (verdict.accepted, verdict.status) == (False, 401)


def test_webhook_path_matches_flux() -> None:
    expected = hashlib.sha256(b"tokengithub-receiverflux-system").hexdigest()
    assert webhook_path(token="token", name="github-receiver", namespace="flux-system") == (
        f"/hook/{expected}"
    )
    other = webhook_path(token="token", name="github-receiver", namespace="default")
    assert other != f"/hook/{expected}"
