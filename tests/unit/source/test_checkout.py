"""Checking out a resolved ref over HTTP, HTTPS with a private CA, and SSH with a deploy key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fluxd.source import (
    AuthenticationFailed,
    GitAuth,
    GitOperationFailed,
    GitRef,
    GitWorkers,
    checkout,
    resolve,
)
from testenv.gitserver import GitServer
from testenv.sshd import SSHServer


def _names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


async def _fetch(url: str, ref: GitRef, auth: GitAuth, dest: Path, workers: GitWorkers) -> str:
    resolved = await resolve(url, ref, auth, timeout=10, workers=workers)
    done = await checkout(url, resolved, auth, dest, timeout=10, workers=workers)
    return done.revision


class TestHTTP:
    async def test_branch_checkout_is_shallow_with_the_files(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        git_server.commit(repo, {"realm/ix/realm_ix.toml": "old"})
        sha = git_server.commit(repo, {"realm/ix/realm_ix.toml": "new", "README.md": "hi"})
        dest = tmp_path / "checkout"
        revision = await _fetch(
            git_server.url(repo), GitRef(branch="main"), basic_auth, dest, workers
        )
        assert revision == f"main@sha1:{sha}"
        assert (dest / "realm/ix/realm_ix.toml").read_text() == "new"
        assert pygit2.Repository(str(dest)).is_shallow

    async def test_checkout_replaces_previous_contents(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        git_server.commit(repo, {"kept.yaml": "1", "removed.yaml": "1"})
        dest = tmp_path / "checkout"
        await _fetch(git_server.url(repo), GitRef(branch="main"), basic_auth, dest, workers)
        git_server.commit(repo, {"removed.yaml": None})
        await _fetch(git_server.url(repo), GitRef(branch="main"), basic_auth, dest, workers)
        assert (dest / "kept.yaml").exists()
        assert not (dest / "removed.yaml").exists()
        # No half-finished work directories are left next to the destination.
        assert _names(tmp_path) == ["checkout"]

    async def test_annotated_tag_checks_out_its_commit(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        git_server.commit(repo, {"version": "1"}, tags=("v1.0.0",), annotated=True)
        git_server.commit(repo, {"version": "2"})
        dest = tmp_path / "checkout"
        await _fetch(git_server.url(repo), GitRef(tag="v1.0.0"), basic_auth, dest, workers)
        assert (dest / "version").read_text() == "1"

    async def test_pinned_commit_behind_the_tip(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        old = git_server.commit(repo, {"version": "1"})
        git_server.commit(repo, {"version": "2"})
        dest = tmp_path / "checkout"
        ref = GitRef(branch="main", commit=old)
        revision = await _fetch(git_server.url(repo), ref, basic_auth, dest, workers)
        assert revision == f"main@sha1:{old}"
        assert (dest / "version").read_text() == "1"

    async def test_pinned_commit_not_on_the_server(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        git_server.commit(repo, {"version": "1"})
        ghost = "0123456789abcdef0123456789abcdef01234567"
        with pytest.raises(GitOperationFailed, match=f"commit '{ghost}' not found"):
            await _fetch(
                git_server.url(repo), GitRef(commit=ghost), basic_auth, tmp_path / "c", workers
            )

    async def test_branch_moved_since_resolve_reports_what_was_checked_out(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        git_server.commit(repo, {"version": "1"})
        url = git_server.url(repo)
        resolved = await resolve(
            url, GitRef(branch="main"), basic_auth, timeout=10, workers=workers
        )
        newer = git_server.commit(repo, {"version": "2"})
        done = await checkout(
            url, resolved, basic_auth, tmp_path / "c", timeout=10, workers=workers
        )
        assert done.revision == f"main@sha1:{newer}"
        assert (tmp_path / "c" / "version").read_text() == "2"


@pytest.fixture(scope="module")
def tls_git_server() -> Iterator[GitServer]:
    with GitServer(tls=True) as server:
        server.create_repo("secure.git")
        server.commit("secure.git", {"app.yaml": "tls"})
        yield server


class TestHTTPSWithPrivateCA:
    async def test_untrusted_certificate_is_refused(self, workers: GitWorkers) -> None:
        # A server of its own: its CA is never handed to the (process-wide) trust store.
        with GitServer(tls=True) as server:
            server.create_repo("r.git")
            server.commit("r.git", {"a": "1"})
            with pytest.raises(AuthenticationFailed, match="TLS verification failed"):
                await resolve(server.url("r.git"), GitRef(), GitAuth(), timeout=10, workers=workers)

    async def test_ca_from_secret_is_trusted(
        self, tls_git_server: GitServer, workers: GitWorkers, tmp_path: Path
    ) -> None:
        url = tls_git_server.url("secure.git")
        auth = GitAuth.from_secret({"ca.crt": tls_git_server.ca_cert}, url=url, secret_name="ca")
        revision = await _fetch(url, GitRef(branch="main"), auth, tmp_path / "c", workers)
        assert revision.startswith("main@sha1:")
        assert (tmp_path / "c" / "app.yaml").read_text() == "tls"


def _ssh_auth(server: SSHServer, url: str, *, known_hosts: str | None = None) -> GitAuth:
    return GitAuth.from_secret(
        {
            "identity": server.identity.encode(),
            "known_hosts": (known_hosts or server.known_hosts).encode(),
        },
        url=url,
        secret_name="ssh-credentials",
    )


class TestSSH:
    async def test_deploy_key_and_known_hosts(
        self,
        git_server: GitServer,
        ssh_server: SSHServer,
        repo: str,
        workers: GitWorkers,
        tmp_path: Path,
    ) -> None:
        sha = git_server.commit(repo, {"config.json": "{}"})
        url = ssh_server.url(git_server.repo_path(repo))
        revision = await _fetch(
            url, GitRef(branch="main"), _ssh_auth(ssh_server, url), tmp_path / "c", workers
        )
        assert revision == f"main@sha1:{sha}"
        assert (tmp_path / "c" / "config.json").read_text() == "{}"

    async def test_wrong_host_key_is_refused(
        self,
        git_server: GitServer,
        ssh_server: SSHServer,
        repo: str,
        workers: GitWorkers,
    ) -> None:
        git_server.commit(repo, {"config.json": "{}"})
        url = ssh_server.url(git_server.repo_path(repo))
        impostor = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        known_hosts = f"[127.0.0.1]:{ssh_server.port} {impostor}\n"
        auth = _ssh_auth(ssh_server, url, known_hosts=known_hosts)
        with pytest.raises(AuthenticationFailed, match="host key verification failed") as caught:
            await resolve(url, GitRef(branch="main"), auth, timeout=10, workers=workers)
        assert ssh_server.identity not in str(caught.value)

    async def test_unknown_deploy_key_is_refused(
        self,
        git_server: GitServer,
        ssh_server: SSHServer,
        repo: str,
        workers: GitWorkers,
    ) -> None:
        git_server.commit(repo, {"config.json": "{}"})
        url = ssh_server.url(git_server.repo_path(repo))
        stranger = (
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            .decode()
        )
        auth = GitAuth(identity=stranger, known_hosts=ssh_server.known_hosts)
        with pytest.raises(AuthenticationFailed):
            await resolve(url, GitRef(branch="main"), auth, timeout=10, workers=workers)

    async def test_missing_repository_over_ssh(
        self, git_server: GitServer, ssh_server: SSHServer, workers: GitWorkers
    ) -> None:
        url = ssh_server.url(git_server.root / "team" / "absent.git")
        with pytest.raises(GitOperationFailed, match="repository not found"):
            await resolve(url, GitRef(), _ssh_auth(ssh_server, url), timeout=10, workers=workers)


async def test_encrypted_deploy_key_with_password(
    git_server: GitServer, repo: str, workers: GitWorkers
) -> None:
    with SSHServer(key_type="ecdsa", passphrase="key-pass-123") as server:
        sha = git_server.commit(repo, {"a": "1"})
        url = server.url(git_server.repo_path(repo))
        auth = GitAuth.from_secret(
            {
                "identity": server.identity.encode(),
                "password": b"key-pass-123",
                "known_hosts": server.known_hosts.encode(),
            },
            url=url,
            secret_name="ssh",
        )
        resolved = await resolve(url, GitRef(branch="main"), auth, timeout=10, workers=workers)
        assert resolved.commit == sha
