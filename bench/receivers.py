"""Webhook to cluster: how fast a Gitea push lands, and how much junk the receiver shrugs off.

The seed's objects (demo/seed/) on the test control plane, with the
GitRepository's interval raised to 1h so only the webhook can trigger a fetch:

1. latency from a signed Gitea push delivery accepted (HTTP 200) to the
   Secret in the API carrying the pushed bytes, over several pushes;
2. rejected requests per second (wrong signature, from a pool of concurrent
   clients) the webhook port answers while a push is being reconciled, and
   that push's latency under that load.

Run: ``.venv/bin/python -m bench.receivers [--pushes 7] [--flood-seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp

from bench.common import machine, median, write_section
from demo.seedflow import KUSTOMIZATION, PATHS, REALM_TOML, SEED, apply_file, ready, secret_value
from testenv.api import Api, wait_for
from testenv.cluster import running
from testenv.fluxd import Fluxd
from testenv.gitea import gitea_headers, gitea_push
from testenv.gitserver import GitServer
from tests.support.crds import install_crds

REPO = "k3s/k3s-private.git"
TOKEN = "change-me-to-a-long-random-string"
SECRET = PATHS["Secret"].format(namespace="realm", name="realm-config-ix")


def push_and_deliver(api: Api, git: GitServer, daemon: Fluxd, hook: str, run: int) -> float:
    content = REALM_TOML + f"# push {run}\n"
    sha = git.commit(REPO, {"realm/ix/realm_ix.toml": content})
    body = gitea_push(repository="k3s/k3s-private", after=sha)
    request = urllib.request.Request(
        f"{daemon.webhook_url}{hook}", data=body, headers=gitea_headers(body, secret=TOKEN)
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    accepted = time.monotonic()
    wait_for(
        lambda: secret_value(api, SECRET, "realm_ix.toml") == content.encode(),
        timeout=60,
        interval=0.01,
        what="Secret updated",
    )
    return time.monotonic() - accepted


async def flood(url: str, seconds: float, clients: int) -> tuple[int, int]:
    body = gitea_push(repository="k3s/k3s-private")
    headers = gitea_headers(body, secret="wrong-secret")
    answered = rejected = 0
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal answered, rejected
        while time.monotonic() < deadline:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                answered += 1
                rejected += response.status in (401, 403)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return answered, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=7)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-"))
    with (
        running(nodes=2) as cluster,
        GitServer(
            username="k3s", password="gitea-personal-access-token", default_branch="master"
        ) as git,
    ):
        api = cluster.api
        install_crds(api)
        cluster.create_namespace("flux-system")
        git.create_repo(REPO)
        git.commit(
            REPO,
            {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML},
        )
        daemon = Fluxd(cluster, workdir, extra_args=["--log-level=warning"]).start()
        try:
            seed_url = "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git"
            for manifest in sorted(SEED.glob("*.yaml")):
                apply_file(
                    api, manifest, replace={seed_url: git.url(REPO), "interval: 1m": "interval: 1h"}
                )
            receiver = PATHS["Receiver"].format(namespace="flux-system", name="gitea")
            wait_for(lambda: ready(api, receiver), timeout=120, what="Receiver Ready")
            kustomization = PATHS["Kustomization"].format(namespace="flux-system", name="realm-ix")
            wait_for(lambda: ready(api, kustomization), timeout=120, what="first apply")
            hook = api.get(receiver)["status"]["webhookPath"]
            latencies = []
            for run in range(args.pushes):
                # Pushes closer together than the receiver's coalescing window (2 s) are
                # deliberately folded into one fetch at the window's end; space them out
                # as real pushes are, so each measures one delivery.
                time.sleep(2.5)
                latencies.append(push_and_deliver(api, git, daemon, hook, run))

            loaded: list[float] = []

            def push_during_flood() -> None:
                time.sleep(args.flood_seconds / 3)
                loaded.append(push_and_deliver(api, git, daemon, hook, 999))

            thread = threading.Thread(target=push_during_flood)
            thread.start()
            answered, rejected = asyncio.run(
                flood(f"{daemon.webhook_url}{hook}", args.flood_seconds, args.clients)
            )
            thread.join()
            daemon.check_alive()
        finally:
            daemon.stop()

    command = (
        f"`.venv/bin/python -m bench.receivers --pushes {args.pushes} "
        f"--flood-seconds {args.flood_seconds:g} --clients {args.clients}`"
    )
    body = f"""## Receivers: webhook to Secret, and rejected-request throughput

Command: {command}
Machine: {machine()} (the control plane, git server and load generator share it)
Date: {time.strftime("%Y-%m-%d")}

- Signed Gitea push accepted → Secret updated in the API: median
  **{median(latencies) * 1000:.0f} ms** over {len(latencies)} pushes
  (min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms). This covers the
  fetch (ref listing + shallow fetch + pack), the kustomize build and the server-side apply.
  Pushes are 2.5 s apart: deliveries closer together than the receiver's coalescing
  window (`--receiver-coalesce-window`, 2 s) are folded into one fetch at the window's end.
  Goal: median ≤ 500 ms.
- Wrong-signature deliveries from {args.clients} concurrent clients for {args.flood_seconds:g} s:
  **{answered / args.flood_seconds:.0f} requests/s** answered ({rejected} of {answered} rejected
  with 401/403), while a real push was reconciled in {loaded[0] * 1000:.0f} ms under that load.
"""
    write_section("receivers", body)
    print(body)


if __name__ == "__main__":
    main()
