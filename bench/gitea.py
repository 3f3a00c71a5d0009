"""Push to Secret with the real Gitea as the sender: its push, its own webhook delivery.

bench/receivers.py signs and posts the delivery itself, right after the
commit lands; here the user's path is measured as they live it: ``git push``
to Gitea over smart HTTP with the personal access token, Gitea's hooks queue
its push webhook and deliver it to the Receiver, fluxd fetches from Gitea,
builds and applies. The GitRepository polls hourly, so each update is the
webhook's doing.

Run: ``.venv/bin/python -m bench.gitea [--pushes 7]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import machine, median, write_section
from demo.seedflow import KUSTOMIZATION, PATHS, REALM_TOML, SEED, apply_file, ready, secret_value
from testenv.api import Api, wait_for
from testenv.build import GITEA_VERSION
from testenv.cluster import running
from testenv.fluxd import Fluxd
from testenv.giteaserver import GiteaServer
from tests.support.crds import install_crds
from tests.support.gitea import wait_for_delivery

SEED_URL = "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git"
SEED_TOKEN = "gitea-personal-access-token"
WEBHOOK_TOKEN = "change-me-to-a-long-random-string"
SECRET = PATHS["Secret"].format(namespace="realm", name="realm-config-ix")


def push(api: Api, gitea: GiteaServer, hook_id: int, run: int) -> tuple[float, float, float]:
    """One push; seconds from its start to: push done, delivery answered, Secret updated."""
    content = REALM_TOML + f"# push {run}\n"
    delivered_before = len(gitea.deliveries(hook_id))
    started_wall, started = time.time(), time.monotonic()
    gitea.commit({"realm/ix/realm_ix.toml": content}, message=f"realm: push {run}")
    pushed = time.monotonic() - started
    wait_for(
        lambda: secret_value(api, SECRET, "realm_ix.toml") == content.encode(),
        timeout=60,
        interval=0.01,
        what="Secret updated",
    )
    updated = time.monotonic() - started
    delivery = wait_for_delivery(gitea, hook_id, after=delivered_before)
    assert delivery.status == 200, delivery.response_body
    # Gitea stamps the delivery when it has fluxd's answer (wall clock, same machine).
    return pushed, delivery.finished_at - started_wall, updated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=7)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-"))
    with running(nodes=2) as cluster, GiteaServer() as gitea:
        api = cluster.api
        install_crds(api)
        cluster.create_namespace("flux-system")
        gitea.commit(
            {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML}
        )
        daemon = Fluxd(cluster, workdir, extra_args=["--log-level=warning"]).start()
        try:
            replace = {
                SEED_URL: gitea.clone_url,
                SEED_TOKEN: gitea.token,
                "interval: 1m": "interval: 1h",
            }
            for manifest in sorted(SEED.glob("*.yaml")):
                apply_file(api, manifest, replace=replace)
            receiver = PATHS["Receiver"].format(namespace="flux-system", name="gitea")
            wait_for(lambda: ready(api, receiver), timeout=120, what="Receiver Ready")
            kustomization = PATHS["Kustomization"].format(namespace="flux-system", name="realm-ix")
            wait_for(lambda: ready(api, kustomization), timeout=120, what="first apply")
            hook = api.get(receiver)["status"]["webhookPath"]
            hook_id = gitea.add_webhook(f"{daemon.webhook_url}{hook}", secret=WEBHOOK_TOKEN)
            runs = []
            for run in range(args.pushes):
                # As in bench/receivers.py: pushes closer than the receiver's coalescing
                # window (2 s) are folded into one fetch; space them as real pushes are.
                time.sleep(2.5)
                runs.append(push(api, gitea, hook_id, run))
            daemon.check_alive()
        finally:
            daemon.stop()

    pushes, answered, totals = ([r[i] for r in runs] for i in range(3))
    rest = [total - answer for total, answer in zip(totals, answered, strict=True)]
    body = f"""## Gitea: push to Secret with Gitea's own webhook

Command: `.venv/bin/python -m bench.gitea --pushes {args.pushes}`
Machine: {machine()} (the control plane, Gitea {GITEA_VERSION} and fluxd share it)
Date: {time.strftime("%Y-%m-%d")}

- `git push` to Gitea (smart HTTP, token) started → Secret updated in the API: median
  **{median(totals) * 1000:.0f} ms** over {len(totals)} pushes
  (min {min(totals) * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms).
- Of which the commit and `git push` (Gitea's receive-pack and its hooks, which queue the
  webhook): median {median(pushes) * 1000:.0f} ms; push started → fluxd's 200 recorded by
  Gitea on the delivery: median {median(answered) * 1000:.0f} ms. The receiver answers before
  it fetches, so the rest, median {median(rest) * 1000:.0f} ms, is the fetch from Gitea, the
  build and the apply.
- Every delivery was answered 200 (Gitea's own delivery log). Pushes are 2.5 s apart, as in
  the receivers benchmark.
"""
    write_section("gitea", body)
    print(body)


if __name__ == "__main__":
    main()
