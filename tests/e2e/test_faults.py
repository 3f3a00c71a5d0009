"""Faults on the real control plane never lose or double a config change.

Each test runs the seed flow in its own namespace with its own daemon(s),
rolls one baseline change, pushes more changes, breaks something (the API
server, the watch history, the Git host, the daemon itself, the leader), lets
it recover, and then checks what a user would: the latest commit is applied
and Ready, the Secret holds its bytes, and the Deployment rolled once per
distinct content it was given and never for nothing.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support.chat import ChatServer, dingtalk_alert
from tests.support.daemon import Fluxd, stop_all
from tests.support.faults import (
    TOKEN,
    USER,
    Realm,
    RestartableGitServer,
    labelled_namespace,
    log_count,
    reconciles,
    reloader_digest,
    start_fluxd,
)
from tests.support.flux import condition

WATCH_EXPIRED = "watch expired, listing again"


@pytest.fixture
def git(tmp_path: Path) -> Iterator[RestartableGitServer]:
    server = RestartableGitServer(
        root=tmp_path / "git", username=USER, password=TOKEN, default_branch="master"
    )
    server.start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()


@pytest.fixture
def realm(cluster: Cluster, crds: list[str], git: RestartableGitServer) -> Iterator[Realm]:
    namespace = labelled_namespace(cluster)
    try:
        yield Realm(api=cluster.api, git=git, namespace=namespace)
    finally:
        cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def _signal(daemon: Fluxd, number: signal.Signals) -> None:
    assert daemon.process is not None
    os.kill(daemon.process.pid, number)


def _healthy(daemon: Fluxd) -> None:
    daemon.check_alive()
    assert daemon.get("/healthz")[0] == 200


def test_api_server_restart_mid_apply_loses_no_change(
    cluster: Cluster, realm: Realm, tmp_path: Path
) -> None:
    daemon = start_fluxd(cluster, tmp_path / "fluxd", realm.namespace, name="fluxd")
    try:
        realm.create()
        baseline = realm.wait_baseline()

        realm.push()
        realm.push()
        # Down right after the last request lands: the fetch, build and apply
        # for it are in flight when the API goes away.
        cluster.restart_apiserver(down_for=6)

        # The controller-manager, which rolls the pods, can take ~60 s to follow again.
        realm.wait_converged(timeout=240)
        realm.assert_settled()
        realm.assert_rolled_once_per_change(baseline, pushed_since=2)
        _healthy(daemon)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()


def test_expired_watches_list_again_and_see_what_they_missed(
    cluster: Cluster, api: Api, realm: Realm, tmp_path: Path
) -> None:
    """410 Gone, provoked the way it happens in practice, with a change only a relist can show.

    The API server's watch cache answers a resumed watch from its own window;
    after the server restarts, that window starts at the current etcd revision,
    so a watch resuming from before writes it never saw is expired. The daemon
    is frozen (SIGSTOP, as in a long pause) across many writes, the restart,
    and a push made after the restart: when it thaws, its watches are gone,
    their resume is refused, and the push is visible only through the relist.
    """
    # A lease that outlasts the freeze: this test is about watches, not leadership.
    lease = ["--lease-duration=120s", "--renew-deadline=100s"]
    daemon = start_fluxd(cluster, tmp_path / "fluxd", realm.namespace, name="fluxd", extra=lease)
    scratch = f"/api/v1/namespaces/{realm.namespace}/configmaps/scratch"
    frozen = False
    try:
        realm.create()
        baseline = realm.wait_baseline()
        expired_before = log_count(daemon, WATCH_EXPIRED)
        api.create(
            f"/api/v1/namespaces/{realm.namespace}/configmaps",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "scratch"}},
        )

        _signal(daemon, signal.SIGSTOP)
        frozen = True
        for index in range(100):
            api.merge_patch(scratch, {"data": {"n": str(index)}})
        cluster.restart_apiserver(down_for=1)
        realm.push()
        _signal(daemon, signal.SIGCONT)
        frozen = False

        wait_for(
            lambda: log_count(daemon, WATCH_EXPIRED) > expired_before,
            timeout=60,
            what="an informer to list again after its watch expired",
        )
        # The controller-manager, which rolls the pods, can take ~60 s to follow again.
        realm.wait_converged(timeout=240)
        # And the relisted informers keep following live changes.
        realm.push()
        realm.wait_converged(timeout=120)
        realm.assert_settled()
        # Also: the scratch ConfigMap is used by nothing, and its 100 changes rolled nothing.
        realm.assert_rolled_once_per_change(baseline, pushed_since=2)
        _healthy(daemon)
    finally:
        if frozen:
            _signal(daemon, signal.SIGCONT)
        assert daemon.stop() == 0, daemon.log_tail()


def test_git_server_outage_is_reported_and_recovers_by_itself(
    cluster: Cluster, api: Api, realm: Realm, git: RestartableGitServer, tmp_path: Path
) -> None:
    daemon = start_fluxd(cluster, tmp_path / "fluxd", realm.namespace, name="fluxd")
    try:
        realm.create()
        baseline = realm.wait_baseline()
        applied = api.get(realm.kustomization_path)["status"]["lastAppliedRevision"]

        git.stop()
        realm.push()  # lands in the repository; the host serving it is down
        realm.commit()

        def failing() -> dict[str, str] | None:
            ready = condition(api.get(realm.source_path))
            return ready if ready is not None and ready["status"] == "False" else None

        ready = wait_for(failing, timeout=60, what="GitRepository Ready=False while Git is down")
        assert ready["reason"] == "GitOperationFailed", ready
        # Clear: it names the host that could not be reached, and never the credentials.
        assert f"127.0.0.1:{git.pinned_port}" in ready["message"], ready
        assert TOKEN not in ready["message"]
        # Retries keep failing the same way while the outage lasts; nothing flaps to Ready.
        # Two more finished retries prove the daemon looked again, rather than a timed wait.
        source = api.get(realm.source_path)["metadata"]["name"]
        tried = reconciles(daemon, "GitRepository", realm.namespace, source)
        wait_for(
            lambda: reconciles(daemon, "GitRepository", realm.namespace, source) >= tried + 2,
            timeout=60,
            what="two more GitRepository retries during the outage",
        )
        still = condition(api.get(realm.source_path))
        assert still is not None and still["status"] == "False", still
        assert still["reason"] == "GitOperationFailed"
        # The last good apply stays: nothing half-applied while the source is unreachable.
        kustomization = api.get(realm.kustomization_path)
        assert kustomization["status"]["lastAppliedRevision"] == applied
        assert realm.secret_content() == realm.contents[-3]

        git.start()  # same port, same repositories
        realm.wait_converged(timeout=120, what="recovery without any new request")
        realm.assert_settled()
        realm.assert_rolled_once_per_change(baseline, pushed_since=2)
        _healthy(daemon)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()


def test_sigkill_mid_apply_and_mid_restart_rolls_each_change_once(
    cluster: Cluster, api: Api, realm: Realm, tmp_path: Path
) -> None:
    workdir = tmp_path / "fluxd"
    extra = [
        # A restarted replica takes the lease once the killed one's expires.
        "--lease-duration=6s",
        "--renew-deadline=4s",
        "--retry-period=1s",
        # Wide enough that the kill surely lands between the Secret change and the roll.
        "--restart-coalesce-window=5s",
    ]
    daemon = start_fluxd(cluster, workdir, realm.namespace, name="fluxd", extra=extra)
    try:
        realm.create()
        baseline = realm.wait_baseline()

        # Mid-apply: the new artifact is published, the apply has not happened yet.
        sha = realm.push()
        wait_for(
            lambda: api.get(realm.source_path)["status"]["artifact"]["revision"].endswith(sha),
            timeout=60,
            what="the pushed commit fetched",
        )
        daemon.kill()
        daemon = start_fluxd(cluster, workdir, realm.namespace, name="fluxd", extra=extra)
        realm.wait_converged(timeout=120)

        # Mid-restart: the Secret changed, the workload not rolled yet.
        realm.push()
        wait_for(
            lambda: realm.secret_content() == realm.contents[-1],
            timeout=60,
            interval=0.05,
            what="the pushed config in the Secret",
        )
        daemon.kill()
        assert realm.template_digest() == reloader_digest(realm.contents[-2]), "rolled before kill"
        daemon = start_fluxd(cluster, workdir, realm.namespace, name="fluxd", extra=extra)
        realm.wait_converged(timeout=120)
        # A late second roll would come from the catch-up. Rather than wait and hope, push
        # one more change: the restarter handles the workload in order, so a duplicate
        # roll of the earlier change would land before this one's and show up below.
        realm.push()
        realm.wait_converged(timeout=120, what="a later change rolled")

        realm.assert_settled()
        digests = realm.assert_rolled_once_per_change(baseline, pushed_since=3)
        assert len(digests) == 3, "each of the three changes rolls exactly once"
        _healthy(daemon)
    finally:
        stop_all(daemon)


def test_leader_failover_mid_burst_converges_without_double_rolls(
    cluster: Cluster, realm: Realm, tmp_path: Path
) -> None:
    lease = ["--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s"]
    first = start_fluxd(cluster, tmp_path / "a", realm.namespace, name="a", extra=lease)
    second = start_fluxd(cluster, tmp_path / "b", realm.namespace, name="b", extra=lease)
    try:
        wait_for(
            lambda: (
                (first.metric("fluxd_leader"), second.metric("fluxd_leader")) in ((1, 0), (0, 1))
            ),
            timeout=60,
            what="exactly one leader",
        )
        realm.create()
        baseline = realm.wait_baseline()
        leader = first if first.metric("fluxd_leader") == 1 else second
        follower = second if leader is first else first

        realm.push()
        time.sleep(0.5)
        realm.push()
        leader.kill()
        realm.push()
        time.sleep(0.5)
        realm.push()

        wait_for(lambda: follower.metric("fluxd_leader") == 1, timeout=30, what="failover")
        realm.wait_converged(timeout=120)
        # A marker change after the burst: any late duplicate roll lands before it.
        realm.push()
        realm.wait_converged(timeout=120, what="a change after the burst rolled")
        realm.assert_settled()
        realm.assert_rolled_once_per_change(baseline, pushed_since=5)
        _healthy(follower)
    finally:
        stop_all(first, second)


# -- leadership lost and won again in one process ------------------------------

# Short enough that a 12 s outage outlives the lease, long enough for 2 busy cores.
SHORT_LEASE = ["--lease-duration=6s", "--renew-deadline=4s", "--retry-period=1s"]


def test_api_outage_longer_than_the_lease_then_everything_reconciles_again(
    cluster: Cluster, realm: Realm, tmp_path: Path
) -> None:
    with ChatServer() as chat:
        daemon = start_fluxd(
            cluster,
            tmp_path / "fluxd",
            realm.namespace,
            name="fluxd",
            extra=[*SHORT_LEASE, f"--lease-name=terms-{uuid.uuid4().hex[:8]}"],
        )
        try:
            dingtalk_alert(
                cluster.api, chat, realm.namespace, name="dingtalk", kinds=("Kustomization",)
            )
            realm.create()
            realm.wait_baseline()
            wait_for(
                lambda: len(chat.requests("/robot/send")) > 0,
                timeout=60,
                what="the baseline change announced on DingTalk",
            )
            assert log_count(daemon, "started leading") == 1

            # A commit nobody asks to fetch: both objects poll every hour, so only a
            # reconcile of every object at the start of the new term can bring it.
            sha = realm.commit()
            announced = len(chat.requests("/robot/send"))
            cluster.restart_apiserver(down_for=12)

            wait_for(
                lambda: (
                    log_count(daemon, "leadership lost") >= 1
                    and log_count(daemon, "started leading") >= 2
                ),
                timeout=120,
                what="the daemon to lose the lease and win it again",
            )
            # The controller-manager, which rolls the pods, can take ~60 s to follow again.
            realm.wait_converged(timeout=240, what=f"commit {sha[:8]} applied in the new term")
            realm.assert_settled()
            wait_for(
                lambda: len(chat.requests("/robot/send")) > announced,
                timeout=60,
                what="an alert delivered in the new term",
            )
            assert chat.requests("/robot/send", accepted=False) == []
            daemon.check_alive()
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
