"""spec.sparseCheckout: only the listed directories are checked out, and so packed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxd.source import (
    GitAuth,
    GitOperationFailed,
    GitRef,
    GitWorkers,
    check_sparse_checkout,
    checkout,
    resolve,
)
from testenv.gitserver import GitServer

FILES = {
    "apps/podinfo/deploy.yaml": "kind: Deployment",
    "charts/podinfo/Chart.yaml": "name: podinfo",
    "charts-old/Chart.yaml": "name: old",
    "infra/ns.yaml": "kind: Namespace",
    "README.md": "hi",
}


def _files(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    )


async def _checkout(
    git_server: GitServer,
    repo: str,
    auth: GitAuth,
    workers: GitWorkers,
    dest: Path,
    dirs: list[str],
) -> None:
    url = git_server.url(repo)
    resolved = await resolve(url, GitRef(branch="main"), auth, timeout=10, workers=workers)
    await checkout(url, resolved, auth, dest, timeout=10, workers=workers, sparse_checkout=dirs)


async def test_only_the_listed_directories_are_checked_out(
    git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers, tmp_path: Path
) -> None:
    git_server.commit(repo, FILES)
    dest = tmp_path / "co"
    await _checkout(git_server, repo, basic_auth, workers, dest, ["./apps", "charts/"])
    # 'charts-old' shares a prefix with 'charts' but is another directory.
    assert _files(dest) == ["apps/podinfo/deploy.yaml", "charts/podinfo/Chart.yaml"]
    check_sparse_checkout(dest, ["./apps", "charts/"], url=git_server.url(repo))


async def test_an_empty_list_checks_out_everything(
    git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers, tmp_path: Path
) -> None:
    git_server.commit(repo, FILES)
    dest = tmp_path / "co"
    await _checkout(git_server, repo, basic_auth, workers, dest, [])
    assert _files(dest) == sorted(FILES)


async def test_a_missing_directory_fails_the_checkout(
    git_server: GitServer, repo: str, basic_auth: GitAuth, workers: GitWorkers, tmp_path: Path
) -> None:
    git_server.commit(repo, FILES)
    dest = tmp_path / "co"
    await _checkout(git_server, repo, basic_auth, workers, dest, ["apps", "nope"])
    with pytest.raises(GitOperationFailed) as caught:
        check_sparse_checkout(dest, ["apps", "nope"], url=git_server.url(repo))
    assert caught.value.message == (
        "failed to sparse checkout directories : sparse checkout dir 'nope' does not exist "
        "in repository"
    )
