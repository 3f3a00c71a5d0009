"""A Git host that accepts the connection and then says nothing, against the real daemon.

Such a host (hung server, firewall swallowing packets) must cost its own
GitRepository a readable timeout and nothing more: other sources stay fast,
and polling it again and again does not grow the daemon's threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import Blackhole, GitServer
from testenv.sshd import generate_keypair
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    git_repository,
    git_repository_path,
    request_reconcile,
    secret,
    wait_condition,
)

USER, PASSWORD = "k3s", "gitea-pat-timeouts-0123"
GIT_CONCURRENCY = 2


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def blackhole() -> Iterator[Blackhole]:
    with Blackhole() as hole:
        yield hole


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-git-timeouts"),
        extra_args=[
            "--lease-name=git-timeouts-tests",
            f"--git-concurrency={GIT_CONCURRENCY}",
            # A failing source is polled again within a second or two.
            "--min-retry-delay=0.5s",
            "--max-retry-delay=1s",
        ],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _threads(daemon: Fluxd) -> int:
    assert daemon.process is not None
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line in /proc/<pid>/status")


def _polled(blackhole: Blackhole, times: int) -> None:
    # One poll of the blackholed source is one accepted connection.
    wait_for(lambda: blackhole.accepted >= times, timeout=120, what=f"{times} blackholed polls")


def test_silent_ssh_host_fails_alone_and_does_not_grow_threads(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    blackhole: Blackhole,
    namespace: str,
    tmp_path: Path,
) -> None:
    identity, _ = generate_keypair(tmp_path, name="deploy")
    secret(
        api,
        namespace,
        "ssh",
        {
            "identity": identity,
            "known_hosts": f"[127.0.0.1]:{blackhole.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n",
        },
    )
    secret(api, namespace, "https", {"username": USER, "password": PASSWORD})
    repo = f"apps/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    sha = git.commit(repo, {"app.yaml": "kind: ConfigMap\n"})

    git_repository(
        api,
        namespace,
        "silent",
        {
            "interval": "1h",
            "timeout": "2s",
            "url": blackhole.url("ssh"),
            "secretRef": {"name": "ssh"},
        },
    )
    _polled(blackhole, 1)

    git_repository(
        api,
        namespace,
        "healthy",
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": "main"},
            "secretRef": {"name": "https"},
        },
    )
    healthy = git_repository_path(namespace, "healthy")
    obj = wait_condition(api, healthy, timeout=20)
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    for _ in range(3):
        requested = request_reconcile(api, healthy)
        wait_condition(
            api,
            healthy,
            timeout=20,
            extra=lambda o, r=requested: o["status"].get("lastHandledReconcileAt") == r,
        )

    silent = wait_condition(
        api,
        git_repository_path(namespace, "silent"),
        status="False",
        reason="GitOperationFailed",
        timeout=30,
    )
    message = condition(silent)["message"]  # type: ignore[index]
    assert f"127.0.0.1:{blackhole.port}" in message
    assert "timed out" in message

    polls, threads = blackhole.accepted, _threads(daemon)
    _polled(blackhole, polls + 10)
    # Each poll of the silent host used to leave a thread stuck behind it (+10
    # here); the slack is for executor threads the runtime starts on demand.
    assert _threads(daemon) <= threads + 3
