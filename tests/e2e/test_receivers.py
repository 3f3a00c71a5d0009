"""Receivers against the real control plane: webhook path, Gitea pushes, rejections."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support.chat import gitea_headers, gitea_push
from tests.support.daemon import Fluxd

TOKEN = "gitea-webhook-secret-7f3a"
RECEIVERS = "/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers"
GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    workdir = Path(tmp_path_factory.mktemp("fluxd-receivers"))
    instance = Fluxd(
        cluster,
        workdir,
        name="fluxd-receivers",
        extra_args=[
            f"--lease-name=receivers-{uuid.uuid4().hex[:8]}",
            f"--webhook-body-limit={BODY_LIMIT}",
            "--receiver-coalesce-window=1s",
        ],
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


def post(
    url: str, body: bytes = b"", *, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body or None, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def create_token_secret(api: Api, namespace: str, name: str = "webhook-token") -> None:
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        },
    )


def create_git_repository(api: Api, namespace: str, name: str) -> None:
    api.create(
        GIT_REPOSITORIES.format(ns=namespace),
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "interval": "1h",
                "url": "http://127.0.0.1:1/x.git",
                "ref": {"branch": "master"},
            },
        },
    )


def create_receiver(
    api: Api, namespace: str, name: str, *, resources: list[dict[str, Any]], secret: str
) -> None:
    api.create(
        RECEIVERS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "type": "gitea",
                "events": ["push"],
                "resources": resources,
                "secretRef": {"name": secret},
            },
        },
    )


def expected_path(name: str, namespace: str) -> str:
    return "/hook/" + hashlib.sha256(f"{TOKEN}{name}{namespace}".encode()).hexdigest()


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return dict(condition)
    return None


def wait_until_ready(api: Api, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        receiver = api.get(f"{RECEIVERS.format(ns=namespace)}/{name}")
        condition = ready_condition(receiver)
        return receiver if condition and condition["status"] == "True" else None

    result: dict[str, Any] = wait_for(ready, timeout=90, what=f"receiver {name} ready")
    return result


def requested_at(api: Api, namespace: str, name: str) -> str | None:
    repository = api.get(f"{GIT_REPOSITORIES.format(ns=namespace)}/{name}")
    value = (repository["metadata"].get("annotations") or {}).get(REQUESTED_AT)
    return str(value) if value is not None else None


def test_gitea_receiver_publishes_path_and_push_requests_reconcile(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    create_token_secret(api, namespace)
    create_git_repository(api, namespace, "k3s-private-repo")
    create_receiver(
        api,
        namespace,
        "gitea-push",
        resources=[{"kind": "GitRepository", "name": "k3s-private-repo"}],
        secret="webhook-token",
    )

    receiver = wait_until_ready(api, namespace, "gitea-push")
    path = expected_path("gitea-push", namespace)
    assert receiver["status"]["webhookPath"] == path
    condition = ready_condition(receiver)
    assert condition is not None
    assert condition["reason"] == "Succeeded"
    assert condition["message"] == f"Receiver initialized for path: {path}"
    assert requested_at(api, namespace, "k3s-private-repo") is None

    # The daemon is shared: count this test's requests, not the module's.
    accepted_before = daemon.metric("fluxd_receiver_requests_total", outcome="accepted") or 0
    refused_before = daemon.metric("fluxd_receiver_requests_total", outcome="unauthorized") or 0
    body = gitea_push()
    status, answer = post(
        daemon.webhook_url + path, body, headers=gitea_headers(body, secret=TOKEN)
    )
    assert status == 200, daemon.log_tail()
    first = wait_for(
        lambda: requested_at(api, namespace, "k3s-private-repo"),
        timeout=60,
        what="requestedAt annotation",
    )

    forged = gitea_headers(body, secret="not-the-token")
    status, answer = post(daemon.webhook_url + path, body, headers=forged)
    assert status == 401
    assert answer == b""  # no hint for whoever forged it
    assert requested_at(api, namespace, "k3s-private-repo") == first
    refused = daemon.metric("fluxd_receiver_requests_total", outcome="unauthorized") or 0
    accepted = daemon.metric("fluxd_receiver_requests_total", outcome="accepted") or 0
    assert (refused - refused_before, accepted - accepted_before) == (1, 1)


@pytest.mark.parametrize(
    ("request_kind", "expected"),
    [
        pytest.param("get", 405, id="get-is-not-allowed"),
        pytest.param("oversized", 413, id="body-over-the-limit"),
        pytest.param("unknown-path", 404, id="unknown-path"),
        pytest.param("malformed-json", 400, id="signed-but-not-json"),
    ],
)
def test_bad_webhook_requests_are_refused_without_side_effects(
    api: Api, daemon: Fluxd, namespace: str, request_kind: str, expected: int
) -> None:
    create_token_secret(api, namespace)
    create_git_repository(api, namespace, "repo")
    create_receiver(
        api,
        namespace,
        "hook",
        resources=[{"kind": "GitRepository", "name": "repo"}],
        secret="webhook-token",
    )
    path = wait_until_ready(api, namespace, "hook")["status"]["webhookPath"]
    url = daemon.webhook_url + path

    if request_kind == "get":
        status, answer = post(url, method="GET")
    elif request_kind == "oversized":
        body = b'{"padding": "' + b"x" * BODY_LIMIT + b'"}'
        status, answer = post(url, body, headers=gitea_headers(body, secret=TOKEN))
    elif request_kind == "unknown-path":
        body = gitea_push()
        status, answer = post(
            daemon.webhook_url + "/hook/" + "0" * 64,
            body,
            headers=gitea_headers(body, secret=TOKEN),
        )
    else:
        body = b'{"ref": "refs/heads/master", "after": '
        status, answer = post(url, body, headers=gitea_headers(body, secret=TOKEN))

    assert status == expected, daemon.log_tail()
    assert answer == b""
    assert requested_at(api, namespace, "repo") is None
    daemon.check_alive()
    # The daemon still serves a genuine push afterwards.
    body = gitea_push()
    assert post(url, body, headers=gitea_headers(body, secret=TOKEN))[0] == 200


def test_receiver_for_a_missing_object_accepts_and_reports_an_event(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    create_token_secret(api, namespace)
    create_receiver(
        api,
        namespace,
        "dangling",
        resources=[{"kind": "GitRepository", "name": "does-not-exist"}],
        secret="webhook-token",
    )
    path = wait_until_ready(api, namespace, "dangling")["status"]["webhookPath"]

    body = gitea_push()
    status, _ = post(daemon.webhook_url + path, body, headers=gitea_headers(body, secret=TOKEN))
    assert status == 200

    def warning() -> list[dict[str, Any]]:
        events = api.items(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
        return [
            event
            for event in events
            if event["regarding"].get("kind") == "Receiver"
            and event["regarding"].get("name") == "dangling"
            and event["type"] == "Warning"
            and "does-not-exist" in event.get("note", "")
        ]

    found = wait_for(warning, timeout=60, what="a Warning event on the Receiver")
    assert "not found" in found[0]["note"]
    daemon.check_alive()


def test_receiver_without_its_secret_is_not_ready_until_the_secret_appears(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    create_receiver(
        api,
        namespace,
        "early",
        resources=[{"kind": "GitRepository", "name": "repo"}],
        secret="late-token",
    )

    def token_not_found() -> dict[str, Any] | None:
        receiver = api.get(f"{RECEIVERS.format(ns=namespace)}/early")
        condition = ready_condition(receiver)
        return condition if condition and condition["reason"] == "TokenNotFound" else None

    condition = wait_for(token_not_found, timeout=60, what="TokenNotFound")
    assert condition["status"] == "False"
    assert f"{namespace}/late-token" in condition["message"]

    create_token_secret(api, namespace, name="late-token")
    receiver = wait_until_ready(api, namespace, "early")
    assert receiver["status"]["webhookPath"] == expected_path("early", namespace)
