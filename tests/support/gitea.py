"""The seed flow with the real Gitea as the Git server and webhook sender.

``gitea_flow`` starts Gitea (testenv/giteaserver.py) set up as the user's,
pushes the seed repository through Gitea's HTTP endpoint, starts a daemon and
applies the seed manifests (demo/seed/) pointed at Gitea, with the
``gitea-auth`` Secret holding Gitea's real personal access token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from demo.seedflow import KUSTOMIZATION, REALM_TOML, SEED, apply_file
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.giteaserver import Delivery, GiteaServer
from tests.support.daemon import Fluxd
from tests.support.seedflow import DELETED, POLL_INTERVAL, REPO_PATH, SEED_URL

SEED_TOKEN = "gitea-personal-access-token"


@dataclass(frozen=True)
class GiteaFlow:
    gitea: GiteaServer
    daemon: Fluxd


@contextmanager
def gitea_flow(cluster: Cluster, workdir: Path) -> Iterator[GiteaFlow]:
    api = cluster.api
    # A previous module's realm namespace may still be terminating.
    wait_for(
        lambda: api.get_or_none("/api/v1/namespaces/realm") is None,
        timeout=120,
        what="the previous realm namespace to be gone",
    )
    if api.get_or_none("/api/v1/namespaces/flux-system") is None:
        cluster.create_namespace("flux-system")
    with GiteaServer() as gitea:
        gitea.commit(
            {"realm/ix/kustomization.yaml": KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML},
            message="realm: ix config",
        )
        daemon = Fluxd(cluster, workdir, extra_args=["--lease-name=gitea-flow"])
        daemon.start()
        try:
            for manifest in sorted(SEED.glob("*.yaml")):
                replace = {SEED_URL: gitea.clone_url, SEED_TOKEN: gitea.token}
                if manifest.name == "01-gitrepository.yaml":
                    # Any change inside a test is then the webhook's doing.
                    replace["interval: 1m"] = f"interval: {POLL_INTERVAL}"
                apply_file(api, manifest, replace=replace)
            yield GiteaFlow(gitea, daemon)
        finally:
            for path in DELETED:
                api.delete(path)
            wait_for(
                lambda: all(api.get_or_none(path) is None for path in DELETED),
                timeout=60,
                what="the seed's Flux objects finalized",
            )
            assert daemon.stop() == 0, daemon.log_tail()
            api.delete("/api/v1/namespaces/realm")


def wait_for_delivery(gitea: GiteaServer, hook_id: int, *, after: int = 0) -> Delivery:
    """The first delivery of ``hook_id`` past the ``after`` ones that Gitea has finished."""

    def finished() -> Delivery | None:
        done = [d for d in gitea.deliveries(hook_id)[after:] if d.finished_at]
        return done[0] if done else None

    found = wait_for(finished, timeout=60, what=f"Gitea to deliver hook {hook_id}")
    assert isinstance(found, Delivery)
    return found


def revision_of(api: Api) -> str:
    """The revision of the seed GitRepository's artifact."""
    return str(api.get(REPO_PATH)["status"]["artifact"]["revision"])
