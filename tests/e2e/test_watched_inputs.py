"""Watched inputs: a labelled ConfigMap used by postBuild.substituteFrom requeues its users.

As in Flux, only ConfigMaps and Secrets labelled ``reconcile.fluxcd.io/watch:
Enabled`` are watched; a change to one re-applies the Kustomizations that
substitute from it at once, however long their interval.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.flux import git_repository, kustomization, kustomization_path, wait_condition

WATCH_LABEL = {"reconcile.fluxcd.io/watch": "Enabled"}
SOURCE = "site"


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-watched"),
        extra_args=["--lease-name=watched-inputs-tests", "--max-retry-delay=5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def _vars(api: Api, namespace: str, name: str, greeting: str, *, watched: bool) -> None:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if watched:
        metadata["labels"] = WATCH_LABEL
    api.apply(
        _configmap_path(namespace, name),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {"greeting": greeting},
        },
    )


def _greeting(api: Api, namespace: str, name: str) -> str | None:
    found = api.get_or_none(_configmap_path(namespace, name))
    return None if found is None else str(found.get("data", {}).get("message"))


def test_a_watched_configmap_change_reapplies_its_users_at_once(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    files = {
        f"{app}/cm.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{app}-out"},
                "data": {"message": "${greeting}"},
            }
        )
        for app in ("watched", "plain")
    }
    repo = f"site/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    git.commit(repo, files)
    git_repository(
        api,
        namespace,
        SOURCE,
        {"interval": "1h", "url": git.url(repo), "ref": {"branch": "master"}},
    )
    _vars(api, namespace, "watched-vars", "hello", watched=True)
    _vars(api, namespace, "plain-vars", "hello", watched=False)
    for app in ("watched", "plain"):
        kustomization(
            api,
            namespace,
            app,
            {
                "interval": "1h",
                "path": f"./{app}",
                "prune": True,
                "targetNamespace": namespace,
                "sourceRef": {"kind": "GitRepository", "name": SOURCE},
                "postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": f"{app}-vars"}]},
            },
        )
        wait_condition(api, kustomization_path(namespace, app))
        assert _greeting(api, namespace, f"{app}-out") == "hello"

    # The unlabelled ConfigMap changes first, then the labelled one.
    _vars(api, namespace, "plain-vars", "bonjour", watched=False)
    _vars(api, namespace, "watched-vars", "bonjour", watched=True)
    # The interval is an hour: only the watch can bring the new value this fast.
    wait_for(
        lambda: _greeting(api, namespace, "watched-out") == "bonjour",
        timeout=30,
        what="the watched ConfigMap's new value applied",
    )
    # No event marks "not requeued": give the unlabelled change the same time the labelled
    # one needed plus a few seconds of slack; a requeue from it would have landed by then.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert _greeting(api, namespace, "plain-out") == "hello"
        time.sleep(0.5)
