"""GitRepository against real git servers: the seed's private repo, refs, auth, failures."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.seedflow import KUSTOMIZATION
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer, Symlink
from testenv.sshd import SSHServer
from tests.support.daemon import Fluxd
from tests.support.flux import (
    GIT_REPOSITORIES,
    condition,
    events_for,
    git_repository,
    request_reconcile,
    secret,
    wait_condition,
)

USER, TOKEN = "k3s", "gitea-pat-0123456789abcdef"
REALM_TOML = '[network]\nuse_udp = true\n\n[[endpoints]]\nlisten = "0.0.0.0:5000"\n'
SEED_FILES: dict[str, Any] = {
    "realm/ix/kustomization.yaml": KUSTOMIZATION,
    "realm/ix/realm_ix.toml": REALM_TOML,
    "docs/diagram.jpg": b"\xff\xd8\xff not really a jpeg",
}


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=TOKEN, default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-git"),
        extra_args=["--lease-name=gitrepository-tests", "--max-retry-delay=5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _repo(
    git: GitServer, files: dict[str, Any] | None = None, branch: str = "master"
) -> tuple[str, str]:
    name = f"k3s/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(name)
    sha = git.commit(name, files or SEED_FILES, branch=branch)
    return name, sha


def _path(namespace: str, name: str) -> str:
    return f"{GIT_REPOSITORIES.format(ns=namespace)}/{name}"


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


def _names(tarball: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {m.name for m in archive.getmembers() if m.isfile()}


def test_seed_repository_is_fetched_with_basic_auth(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, sha = _repo(git)
    secret(api, namespace, "gitea-auth", {"username": USER, "password": TOKEN})
    # The seed's GitRepository verbatim, but for the URL of the local server.
    git_repository(
        api,
        namespace,
        "k3s-private-repo",
        {
            "interval": "1m",
            "url": git.url(repo),
            "ref": {"branch": "master"},
            "secretRef": {"name": "gitea-auth"},
        },
    )
    obj = wait_condition(api, _path(namespace, "k3s-private-repo"))
    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == f"master@sha1:{sha}"
    assert condition(obj)["message"] == f"stored artifact for revision 'master@sha1:{sha}'"  # type: ignore[index]
    assert condition(obj, "ArtifactInStorage")["status"] == "True"  # type: ignore[index]
    tarball = _download(artifact["url"])
    assert artifact["digest"] == f"sha256:{hashlib.sha256(tarball).hexdigest()}"
    assert artifact["size"] == len(tarball)
    assert _names(tarball) == {"realm/ix/kustomization.yaml", "realm/ix/realm_ix.toml"}
    reasons = {e["reason"] for e in events_for(api, namespace, "k3s-private-repo")}
    assert "NewArtifact" in reasons


def test_requested_reconcile_fetches_a_new_commit_at_once(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, sha = _repo(git)
    git_repository(
        api, namespace, "r", {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}}
    )
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    path = _path(namespace, "r")
    wait_condition(api, path)
    new_sha = git.commit(repo, {"realm/ix/realm_ix.toml": REALM_TOML + "# v2\n"})
    requested = request_reconcile(api, path)
    obj = wait_condition(
        api,
        path,
        extra=lambda o: o["status"].get("lastHandledReconcileAt") == requested,
        timeout=60,
    )
    assert obj["status"]["artifact"]["revision"] == f"master@sha1:{new_sha}"
    assert new_sha != sha


def test_interval_picks_up_new_commits(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, _ = _repo(git)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    git_repository(
        api, namespace, "r", {"interval": "3s", "url": git.url(repo), "secretRef": {"name": "auth"}}
    )
    path = _path(namespace, "r")
    wait_condition(api, path)
    new_sha = git.commit(repo, {"realm/ix/realm_ix.toml": REALM_TOML + "# v3\n"})
    wait_for(
        lambda: api.get(path)["status"]["artifact"]["revision"] == f"master@sha1:{new_sha}",
        timeout=60,
        what="the new commit by interval",
    )


def test_wrong_password_fails_clearly_and_recovers(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, sha = _repo(git)
    secret(api, namespace, "auth", {"username": USER, "password": "wrong-password-123"})
    git_repository(
        api, namespace, "r", {"interval": "5s", "url": git.url(repo), "secretRef": {"name": "auth"}}
    )
    path = _path(namespace, "r")
    obj = wait_condition(api, path, status="False", reason="AuthenticationFailed")
    ready = condition(obj)
    fetch = condition(obj, "FetchFailed")
    assert fetch is not None and fetch["status"] == "True"
    assert git.url(repo) in ready["message"]  # type: ignore[index]
    assert "wrong-password-123" not in str(obj)
    assert condition(obj, "Reconciling")["reason"] == "ProgressingWithRetry"  # type: ignore[index]
    warnings = [e for e in events_for(api, namespace, "r") if e["type"] == "Warning"]
    assert warnings and all("wrong-password-123" not in e["message"] for e in warnings)
    # Fixing the Secret is enough: no spec change, no manual reconcile.
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    obj = wait_condition(api, path, timeout=60)
    assert obj["status"]["artifact"]["revision"] == f"master@sha1:{sha}"
    assert condition(obj, "FetchFailed") is None
    assert condition(obj, "Reconciling") is None
    assert "wrong-password-123" not in daemon.log_path.read_text()


def test_refs_tag_semver_name_and_commit(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, first = _repo(git)
    v1 = git.commit(repo, {"v": "1.0.0"}, tags=("v1.0.0",))
    v14 = git.commit(repo, {"v": "1.4.2"}, tags=("v1.4.2",), annotated=True)
    git.commit(repo, {"v": "2.0.0"}, tags=("v2.0.0",))
    git.update_ref(repo, "refs/pull/1/head", v1)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    cases = {
        "tag": ({"tag": "v1.0.0"}, f"v1.0.0@sha1:{v1}"),
        "semver": ({"semver": ">=1.0.0 <2.0.0"}, f"v1.4.2@sha1:{v14}"),
        "name": ({"name": "refs/pull/1/head"}, f"refs/pull/1/head@sha1:{v1}"),
        "commit": ({"commit": first}, f"sha1:{first}"),
    }
    for name, (ref, _) in cases.items():
        git_repository(
            api,
            namespace,
            name,
            {"interval": "1h", "url": git.url(repo), "ref": ref, "secretRef": {"name": "auth"}},
        )
    for name, (_, revision) in cases.items():
        obj = wait_condition(api, _path(namespace, name))
        assert obj["status"]["artifact"]["revision"] == revision, name


def test_ignore_rules(api: Api, daemon: Fluxd, git: GitServer, namespace: str) -> None:
    files = {
        **SEED_FILES,
        "realm/ix/.sourceignore": "*.bak\n",
        "realm/ix/old.bak": "old",
        "notes/readme.md": "hello",
    }
    repo, _ = _repo(git, files)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    git_repository(
        api,
        namespace,
        "sourceignore",
        {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}},
    )
    git_repository(
        api,
        namespace,
        "spec-ignore",
        {
            "interval": "1h",
            "url": git.url(repo),
            "secretRef": {"name": "auth"},
            "ignore": "/*\n!/realm/\n",
        },
    )
    from_sourceignore = _names(
        _download(
            wait_condition(api, _path(namespace, "sourceignore"))["status"]["artifact"]["url"]
        )
    )
    assert "realm/ix/old.bak" not in from_sourceignore
    assert "notes/readme.md" in from_sourceignore
    spec_obj = wait_condition(api, _path(namespace, "spec-ignore"))
    assert spec_obj["status"]["observedIgnore"] == "/*\n!/realm/\n"
    from_spec = _names(_download(spec_obj["status"]["artifact"]["url"]))
    assert all(name.startswith("realm/") for name in from_spec)
    assert "notes/readme.md" not in from_spec


def test_include_copies_another_artifact(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    shared, _ = _repo(git, {"base/common.yaml": "kind: ConfigMap\n"})
    main, _ = _repo(git)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    git_repository(
        api,
        namespace,
        "shared",
        {"interval": "1h", "url": git.url(shared), "secretRef": {"name": "auth"}},
    )
    git_repository(
        api,
        namespace,
        "main",
        {
            "interval": "1h",
            "url": git.url(main),
            "secretRef": {"name": "auth"},
            "include": [
                {"repository": {"name": "shared"}, "fromPath": "base", "toPath": "vendor/shared"}
            ],
        },
    )
    obj = wait_condition(api, _path(namespace, "main"))
    names = _names(_download(obj["status"]["artifact"]["url"]))
    assert "vendor/shared/common.yaml" in names
    assert "realm/ix/realm_ix.toml" in names
    assert len(obj["status"]["includedArtifacts"]) == 1
    # A new commit in the included repository produces a new artifact here too.
    git.commit(shared, {"base/extra.yaml": "kind: Secret\n"})
    request_reconcile(api, _path(namespace, "shared"))
    wait_for(
        lambda: (
            "vendor/shared/extra.yaml"
            in _names(_download(api.get(_path(namespace, "main"))["status"]["artifact"]["url"]))
        ),
        timeout=60,
        what="the included change",
    )


def test_https_with_custom_ca(api: Api, daemon: Fluxd, namespace: str) -> None:
    with GitServer(username=USER, password=TOKEN, tls=True, default_branch="master") as tls_git:
        repo, sha = _repo(tls_git)
        secret(api, namespace, "no-ca", {"username": USER, "password": TOKEN})
        secret(
            api,
            namespace,
            "with-ca",
            {"username": USER, "password": TOKEN, "ca.crt": tls_git.ca_cert},
        )
        git_repository(
            api,
            namespace,
            "no-ca",
            {"interval": "1h", "url": tls_git.url(repo), "secretRef": {"name": "no-ca"}},
        )
        git_repository(
            api,
            namespace,
            "with-ca",
            {"interval": "1h", "url": tls_git.url(repo), "secretRef": {"name": "with-ca"}},
        )
        obj = wait_condition(api, _path(namespace, "with-ca"))
        assert obj["status"]["artifact"]["revision"] == f"master@sha1:{sha}"
        # Trust is per process in libgit2, so "no-ca" may be accepted once the CA is known;
        # what matters is that it never reports success for a different commit.
        bad = api.get(_path(namespace, "no-ca"))
        artifact = bad.get("status", {}).get("artifact")
        assert artifact is None or artifact["revision"] == f"master@sha1:{sha}"


def test_ssh_with_deploy_key_and_known_hosts(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, sha = _repo(git)
    with SSHServer() as sshd, SSHServer() as other:
        url = sshd.url(git.repo_path(repo))
        secret(api, namespace, "ssh", {"identity": sshd.identity, "known_hosts": sshd.known_hosts})
        secret(
            api,
            namespace,
            "wrong-host",
            {
                "identity": sshd.identity,
                "known_hosts": other.known_hosts.replace(str(other.port), str(sshd.port)),
            },
        )
        git_repository(
            api, namespace, "ssh", {"interval": "1h", "url": url, "secretRef": {"name": "ssh"}}
        )
        git_repository(
            api,
            namespace,
            "wrong-host",
            {"interval": "1h", "url": url, "secretRef": {"name": "wrong-host"}},
        )
        obj = wait_condition(api, _path(namespace, "ssh"))
        assert obj["status"]["artifact"]["revision"] == f"master@sha1:{sha}"
        bad = wait_condition(
            api, _path(namespace, "wrong-host"), status="False", reason="AuthenticationFailed"
        )
        assert "host key" in condition(bad)["message"].lower()  # type: ignore[index]


@pytest.mark.parametrize(
    ("case", "reason", "words"),
    [
        pytest.param("unreachable", "GitOperationFailed", "127.0.0.1:1", id="unreachable-host"),
        pytest.param("deleted", "GitOperationFailed", "", id="repository-deleted"),
        pytest.param("branch", "GitOperationFailed", "nope", id="branch-missing"),
        pytest.param("empty", "GitOperationFailed", "", id="empty-repository"),
        pytest.param("secret", "AuthenticationFailed", "missing-secret", id="secret-missing"),
    ],
)
def test_failures_are_clear_and_do_not_stall_neighbours(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, case: str, reason: str, words: str
) -> None:
    repo, sha = _repo(git)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    spec: dict[str, Any] = {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}}
    if case == "unreachable":
        spec["url"] = "http://127.0.0.1:1/k3s/x.git"
    elif case == "deleted":
        gone, _ = _repo(git)
        git.delete_repo(gone)
        spec["url"] = git.url(gone)
    elif case == "branch":
        spec["ref"] = {"branch": "nope"}
    elif case == "empty":
        empty = f"k3s/{uuid.uuid4().hex[:8]}.git"
        git.create_repo(empty)
        spec["url"] = git.url(empty)
    elif case == "secret":
        spec["secretRef"] = {"name": "missing-secret"}
    git_repository(api, namespace, "broken", spec)
    git_repository(
        api,
        namespace,
        "healthy",
        {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}},
    )
    broken = wait_condition(api, _path(namespace, "broken"), status="False", reason=reason)
    message = condition(broken)["message"]  # type: ignore[index]
    assert message and words in message
    assert "Traceback" not in message
    healthy = wait_condition(api, _path(namespace, "healthy"))
    assert healthy["status"]["artifact"]["revision"] == f"master@sha1:{sha}"
    daemon.check_alive()


def test_symlink_out_of_the_repository_does_not_escape(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, tmp_path: Path
) -> None:
    files: dict[str, Any] = {
        **SEED_FILES,
        "realm/ix/passwd": Symlink("/etc/passwd"),
        "big.bin": b"\0" * (8 << 20),
    }
    repo, _ = _repo(git, files)
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    git_repository(
        api, namespace, "r", {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}}
    )
    obj = wait_condition(api, _path(namespace, "r"))
    tarball = _download(obj["status"]["artifact"]["url"])
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert "realm/ix/passwd" not in members
    assert members["big.bin"].size == 8 << 20
    assert all(not m.issym() and not m.islnk() for m in members.values())


def test_artifact_server_refuses_paths_outside_storage(daemon: Fluxd) -> None:
    for path in (
        "/gitrepository/../../../etc/passwd",
        "/gitrepository/%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
    ):
        status, _ = daemon.get(path, server="storage")
        assert status == 404, path
