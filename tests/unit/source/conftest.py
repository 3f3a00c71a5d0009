"""Real servers for the source engine's tests: git http-backend and OpenSSH on loopback."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from fluxd.source import GitAuth, GitWorkers
from testenv.gitserver import GitServer
from testenv.sshd import SSHServer

USERNAME = "fluxd-bot"
PASSWORD = "s3cret-Passw0rd-xyz"
TOKEN = "tok-9f8e7d6c5b4a"

_names = itertools.count()


@pytest.fixture(scope="module")
def git_server() -> Iterator[GitServer]:
    """HTTP git server with basic auth (and a bearer token as the alternative)."""
    with GitServer(username=USERNAME, password=PASSWORD, bearer_token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def ssh_server() -> Iterator[SSHServer]:
    with SSHServer() as server:
        yield server


@pytest.fixture
def repo(git_server: GitServer) -> str:
    """A fresh, empty bare repository on the git server."""
    name = f"team/repo-{next(_names)}.git"
    git_server.create_repo(name)
    return name


@pytest.fixture
def basic_auth(git_server: GitServer) -> GitAuth:
    return GitAuth(username=USERNAME, password=PASSWORD)


@pytest.fixture
async def workers() -> GitWorkers:
    return GitWorkers(2)
