"""spec.verify: a checked-out revision is trusted only when a Secret's key signed it.

Commits and tags are signed by real gpg keys and served by the real git
server; the checkout is the one the reconciler makes, so what is verified is
exactly what would be packed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxd.source import (
    GitAuth,
    GitRef,
    GitWorkers,
    Resolved,
    VerificationFailed,
    VerificationKeys,
    checkout,
    needs_verification,
    resolve,
    verification_mode,
    verify_checkout,
)
from testenv.gitserver import GitServer
from testenv.pgp import SigningKey, SSHSigningKey


@pytest.fixture(scope="module")
def trusted() -> Iterator[SigningKey]:
    with SigningKey("Trusted Author") as key:
        yield key


@pytest.fixture(scope="module")
def stranger() -> Iterator[SigningKey]:
    with SigningKey("Someone Else") as key:
        yield key


def _keys(*signers: SigningKey) -> VerificationKeys:
    return VerificationKeys.from_secret(
        {f"author{i}.asc": key.public_key.encode() for i, key in enumerate(signers)}
    )


async def _verify(
    git_server: GitServer,
    repo: str,
    auth: GitAuth,
    workers: GitWorkers,
    dest: Path,
    *,
    ref: GitRef,
    mode: str,
    keys: VerificationKeys,
) -> tuple[Resolved, str]:
    url = git_server.url(repo)
    resolved = await resolve(url, ref, auth, timeout=10, workers=workers)
    resolved = await checkout(url, resolved, auth, dest, timeout=10, workers=workers)
    message = await workers.run(
        functools.partial(
            verify_checkout,
            dest,
            commit=resolved.commit,
            ref_name=resolved.ref_name,
            pinned=resolved.pinned,
            mode=verification_mode({"mode": mode}),
            keys=keys,
        ),
        key=url,
    )
    return resolved, message


class TestHead:
    async def test_a_commit_signed_by_a_trusted_key_is_verified(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
        stranger: SigningKey,
    ) -> None:
        sha = git_server.commit(repo, {"app.yaml": "v1"}, signed_by=trusted)
        _, message = await _verify(
            git_server,
            repo,
            basic_auth,
            workers,
            tmp_path / "co",
            ref=GitRef(branch="main"),
            mode="HEAD",
            keys=_keys(stranger, trusted),
        )
        assert message == f"verified signature of\n\t- commit '{sha}' with key '{trusted.key_id}'"

    @pytest.mark.parametrize("mode", ["head", "HEAD"])
    async def test_an_unsigned_commit_is_refused(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
        mode: str,
    ) -> None:
        sha = git_server.commit(repo, {"app.yaml": "v1"})
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(branch="main"),
                mode=mode,
                keys=_keys(trusted),
            )
        assert caught.value.reason == "InvalidCommitSignature"
        assert not caught.value.stalled
        assert caught.value.message == (
            f"signature verification of commit '{sha}' failed: unsupported signature type: empty"
        )

    async def test_a_commit_signed_by_an_unknown_key_is_refused(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
        stranger: SigningKey,
    ) -> None:
        sha = git_server.commit(repo, {"app.yaml": "v1"}, signed_by=stranger)
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(branch="main"),
                mode="HEAD",
                keys=_keys(trusted),
            )
        assert caught.value.reason == "InvalidCommitSignature"
        assert caught.value.message == (
            f"signature verification of commit '{sha}' failed: unable to verify Git commit: "
            "unable to verify payload with any of the given key rings: no matching key"
        )

    async def test_a_secret_without_a_readable_key_ring_says_so(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        git_server.commit(repo, {"app.yaml": "v1"}, signed_by=trusted)
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(branch="main"),
                mode="HEAD",
                keys=VerificationKeys.from_secret({"author.asc": b"not a key"}),
            )
        assert "unable to read armored key ring" in caught.value.message


class TestSSH:
    async def test_an_ssh_signed_commit_is_verified_by_its_authorized_key(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        with SSHSigningKey("SSH Author") as ssh_key, SSHSigningKey("SSH Other") as other:
            sha = git_server.commit(repo, {"app.yaml": "v1"}, signed_by=ssh_key)
            keys = VerificationKeys.from_secret(
                {
                    "pgp.asc": trusted.public_key.encode(),
                    "other.sshpub": other.public_key.encode(),
                    "author.sshpub": ssh_key.public_key.encode(),
                }
            )
            _, message = await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co1",
                ref=GitRef(branch="main"),
                mode="HEAD",
                keys=keys,
            )
            assert ssh_key.key_id.startswith("SHA256:")
            assert message == (
                f"verified signature of\n\t- commit '{sha}' with key '{ssh_key.key_id}'"
            )
            with pytest.raises(VerificationFailed) as caught:
                await _verify(
                    git_server,
                    repo,
                    basic_auth,
                    workers,
                    tmp_path / "co2",
                    ref=GitRef(branch="main"),
                    mode="HEAD",
                    keys=VerificationKeys.from_secret({"x.sshpub": other.public_key.encode()}),
                )
            assert caught.value.reason == "InvalidCommitSignature"
            assert caught.value.message.endswith(
                "unable to verify Git commit SSH signature: unable to verify payload with any "
                "of the given authorized keys: no matching key"
            )
            with pytest.raises(VerificationFailed) as caught:
                await _verify(
                    git_server,
                    repo,
                    basic_auth,
                    workers,
                    tmp_path / "co3",
                    ref=GitRef(branch="main"),
                    mode="HEAD",
                    keys=_keys(trusted),
                )
            assert "SSH signature detected but no SSH public keys found" in caught.value.message


class TestTag:
    async def test_a_signed_annotated_tag_is_verified(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        git_server.commit(repo, {"app.yaml": "v1"}, tags=("v1.0.0",), tags_signed_by=trusted)
        tag_id = git_server.rev_parse(repo, "refs/tags/v1.0.0")
        _, message = await _verify(
            git_server,
            repo,
            basic_auth,
            workers,
            tmp_path / "co",
            ref=GitRef(tag="v1.0.0"),
            mode="Tag",
            keys=_keys(trusted),
        )
        assert message == (
            f"verified signature of\n\t- tag 'v1.0.0@{tag_id}' with key '{trusted.key_id}'"
        )

    async def test_tag_and_head_verifies_both_and_needs_both_signed(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        sha = git_server.commit(repo, {"app.yaml": "v1"}, tags=("v1",), tags_signed_by=trusted)
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co1",
                ref=GitRef(semver=">=1.0.0"),
                mode="TagAndHEAD",
                keys=_keys(trusted),
            )
        assert caught.value.reason == "InvalidCommitSignature"
        sha = git_server.commit(
            repo, {"app.yaml": "v2"}, signed_by=trusted, tags=("v2",), tags_signed_by=trusted
        )
        tag_id = git_server.rev_parse(repo, "refs/tags/v2")
        _, message = await _verify(
            git_server,
            repo,
            basic_auth,
            workers,
            tmp_path / "co2",
            ref=GitRef(semver=">=1.0.0"),
            mode="TagAndHEAD",
            keys=_keys(trusted),
        )
        assert message == (
            f"verified signature of\n\t- tag 'v2@{tag_id}' with key '{trusted.key_id}'"
            f"\n\t- commit '{sha}' with key '{trusted.key_id}'"
        )

    async def test_an_unsigned_annotated_tag_is_refused(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        git_server.commit(
            repo, {"app.yaml": "v1"}, signed_by=trusted, tags=("v1.0.0",), annotated=True
        )
        tag_id = git_server.rev_parse(repo, "refs/tags/v1.0.0")
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(tag="v1.0.0"),
                mode="Tag",
                keys=_keys(trusted),
            )
        assert caught.value.reason == "InvalidGitObject"
        assert caught.value.message == (
            f"cannot verify signature of tag 'v1.0.0@{tag_id}' since it is not signed"
        )

    async def test_a_lightweight_tag_is_not_signed(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        git_server.commit(repo, {"app.yaml": "v1"}, signed_by=trusted, tags=("v1.0.0",))
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(tag="v1.0.0"),
                mode="Tag",
                keys=_keys(trusted),
            )
        assert (
            caught.value.message == "cannot verify signature of tag 'v1.0.0' since it is not signed"
        )

    async def test_tag_mode_on_a_branch_is_stalled(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        tmp_path: Path,
        trusted: SigningKey,
    ) -> None:
        git_server.commit(repo, {"app.yaml": "v1"}, signed_by=trusted)
        with pytest.raises(VerificationFailed) as caught:
            await _verify(
                git_server,
                repo,
                basic_auth,
                workers,
                tmp_path / "co",
                ref=GitRef(branch="main"),
                mode="Tag",
                keys=_keys(trusted),
            )
        assert caught.value.reason == "InvalidVerificationMode"
        assert caught.value.stalled


@pytest.mark.parametrize(
    ("verify", "observed", "again"),
    [
        pytest.param(None, None, False, id="no-verify"),
        pytest.param({"mode": "HEAD"}, None, True, id="never-verified"),
        pytest.param({"mode": "HEAD"}, "HEAD", False, id="same-mode"),
        pytest.param({"mode": "head"}, "HEAD", False, id="legacy-head"),
        pytest.param({"mode": "Tag"}, "HEAD", True, id="head-then-tag"),
        pytest.param({"mode": "HEAD"}, "Tag", True, id="tag-then-head"),
        pytest.param({"mode": "HEAD"}, "TagAndHEAD", False, id="both-cover-head"),
        pytest.param({"mode": "TagAndHEAD"}, "HEAD", True, id="head-then-both"),
    ],
)
def test_an_unchanged_revision_is_verified_again_only_for_a_new_mode(
    verify: dict[str, str] | None, observed: str | None, again: bool
) -> None:
    assert needs_verification(verify, observed) is again


def test_ssh_keys_are_kept_apart_from_pgp_key_rings() -> None:
    keys = VerificationKeys.from_secret(
        {"a.asc": b"pgp-a", "legacy": b"pgp-b", "b.sshpub": b"ssh-ed25519 AAAA"}
    )
    assert keys.key_rings == (b"pgp-a", b"pgp-b")
    assert keys.authorized_keys == (b"ssh-ed25519 AAAA",)
