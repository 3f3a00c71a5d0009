"""Git servers that accept the connection and then say nothing.

A poll of such a server must end at its timeout with a readable error, must
not leave a thread behind each time, and must not hold up other sources.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from fluxd.source import GitAuth, GitOperationFailed, GitRef, GitTimeout, GitWorkers, resolve
from fluxd.source import git as git_module
from testenv.gitserver import Blackhole, GitServer
from testenv.sshd import SSHServer, generate_keypair


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    with Blackhole() as hole:
        yield hole


@pytest.fixture(scope="module")
def deploy_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    private, _ = generate_keypair(tmp_path_factory.mktemp("keys"), name="deploy")
    return private


def _ssh_auth(deploy_key: str, known_hosts: str) -> GitAuth:
    return GitAuth.from_secret(
        {"identity": deploy_key.encode(), "known_hosts": known_hosts.encode()},
        url="ssh://git@127.0.0.1/team/repo.git",
        secret_name="ssh-credentials",
    )


def _blackhole_auth(blackhole: Blackhole, deploy_key: str) -> GitAuth:
    # Any well-formed entry: the server never gets as far as showing a key.
    known_hosts = f"[127.0.0.1]:{blackhole.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE\n"
    return _ssh_auth(deploy_key, known_hosts)


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    # A thread's exit raises no event the test can await: poll, bounded.
    for _ in range(500):
        if condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


@pytest.mark.parametrize("scheme", ["ssh", "http"])
async def test_silent_server_times_out_and_frees_its_thread(
    scheme: str, blackhole: Blackhole, deploy_key: str, workers: GitWorkers
) -> None:
    before = threading.active_count()
    url = blackhole.url(scheme)
    auth = _blackhole_auth(blackhole, deploy_key) if scheme == "ssh" else GitAuth()
    for _ in range(3):
        with anyio.fail_after(20), pytest.raises(GitTimeout) as caught:
            await resolve(url, GitRef(), auth, timeout=1, workers=workers)
        assert f"127.0.0.1:{blackhole.port}" in caught.value.message
        assert "timed out" in caught.value.message
        assert caught.value.reason == "GitOperationFailed"
    # libgit2 itself gave up each time, so one thread served every poll.
    assert blackhole.accepted == 3
    assert threading.active_count() <= before + 1


async def test_polls_of_a_stuck_source_do_not_pile_up_threads(
    blackhole: Blackhole, deploy_key: str, workers: GitWorkers
) -> None:
    before = threading.active_count()
    auth = _blackhole_auth(blackhole, deploy_key)
    url = blackhole.url("ssh")
    # The caller gives up long before libgit2's timeout: the thread stays stuck.
    with anyio.move_on_after(0.5):
        await resolve(url, GitRef(), auth, timeout=60, workers=workers, key="ns/stuck")
    await _eventually(lambda: blackhole.accepted == 1, "the first poll connected")

    for _ in range(5):
        with anyio.fail_after(5), pytest.raises(GitOperationFailed, match="still running"):
            await resolve(url, GitRef(), auth, timeout=60, workers=workers, key="ns/stuck")
    assert blackhole.accepted == 1

    # Other stuck sources fill the pool; past its capacity nothing new starts.
    for index in range(5):
        with anyio.move_on_after(0.3):
            await resolve(url, GitRef(), auth, timeout=60, workers=workers, key=f"ns/other-{index}")
    assert workers.running == workers.capacity
    assert threading.active_count() <= before + workers.capacity

    # Once the server hangs up, the threads end and the source is polled anew.
    blackhole.stop()
    await _eventually(lambda: workers.running == 0, "the stuck threads ended")
    with anyio.fail_after(20), pytest.raises(GitOperationFailed) as caught:
        await resolve(url, GitRef(), auth, timeout=5, workers=workers, key="ns/stuck")
    assert "still running" not in caught.value.message


async def test_stuck_ssh_handshake_does_not_hold_up_other_ssh_sources(
    blackhole: Blackhole,
    deploy_key: str,
    git_server: GitServer,
    ssh_server: SSHServer,
    repo: str,
    workers: GitWorkers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(git_module, "_SSH_HANDSHAKE_LEASE", 0.5)
    sha = git_server.commit(repo, {"app.yaml": "kind: ConfigMap\n"})
    healthy = ssh_server.url(git_server.repo_path(repo))
    healthy_auth = GitAuth.from_secret(
        {"identity": ssh_server.identity.encode(), "known_hosts": ssh_server.known_hosts.encode()},
        url=healthy,
        secret_name="ssh-credentials",
    )
    stuck_auth = _blackhole_auth(blackhole, deploy_key)

    async def poll_stuck() -> None:
        with pytest.raises(GitOperationFailed):
            await resolve(blackhole.url("ssh"), GitRef(), stuck_auth, timeout=60, workers=workers)

    async with anyio.create_task_group() as group:
        group.start_soon(poll_stuck)
        await _eventually(lambda: blackhole.accepted == 1, "the stuck handshake started")
        with anyio.fail_after(15):
            resolved = await resolve(
                healthy, GitRef(branch="main"), healthy_auth, timeout=30, workers=workers
            )
        assert resolved.revision == f"main@sha1:{sha}"
        group.cancel_scope.cancel()


class _SlowRelay:
    """Forwards TCP connections to ``port`` after holding them silent for ``delay`` seconds."""

    def __init__(self, port: int, delay: float) -> None:
        self.target, self.delay = port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pump(source: socket.socket, sink: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    sink.sendall(data)
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

        with client, upstream:
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join()

    def close(self) -> None:
        self.listener.close()


async def test_a_handshake_that_lost_the_gate_is_refused(
    git_server: GitServer,
    ssh_server: SSHServer,
    repo: str,
    workers: GitWorkers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(git_module, "_SSH_HANDSHAKE_LEASE", 0.3)
    git_server.commit(repo, {"app.yaml": "kind: ConfigMap\n"})
    path = git_server.repo_path(repo)
    relay = _SlowRelay(ssh_server.port, delay=1.5)
    slow_auth = _ssh_auth(ssh_server.identity, relay_known_hosts(ssh_server, relay))
    other_auth = _ssh_auth(ssh_server.identity, ssh_server.known_hosts)
    slow_url = ssh_server.url(path).replace(f":{ssh_server.port}/", f":{relay.port}/")
    outcome: list[BaseException] = []

    async def poll_slow() -> None:
        try:
            await resolve(slow_url, GitRef(branch="main"), slow_auth, timeout=20, workers=workers)
        except GitOperationFailed as error:
            outcome.append(error)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(poll_slow)
            await _eventually(lambda: relay.accepted == 1, "the slow handshake started")
            await resolve(
                ssh_server.url(path), GitRef(branch="main"), other_auth, timeout=20, workers=workers
            )
    finally:
        relay.close()
    # Its known_hosts is right, but once the gate was taken over fluxd cannot
    # tell which file libgit2 read: refused, never trusted.
    assert len(outcome) == 1, "the handshake that lost the gate must not be accepted"
    assert isinstance(outcome[0], GitTimeout)
    assert "took longer than 0.3s" in str(outcome[0])


def relay_known_hosts(server: SSHServer, relay: _SlowRelay) -> str:
    key_type, key = server.host_public_key.split()[:2]
    return f"[127.0.0.1]:{relay.port} {key_type} {key}\n"
