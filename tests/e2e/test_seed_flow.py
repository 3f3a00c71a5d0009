"""The user's whole flow, from the README's quickstart manifests (demo/seed/), on the real thing.

Push a config change to the private repository, deliver Gitea's webhook, and
the Secret is rebuilt and the annotated Deployment rolled. The GitRepository
polls only hourly here, so the change can only have come from the webhook. A
forged delivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.seedflow import PATHS, REALM_TOML, ready, running_pods, secret_value
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitea import gitea_push
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.seedflow import (
    KS_PATH,
    RECEIVER_PATH,
    REPO,
    REPO_PATH,
    SECRET_PATH,
    WEBHOOK_TOKEN,
    deliver,
    seeded_flow,
)

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


@pytest.fixture(scope="module")
def seeded(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitServer, Fluxd]]:
    with seeded_flow(cluster, tmp_path_factory.mktemp("seed-flow")) as flow:
        yield flow


def test_quickstart_reaches_a_running_deployment(api: Api, seeded: tuple[GitServer, Fluxd]) -> None:
    wait_for(lambda: ready(api, REPO_PATH), timeout=120, what="GitRepository Ready")
    wait_for(lambda: ready(api, KS_PATH), timeout=120, what="Kustomization Ready")
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == REALM_TOML.encode()
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    deployment = PATHS["Deployment"].format(namespace="realm", name="realm")
    wait_for(
        lambda: api.get(deployment)["status"].get("availableReplicas") == 2,
        timeout=60,
        what="the Deployment to report 2 available replicas",
    )


def test_push_and_webhook_roll_the_deployment(
    api: Api, seeded: tuple[GitServer, Fluxd], tmp_path: Path
) -> None:
    git, daemon = seeded
    wait_for(lambda: ready(api, RECEIVER_PATH), timeout=60, what="Receiver Ready")
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    hook = api.get(RECEIVER_PATH)["status"]["webhookPath"]
    before = running_pods(api)
    replica_sets = len(api.items("/apis/apps/v1/namespaces/realm/replicasets"))

    changed = REALM_TOML.replace("203.0.113.10", "203.0.113.20")
    sha = git.commit(REPO, {"realm/ix/realm_ix.toml": changed}, message="realm: move remote")
    body = gitea_push(repository="k3s/k3s-private", after=sha)

    # A forged delivery is refused and fetches nothing.
    assert deliver(daemon, hook, body, secret="not-the-token") == 401
    assert not api.get(REPO_PATH)["status"]["artifact"]["revision"].endswith(sha)

    assert deliver(daemon, hook, body, secret=WEBHOOK_TOKEN) == 200
    # The GitRepository polls hourly: only the receiver's request can fetch the commit.
    wait_for(
        lambda: api.get(REPO_PATH)["status"]["artifact"]["revision"] == f"master@sha1:{sha}",
        timeout=45,
        what="the GitRepository to fetch the pushed commit",
    )
    repository = api.get(REPO_PATH)
    requested = repository["metadata"].get("annotations", {}).get(REQUESTED_AT)
    assert requested, "the receiver did not request a reconcile"
    assert repository["status"].get("lastHandledReconcileAt") == requested
    wait_for(
        lambda: secret_value(api, SECRET_PATH, "realm_ix.toml") == changed.encode(),
        timeout=45,
        what="the Secret to carry the pushed file",
    )
    wait_for(
        lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
        timeout=90,
        what="both Pods replaced",
    )
    assert len(api.items("/apis/apps/v1/namespaces/realm/replicasets")) == replica_sets + 1
    kustomization = api.get(KS_PATH)
    assert kustomization["status"]["lastAppliedRevision"] == f"master@sha1:{sha}"
