"""Secrets watched as metadata only, on the real API server: no data crosses the wire."""

from __future__ import annotations

import asyncio
import base64

import anyio

from fluxd.kube.client import Kube, Object
from fluxd.kube.informer import Change, Informer
from fluxd.kube.resources import SECRET
from testenv.api import Api
from testenv.cluster import Cluster


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
