"""``make demo``: the seed scenario, performed and timed, on a real local control plane.

Nothing is simulated: the control plane is etcd + kube-apiserver +
controller-manager + scheduler + kwok nodes, the Git server is a real Gitea
whose own push webhook calls the Receiver (when ``make testenv`` has built it;
else ``git http-backend`` with basic auth and a delivery signed as Gitea signs
it, and the demo says which), and fluxd runs as ``fluxd run``. The objects
applied are the user-facing examples in ``demo/seed/`` (only the Git URL and
the token are pointed at the local server).

``--real-node`` runs the same flow with fluxd inside the cluster: a real node
(kubelet, containerd, runc, CNI; testenv/node.py) joins the control plane,
fluxd is installed from manifests/ with ``kubectl apply -k`` and runs as a Pod
there, and so does the app, whose new process serving the pushed config ends
the clock (demo/realnode.py holds the steps, which the end-to-end test runs too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from demo.realnode import SeedFlow, install_fluxd
from demo.seedflow import (
    CRDS,
    KUSTOMIZATION,
    PATHS,
    REALM_TOML,
    SEED,
    SEED_TOKEN,
    SEED_URL,
    WEBHOOK_TOKEN,
    apply_file,
    crds_established,
    ready,
    running_pods,
    secret_value,
)
from testenv import giteaserver, images
from testenv.api import wait_for
from testenv.cluster import Cluster
from testenv.fluxd import Fluxd
from testenv.gitea import gitea_headers, gitea_push
from testenv.giteaserver import GiteaServer
from testenv.gitserver import GitServer
from testenv.node import Node


class Narrator:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step = 0

    def say(self, text: str) -> None:
        print(f"\n== {text}", flush=True)

    def timed(self, text: str, condition: Callable[[], Any], *, timeout: float = 120) -> float:
        self.step += 1
        began = time.monotonic()
        print(f"   [{self.step}] {text} ...", end="", flush=True)
        wait_for(condition, timeout=timeout, interval=0.05, what=text)
        took = time.monotonic() - began
        print(f" {took:.2f}s", flush=True)
        return took


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="run fluxd and the app as Pods on a real node (needs root, as `make test`)",
    )
    if parser.parse_args().real_node:
        return real_node()
    story = Narrator()
    workdir = Path(tempfile.mkdtemp(prefix="fluxd-demo-"))
    story.say(
        "Starting a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
    )
    cluster = Cluster(workdir=workdir / "cluster", nodes=2)
    cluster.start()
    print(f"   up in {cluster.started_in:.1f}s; export KUBECONFIG={cluster.kubeconfig}")
    api = cluster.api
    daemon: Fluxd | None = None
    try:
        with ExitStack() as servers:
            seed = {
                "realm/ix/kustomization.yaml": KUSTOMIZATION,
                "realm/ix/realm_ix.toml": REALM_TOML,
            }
            gitea: GiteaServer | None = None
            git: GitServer | None = None
            if giteaserver.built():
                story.say("A real Gitea (SQLite, loopback) with user k3s and k3s/k3s-private")
                gitea = servers.enter_context(GiteaServer())
                print(f"   Gitea up in {gitea.started_in:.1f}s at {gitea.base_url}")
                gitea.commit(seed, message="realm: ix config")
                clone_url, token = gitea.clone_url, gitea.token
            else:
                story.say(
                    "Gitea is not built (`make testenv` builds it): a stand-in private "
                    "repository (git http-backend, basic auth) and Gitea-shaped webhooks"
                )
                git = servers.enter_context(
                    GitServer(username="k3s", password=SEED_TOKEN, default_branch="master")
                )
                git.create_repo("k3s/k3s-private.git")
                git.commit("k3s/k3s-private.git", seed, message="realm: ix config")
                clone_url, token = git.url("k3s/k3s-private.git"), SEED_TOKEN
            print(f"   {clone_url}")

            story.say("Installing fluxd's CRDs and starting `fluxd run`")
            for crd in sorted(CRDS.glob("*_*.yaml")):
                apply_file(api, crd)
            cluster.create_namespace("flux-system")
            story.timed("CRDs established", lambda: crds_established(api))
            daemon = Fluxd(cluster, workdir / "fluxd", extra_args=["--log-level=warning"]).start()
            print(f"   metrics/artifacts on {daemon.metrics_url}, webhooks on {daemon.webhook_url}")

            story.say("Applying the seed's objects (demo/seed/*.yaml)")
            replace = {SEED_URL: clone_url, SEED_TOKEN: token}
            for manifest in sorted(SEED.glob("*.yaml")):
                apply_file(api, manifest, replace=replace)
                print(f"   applied {manifest.name}")

            repo_path = PATHS["GitRepository"].format(
                namespace="flux-system", name="k3s-private-repo"
            )
            ks_path = PATHS["Kustomization"].format(namespace="flux-system", name="realm-ix")
            secret_path = PATHS["Secret"].format(namespace="realm", name="realm-config-ix")
            receiver_path = PATHS["Receiver"].format(namespace="flux-system", name="gitea")

            story.say("Initial sync")
            story.timed("GitRepository fetched and artifact stored", lambda: ready(api, repo_path))
            story.timed(
                "Kustomization applied (Secret realm/realm-config-ix created)",
                lambda: ready(api, ks_path) and api.get_or_none(secret_path),
            )
            story.timed(
                "Deployment realm rolled out on the kwok nodes", lambda: len(running_pods(api)) == 2
            )
            story.timed("Receiver ready", lambda: ready(api, receiver_path))
            hook = api.get(receiver_path)["status"]["webhookPath"]
            before = running_pods(api)
            print(f"   Pods: {', '.join(sorted(before))}")

            changed = {"realm/ix/realm_ix.toml": REALM_TOML.replace("203.0.113.10", "203.0.113.20")}
            if gitea is not None:
                webhook = gitea.add_webhook(f"{daemon.webhook_url}{hook}", secret=WEBHOOK_TOKEN)
                story.say(
                    "Editing realm_ix.toml and pushing to Gitea; Gitea sends its push webhook"
                )
                pushed_at = time.monotonic()
                sha = gitea.commit(changed, message="realm: move the ix remote")
                print(f"   git push to Gitea returned in {time.monotonic() - pushed_at:.2f}s")
                story.timed(
                    "Gitea delivered the push webhook to the Receiver",
                    lambda: any(d.status == 200 for d in gitea.deliveries(webhook)),
                )
            else:
                assert git is not None
                story.say("Editing realm_ix.toml and pushing, then Gitea's webhook (stand-in)")
                pushed_at = time.monotonic()
                sha = git.commit(
                    "k3s/k3s-private.git", changed, message="realm: move the ix remote"
                )
                body = gitea_push(repository="k3s/k3s-private", after=sha)
                request = urllib.request.Request(
                    f"{daemon.webhook_url}{hook}",
                    data=body,
                    headers=gitea_headers(body, secret=WEBHOOK_TOKEN),
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    print(f"   webhook answered HTTP {response.status}")
            story.timed(
                f"new revision master@sha1:{sha[:12]}… published",
                lambda: ready(
                    api, repo_path, lambda o: o["status"]["artifact"]["revision"].endswith(sha)
                ),
            )
            story.timed(
                "Secret realm-config-ix updated",
                lambda: b"203.0.113.20" in secret_value(api, secret_path, "realm_ix.toml"),
            )
            story.timed(
                "rolling restart: new Pods Running and Ready",
                lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
            )
            total = time.monotonic() - pushed_at
            print(f"   Pods: {', '.join(sorted(running_pods(api)))}")
            story.say(f"End to end, push → new Pods Running: {total:.2f}s")
    finally:
        if daemon is not None:
            daemon.stop()
        cluster.stop()
    print("\nCluster, Git server and fluxd stopped; temporary files removed.")
    return 0


def real_node() -> int:
    story = Narrator()
    workdir = Path(tempfile.mkdtemp(prefix="fluxd-demo-"))
    story.say("Starting a real control plane (etcd, kube-apiserver, controller-manager, scheduler)")
    cluster = Cluster(workdir=workdir / "cluster", nodes=1)
    cluster.start()
    print(f"   up in {cluster.started_in:.1f}s; export KUBECONFIG={cluster.kubeconfig}")
    node: Node | None = None
    try:
        story.say("The node's images (fluxd from the Dockerfile's recipe, the app, pause)")
        began = time.monotonic()
        built = images.ensure_images()
        print(f"   ready in {time.monotonic() - began:.1f}s in {built.directory}")
        story.say("Joining a real node: containerd, runc, CNI, kubelet, kube-proxy")
        began = time.monotonic()
        node = Node(cluster=cluster, images=built, workdir=workdir / "node")
        node.start()
        print(f"   node {node.name} Ready in {time.monotonic() - began:.1f}s")

        story.say("Installing fluxd as a user does: kubectl apply -k (manifests/ + the node)")
        pod = install_fluxd(cluster, node, story.timed)
        print(f"   {pod['metadata']['name']} on {pod['spec']['nodeName']}")
        with SeedFlow.serving(cluster, node, story.timed) as flow:
            story.say("Applying the seed's objects; fluxd in its Pod does the rest")
            flow.start()
            print(f"   the app serves {flow.app_url}; the Receiver is {flow.hook_url}")
            story.say("Editing realm_ix.toml, pushing, Gitea's webhook to fluxd's Service")
            changed = REALM_TOML.replace("203.0.113.10", "203.0.113.20")
            pushed_at = time.monotonic()
            flow.push_and_roll(changed, message="realm: move the ix remote")
            total = time.monotonic() - pushed_at
            story.say(f"End to end, push → new app process serving the new config: {total:.2f}s")
    finally:
        if node is not None:
            node.stop()
        cluster.stop()
    print("\nNode, cluster and Git server stopped; temporary files removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
