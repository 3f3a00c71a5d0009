"""In-cluster on a real node: the built image runs, a mounted Secret is served, fluxd installs.

kwok's nodes run nothing, so these tests join a real node to the control plane
(testenv/node.py: kubelet, containerd, runc and CNI in a private network
namespace) and run the images testenv/images.py built from Debian's packages
and the pinned wheels. Only this module starts the node; when it cannot be
had, the tests fail with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.realnode import (
    FLUXD_PODS,
    LEASE,
    ROOT,
    SeedFlow,
    app_deployment,
    container_processes,
    fluxd_pods,
    just_wait,
    kubectl_apply,
    lease_holder,
    rollout_history,
    the_ready_fluxd_pod,
)
from demo.seedflow import KUSTOMIZATION, REALM_TOML, SEED, apply_file, running_pods
from testenv import build, images
from testenv.api import Api, wait_for
from testenv.cluster import Cluster, ClusterError, environ_for
from testenv.gitea import gitea_headers, gitea_push
from testenv.gitserver import GitServer
from testenv.node import NETNS_PREFIX, NODE_SELECTOR, TOLERATION, Node, remove_stale_namespaces
from tests.support.install import KUBECTL, NAMESPACE
from tests.support.seedflow import (
    DELETED,
    KS_PATH,
    POLL_INTERVAL,
    RECEIVER_PATH,
    REPO,
    REPO_PATH,
    SECRET_PATH,
    SEED_URL,
    WEBHOOK_TOKEN,
)
from tests.unit.install.test_image import _pins, _project_version, _runtime_closure

OVERLAY = Path(__file__).resolve().parent / "realnode"
_node_failure: str | None = None


@pytest.fixture(scope="module")
def built() -> images.Images:
    try:
        return images.ensure_images()
    except images.ImageError as error:
        pytest.fail(f"the test images could not be built: {error}", pytrace=False)


@pytest.fixture(scope="module")
def node(cluster: Cluster, built: images.Images) -> Iterator[Node]:
    global _node_failure
    if _node_failure is not None:
        pytest.fail(f"the real node is not available: {_node_failure}", pytrace=False)
    instance = Node(
        cluster=cluster, images=built, workdir=Path(tempfile.mkdtemp(prefix="fluxd-node-"))
    )
    try:
        instance.start()
    except (build.BuildError, ClusterError) as error:
        _node_failure = str(error)
        pytest.fail(f"the real node is not available: {error}", pytrace=False)
    try:
        yield instance
    finally:
        instance.stop()
        cluster.api.delete(f"/api/v1/nodes/{instance.name}")


def _restricted_namespace(api: Api) -> str:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    api.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    wait_for(
        lambda: api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=30,
        what=f"ServiceAccount {name}/default",
    )
    return name


def _kubectl(cluster: Cluster, *args: str) -> str:
    """``kubectl`` as a user runs it against the cluster: its output, or why it failed."""
    ran = subprocess.run(
        [str(KUBECTL), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=environ_for(cluster),
        check=False,
    )
    return ran.stdout if ran.returncode == 0 else f"kubectl failed: {ran.stderr}"


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())
    except OSError as error:
        return f"unreachable: {error}"


# -- network safety ----------------------------------------------------------------


def _namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


def test_a_node_namespace_left_by_a_crashed_run_is_removed_with_its_link() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    name, host_end = f"{NETNS_PREFIX}{gone.pid}", f"fxn{gone.pid}h"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", f"fxn{gone.pid}n",
         "netns", name],
        check=True,
    )  # fmt: skip
    # A sleeper in the namespace stands for the crashed run's containerd.
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "300"])
    try:
        assert name in remove_stale_namespaces()
        assert sleeper.wait(timeout=10) != 0
        assert name not in _namespaces()
        links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True, check=True)
        assert host_end not in links.stdout
    finally:
        sleeper.kill()
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def test_the_namespace_of_a_live_run_is_kept() -> None:
    name = f"{NETNS_PREFIX}{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name not in remove_stale_namespaces()
        assert name in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


# -- the image -------------------------------------------------------------------------


def test_the_image_installs_exactly_the_pinned_versions_on_python_311(
    built: images.Images,
) -> None:
    installed = dict(
        line.split("==", 1) for line in built.fluxd_rootfs_versions.read_text().split()
    )
    installed = {name.lower().replace("_", "-"): version for name, version in installed.items()}
    assert installed.pop("fluxd") == _project_version()
    # pip, and what the venv brings, are the image's tools, not fluxd's dependencies.
    for tool in ("pip", "setuptools"):
        installed.pop(tool, None)
    assert installed == _pins()
    assert _pins() == _runtime_closure()
    assert built.fluxd_python_version.read_text().startswith("3.11.")


# -- Pods on the real node -------------------------------------------------------------


def test_a_restricted_pod_serves_its_mounted_secret_and_then_its_update(
    cluster: Cluster, node: Node
) -> None:
    api = cluster.api
    namespace = _restricted_namespace(api)
    base = f"/api/v1/namespaces/{namespace}"
    api.create(
        f"{base}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "config"},
         "stringData": {"app.toml": "greeting = 'v1'\n"}},
    )  # fmt: skip
    api.create(
        f"{base}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "labels": {"app": "app"}},
            "spec": {
                "tolerations": [TOLERATION],
                "nodeSelector": NODE_SELECTOR,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "app",
                        "image": images.APP_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": ["/config/app.toml", "8080"],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                    }
                ],
                "volumes": [{"name": "config", "secret": {"secretName": "config"}}],
            },
        },
    )
    service = api.create(
        f"{base}/services",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
         "spec": {"selector": {"app": "app"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    )  # fmt: skip
    url = f"http://{service['spec']['clusterIP']}/app.toml"

    def serving(expected: str) -> bool:
        node.check()
        return _get(url) == expected

    wait_for(lambda: serving("greeting = 'v1'\n"), timeout=90, what=f"the app serving {url}")
    pod = api.get(f"{base}/pods/app")
    assert pod["spec"]["nodeName"] == node.name
    # What the app printed at start, read back through the API server from the kubelet.
    logs = _kubectl(cluster, "logs", f"--namespace={namespace}", "app")
    assert logs.startswith("serving /config/app.toml:\ngreeting = 'v1'\n"), logs

    api.merge_patch(f"{base}/secrets/config", {"stringData": {"app.toml": "greeting = 'v2'\n"}})
    wait_for(lambda: serving("greeting = 'v2'\n"), timeout=90, what="the updated Secret served")
    mounted = _kubectl(cluster, "exec", f"--namespace={namespace}", "app", "--",
                       "cat", "/config/app.toml")  # fmt: skip
    assert mounted == "greeting = 'v2'\n"
    api.delete(base)


def test_a_pod_on_the_node_resolves_the_api_servers_service_name(
    cluster: Cluster, node: Node
) -> None:
    api = cluster.api
    namespace = _restricted_namespace(api)
    base = f"/api/v1/namespaces/{namespace}"
    api.create(
        f"{base}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client"},
            "spec": {
                "tolerations": [TOLERATION],
                "nodeSelector": NODE_SELECTOR,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "client",
                        "image": images.APP_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["sleep", "3600"],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        },
    )

    def running() -> bool:
        node.check()
        return bool(api.get(f"{base}/pods/client").get("status", {}).get("phase") == "Running")

    wait_for(running, timeout=90, what="the client Pod running on the real node")
    cluster_ip = api.get("/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"]
    name = "kubernetes.default.svc.cluster.local"
    answer = _kubectl(cluster, "exec", f"--namespace={namespace}", "client", "--",
                      "nslookup", "-type=a", name)  # fmt: skip
    assert f"Name:\t{name}\nAddress: {cluster_ip}" in answer, answer
    api.delete(base)


@pytest.fixture(scope="module")
def installed_fluxd(cluster: Cluster, node: Node) -> dict[str, Any]:
    """fluxd applied from tests/e2e/realnode with ``kubectl apply -k``, its Pod once available."""
    applied = subprocess.run(
        [str(KUBECTL), "apply", "--server-side", "-k", str(OVERLAY)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ_for(cluster),
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    deployment = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/fluxd"

    def available() -> bool:
        node.check()
        status = cluster.api.get(deployment).get("status", {})
        return bool(status.get("availableReplicas", 0) >= 1)

    try:
        wait_for(available, timeout=180, what="fluxd's Deployment available on the real node")
    except TimeoutError:
        pods = cluster.api.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
        raise AssertionError(
            json.dumps([p.get("status") for p in pods], indent=1)[:4000] + "\n" + node.log_tails(15)
        ) from None
    (pod,) = cluster.api.items(
        f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector="app.kubernetes.io/name=fluxd"
    )
    return pod


def test_fluxd_applied_from_manifests_becomes_ready_under_the_restricted_standard(
    cluster: Cluster, node: Node, installed_fluxd: dict[str, Any]
) -> None:
    namespace = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert installed_fluxd["spec"]["nodeName"] == node.name
    (container,) = installed_fluxd["status"]["containerStatuses"]
    assert container["ready"] and container["image"] == images.FLUXD_IMAGE


def test_the_seed_flow_in_cluster_push_webhook_secret_then_the_app_serves_it(
    cluster: Cluster, node: Node, installed_fluxd: dict[str, Any]
) -> None:
    api = cluster.api
    with GitServer(
        username="k3s", password="gitea-personal-access-token", default_branch="master"
    ) as git:
        git.create_repo(REPO)
        git.commit(
            REPO,
            {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML},
        )
        # The seed's Git server, by the seed's name: a Service in front of the host's server.
        address = node.expose_as_service(
            git.port, name="gitea-svc", namespace="default", service_port=3000
        )
        assert f"http://{address}/{REPO}" == SEED_URL
        # The seed's realm manifest holds the namespace; its Deployment is the test's own.
        cluster.create_namespace("realm")
        for manifest in sorted(SEED.glob("*.yaml")):
            if manifest.name == "03-realm-deployment.yaml":
                continue
            apply_file(api, manifest, replace={"interval: 1m": f"interval: {POLL_INTERVAL}"})
        try:
            wait_for(
                lambda: api.get_or_none(SECRET_PATH),
                timeout=120,
                what="fluxd in the cluster to fetch the repository and apply the Secret",
            )
        except TimeoutError as error:
            statuses = {
                path: (api.get_or_none(path) or {}).get("status") for path in (REPO_PATH, KS_PATH)
            }
            raise AssertionError(f"{error}\n{json.dumps(statuses, indent=1)}") from None
        api.apply("/apis/apps/v1/namespaces/realm/deployments/realm", app_deployment())
        service = api.apply(
            "/api/v1/namespaces/realm/services/realm",
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "realm", "namespace": "realm"},
             "spec": {"selector": {"app": "realm"},
                      "ports": [{"port": 80, "targetPort": 8080}]}},
        )  # fmt: skip
        served = f"http://{service['spec']['clusterIP']}/realm_ix.toml"
        wait_for(lambda: _get(served) == REALM_TOML, timeout=120, what=f"the app serving {served}")

        hook = wait_for(
            lambda: api.get(RECEIVER_PATH).get("status", {}).get("webhookPath"),
            timeout=60,
            what="the Receiver's webhook path",
        )
        changed = REALM_TOML.replace('level = "warn"', 'level = "debug"')
        sha = git.commit(REPO, {"realm/ix/realm_ix.toml": changed}, message="realm: debug")
        body = gitea_push(repository="k3s/k3s-private", after=sha)
        (fluxd_service,) = [
            s
            for s in api.items(f"/api/v1/namespaces/{NAMESPACE}/services")
            if any(port["port"] == 9292 for port in s["spec"]["ports"])
        ]
        request = urllib.request.Request(
            f"http://{fluxd_service['spec']['clusterIP']}:9292{hook}",
            data=body,
            headers=gitea_headers(body, secret=WEBHOOK_TOKEN),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        try:
            wait_for(lambda: _get(served) == changed, timeout=120, what="the app serving the push")
            # The restarted app printed the pushed file as it started.
            wait_for(
                lambda: changed in _kubectl(cluster, "logs", "--namespace=realm", "deploy/realm"),
                timeout=60,
                what="the restarted app's log showing the pushed file",
            )
        finally:
            # Deleted while fluxd runs, which removes its finalizers: later modules
            # apply the same names.
            for path in DELETED:
                api.delete(path)
            wait_for(
                lambda: all(api.get_or_none(path) is None for path in DELETED),
                timeout=60,
                what="the seed's Flux objects finalized",
            )
            api.delete("/api/v1/namespaces/realm")


# -- fluxd killed and upgraded while it works --------------------------------------------


@pytest.fixture(scope="module")
def seed_in_cluster(
    cluster: Cluster, node: Node, installed_fluxd: dict[str, Any]
) -> Iterator[SeedFlow]:
    """The seed flow served to fluxd in the cluster, its app serving the first commit."""
    with SeedFlow.serving(cluster, node, just_wait) as flow:
        flow.start()
        yield flow


def _replacement(api: Api, *, of: str) -> dict[str, Any] | None:
    pod = the_ready_fluxd_pod(api)
    return pod if pod is not None and pod["metadata"]["name"] != of else None


def _restarted(api: Api, *, name: str, restarts: int) -> dict[str, Any] | None:
    pod = the_ready_fluxd_pod(api)
    if pod is None or pod["metadata"]["name"] != name:
        return None
    (status,) = pod["status"]["containerStatuses"]
    return pod if status["restartCount"] > restarts else None


def test_fluxd_killed_while_applying_a_push_converges_and_rolls_the_app_once_per_push(
    cluster: Cluster, seed_in_cluster: SeedFlow
) -> None:
    api, flow = cluster.api, seed_in_cluster
    history = rollout_history(api)
    assert history, "the app has no rollout yet"

    # 1. `kubectl delete pod` at once after the webhook: the receiver has only asked for
    # a reconcile, the fetch, build, apply and restart run while the Pod shuts down.
    (old,) = fluxd_pods(api)
    old_name = old["metadata"]["name"]
    first = REALM_TOML + "# change 1: fluxd's Pod deleted during the apply\n"
    before = running_pods(api)
    sha = flow.push(first)
    api.delete(f"{FLUXD_PODS}/{old_name}")
    replacement = wait_for(
        lambda: _replacement(api, of=old_name), timeout=180, what="a replacement fluxd Pod Ready"
    )
    new_name = replacement["metadata"]["name"]
    wait_for(
        lambda: lease_holder(api).startswith(f"{new_name}_"),
        timeout=120,
        what="the replacement holding the leader Lease",
    )
    wait_for(
        lambda: flow.applied(sha) and flow.rolled_out(first, before),
        timeout=120,
        what="the push applied and a new app Pod serving it",
    )
    assert flow.secret_holds(first)
    assert rollout_history(api) == [*history, history[-1] + 1]

    # 2. SIGKILL of fluxd's process (as the OOM killer does) during the next apply: no
    # drain, no Lease release; the kubelet restarts the container, which takes the Lease
    # over when the dead holder's term runs out.
    (pod,) = fluxd_pods(api)
    (status,) = pod["status"]["containerStatuses"]
    holder = lease_holder(api)
    second = REALM_TOML + "# change 2: fluxd killed during the apply\n"
    before = running_pods(api)
    sha = flow.push(second)
    os.kill(container_processes(pod)[0], signal.SIGKILL)
    wait_for(
        lambda: _restarted(api, name=new_name, restarts=status["restartCount"]),
        timeout=180,
        what="fluxd's container restarted and Ready",
    )
    wait_for(
        lambda: lease_holder(api) not in ("", holder),
        timeout=120,
        what="the restarted process holding the leader Lease",
    )
    wait_for(
        lambda: flow.applied(sha) and flow.rolled_out(second, before),
        timeout=120,
        what="the push applied and a new app Pod serving it",
    )
    assert flow.secret_holds(second)
    assert rollout_history(api) == [*history, history[-1] + 1, history[-1] + 2]


def _settings_overlay(directory: Path, *, lease_duration: str) -> Path:
    """A user's overlay of the install that changes one setting in fluxd's ConfigMap."""
    settings = (ROOT / "manifests" / "fluxd.yaml").read_text()
    assert "\nlease-duration: 35s\n" in settings
    directory.mkdir()
    (directory / "fluxd.yaml").write_text(
        settings.replace("\nlease-duration: 35s\n", f"\nlease-duration: {lease_duration}\n")
    )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(OVERLAY, directory)],
        "configMapGenerator": [
            {"name": "fluxd-config", "namespace": NAMESPACE, "behavior": "replace",
             "files": ["fluxd.yaml"]}
        ],
    }  # fmt: skip
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def test_a_settings_change_rolls_fluxd_and_a_push_during_the_roll_arrives_once(
    cluster: Cluster, seed_in_cluster: SeedFlow, tmp_path: Path
) -> None:
    api, flow = cluster.api, seed_in_cluster
    history = rollout_history(api)
    (old,) = fluxd_pods(api)
    old_name = old["metadata"]["name"]
    assert lease_holder(api).startswith(f"{old_name}_")

    # The ConfigMap's name carries a hash of its content, so the change rolls the Deployment.
    kubectl_apply(cluster, _settings_overlay(tmp_path / "overlay", lease_duration="45s"))

    def old_terminating() -> bool:
        pod = api.get_or_none(f"{FLUXD_PODS}/{old_name}")
        return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

    # Pushed while the old Pod drains and the new one, Ready, waits for the Lease.
    wait_for(old_terminating, timeout=180, interval=0.05, what="the roll to stop the old fluxd Pod")
    content = REALM_TOML + "# pushed during fluxd's own roll\n"
    before = running_pods(api)
    sha = flow.push(content)

    new = wait_for(
        lambda: _replacement(api, of=old_name), timeout=180, what="the roll finished, one Pod Ready"
    )
    new_name = new["metadata"]["name"]
    wait_for(
        lambda: lease_holder(api).startswith(f"{new_name}_"),
        timeout=120,
        what="the leader Lease moved to the new Pod",
    )
    wait_for(
        lambda: flow.applied(sha) and flow.rolled_out(content, before),
        timeout=120,
        what="the push applied and a new app Pod serving it",
    )
    assert flow.secret_holds(content)
    assert rollout_history(api) == [*history, history[-1] + 1]
    # The new Pod runs with the changed setting: it renews the Lease for 45 s terms.
    assert api.get(LEASE)["spec"]["leaseDurationSeconds"] == 45
