"""The user's whole flow, from the README's quickstart manifests (demo/seed/), on the real thing.

Push a config change to the private repository, deliver Gitea's webhook, and
the Secret is rebuilt and the annotated Deployment rolled, long before the 1m
poll would have noticed. A forged delivery changes nothing.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.seedflow import (
    KUSTOMIZATION,
    PATHS,
    REALM_TOML,
    SEED,
    apply_file,
    ready,
    running_pods,
    secret_value,
)
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitea import gitea_headers, gitea_push
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd

REPO = "k3s/k3s-private.git"
SEED_URL = "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git"
WEBHOOK_TOKEN = "change-me-to-a-long-random-string"
REPO_PATH = PATHS["GitRepository"].format(namespace="flux-system", name="k3s-private-repo")
KS_PATH = PATHS["Kustomization"].format(namespace="flux-system", name="realm-ix")
SECRET_PATH = PATHS["Secret"].format(namespace="realm", name="realm-config-ix")
RECEIVER_PATH = PATHS["Receiver"].format(namespace="flux-system", name="gitea")


@pytest.fixture(scope="module")
def seeded(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitServer, Fluxd]]:
    api = cluster.api
    if api.get_or_none("/api/v1/namespaces/flux-system") is None:
        cluster.create_namespace("flux-system")
    with GitServer(
        username="k3s", password="gitea-personal-access-token", default_branch="master"
    ) as git:
        git.create_repo(REPO)
        git.commit(
            REPO,
            {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML},
        )
        daemon = Fluxd(
            cluster, tmp_path_factory.mktemp("seed-flow"), extra_args=["--lease-name=seed-flow"]
        ).start()
        try:
            for manifest in sorted(SEED.glob("*.yaml")):
                apply_file(api, manifest, replace={SEED_URL: git.url(REPO)})
            yield git, daemon
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
            for path in (RECEIVER_PATH, KS_PATH, REPO_PATH):
                api.delete(path)
            api.delete("/api/v1/namespaces/realm")


def _deliver(daemon: Fluxd, hook: str, body: bytes, *, secret: str) -> int:
    request = urllib.request.Request(
        f"{daemon.webhook_url}{hook}",
        data=body,
        headers=gitea_headers(body, secret=secret),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


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
    assert _deliver(daemon, hook, body, secret="not-the-token") == 401
    assert not api.get(REPO_PATH)["status"]["artifact"]["revision"].endswith(sha)

    assert _deliver(daemon, hook, body, secret=WEBHOOK_TOKEN) == 200
    # The GitRepository polls every minute; these waits are well inside that.
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
