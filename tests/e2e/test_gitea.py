"""The seed flow through the real Gitea: its push, its webhook, its commit-status API.

Gitea (built from ``code.gitea.io/gitea``) serves the private repository over
smart HTTP with the user's personal access token, delivers its own push
webhook to fluxd's Receivers, and shows the statuses fluxd's ``gitea``
Provider writes. The GitRepository polls only hourly, so every change a test
sees came from Gitea's delivery.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from demo.seedflow import REALM_TOML, ready, running_pods, secret_value
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitea import gitea_headers, gitea_push
from tests.support.gitea import GiteaFlow, gitea_flow, revision_of, wait_for_delivery
from tests.support.seedflow import KS_PATH, RECEIVER_PATH, REPO_PATH, SECRET_PATH, WEBHOOK_TOKEN

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
NOTIFICATION = "/apis/notification.toolkit.fluxcd.io"
GITHUB_RECEIVER_PATH = f"{NOTIFICATION}/v1/namespaces/flux-system/receivers/github-style"


@pytest.fixture(scope="module")
def flow(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GiteaFlow]:
    with gitea_flow(cluster, tmp_path_factory.mktemp("gitea-flow")) as started:
        wait_for(lambda: ready(cluster.api, KS_PATH), timeout=120, what="Kustomization Ready")
        wait_for(lambda: ready(cluster.api, RECEIVER_PATH), timeout=60, what="Receiver Ready")
        yield started


def hook_url(api: Api, flow: GiteaFlow, receiver: str) -> str:
    return f"{flow.daemon.webhook_url}{api.get(receiver)['status']['webhookPath']}"


def realm_toml(remote: str) -> str:
    return REALM_TOML.replace("203.0.113.10", remote)


def test_push_to_gitea_rolls_the_deployment(api: Api, flow: GiteaFlow) -> None:
    gitea, daemon = flow.gitea, flow.daemon
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    hook = gitea.add_webhook(hook_url(api, flow, RECEIVER_PATH), secret=WEBHOOK_TOKEN)
    try:
        before = running_pods(api)
        replica_sets = len(api.items("/apis/apps/v1/namespaces/realm/replicasets"))
        changed = realm_toml("203.0.113.20")
        sha = gitea.commit({"realm/ix/realm_ix.toml": changed}, message="realm: move remote")

        delivery = wait_for_delivery(gitea, hook)
        assert (delivery.event, delivery.status, delivery.succeeded) == ("push", 200, True), (
            delivery.response_body
        )
        # The stand-in the unit tests and the demo's fallback use sends what Gitea sends.
        sent = json.loads(delivery.request_body)
        assert sent["after"] == sha
        assert set(json.loads(gitea_push(after=sha))) <= set(sent)
        stand_in = set(gitea_headers(b"{}", secret=WEBHOOK_TOKEN)) - {"User-Agent"}
        assert stand_in == set(delivery.request_headers)
        wait_for(
            lambda: revision_of(api) == f"master@sha1:{sha}",
            timeout=45,
            what="the GitRepository to fetch the commit pushed to Gitea",
        )
        requested = api.get(REPO_PATH)["metadata"].get("annotations", {}).get(REQUESTED_AT)
        assert requested, "the receiver did not request a reconcile"
        wait_for(
            lambda: secret_value(api, SECRET_PATH, "realm_ix.toml") == changed.encode(),
            timeout=45,
            what="the Secret to carry the pushed file",
        )
        wait_for(
            lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
            timeout=90,
            what="both Pods replaced",
        )
        assert len(api.items("/apis/apps/v1/namespaces/realm/replicasets")) == replica_sets + 1
    finally:
        gitea.delete_webhook(hook)
    daemon.check_alive()


def test_github_receiver_takes_gitea_deliveries(api: Api, flow: GiteaFlow) -> None:
    """A Receiver of type ``github`` behind a Gitea webhook of type ``gitea``.

    Gitea has no ``github`` webhook type: its ``gitea`` deliveries carry
    GitHub's headers too (X-GitHub-Event, X-Hub-Signature-256), which is what
    a user pointing Gitea at a GitHub-style receiver relies on.
    """
    gitea = flow.gitea
    api.apply(
        GITHUB_RECEIVER_PATH,
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "github-style", "namespace": "flux-system"},
            "spec": {
                "type": "github",
                "events": ["push"],
                "secretRef": {"name": "gitea-webhook-token"},
                "resources": [
                    {
                        "apiVersion": "source.toolkit.fluxcd.io/v1",
                        "kind": "GitRepository",
                        "name": "k3s-private-repo",
                    }
                ],
            },
        },
        manager="test",
    )
    try:
        wait_for(lambda: ready(api, GITHUB_RECEIVER_PATH), timeout=60, what="Receiver Ready")
        hook = gitea.add_webhook(hook_url(api, flow, GITHUB_RECEIVER_PATH), secret=WEBHOOK_TOKEN)
        try:
            changed = realm_toml("203.0.113.30")
            sha = gitea.commit({"realm/ix/realm_ix.toml": changed}, message="realm: github-style")
            delivery = wait_for_delivery(gitea, hook)
            assert delivery.request_headers["X-GitHub-Event"] == "push"
            assert delivery.request_headers["X-Hub-Signature-256"].startswith("sha256=")
            assert (delivery.status, delivery.succeeded) == (200, True), delivery.response_body
            wait_for(
                lambda: revision_of(api) == f"master@sha1:{sha}",
                timeout=45,
                what="the GitRepository to fetch the commit the github receiver announced",
            )
            wait_for(
                lambda: secret_value(api, SECRET_PATH, "realm_ix.toml") == changed.encode(),
                timeout=45,
                what="the Secret to carry the pushed file",
            )
        finally:
            gitea.delete_webhook(hook)
    finally:
        api.delete(GITHUB_RECEIVER_PATH)
        wait_for(
            lambda: api.get_or_none(GITHUB_RECEIVER_PATH) is None,
            timeout=60,
            what="the github receiver finalized",
        )


def test_gitea_provider_writes_the_commit_status(api: Api, flow: GiteaFlow) -> None:
    gitea = flow.gitea
    namespace = "flux-system"
    api.apply(
        f"/api/v1/namespaces/{namespace}/secrets/gitea-api",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "gitea-api", "namespace": namespace},
            "data": {"token": base64.b64encode(gitea.token.encode()).decode()},
        },
        manager="test",
    )
    provider = api.apply(
        f"{NOTIFICATION}/v1beta3/namespaces/{namespace}/providers/gitea",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "gitea", "namespace": namespace},
            "spec": {
                "type": "gitea",
                "address": f"{gitea.base_url}/{gitea.full_name}",
                "secretRef": {"name": "gitea-api"},
            },
        },
        manager="test",
    )
    api.apply(
        f"{NOTIFICATION}/v1beta3/namespaces/{namespace}/alerts/commit-status",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "commit-status", "namespace": namespace},
            "spec": {
                "providerRef": {"name": "gitea"},
                "eventSeverity": "info",
                "eventSources": [{"kind": "Kustomization", "name": "realm-ix"}],
            },
        },
        manager="test",
    )
    wait_until_alert_is_live(flow, namespace, "commit-status")
    hook = gitea.add_webhook(hook_url(api, flow, RECEIVER_PATH), secret=WEBHOOK_TOKEN)
    try:
        sha = gitea.commit(
            {"realm/ix/realm_ix.toml": realm_toml("203.0.113.40")}, message="realm: status"
        )
        context = f"kustomization/realm-ix/{provider['metadata']['uid'][:8]}"

        def fluxd_status() -> dict[str, Any] | None:
            ours = [s for s in gitea.statuses(sha) if s["context"] == context]
            return ours[0] if ours and ours[0]["status"] == "success" else None

        status = wait_for(fluxd_status, timeout=90, what="fluxd's commit status in Gitea")
    finally:
        gitea.delete_webhook(hook)
        api.delete(f"{NOTIFICATION}/v1beta3/namespaces/{namespace}/alerts/commit-status")
        api.delete(f"{NOTIFICATION}/v1beta3/namespaces/{namespace}/providers/gitea")
    # As Flux's gitea provider writes it: the event's reason, split and lower-cased.
    assert status["description"] == "reconciliation succeeded"
    assert status["target_url"] == ""
    assert status["creator"]["login"] == gitea.owner


def test_wrong_webhook_secret_is_refused_and_logged_by_gitea(api: Api, flow: GiteaFlow) -> None:
    gitea, daemon = flow.gitea, flow.daemon
    requested_before = api.get(REPO_PATH)["metadata"].get("annotations", {}).get(REQUESTED_AT)
    revision_before = revision_of(api)
    hook = gitea.add_webhook(hook_url(api, flow, RECEIVER_PATH), secret="not-the-token")
    try:
        sha = gitea.commit({"realm/ix/realm_ix.toml": realm_toml("203.0.113.50")}, message="x")
        delivery = wait_for_delivery(gitea, hook)
    finally:
        gitea.delete_webhook(hook)
    # Gitea records the refusal: not succeeded, with fluxd's answer.
    assert (delivery.succeeded, delivery.status) == (False, 401), delivery.response_body
    # fluxd answered before Gitea recorded it, so a request would be visible by now.
    repository = api.get(REPO_PATH)
    assert repository["metadata"].get("annotations", {}).get(REQUESTED_AT) == requested_before
    assert revision_of(api) == revision_before != f"master@sha1:{sha}"
    assert ready(api, RECEIVER_PATH)
    daemon.check_alive()
    assert daemon.get("/readyz")[0] == 200


def wait_until_alert_is_live(flow: GiteaFlow, namespace: str, name: str) -> None:
    def live() -> bool:
        return any(
            record.get("msg") == "notification object is ready"
            and record.get("controllerKind") == "Alert"
            and record.get("object") == f"{namespace}/{name}"
            for record in flow.daemon.log_records()
        )

    wait_for(live, timeout=60, what=f"alert {namespace}/{name} loaded")
