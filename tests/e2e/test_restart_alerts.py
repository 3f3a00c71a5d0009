"""A roll the API server refuses raises an alert via the Kustomization that applied the workload.

A ValidatingAdmissionPolicy denies updates of the Deployment, as in
test_restarter_retries; the restarter's ``ReloadFail`` Event is recorded on the
Deployment, and an Alert whose eventSources name the Kustomization (Flux's
eventSources kinds have no workload kinds) sends it to a generic webhook.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.e2e.test_alerts import provider, wait_until_alert_is_live
from tests.support import restarter as r
from tests.support.chat import ChatServer
from tests.support.daemon import Fluxd, stop_all

ALERTS = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}/alerts"


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def daemon(cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path) -> Iterator[Fluxd]:
    # Scoped by --watch-namespaces so no other test's daemon restarts this workload.
    fluxd = Fluxd(
        cluster,
        tmp_path,
        name="fluxd-restart-alerts",
        extra_args=[
            f"--lease-name=restart-alerts-{uuid.uuid4().hex[:6]}",
            f"--watch-namespaces={namespace}",
            "--restart-coalesce-window=1s",
            "--max-retry-delay=5s",
        ],
    ).start()
    try:
        yield fluxd
    finally:
        stop_all(fluxd)


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def test_a_denied_roll_is_alerted_through_the_kustomization_that_applied_it(
    api: Api, namespace: str, daemon: Fluxd, chat: ChatServer
) -> None:
    provider(api, namespace, "webhook", {"type": "generic", "address": f"{chat.url}/hooks/generic"})
    api.create(
        ALERTS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "rollouts", "namespace": namespace},
            "spec": {
                "providerRef": {"name": "webhook"},
                "eventSeverity": "error",
                "eventSources": [{"kind": "Kustomization", "name": "apps"}],
            },
        },
    )
    wait_until_alert_is_live(daemon, namespace, "rollouts")

    r.create(api, namespace, r.secret("app-config", {"app.toml": "v1"}))
    deployment = r.workload(
        "app",
        annotations={r.AUTO: "true"},
        containers=[r.app_container(mounts=["config"])],
        volumes=[r.secret_volume("config", "app-config")],
    )
    # The labels a Kustomization named "apps" puts on what it applies.
    deployment["metadata"]["labels"] = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": namespace,
    }
    r.create(api, namespace, deployment)
    r.wait_rolled_out(api, namespace, "app")

    policy = r.deny_deployment_updates(api, namespace, "app")
    try:
        api.merge_patch(
            r.path("Secret", namespace, "app-config"), {"data": r.encoded({"app.toml": "v2"})}
        )
        received = chat.wait_for_request("/hooks/generic", timeout=90, what="a roll-failed alert")
    finally:
        r.allow_deployment_updates(api, policy)

    assert received.body["involvedObject"]["kind"] == "Deployment"
    assert received.body["involvedObject"]["name"] == "app"
    assert received.body["involvedObject"]["namespace"] == namespace
    assert received.body["severity"] == "error"
    assert received.body["reason"] == "ReloadFail"
    assert "deployment app is frozen" in received.body["message"]
    # The roll lands once the denial is lifted; an error-only Alert sends nothing for it.
    wait_for(
        lambda: r.events(api, namespace, name="app", reason="Reloaded"),
        timeout=60,
        what="the Reloaded Event after the denial is lifted",
    )
    assert {req.body["reason"] for req in chat.requests("/hooks/generic")} == {"ReloadFail"}
    daemon.check_alive()
