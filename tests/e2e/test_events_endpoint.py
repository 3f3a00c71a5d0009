"""The events endpoint end to end: an event posted as Flux controllers post it reaches an Alert."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api
from testenv.cluster import Cluster
from tests.e2e.test_alerts import provider, wait_until_alert_is_live
from tests.support.chat import ChatServer
from tests.support.daemon import Fluxd

ALERTS = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}/alerts"
REVISION = "main@sha1:" + "5" * 40


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    workdir = Path(tmp_path_factory.mktemp("fluxd-events"))
    instance = Fluxd(
        cluster,
        workdir,
        name="fluxd-events",
        extra_args=[f"--lease-name=ev-{uuid.uuid4().hex[:8]}"],
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def kustomize_controller_event(namespace: str, *, message: str) -> dict[str, Any]:
    """The JSON kustomize-controller's recorder (fluxcd/pkg runtime/events) posts."""
    return {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": namespace,
            "name": "apps",
            "uid": "2d1a7b0c-6d1e-4f0e-9a3c-0e3b1f7c2a11",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "4242",
        },
        "severity": "error",
        "timestamp": "2026-12-01T14:00:00Z",
        "message": message,
        "reason": "ReconciliationFailed",
        "metadata": {
            "kustomize.toolkit.fluxcd.io/revision": REVISION,
            "kustomize.toolkit.fluxcd.io/token": "0f" * 20,
        },
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-6b9f8d7c5-abcde",
    }


def post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_an_event_posted_like_kustomize_controller_reaches_a_generic_provider(
    api: Api, daemon: Fluxd, chat: ChatServer, namespace: str
) -> None:
    provider(api, namespace, "webhook", {"type": "generic", "address": f"{chat.url}/hooks/generic"})
    api.create(
        ALERTS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "apps-failures", "namespace": namespace},
            "spec": {
                "providerRef": {"name": "webhook"},
                "eventSeverity": "error",
                "eventSources": [{"kind": "Kustomization", "name": "apps"}],
                "eventMetadata": {"cluster": "edge-1"},
            },
        },
    )
    wait_until_alert_is_live(daemon, namespace, "apps-failures")

    # An event of an object no Alert selects is accepted and dropped.
    other = kustomize_controller_event(namespace, message="unrelated")
    other["involvedObject"]["name"] = "infra"
    assert post(daemon.events_url, json.dumps(other).encode()) == (202, "")
    # A malformed body is refused with its reason, and the endpoint keeps serving.
    status, text = post(daemon.events_url, b'{"involvedObject": "apps"}')
    assert status == 400 and "involvedObject" in text

    event = kustomize_controller_event(
        namespace, message="Deployment/apps/podinfo dry-run failed: denied"
    )
    body = json.dumps(event).encode()
    assert post(daemon.events_url, body) == (202, "")
    # Flux's recorders retry; the same event again within the interval is rate limited.
    assert post(daemon.events_url, body)[0] == 429

    received = chat.wait_for_request("/hooks/generic", what="the event at the generic webhook")
    headers = {name.lower(): value for name, value in received.headers.items()}
    assert headers["gotk-component"] == "kustomize-controller"
    assert received.body["involvedObject"]["kind"] == "Kustomization"
    assert received.body["involvedObject"]["name"] == "apps"
    assert received.body["involvedObject"]["namespace"] == namespace
    assert received.body["severity"] == "error"
    assert received.body["reason"] == "ReconciliationFailed"
    assert received.body["message"] == "Deployment/apps/podinfo dry-run failed: denied"
    # Flux forwards the object's metadata without its group prefix, minus the dedup token.
    assert received.body["metadata"] == {"revision": REVISION, "cluster": "edge-1"}
    assert [r.body["message"] for r in chat.requests("/hooks/generic")] == [event["message"]]
    daemon.check_alive()
