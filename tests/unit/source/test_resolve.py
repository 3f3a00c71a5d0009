"""Resolving spec.ref against a real git server: revisions, no-change polls, failures."""

from __future__ import annotations

import anyio
import pytest

from fluxd.source import (
    AuthenticationFailed,
    GitAuth,
    GitOperationFailed,
    GitRef,
    GitTimeout,
    GitWorkers,
    InvalidSource,
    Resolved,
    resolve,
)
from fluxd.source import git as git_module
from testenv.gitserver import Blackhole, GitServer, free_port

from .conftest import PASSWORD, TOKEN, USERNAME


async def _resolve(
    server: GitServer, repo: str, ref: GitRef, auth: GitAuth, workers: GitWorkers
) -> Resolved:
    return await resolve(server.url(repo), ref, auth, timeout=10, workers=workers)


class TestRevisions:
    async def test_branch_gives_branch_at_sha1(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        sha = git_server.commit(repo, {"app.yaml": "a: 1\n"}, branch="main")
        resolved = await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        assert resolved.revision == f"main@sha1:{sha}"
        assert resolved.commit == sha

    async def test_no_ref_means_master_branch(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "main"}, branch="main")
        sha = git_server.commit(repo, {"a": "master"}, branch="master")
        resolved = await _resolve(git_server, repo, GitRef.from_spec(None), basic_auth, workers)
        assert resolved.revision == f"master@sha1:{sha}"

    @pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
    async def test_tag_gives_tag_at_commit_sha(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        annotated: bool,
    ) -> None:
        sha = git_server.commit(repo, {"a": "1"}, tags=("v1.2.3",), annotated=annotated)
        git_server.commit(repo, {"a": "2"})
        resolved = await _resolve(git_server, repo, GitRef(tag="v1.2.3"), basic_auth, workers)
        # Even for an annotated tag, the revision names the commit, not the tag object.
        assert resolved.revision == f"v1.2.3@sha1:{sha}"

    async def test_semver_picks_highest_tag_in_range(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        shas = {}
        for tag in ("v0.9.0", "v1.0.0", "v1.4.2", "1.10.0", "v2.0.0", "v1.11.0-rc.1"):
            shas[tag] = git_server.commit(repo, {"v": tag}, tags=(tag,), annotated=True)
        ref = GitRef(semver=">=1.0.0 <2.0.0")
        resolved = await _resolve(git_server, repo, ref, basic_auth, workers)
        assert resolved.revision == f"1.10.0@sha1:{shas['1.10.0']}"
        assert resolved.ref_name == "refs/tags/1.10.0"

    @pytest.mark.parametrize(
        "name", ["refs/heads/main", "refs/pull/1/head"], ids=["branch-ref", "pull-request-ref"]
    )
    async def test_name_keeps_the_full_reference(
        self,
        git_server: GitServer,
        repo: str,
        basic_auth: GitAuth,
        workers: GitWorkers,
        name: str,
    ) -> None:
        sha = git_server.commit(repo, {"a": "1"}, branch="main")
        git_server.update_ref(repo, "refs/pull/1/head", sha)
        resolved = await _resolve(git_server, repo, GitRef(name=name), basic_auth, workers)
        assert resolved.revision == f"{name}@sha1:{sha}"

    async def test_bare_commit_gives_sha1_only(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        old = git_server.commit(repo, {"a": "1"})
        git_server.commit(repo, {"a": "2"})
        resolved = await _resolve(git_server, repo, GitRef(commit=old), basic_auth, workers)
        assert resolved.revision == f"sha1:{old}"
        assert resolved.pinned

    async def test_commit_with_branch_names_the_branch(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        old = git_server.commit(repo, {"a": "1"}, branch="main")
        git_server.commit(repo, {"a": "2"}, branch="main")
        ref = GitRef(branch="main", commit=old)
        resolved = await _resolve(git_server, repo, ref, basic_auth, workers)
        assert resolved.revision == f"main@sha1:{old}"

    @pytest.mark.parametrize(
        ("ref", "kind"),
        [
            pytest.param(GitRef(branch="b", tag="t"), "tag", id="tag-over-branch"),
            pytest.param(GitRef(tag="t", semver="1.x"), "semver", id="semver-over-tag"),
            pytest.param(GitRef(semver="1.x", name="refs/x"), "name", id="name-over-semver"),
            pytest.param(GitRef(name="refs/x", commit="a" * 40), "commit", id="commit-over-all"),
            pytest.param(GitRef(), "branch", id="default-branch"),
        ],
    )
    def test_precedence(self, ref: GitRef, kind: str) -> None:
        assert ref.kind == kind


class TestPolling:
    async def test_unchanged_poll_fetches_nothing(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"})
        first = await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        git_server.requests.clear()
        second = await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        assert second == first
        # Only the ref advertisement: no upload-pack negotiation, no pack transferred.
        assert git_server.requests
        assert all("info/refs" in request for request in git_server.requests)

    async def test_new_commit_gives_new_revision(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"})
        before = await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        sha = git_server.commit(repo, {"a": "2"})
        after = await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        assert after.revision != before.revision
        assert after.revision == f"main@sha1:{sha}"


class TestAuthentication:
    async def test_wrong_password_is_refused_without_leaking_it(
        self, git_server: GitServer, repo: str, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"})
        wrong = "not-the-Passw0rd-42"
        auth = GitAuth.from_secret(
            {"username": USERNAME.encode(), "password": wrong.encode()},
            url=git_server.url(repo),
            secret_name="gitea-auth",
        )
        with pytest.raises(AuthenticationFailed) as caught:
            await _resolve(git_server, repo, GitRef(branch="main"), auth, workers)
        assert caught.value.reason == "AuthenticationFailed"
        assert not caught.value.stalled
        assert git_server.url(repo) in str(caught.value)
        assert wrong not in str(caught.value)
        assert PASSWORD not in str(caught.value)

    async def test_a_poll_with_basic_auth_is_one_request(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"})
        seen = len(git_server.requests)
        await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)
        # The credentials go with the first request: no 401 and retry.
        assert git_server.requests[seen:] == [f"GET /{repo}/info/refs?service=git-upload-pack"]

    async def test_missing_credentials_are_reported(
        self, git_server: GitServer, repo: str, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"})
        with pytest.raises(AuthenticationFailed, match="no usable credentials"):
            await _resolve(git_server, repo, GitRef(branch="main"), GitAuth(), workers)

    async def test_credentials_in_url_never_reach_the_message(
        self, git_server: GitServer, workers: GitWorkers
    ) -> None:
        url = f"http://{USERNAME}:{PASSWORD}@127.0.0.1:{git_server.port}/team/absent.git"
        with pytest.raises(GitOperationFailed) as caught:
            await resolve(url, GitRef(), GitAuth(), timeout=10, workers=workers)
        assert PASSWORD not in str(caught.value)
        assert f"http://127.0.0.1:{git_server.port}/team/absent.git" in str(caught.value)

    async def test_bearer_token_is_sent_as_authorization_header(
        self, git_server: GitServer, repo: str, workers: GitWorkers
    ) -> None:
        sha = git_server.commit(repo, {"a": "1"})
        auth = GitAuth.from_secret(
            {"bearerToken": TOKEN.encode()}, url=git_server.url(repo), secret_name="token"
        )
        resolved = await _resolve(git_server, repo, GitRef(branch="main"), auth, workers)
        assert resolved.commit == sha


class TestFailures:
    async def test_missing_repository(
        self, git_server: GitServer, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        with pytest.raises(GitOperationFailed, match="repository not found") as caught:
            await _resolve(git_server, "team/nope.git", GitRef(), basic_auth, workers)
        assert caught.value.reason == "GitOperationFailed"
        assert git_server.url("team/nope.git") in str(caught.value)

    async def test_missing_branch(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"}, branch="main")
        with pytest.raises(GitOperationFailed, match="couldn't find remote ref 'refs/heads/dev'"):
            await _resolve(git_server, repo, GitRef(branch="dev"), basic_auth, workers)

    async def test_empty_repository(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        with pytest.raises(GitOperationFailed, match="is empty"):
            await _resolve(git_server, repo, GitRef(branch="main"), basic_auth, workers)

    async def test_no_tag_in_semver_range(
        self, git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers
    ) -> None:
        git_server.commit(repo, {"a": "1"}, tags=("v3.0.0",))
        with pytest.raises(GitOperationFailed, match=r"no tag .* matches semver range '<2\.0\.0'"):
            await _resolve(git_server, repo, GitRef(semver="<2.0.0"), basic_auth, workers)

    async def test_unreachable_host(self, basic_auth: GitAuth, workers: GitWorkers) -> None:
        url = f"http://127.0.0.1:{free_port()}/team/repo.git"
        with pytest.raises(GitOperationFailed) as caught:
            await resolve(url, GitRef(), basic_auth, timeout=10, workers=workers)
        assert url in str(caught.value)
        assert not caught.value.stalled

    @pytest.mark.parametrize(
        ("url", "ref", "reason"),
        [
            pytest.param("git://host/repo.git", GitRef(), "URLInvalid", id="git-scheme"),
            pytest.param("git@host:org/repo.git", GitRef(), "URLInvalid", id="scp-like"),
            pytest.param(
                "http://127.0.0.1:1/r.git",
                GitRef(commit="abc123"),
                "GitOperationFailed",
                id="short-sha",
            ),
            pytest.param(
                "http://127.0.0.1:1/r.git",
                GitRef(semver="not a range!"),
                "GitOperationFailed",
                id="bad-range",
            ),
            pytest.param(
                "http://127.0.0.1:1/r.git",
                GitRef(name="main"),
                "GitOperationFailed",
                id="short-ref-name",
            ),
        ],
    )
    async def test_invalid_spec_is_stalled(
        self, url: str, ref: GitRef, reason: str, workers: GitWorkers
    ) -> None:
        with pytest.raises(InvalidSource) as caught:
            await resolve(url, ref, GitAuth(), timeout=10, workers=workers)
        assert caught.value.stalled
        assert caught.value.reason == reason


async def test_silent_server_times_out(
    workers: GitWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_module, "_ABANDON_GRACE", 0.2)
    with (
        Blackhole() as silent,
        anyio.fail_after(5),
        pytest.raises(GitTimeout, match=r"timed out after 0\.5s"),
    ):
        await resolve(silent.url("http"), GitRef(), GitAuth(), timeout=0.5, workers=workers)
