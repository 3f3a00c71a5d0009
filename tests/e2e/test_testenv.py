"""The test control plane behaves like a real cluster where fluxd depends on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, ApiError, wait_for
from testenv.cluster import Cluster, ClusterError

ROOT = Path(__file__).resolve().parents[2]


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
            },
        },
    }


def _ready_pods(api: Api, namespace: str, app: str) -> list[dict[str, Any]]:
    pods = api.items(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
    ]


def test_deployment_rolls_out_onto_fake_nodes(api: Api, namespace: str) -> None:
    api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment("web", 2))

    def available() -> bool:
        status = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")["status"]
        return bool(status.get("availableReplicas") == 2)

    wait_for(available, timeout=120, what="deployment web available")
    pods = _ready_pods(api, namespace, "web")
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)


def test_template_change_replaces_pods(api: Api, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/roll"
    api.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", _deployment("roll", 2))
    wait_for(lambda: len(_ready_pods(api, namespace, "roll")) == 2, timeout=120, what="2 pods")
    before = {p["metadata"]["name"] for p in _ready_pods(api, namespace, "roll")}

    api.merge_patch(path, {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}})

    def rolled() -> bool:
        deployment = api.get(path)
        status = deployment["status"]
        now = {p["metadata"]["name"] for p in _ready_pods(api, namespace, "roll")}
        return (
            status.get("observedGeneration") == deployment["metadata"]["generation"]
            and status.get("updatedReplicas") == 2
            and status.get("availableReplicas") == 2
            and status.get("replicas") == 2
            and len(now) == 2
            and not now & before
        )

    wait_for(rolled, timeout=120, what="rollout to replace both pods")
    replica_sets = api.items(
        f"/apis/apps/v1/namespaces/{namespace}/replicasets", labelSelector="app=roll"
    )
    assert len(replica_sets) == 2


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.testenv.fluxd.dev"},
    "spec": {
        "group": "testenv.fluxd.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {"ready": {"type": "boolean"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_custom_resource_with_server_side_apply(api: Api, namespace: str) -> None:
    api.apply(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.testenv.fluxd.dev", CRD
    )

    def established() -> bool:
        crd = api.get(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.testenv.fluxd.dev"
        )
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in crd.get("status", {}).get("conditions", [])
        )

    wait_for(established, timeout=60, what="CRD established")
    path = f"/apis/testenv.fluxd.dev/v1/namespaces/{namespace}/widgets/w1"
    body = {"apiVersion": "testenv.fluxd.dev/v1", "kind": "Widget", "metadata": {"name": "w1"}}

    def applied() -> dict[str, Any]:
        return api.apply(path, {**body, "spec": {"size": 3}}, manager="fluxd-test")

    created = wait_for(applied, timeout=30, what="first apply of the custom resource")
    assert created["spec"] == {"size": 3}
    managers = [m["manager"] for m in created["metadata"]["managedFields"]]
    assert "fluxd-test" in managers

    status = api.apply(f"{path}/status", {**body, "status": {"ready": True}}, manager="fluxd-test")
    assert status["status"] == {"ready": True}
    assert api.get(path)["spec"] == {"size": 3}

    with pytest.raises(ApiError) as conflict:
        api.apply(path, {**body, "spec": {"size": 4}}, manager="someone-else", force=False)
    assert conflict.value.status == 409


def test_secret_watch_sees_every_change(api: Api, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    version = api.request("GET", base)["metadata"]["resourceVersion"]
    api.create(base, {"metadata": {"name": "s"}, "stringData": {"k": "1"}})
    api.merge_patch(f"{base}/s", {"stringData": {"k": "2"}})
    api.delete(f"{base}/s")
    seen = []
    for event in api.watch(base, resource_version=version, timeout=10):
        seen.append(event["type"])
        if event["type"] == "DELETED":
            break
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


def _children(pid: int) -> set[int]:
    """All descendants of ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_killing_the_owner_leaves_no_orphans(tmp_path: Path) -> None:
    env = dict(os.environ, FLUXD_TESTENV_CACHE=os.environ.get("FLUXD_TESTENV_CACHE", ""))
    if not env["FLUXD_TESTENV_CACHE"]:
        del env["FLUXD_TESTENV_CACHE"]
    owner = subprocess.Popen(
        [sys.executable, "-m", "testenv", "up", "--kubeconfig-out", str(tmp_path / "kc")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert owner.stdout is not None
    with owner.stdout:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = owner.stdout.readline()
            lines.append(line)
            if "cluster up" in line or not line:
                break
        assert any("cluster up" in line for line in lines), "".join(lines)
        children = _children(owner.pid)
        assert len(children) >= 5
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    wait_for(lambda: not any(_alive(pid) for pid in children), timeout=30, what="children gone")


def _occupied_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def test_port_in_use_names_the_process(tmp_path: Path) -> None:
    sock, port = _occupied_port()
    cluster = Cluster(workdir=tmp_path / "c", apiserver_port=port, keep_workdir=True)
    try:
        with pytest.raises(ClusterError) as failure:
            cluster.start(timeout=60)
    finally:
        sock.close()
        cluster.stop()
    message = str(failure.value)
    assert "kube-apiserver" in message
    assert "address already in use" in message
    assert all(not c.alive() for c in cluster.components.values())


def test_stale_etcd_data_dir_is_reported(tmp_path: Path) -> None:
    workdir = tmp_path / "c"
    for part in ("snap/db", "wal/0000000000000000-0000000000000000.wal"):
        path = workdir / "etcd" / "member" / part
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(4096))
    cluster = Cluster(workdir=workdir, keep_workdir=True)
    try:
        with pytest.raises(ClusterError) as failure:
            cluster.start(timeout=30)
    finally:
        cluster.stop()
    assert "etcd exited" in str(failure.value)
    assert all(not c.alive() for c in cluster.components.values())
