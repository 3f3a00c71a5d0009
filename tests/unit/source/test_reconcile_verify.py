"""The GitRepository reconciler's spec.verify and spec.sparseCheckout bookkeeping.

What is verified and packed is decided by the reconciler from status: an
unchanged revision keeps its SourceVerified, a removed spec.verify clears it,
a new sparseCheckout list rebuilds the artifact, and gpg runs in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from fluxd.controllers.gitrepository import GitRepositoryReconciler
from fluxd.controllers.outcomes import ConditionUpdate, Reconciled
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import Storage
from fluxd.source import verify as verify_module
from testenv.gitserver import GitServer
from testenv.pgp import SigningKey


class _SecretsOnly:
    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets

    async def get(self, resource: object, name: str, *, namespace: str) -> dict[str, Any]:
        return self.secrets[name]

    async def get_or_none(
        self, resource: object, name: str, *, namespace: str
    ) -> dict[str, Any] | None:
        return None


@pytest.fixture(scope="module")
def key() -> Iterator[SigningKey]:
    with SigningKey("Reconcile Author") as signing_key:
        yield signing_key


@pytest.fixture
def server() -> Iterator[GitServer]:
    with GitServer() as git_server:
        git_server.create_repo("apps.git")
        yield git_server


def _verified(done: Reconciled) -> ConditionUpdate:
    return next(update for update in done.conditions if update.type == "SourceVerified")


def _settle(obj: dict[str, Any], done: Reconciled) -> None:
    """What the controller's status patch leaves on the object."""
    status = {**obj.get("status", {}), **done.status}
    status = {name: value for name, value in status.items() if value is not None}
    status["conditions"] = [
        {"type": update.type, "status": update.status, "message": update.message}
        for update in done.conditions
        if update.status is not None
    ]
    obj["status"] = status


async def test_verify_and_sparse_checkout_follow_the_spec(
    server: GitServer, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    verify_pgp = verify_module._verify_pgp

    def recording(*args: Any, **kwargs: Any) -> str:
        threads.append(threading.get_ident())
        return verify_pgp(*args, **kwargs)

    monkeypatch.setattr(verify_module, "_verify_pgp", recording)
    sha = server.commit("apps.git", {"apps/app.yaml": "v1", "infra/ns.yaml": "ns"}, signed_by=key)
    keys = {"data": {"author.asc": base64.b64encode(key.public_key.encode()).decode()}}
    storage = Storage(tmp_path / "storage", base_url="http://fluxd.test")
    reconciler = GitRepositoryReconciler(
        kube=cast(Kube, _SecretsOnly({"pgp-keys": keys})), storage=storage, settings=Settings()
    )
    obj: dict[str, Any] = {
        "metadata": {"namespace": "apps", "name": "podinfo", "generation": 1},
        "spec": {
            "url": server.url("apps.git"),
            "ref": {"branch": "main"},
            "verify": {"mode": "HEAD", "secretRef": {"name": "pgp-keys"}},
        },
    }
    done = await reconciler.reconcile(obj)
    message = f"verified signature of\n\t- commit '{sha}' with key '{key.key_id}'"
    assert _verified(done) == ConditionUpdate("SourceVerified", "True", "Succeeded", message)
    assert done.status["sourceVerificationMode"] == "HEAD"
    assert threads and threading.get_ident() not in threads
    _settle(obj, done)
    first = obj["status"]["artifact"]

    # Unchanged: nothing is fetched or verified again, and the verification still holds.
    threads.clear()
    done = await reconciler.reconcile(obj)
    assert threads == []
    assert [event.reason for event in done.events] == ["GitOperationSucceeded"]
    assert _verified(done).status == "True"
    assert _verified(done).message == message
    _settle(obj, done)

    # A sparse checkout is other content: a new artifact from the same commit.
    obj["spec"]["sparseCheckout"] = ["apps"]
    done = await reconciler.reconcile(obj)
    assert done.status["observedSparseCheckout"] == ["apps"]
    assert done.status["artifact"]["digest"] != first["digest"]
    assert done.status["artifact"]["revision"] == first["revision"]
    _settle(obj, done)

    # spec.verify removed: nothing claims the revision is verified any more.
    del obj["spec"]["verify"]
    done = await reconciler.reconcile(obj)
    assert _verified(done).status is None
    assert done.status["sourceVerificationMode"] is None
