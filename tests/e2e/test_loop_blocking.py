"""The seed flow never blocks the event loop: one loop serves every webhook, watch and reconcile.

The daemon runs with ``--debug-slow-callback=250ms`` (asyncio debug mode) through
the whole quickstart and a webhook-driven change, and the test fails on any
``slow event-loop callback`` line in its log, naming the callbacks.

Why 250 ms: a well-behaved callback takes well under 10 ms, and debug mode itself
roughly doubles that. This machine has two cores shared with etcd, the API server,
kubectl builds and other test runs, so a callback can lose tens of milliseconds to
preemption without doing anything wrong; 250 ms stays clear of that noise while
still catching the blocking we care about (a megabyte decoded, a deep copy of a
build, a synchronous git or file operation), which stalls webhooks and probes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.seedflow import REALM_TOML, ready, running_pods, secret_value
from fluxd.aio.loopwatch import SLOW_CALLBACK_EVENT
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.seedflow import (
    KS_PATH,
    RECEIVER_PATH,
    REPO_PATH,
    SECRET_PATH,
    push_and_deliver,
    seeded_flow,
)

THRESHOLD = "250ms"


@pytest.fixture(scope="module")
def watched(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitServer, Fluxd]]:
    with seeded_flow(
        cluster,
        tmp_path_factory.mktemp("loop-blocking"),
        extra_args=[f"--debug-slow-callback={THRESHOLD}"],
    ) as flow:
        yield flow


def test_seed_flow_runs_without_slow_callbacks(api: Api, watched: tuple[GitServer, Fluxd]) -> None:
    git, daemon = watched
    wait_for(lambda: ready(api, REPO_PATH), timeout=120, what="GitRepository Ready")
    wait_for(lambda: ready(api, KS_PATH), timeout=120, what="Kustomization Ready")
    wait_for(lambda: ready(api, RECEIVER_PATH), timeout=60, what="Receiver Ready")
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    before = running_pods(api)

    changed = REALM_TOML.replace("203.0.113.10", "203.0.113.30")
    hook = api.get(RECEIVER_PATH)["status"]["webhookPath"]
    sha = push_and_deliver(git, daemon, hook, {"realm/ix/realm_ix.toml": changed})
    wait_for(
        lambda: secret_value(api, SECRET_PATH, "realm_ix.toml") == changed.encode(),
        timeout=60,
        what="the Secret to carry the pushed file",
    )
    wait_for(
        lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
        timeout=90,
        what="both Pods replaced",
    )
    wait_for(
        lambda: api.get(KS_PATH)["status"].get("lastAppliedRevision") == f"master@sha1:{sha}",
        timeout=30,
        what="the Kustomization to record the pushed revision",
    )

    daemon.check_alive()
    slow = [r for r in daemon.log_records() if r.get("msg") == SLOW_CALLBACK_EVENT]
    assert not slow, "callbacks blocked the event loop:\n" + "\n".join(
        f"{r.get('seconds')}s {r.get('callback')}" for r in slow
    )
