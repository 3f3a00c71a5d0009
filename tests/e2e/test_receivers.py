"""Receivers against the real control plane: webhook path, Gitea pushes, rejections."""

from __future__ import annotations

import base64
import hashlib
import json
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


def create_git_repository(
    api: Api, namespace: str, name: str, *, labels: dict[str, str] | None = None
) -> None:
    api.create(
        GIT_REPOSITORIES.format(ns=namespace),
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {
                "interval": "1h",
                "url": "http://127.0.0.1:1/x.git",
                "ref": {"branch": "master"},
            },
        },
    )


def create_receiver(
    api: Api,
    namespace: str,
    name: str,
    *,
    resources: list[dict[str, Any]],
    secret: str,
    receiver_type: str = "gitea",
    events: list[str] | None = None,
    resource_filter: str = "",
) -> None:
    spec: dict[str, Any] = {
        "type": receiver_type,
        "events": ["push"] if events is None else events,
        "resources": resources,
        "secretRef": {"name": secret},
    }
    if resource_filter:
        spec["resourceFilter"] = resource_filter
    api.create(
        RECEIVERS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
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


CDEVENT = json.dumps(
    {
        "context": {
            "version": "0.4.1",
            "id": "271069a8-fc18-44f1-b38f-9d70a1695819",
            "source": "/gitea/repos/k3s",
            "type": "dev.cdevents.change.merged.0.2.0",
            "timestamp": "2026-12-01T12:00:00Z",
        },
        "subject": {"id": "k3s/pulls/7", "source": "/gitea/repos/k3s", "content": {}},
    }
).encode()


@pytest.mark.parametrize(
    ("receiver_type", "events", "body", "headers", "forged"),
    [
        pytest.param(
            "harbor",
            [],
            b'{"type": "PUSH_ARTIFACT", "event_data": {"repository": {"name": "app"}}}',
            {"Authorization": TOKEN, "Content-Type": "application/json"},
            {"Authorization": "not-the-token", "Content-Type": "application/json"},
            id="harbor",
        ),
        pytest.param(
            "cdevents",
            ["dev.cdevents.change.merged.0.2.0"],
            CDEVENT,
            {"Ce-Type": "dev.cdevents.change.merged.0.2.0", "Content-Type": "application/json"},
            {"Ce-Type": "dev.cdevents.change.created.0.3.0", "Content-Type": "application/json"},
            id="cdevents",
        ),
    ],
)
def test_registry_and_cdevents_receivers_request_a_reconcile(
    api: Api,
    daemon: Fluxd,
    namespace: str,
    receiver_type: str,
    events: list[str],
    body: bytes,
    headers: dict[str, str],
    forged: dict[str, str],
) -> None:
    create_token_secret(api, namespace)
    create_git_repository(api, namespace, "app")
    create_receiver(
        api,
        namespace,
        receiver_type,
        resources=[{"kind": "GitRepository", "name": "app"}],
        secret="webhook-token",
        receiver_type=receiver_type,
        events=events,
    )
    url = (
        daemon.webhook_url
        + wait_until_ready(api, namespace, receiver_type)["status"]["webhookPath"]
    )

    # Refused first (wrong token, or an event the Receiver does not list): nothing requested.
    assert post(url, body, headers=forged)[0] in (401, 403), daemon.log_tail()
    assert requested_at(api, namespace, "app") is None
    assert post(url, body, headers=headers)[0] == 200, daemon.log_tail()
    wait_for(lambda: requested_at(api, namespace, "app"), timeout=60, what="requestedAt")


def test_resource_filter_requests_only_the_selected_labelled_target(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    create_token_secret(api, namespace)
    for name in ("api", "web"):
        create_git_repository(api, namespace, name, labels={"team": "edge"})
    create_receiver(
        api,
        namespace,
        "filtered",
        resources=[{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "edge"}}],
        secret="webhook-token",
        receiver_type="generic",
        events=[],
        resource_filter="res.metadata.name == req.repository.name",
    )
    url = daemon.webhook_url + wait_until_ready(api, namespace, "filtered")["status"]["webhookPath"]

    body = json.dumps({"repository": {"name": "web"}}).encode()
    assert post(url, body, headers={"Content-Type": "application/json"})[0] == 200
    wait_for(lambda: requested_at(api, namespace, "web"), timeout=60, what="web requested")
    # The annotation of both would be written by the same request, before its answer.
    assert requested_at(api, namespace, "api") is None


def test_receiver_with_an_invalid_resource_filter_is_stalled(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    create_token_secret(api, namespace)
    create_receiver(
        api,
        namespace,
        "broken-filter",
        resources=[{"kind": "GitRepository", "name": "repo"}],
        secret="webhook-token",
        receiver_type="generic",
        events=[],
        resource_filter="res.metadata.name ==",
    )

    def stalled() -> dict[str, Any] | None:
        receiver = api.get(f"{RECEIVERS.format(ns=namespace)}/broken-filter")
        condition = ready_condition(receiver)
        return condition if condition and condition["reason"] == "InvalidCELExpression" else None

    condition = wait_for(stalled, timeout=60, what="InvalidCELExpression")
    assert condition["status"] == "False"
    assert condition["message"].startswith("invalid resourceFilter expression:")
