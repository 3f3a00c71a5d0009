"""GitRepository spec.verify and spec.sparseCheckout on the real control plane.

Commits and tags are signed with real gpg keys and served by a real git
server. A revision that is not signed by a key of the verification Secret
never becomes the artifact: the previous one stays in status and is still
served with its content.
"""

from __future__ import annotations

import io
import tarfile
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from testenv.api import Api
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from testenv.pgp import SigningKey
from tests.support.badinputs import wait_not_ready, wait_warning
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    git_repository,
    git_repository_path,
    request_reconcile,
    secret,
    wait_condition,
)

USER, TOKEN = "k3s", "gitea-pat-verify-0123456789"


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=TOKEN, default_branch="main") as server:
        yield server


@pytest.fixture(scope="module")
def trusted() -> Iterator[SigningKey]:
    with SigningKey("Release Manager") as key:
        yield key


@pytest.fixture(scope="module")
def stranger() -> Iterator[SigningKey]:
    with SigningKey("Not Trusted") as key:
        yield key


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-git-verify"),
        extra_args=["--lease-name=git-verify-tests", "--max-retry-delay=5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


def _new_repo(git: GitServer) -> str:
    name = f"k3s/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(name)
    return name


def _source(api: Api, git: GitServer, namespace: str, name: str, repo: str, **spec: Any) -> str:
    secret(api, namespace, "auth", {"username": USER, "password": TOKEN})
    git_repository(
        api,
        namespace,
        name,
        {"interval": "1h", "url": git.url(repo), "secretRef": {"name": "auth"}, **spec},
    )
    return git_repository_path(namespace, name)


def _keys(api: Api, namespace: str, *signers: SigningKey) -> dict[str, str]:
    secret(
        api,
        namespace,
        "pgp-public-keys",
        {f"author{i}.asc": key.public_key for i, key in enumerate(signers)},
    )
    return {"name": "pgp-public-keys"}


def _contents(url: str) -> dict[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        tarball = response.read()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def test_only_commits_signed_by_a_trusted_key_become_the_artifact(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    trusted: SigningKey,
    stranger: SigningKey,
) -> None:
    repo = _new_repo(git)
    good = git.commit(repo, {"app/config.yaml": "release: 1\n"}, signed_by=trusted)
    path = _source(
        api,
        git,
        namespace,
        "signed",
        repo,
        ref={"branch": "main"},
        verify={"mode": "HEAD", "secretRef": _keys(api, namespace, trusted)},
    )
    obj = wait_condition(api, path)
    verified = condition(obj, "SourceVerified")
    assert verified is not None
    assert (verified["status"], verified["reason"]) == ("True", "Succeeded")
    assert verified["message"] == (
        f"verified signature of\n\t- commit '{good}' with key '{trusted.key_id}'"
    )
    assert obj["status"]["sourceVerificationMode"] == "HEAD"
    published = obj["status"]["artifact"]
    assert published["revision"] == f"main@sha1:{good}"
    assert _contents(published["url"]) == {"app/config.yaml": b"release: 1\n"}

    unsigned = git.commit(repo, {"app/config.yaml": "release: unsigned\n"})
    request_reconcile(api, path)
    ready = wait_not_ready(api, path, reasons=("InvalidCommitSignature",), words=(unsigned,))
    assert ready["message"] == (
        f"signature verification of commit '{unsigned}' failed: unsupported signature type: empty"
    )
    wait_warning(api, namespace, "signed", reasons=("InvalidCommitSignature",))
    obj = api.get(path)
    assert condition(obj, "SourceVerified")["status"] == "False"  # type: ignore[index]
    assert obj["status"]["artifact"] == published
    assert _contents(published["url"]) == {"app/config.yaml": b"release: 1\n"}

    forged = git.commit(repo, {"app/config.yaml": "release: forged\n"}, signed_by=stranger)
    request_reconcile(api, path)
    ready = wait_not_ready(api, path, reasons=("InvalidCommitSignature",), words=(forged,))
    assert "no matching key" in ready["message"]
    obj = api.get(path)
    assert obj["status"]["artifact"] == published
    assert _contents(published["url"]) == {"app/config.yaml": b"release: 1\n"}

    fixed = git.commit(repo, {"app/config.yaml": "release: 2\n"}, signed_by=trusted)
    request_reconcile(api, path)
    obj = wait_condition(
        api,
        path,
        extra=lambda o: o["status"].get("artifact", {}).get("revision") == f"main@sha1:{fixed}",
    )
    assert condition(obj, "SourceVerified")["status"] == "True"  # type: ignore[index]
    assert _contents(obj["status"]["artifact"]["url"]) == {"app/config.yaml": b"release: 2\n"}


def test_tag_mode_verifies_the_annotated_tag(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, trusted: SigningKey
) -> None:
    repo = _new_repo(git)
    git.commit(repo, {"app.yaml": "v1\n"}, tags=("v1.0.0",), tags_signed_by=trusted)
    git.commit(repo, {"app.yaml": "v2\n"}, tags=("v2.0.0",), annotated=True)
    keys = _keys(api, namespace, trusted)
    tag_id = git.rev_parse(repo, "refs/tags/v1.0.0")

    signed = _source(
        api,
        git,
        namespace,
        "signed-tag",
        repo,
        ref={"tag": "v1.0.0"},
        verify={"mode": "Tag", "secretRef": keys},
    )
    obj = wait_condition(api, signed)
    assert condition(obj, "SourceVerified")["message"] == (  # type: ignore[index]
        f"verified signature of\n\t- tag 'v1.0.0@{tag_id}' with key '{trusted.key_id}'"
    )
    assert obj["status"]["sourceVerificationMode"] == "Tag"
    assert _contents(obj["status"]["artifact"]["url"]) == {"app.yaml": b"v1\n"}

    unsigned = _source(
        api,
        git,
        namespace,
        "unsigned-tag",
        repo,
        ref={"tag": "v2.0.0"},
        verify={"mode": "Tag", "secretRef": keys},
    )
    ready = wait_not_ready(api, unsigned, reasons=("InvalidGitObject",))
    tag2 = git.rev_parse(repo, "refs/tags/v2.0.0")
    assert (
        ready["message"] == f"cannot verify signature of tag 'v2.0.0@{tag2}' since it is not signed"
    )
    wait_warning(api, namespace, "unsigned-tag", reasons=("InvalidGitObject",))
    assert "artifact" not in api.get(unsigned).get("status", {})


def test_sparse_checkout_artifact_holds_only_the_listed_directories(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo = _new_repo(git)
    git.commit(
        repo,
        {
            "apps/podinfo.yaml": "kind: Deployment\n",
            "charts/podinfo/Chart.yaml": "name: podinfo\n",
            "infra/secrets.yaml": "kind: Secret\n",
            "README.md": "hi\n",
        },
    )
    path = _source(
        api,
        git,
        namespace,
        "sparse",
        repo,
        ref={"branch": "main"},
        sparseCheckout=["apps", "./charts"],
    )
    obj = wait_condition(api, path)
    assert obj["status"]["observedSparseCheckout"] == ["apps", "./charts"]
    assert set(_contents(obj["status"]["artifact"]["url"])) == {
        "apps/podinfo.yaml",
        "charts/podinfo/Chart.yaml",
    }

    missing = _source(
        api, git, namespace, "sparse-missing", repo, ref={"branch": "main"}, sparseCheckout=["nope"]
    )
    ready = wait_not_ready(api, missing, reasons=("GitOperationFailed",), words=("'nope'",))
    assert "does not exist in repository" in ready["message"]
