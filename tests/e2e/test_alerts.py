"""Alerts end to end: a real GitRepository's events reach DingTalk and Gitea stand-ins."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.chat import ChatServer
from tests.support.daemon import Fluxd

KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}/kustomizations"
NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}"
GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"
RECEIVERS = "/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers"
UNREACHABLE = "http://127.0.0.1:1/x.git"


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    workdir = Path(tmp_path_factory.mktemp("fluxd-alerts"))
    instance = Fluxd(
        cluster,
        workdir,
        name="fluxd-alerts",
        extra_args=[
            f"--lease-name=alerts-{uuid.uuid4().hex[:8]}",
            "--notification-max-attempts=3",
        ],
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def secret(api: Api, namespace: str, name: str, data: dict[str, str]) -> None:
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        },
    )


def provider(api: Api, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return api.create(
        f"{NOTIFICATION.format(ns=namespace)}/providers",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )


def alert(
    api: Api,
    namespace: str,
    name: str,
    *,
    provider_name: str,
    severity: str = "info",
    kind: str = "GitRepository",
) -> None:
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/alerts",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "providerRef": {"name": provider_name},
                "eventSeverity": severity,
                "eventSources": [{"kind": kind, "name": "*"}],
            },
        },
    )


def git_repository(api: Api, namespace: str, name: str, url: str, branch: str = "main") -> None:
    api.create(
        GIT_REPOSITORIES.format(ns=namespace),
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "10m", "url": url, "ref": {"branch": branch}, "timeout": "10s"},
        },
    )


def wait_until_alert_is_live(daemon: Fluxd, namespace: str, name: str) -> None:
    def live() -> bool:
        return any(
            record.get("msg") == "notification object is ready"
            and record.get("controllerKind") == "Alert"
            and record.get("object") == f"{namespace}/{name}"
            for record in daemon.log_records()
        )

    wait_for(live, timeout=60, what=f"alert {namespace}/{name} loaded")


def dingtalk_setup(api: Api, chat: ChatServer, namespace: str, *, severity: str) -> None:
    secret(
        api,
        namespace,
        "dingtalk-robot",
        {"address": chat.dingtalk_address, "token": chat.dingtalk_secret},
    )
    provider(
        api, namespace, "dingtalk", {"type": "dingtalk", "secretRef": {"name": "dingtalk-robot"}}
    )
    alert(api, namespace, "sync-failures", provider_name="dingtalk", severity=severity)


def test_failing_git_repository_is_reported_to_dingtalk_with_a_signed_message(
    api: Api, daemon: Fluxd, chat: ChatServer, namespace: str
) -> None:
    dingtalk_setup(api, chat, namespace, severity="error")
    wait_until_alert_is_live(daemon, namespace, "sync-failures")

    git_repository(api, namespace, "k3s-private-repo", UNREACHABLE)

    message = chat.wait_for_request("/robot/send", what="a signed DingTalk message")
    markdown = message.body["markdown"]
    assert f"gitrepository/k3s-private-repo.{namespace}" in markdown["title"]
    assert "127.0.0.1:1" in markdown["text"] or "k3s-private-repo" in markdown["text"]
    # Every message the robot got was signed correctly.
    assert chat.requests("/robot/send", accepted=False) == []


def test_provider_answering_500_is_retried_then_given_up_and_reconciling_goes_on(
    api: Api, daemon: Fluxd, namespace: str
) -> None:
    before_failed = (
        daemon.metric("fluxd_notification_deliveries_total", provider="dingtalk", outcome="failed")
        or 0.0
    )
    before_retried = (
        daemon.metric("fluxd_notification_deliveries_total", provider="dingtalk", outcome="retried")
        or 0.0
    )
    with ChatServer(fail_with=500) as broken:
        dingtalk_setup(api, broken, namespace, severity="error")
        wait_until_alert_is_live(daemon, namespace, "sync-failures")
        git_repository(api, namespace, "unreachable", UNREACHABLE)

        wait_for(
            lambda: (
                (
                    daemon.metric(
                        "fluxd_notification_deliveries_total", provider="dingtalk", outcome="failed"
                    )
                    or 0.0
                )
                > before_failed
            ),
            timeout=90,
            what="the delivery to be given up",
        )
        # Three attempts (the configured maximum), not one, and not forever.
        assert len(broken.requests("/robot/send")) == 3
        retried = (
            daemon.metric(
                "fluxd_notification_deliveries_total", provider="dingtalk", outcome="retried"
            )
            or 0.0
        )
        assert retried - before_retried == 2

    # The daemon keeps reconciling other objects after giving up.
    secret(api, namespace, "webhook-token", {"token": "t0ken"})
    api.create(
        RECEIVERS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "after", "namespace": namespace},
            "spec": {
                "type": "generic",
                "resources": [{"kind": "GitRepository", "name": "unreachable"}],
                "secretRef": {"name": "webhook-token"},
            },
        },
    )
    wait_for(
        lambda: (
            api.get(f"{RECEIVERS.format(ns=namespace)}/after").get("status", {}).get("webhookPath")
        ),
        timeout=60,
        what="a Receiver reconciled after the failed delivery",
    )
    daemon.check_alive()


def test_new_revision_is_posted_as_a_gitea_commit_status(
    api: Api, daemon: Fluxd, chat: ChatServer, namespace: str
) -> None:
    """The applied revision gets a status; the source's own new artifact does not (as Flux)."""
    with GitServer() as git:
        git.create_repo("k3s/k3s-private")
        config_map = (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: realm-ix\n"
            f"  namespace: {namespace}\ndata:\n  listen: '1'\n"
        )
        sha = git.commit("k3s/k3s-private", {"deploy/realm.yaml": config_map})
        secret(api, namespace, "gitea-api", {"token": chat.gitea_token})
        created = provider(
            api,
            namespace,
            "gitea-status",
            {
                "type": "gitea",
                "address": f"{chat.url}/k3s/k3s-private",
                "secretRef": {"name": "gitea-api"},
            },
        )
        # GitRepository events reach the Provider too, and must not become statuses.
        alert(api, namespace, "source-status", provider_name="gitea-status")
        alert(api, namespace, "commit-status", provider_name="gitea-status", kind="Kustomization")
        wait_until_alert_is_live(daemon, namespace, "commit-status")

        git_repository(api, namespace, "k3s-private-repo", git.url("k3s/k3s-private"))
        api.create(
            KUSTOMIZATIONS.format(ns=namespace),
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "realm-ix", "namespace": namespace},
                "spec": {
                    "interval": "10m",
                    "path": "./deploy",
                    "prune": False,
                    "sourceRef": {"kind": "GitRepository", "name": "k3s-private-repo"},
                },
            },
        )

        posted = chat.wait_for_request(
            f"/api/v1/repos/k3s/k3s-private/statuses/{sha}", what="a Gitea commit status"
        )
    assert posted.method == "POST"
    assert posted.headers["Authorization"] == f"token {chat.gitea_token}"
    assert posted.body["state"] == "success"
    uid_block = created["metadata"]["uid"].split("-")[0]
    assert posted.body["context"] == f"kustomization/realm-ix/{uid_block}"
    contexts = {
        request.body["context"]
        for request in chat.requests(f"/api/v1/repos/k3s/k3s-private/statuses/{sha}")
        if request.method == "POST"
    }
    assert contexts == {f"kustomization/realm-ix/{uid_block}"}
    assert chat.requests("/api/v1/", accepted=False) == []
