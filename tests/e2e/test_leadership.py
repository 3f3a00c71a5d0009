"""Leadership lost and won again by the same process loses nothing.

On a single-node cluster an API server outage longer than the lease is
routine: the daemon cannot renew, stops leading, and wins the lease again
when the API is back, all in one process. Everything must then work as after
a fresh start: sources poll, Kustomizations apply what changed meanwhile, and
alerts are delivered (the notification registry is loaded again).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support.chat import ChatServer
from tests.support.faults import (
    TOKEN,
    USER,
    Realm,
    RestartableGitServer,
    labelled_namespace,
    log_count,
    start_fluxd,
)

NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}"
# Short enough that a 12 s outage outlives the lease, long enough for 2 busy cores.
SHORT_LEASE = ["--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s"]


@pytest.fixture
def git(tmp_path: Path) -> Iterator[RestartableGitServer]:
    server = RestartableGitServer(
        root=tmp_path / "git", username=USER, password=TOKEN, default_branch="master"
    )
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()


@pytest.fixture
def realm(cluster: Cluster, crds: list[str], git: RestartableGitServer) -> Iterator[Realm]:
    namespace = labelled_namespace(cluster)
    try:
        yield Realm(api=cluster.api, git=git, namespace=namespace)
    finally:
        cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def _dingtalk_alert(api: Api, chat: ChatServer, namespace: str) -> None:
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "dingtalk-robot"},
            "data": {
                "address": base64.b64encode(chat.dingtalk_address.encode()).decode(),
                "token": base64.b64encode(chat.dingtalk_secret.encode()).decode(),
            },
        },
    )
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/providers",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "dingtalk"},
            "spec": {"type": "dingtalk", "secretRef": {"name": "dingtalk-robot"}},
        },
    )
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/alerts",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "applied"},
            "spec": {
                "providerRef": {"name": "dingtalk"},
                "eventSeverity": "info",
                "eventSources": [{"kind": "Kustomization", "name": "*"}],
            },
        },
    )


def test_api_outage_longer_than_the_lease_then_everything_reconciles_again(
    cluster: Cluster, realm: Realm, tmp_path: Path
) -> None:
    with ChatServer() as chat:
        daemon = start_fluxd(
            cluster,
            tmp_path / "fluxd",
            realm.namespace,
            name="fluxd",
            extra=[*SHORT_LEASE, f"--lease-name=terms-{uuid.uuid4().hex[:8]}"],
        )
        try:
            _dingtalk_alert(cluster.api, chat, realm.namespace)
            realm.create()
            realm.wait_baseline()
            wait_for(
                lambda: len(chat.requests("/robot/send")) > 0,
                timeout=60,
                what="the baseline change announced on DingTalk",
            )
            assert log_count(daemon, "started leading") == 1

            # A commit nobody asks to fetch: both objects poll every hour, so only a
            # reconcile of every object at the start of the new term can bring it.
            sha = realm.commit()
            announced = len(chat.requests("/robot/send"))
            cluster.restart_apiserver(down_for=12)

            wait_for(
                lambda: (
                    log_count(daemon, "leadership lost") >= 1
                    and log_count(daemon, "started leading") >= 2
                ),
                timeout=120,
                what="the daemon to lose the lease and win it again",
            )
            # The controller-manager, which rolls the pods, can take ~60 s to follow again.
            realm.wait_converged(timeout=240, what=f"commit {sha[:8]} applied in the new term")
            realm.assert_settled()
            wait_for(
                lambda: len(chat.requests("/robot/send")) > announced,
                timeout=60,
                what="an alert delivered in the new term",
            )
            assert chat.requests("/robot/send", accepted=False) == []
            daemon.check_alive()
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
