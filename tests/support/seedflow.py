"""The README's quickstart (demo/seed/) on the real control plane, for the tests that drive it.

``seeded_flow`` serves the private repository from a real git server, starts a
daemon and applies the seed manifests pointed at that server; ``push_and_deliver``
is the user's push: a commit plus Gitea's signed webhook delivery.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from demo.seedflow import KUSTOMIZATION, PATHS, REALM_TOML, SEED, apply_file
from testenv.api import wait_for
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
DELETED = (RECEIVER_PATH, KS_PATH, REPO_PATH)
# The seed polls every minute; an hour makes any change inside a test the webhook's doing.
POLL_INTERVAL = "1h"


@contextmanager
def seeded_flow(
    cluster: Cluster, workdir: Path, *, extra_args: Sequence[str] = ()
) -> Iterator[tuple[GitServer, Fluxd]]:
    api = cluster.api
    # A previous module's realm namespace may still be terminating.
    wait_for(
        lambda: api.get_or_none("/api/v1/namespaces/realm") is None,
        timeout=120,
        what="the previous realm namespace to be gone",
    )
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
        daemon = Fluxd(cluster, workdir, extra_args=["--lease-name=seed-flow", *extra_args])
        daemon.start()
        try:
            for manifest in sorted(SEED.glob("*.yaml")):
                replace = {SEED_URL: git.url(REPO)}
                if manifest.name == "01-gitrepository.yaml":
                    replace["interval: 1m"] = f"interval: {POLL_INTERVAL}"
                apply_file(api, manifest, replace=replace)
            assert api.get(REPO_PATH)["spec"]["interval"] == POLL_INTERVAL
            yield git, daemon
        finally:
            # Delete while the daemon runs: it removes its finalizers, so the objects are
            # really gone before the next module applies the same names.
            for path in DELETED:
                api.delete(path)
            wait_for(
                lambda: all(api.get_or_none(path) is None for path in DELETED),
                timeout=60,
                what="the seed's Flux objects finalized",
            )
            assert daemon.stop() == 0, daemon.log_tail()
            api.delete("/api/v1/namespaces/realm")


def deliver(daemon: Fluxd, hook: str, body: bytes, *, secret: str) -> int:
    """POST one Gitea delivery signed with ``secret``; the HTTP status."""
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


def push_and_deliver(git: GitServer, daemon: Fluxd, hook: str, files: dict[str, str]) -> str:
    """Commit ``files`` to the seed repository and deliver Gitea's webhook; the new sha."""
    sha = git.commit(REPO, files, message="realm: change config")
    body = gitea_push(repository="k3s/k3s-private", after=sha)
    assert deliver(daemon, hook, body, secret=WEBHOOK_TOKEN) == 200
    return sha
