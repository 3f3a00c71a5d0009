"""The daemon's skeleton against a real API server: CRDs, probes, metrics, signals, leases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, ApiError, wait_for
from testenv.cluster import Cluster
from tests.support.daemon import Fluxd, stop_all

SEED_GIT_REPOSITORY: dict[str, Any] = {
    "apiVersion": "source.toolkit.fluxcd.io/v1",
    "kind": "GitRepository",
    "metadata": {"name": "k3s-private-repo", "namespace": "flux-system"},
    "spec": {
        "interval": "1m",
        "url": "http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git",
        "ref": {"branch": "master"},
        "secretRef": {"name": "gitea-auth"},
    },
}

GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"


def _dry_run_create(api: Api, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return api.request("POST", GIT_REPOSITORIES.format(ns=namespace), body, query={"dryRun": "All"})


def test_seed_git_repository_is_accepted_verbatim(
    api: Api, crds: list[str], namespace: str
) -> None:
    assert "gitrepositories.source.toolkit.fluxcd.io" in crds
    body = {
        **SEED_GIT_REPOSITORY,
        "metadata": {**SEED_GIT_REPOSITORY["metadata"], "namespace": namespace},
    }
    created = _dry_run_create(api, namespace, body)
    assert created["spec"]["url"] == SEED_GIT_REPOSITORY["spec"]["url"]
    assert created["spec"]["ref"] == {"branch": "master"}
    # Defaults from the schema, as Flux's CRD has them.
    assert created["spec"]["timeout"] == "60s"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"interval": "every minute"}, "spec.interval", id="bad-interval"),
        pytest.param({"url": None}, "spec.url", id="missing-url"),
        pytest.param({"url": "ftp://example.com/repo.git"}, "spec.url", id="bad-url-scheme"),
    ],
)
def test_invalid_git_repository_is_rejected_with_a_readable_message(
    api: Api, crds: list[str], namespace: str, change: dict[str, Any], expected: str
) -> None:
    spec = {k: v for k, v in {**SEED_GIT_REPOSITORY["spec"], **change}.items() if v is not None}
    body = {
        **SEED_GIT_REPOSITORY,
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": spec,
    }
    with pytest.raises(ApiError) as rejected:
        _dry_run_create(api, namespace, body)
    assert rejected.value.status == 422
    assert expected in str(rejected.value)


def test_every_crd_is_served(api: Api, crds: list[str]) -> None:
    served = {
        (group, version): {r["kind"] for r in api.get(f"/apis/{group}/{version}")["resources"]}
        for group, version in (
            ("source.toolkit.fluxcd.io", "v1"),
            ("kustomize.toolkit.fluxcd.io", "v1"),
            ("notification.toolkit.fluxcd.io", "v1"),
            ("notification.toolkit.fluxcd.io", "v1beta3"),
        )
    }
    assert "GitRepository" in served[("source.toolkit.fluxcd.io", "v1")]
    assert "Kustomization" in served[("kustomize.toolkit.fluxcd.io", "v1")]
    assert "Receiver" in served[("notification.toolkit.fluxcd.io", "v1")]
    assert {"Provider", "Alert"} <= served[("notification.toolkit.fluxcd.io", "v1beta3")]


def test_daemon_serves_probes_and_metrics_and_stops_on_sigterm(
    cluster: Cluster, crds: list[str], tmp_path: Path
) -> None:
    daemon = Fluxd(cluster, tmp_path).start()
    try:
        assert daemon.get("/healthz") == (200, "ok")
        assert daemon.get("/readyz")[0] == 200
        wait_for(lambda: daemon.metric("fluxd_leader") == 1, timeout=60, what="leadership")
        _, metrics = daemon.get("/metrics")
        assert "process_resident_memory_bytes" in metrics
        assert "# HELP gotk_reconcile_duration_seconds" in metrics
        lease = cluster.api.get(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/fluxd-leader-election"
        )
        assert lease["spec"]["holderIdentity"]
    finally:
        code = daemon.stop(timeout=30)
    assert code == 0, daemon.log_tail()
    # An orderly stop hands the lease back at once.
    lease = cluster.api.get(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases/fluxd-leader-election"
    )
    assert not lease["spec"].get("holderIdentity")


def test_two_replicas_one_leader_and_failover(
    cluster: Cluster, crds: list[str], tmp_path: Path
) -> None:
    lease_args = [
        "--lease-name=failover-test",
        "--lease-duration=6s",
        "--renew-deadline=4s",
        "--retry-period=1s",
    ]
    first = Fluxd(cluster, tmp_path / "a", extra_args=lease_args, name="a").start()
    second = Fluxd(cluster, tmp_path / "b", extra_args=lease_args, name="b").start()
    try:
        wait_for(
            lambda: (
                (first.metric("fluxd_leader"), second.metric("fluxd_leader")) in ((1, 0), (0, 1))
            ),
            timeout=60,
            what="exactly one leader",
        )
        # Both serve probes, only one leads.
        assert first.get("/readyz")[0] == 200 and second.get("/readyz")[0] == 200
        # Leadership stays single across renewals: wait for two renewals of the lease
        # (every retry-period) instead of a timed pause, then ask both again.
        lease = "/apis/coordination.k8s.io/v1/namespaces/default/leases/failover-test"
        renewals = [cluster.api.get(lease)["spec"].get("renewTime")]

        def renewed_twice() -> bool:
            renewed = cluster.api.get(lease)["spec"].get("renewTime")
            if renewed != renewals[-1]:
                renewals.append(renewed)
            return len(renewals) >= 3

        wait_for(renewed_twice, timeout=30, what="two lease renewals")
        leaders = [d for d in (first, second) if d.metric("fluxd_leader") == 1]
        assert len(leaders) == 1
        leader = leaders[0]
        follower = second if leader is first else first
        leader.kill()
        # The lease lasts 6s; the follower takes over after it expires.
        wait_for(lambda: follower.metric("fluxd_leader") == 1, timeout=20, what="failover")
    finally:
        stop_all(first, second)


def test_watches_resume_after_an_api_server_restart(
    cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    from testenv.gitserver import GitServer
    from tests.support.flux import GIT_REPOSITORIES as REPOS
    from tests.support.flux import git_repository, wait_condition

    daemon = Fluxd(cluster, tmp_path, extra_args=["--lease-name=restart-test"]).start()
    try:
        with GitServer(default_branch="master") as git:
            git.create_repo("a.git")
            sha = git.commit("a.git", {"app/config.toml": "x = 1\n"})
            git_repository(
                cluster.api, namespace, "before", {"interval": "1h", "url": git.url("a.git")}
            )
            wait_condition(cluster.api, f"{REPOS.format(ns=namespace)}/before")

            cluster.restart_apiserver(down_for=5)

            # Created after the restart: only a resumed watch can see it.
            git_repository(
                cluster.api, namespace, "after", {"interval": "1h", "url": git.url("a.git")}
            )
            obj = wait_condition(cluster.api, f"{REPOS.format(ns=namespace)}/after", timeout=120)
            assert obj["status"]["artifact"]["revision"] == f"master@sha1:{sha}"
            daemon.check_alive()
            assert daemon.get("/healthz")[0] == 200
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
