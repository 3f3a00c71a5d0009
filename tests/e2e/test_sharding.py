"""Sharding: instances with label selectors split the objects between them, as Flux's shards do.

Two daemons, each with its own Lease (so each shard elects its own leader),
watch ``sharding.fluxcd.io/key=shard1`` and ``=shard2``. Every labelled
GitRepository and Kustomization is reconciled by exactly one of them, and an
unlabelled object by neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.badinputs import sample
from tests.support.daemon import Fluxd, stop_all
from tests.support.flux import (
    GIT_REPOSITORIES,
    KUSTOMIZATIONS,
    git_repository_path,
    kustomization_path,
    wait_condition,
)

SHARD_KEY = "sharding.fluxcd.io/key"
SHARDS = ("shard1", "shard2")
DURATION_COUNT = "gotk_reconcile_duration_seconds_count"


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(default_branch="main") as server:
        server.create_repo("owner/apps.git")
        server.commit(
            "owner/apps.git",
            {
                "apps/cm.yaml": (
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sharded\n"
                    "data:\n  value: one\n"
                )
            },
        )
        yield server


@pytest.fixture(scope="module")
def shards(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Fluxd]]:
    workdir = Path(tmp_path_factory.mktemp("fluxd-sharding"))
    run = uuid.uuid4().hex[:8]
    daemons = {
        shard: Fluxd(
            cluster,
            workdir / shard,
            name=f"fluxd-{shard}",
            extra_args=[
                f"--lease-name=sharding-{shard}-{run}",
                f"--watch-label-selector={SHARD_KEY}={shard}",
                "--max-retry-delay=5s",
                "--requeue-dependency=2s",
            ],
        )
        for shard in SHARDS
    }
    try:
        for daemon in daemons.values():
            daemon.start()
        # Each shard holds its own lease: both lead at once.
        for daemon in daemons.values():
            wait_for(_leading(daemon), timeout=60, what=f"{daemon.name} to lead its shard")
        yield daemons
    finally:
        stop_all(*daemons.values())


def _leading(daemon: Fluxd) -> Callable[[], bool]:
    return lambda: daemon.metric("fluxd_leader") == 1.0


def _objects(api: Api, git: GitServer, namespace: str, name: str, shard: str | None) -> None:
    labels = {SHARD_KEY: shard} if shard else {}
    api.apply(
        git_repository_path(namespace, name),
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"interval": "1h", "url": git.url("owner/apps.git"), "ref": {"branch": "main"}},
        },
    )
    api.apply(
        kustomization_path(namespace, name),
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "interval": "1h",
                "path": "./apps",
                "prune": True,
                "targetNamespace": namespace,
                "nameSuffix": f"-{name}",
                "sourceRef": {"kind": "GitRepository", "name": name},
            },
        },
    )


def _reconciles(daemon: Fluxd, kind: str, namespace: str, name: str) -> float:
    labels = {"kind": kind, "namespace": namespace, "name": name}
    return sample(daemon, DURATION_COUNT, labels) or 0.0


def _status(api: Api, path: str) -> dict[str, Any]:
    status: dict[str, Any] = api.get(path).get("status") or {}
    return status


def test_each_shard_reconciles_only_its_own_objects(
    api: Api, shards: dict[str, Fluxd], git: GitServer, namespace: str
) -> None:
    _objects(api, git, namespace, "unsharded", None)
    for shard in SHARDS:
        _objects(api, git, namespace, f"app-{shard}", shard)

    for shard in SHARDS:
        wait_condition(api, git_repository_path(namespace, f"app-{shard}"), timeout=120)
        wait_condition(api, kustomization_path(namespace, f"app-{shard}"), timeout=120)
        assert api.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/sharded-app-{shard}")

    for shard, daemon in shards.items():
        other = next(s for s in SHARDS if s != shard)
        for kind in ("GitRepository", "Kustomization"):
            assert _reconciles(daemon, kind, namespace, f"app-{shard}") >= 1
            assert _reconciles(daemon, kind, namespace, f"app-{other}") == 0
            assert _reconciles(daemon, kind, namespace, "unsharded") == 0

    # Both shards have long finished their objects; the unlabelled pair is nobody's.
    for path in (
        f"{GIT_REPOSITORIES.format(ns=namespace)}/unsharded",
        f"{KUSTOMIZATIONS.format(ns=namespace)}/unsharded",
    ):
        assert "conditions" not in _status(api, path)


def test_relabelling_moves_an_object_to_the_other_shard(
    api: Api, shards: dict[str, Fluxd], git: GitServer, namespace: str
) -> None:
    _objects(api, git, namespace, "mover", "shard1")
    path = git_repository_path(namespace, "mover")
    wait_condition(api, path, timeout=120)
    wait_condition(api, kustomization_path(namespace, "mover"), timeout=120)
    before = _reconciles(shards["shard2"], "GitRepository", namespace, "mover")
    assert before == 0

    api.merge_patch(
        path,
        {
            "metadata": {
                "labels": {SHARD_KEY: "shard2"},
                "annotations": {"reconcile.fluxcd.io/requestedAt": uuid.uuid4().hex},
            }
        },
    )
    wait_for(
        lambda: _reconciles(shards["shard2"], "GitRepository", namespace, "mover") > 0,
        timeout=90,
        what="shard2 to take over the relabelled GitRepository",
    )
    # The first shard let go: it records nothing more for the object.
    settled = _reconciles(shards["shard1"], "GitRepository", namespace, "mover")
    api.merge_patch(
        path, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": uuid.uuid4().hex}}}
    )
    handled = wait_for(
        lambda: (
            _status(api, path).get("lastHandledReconcileAt") is not None
            and _reconciles(shards["shard2"], "GitRepository", namespace, "mover") >= 2
        ),
        timeout=90,
        what="shard2 to handle the next request",
    )
    assert handled
    assert _reconciles(shards["shard1"], "GitRepository", namespace, "mover") == settled
    for daemon in shards.values():
        daemon.check_alive()
