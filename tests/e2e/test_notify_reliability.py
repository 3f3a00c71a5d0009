"""Notifications on the real API server: Secrets watched as metadata only, Providers that heal.

The daemon's notification service watches Secrets without their data and
re-loads a Provider when its Secret changes, within ``watch-namespaces``.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fluxd.kube.client import Kube, Object
from fluxd.kube.informer import Change, Informer
from fluxd.kube.resources import SECRET
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support.chat import ChatServer
from tests.support.daemon import Fluxd

NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}"
GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"
UNREACHABLE = "http://127.0.0.1:1/x.git"


def secret(namespace: str, token: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "chat-token", "namespace": namespace},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


async def test_a_metadata_only_informer_sees_secret_changes_but_never_their_data(
    cluster: Cluster, api: Api, namespace: str
) -> None:
    api.create(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "first"))
    kube = await Kube.connect(kubeconfig=str(cluster.kubeconfig))
    seen: list[tuple[Change, Object]] = []
    rotated = asyncio.Event()

    def record(change: Change, obj: Object, old: Object | None) -> None:
        seen.append((change, obj))
        if change is Change.MODIFIED:
            rotated.set()

    informer = Informer(kube, SECRET, namespaces=(namespace,), metadata_only=True)
    informer.add_handler(record)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            with anyio.fail_after(30):
                await informer.synced.wait()
                api.merge_patch(
                    f"/api/v1/namespaces/{namespace}/secrets/chat-token",
                    {"data": {"token": base64.b64encode(b"rotated").decode()}},
                )
                await rotated.wait()
            group.cancel_scope.cancel()
    finally:
        await kube.close()

    assert [change for change, _ in seen] == [Change.ADDED, Change.MODIFIED]
    for _, obj in seen:
        assert obj["kind"] == "PartialObjectMetadata"
        assert obj["metadata"]["name"] == "chat-token"
        assert "data" not in obj
    added, modified = (obj["metadata"]["resourceVersion"] for _, obj in seen)
    assert added != modified


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


def notification_object(api: Api, namespace: str, kind: str, name: str, spec: Any) -> None:
    api.create(
        f"{NOTIFICATION.format(ns=namespace)}/{kind.lower()}s",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )


def logged(daemon: Fluxd, event: str, kind: str, name: str) -> bool:
    return any(
        record.get("msg") == event
        and record.get("controllerKind") == kind
        and str(record.get("object", "")).endswith(f"/{name}")
        for record in daemon.log_records()
    )


def test_a_provider_whose_secret_was_missing_sends_once_the_secret_is_created(
    cluster: Cluster,
    crds: list[str],
    api: Api,
    namespace: str,
    chat: ChatServer,
    tmp_path: Path,
) -> None:
    daemon = Fluxd(
        cluster,
        tmp_path,
        name="fluxd-notify",
        extra_args=[
            f"--lease-name=notify-{uuid.uuid4().hex[:8]}",
            f"--watch-namespaces={namespace}",
            "--notification-max-attempts=3",
        ],
    ).start()
    try:
        notification_object(
            api,
            namespace,
            "Provider",
            "dingtalk",
            {"type": "dingtalk", "secretRef": {"name": "dingtalk-robot"}},
        )
        notification_object(
            api,
            namespace,
            "Alert",
            "sync-failures",
            {
                "providerRef": {"name": "dingtalk"},
                "eventSeverity": "error",
                "eventSources": [{"kind": "GitRepository", "name": "*"}],
            },
        )
        wait_for(
            lambda: logged(daemon, "notification object is not usable", "Provider", "dingtalk"),
            timeout=60,
            what="the Provider reported as missing its Secret",
        )

        api.create(
            f"/api/v1/namespaces/{namespace}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "dingtalk-robot", "namespace": namespace},
                "data": {
                    key: base64.b64encode(value.encode()).decode()
                    for key, value in {
                        "address": chat.dingtalk_address,
                        "token": chat.dingtalk_secret,
                    }.items()
                },
            },
        )
        wait_for(
            lambda: logged(daemon, "notification object is ready", "Alert", "sync-failures"),
            timeout=60,
            what="the Alert live once the Provider's Secret exists",
        )
        api.create(
            GIT_REPOSITORIES.format(ns=namespace),
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "unreachable", "namespace": namespace},
                "spec": {"interval": "10m", "url": UNREACHABLE, "ref": {"branch": "main"}},
            },
        )

        message = chat.wait_for_request("/robot/send", what="a DingTalk message")
        assert f"gitrepository/unreachable.{namespace}" in message.body["markdown"]["title"]
    finally:
        daemon.stop()
