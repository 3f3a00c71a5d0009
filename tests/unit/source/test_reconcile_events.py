"""The events a GitRepository reconcile reports carry source-controller's reasons and messages.

Alerts and chat messages written for Flux quote them: a new artifact is
``NewArtifact`` "stored artifact for commit '<subject>'", a recovery with the
same artifact is ``Succeeded``, an unchanged source is ``GitOperationSucceeded``
and old artifacts deleted are ``GarbageCollectionSucceeded`` (both Trace: in the
cluster's Events, never notified).
A real git server, no cluster: the reconciler reads no Secret here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from fluxd.controllers.gitrepository import GitRepositoryReconciler
from fluxd.controllers.outcomes import EventNote, Transient
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import Storage
from testenv.gitserver import GitServer


class _NoIncludes:
    async def get_or_none(
        self, resource: object, name: str, *, namespace: str
    ) -> dict[str, Any] | None:
        return None


@pytest.fixture
def server() -> Iterator[GitServer]:
    with GitServer() as git:
        git.create_repo("apps.git")
        yield git


@pytest.fixture
def reconciler(tmp_path: Path) -> GitRepositoryReconciler:
    return GitRepositoryReconciler(
        kube=cast(Kube, _NoIncludes()),
        storage=Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=2),
        settings=Settings(),
    )


def _repository(server: GitServer) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "apps", "name": "podinfo", "generation": 1},
        "spec": {"url": server.url("apps.git"), "ref": {"branch": "main"}},
    }


async def test_a_new_artifact_is_named_by_its_commit_subject(
    server: GitServer, reconciler: GitRepositoryReconciler
) -> None:
    server.commit("apps.git", {"app.yaml": "v1"}, branch="main", message="Add podinfo\n\nbody")
    obj = _repository(server)
    done = await reconciler.reconcile(obj)
    artifact = done.status["artifact"]
    assert done.events == [
        EventNote(
            "Normal",
            "NewArtifact",
            "stored artifact for commit 'Add podinfo'",
            metadata={"revision": artifact["revision"], "digest": artifact["digest"]},
        )
    ]

    obj["status"] = done.status
    again = await reconciler.reconcile(obj)
    assert again.events == [
        EventNote(
            "Trace",
            "GitOperationSucceeded",
            f"no changes since last reconciliation: observed revision '{artifact['revision']}'",
        )
    ]


async def test_a_long_subject_is_cut_as_flux_cuts_it(
    server: GitServer, reconciler: GitRepositoryReconciler
) -> None:
    subject = "Bump podinfo to 6.7.1 and the redis sidecar to 7.4.2 everywhere"
    server.commit("apps.git", {"app.yaml": "v1"}, branch="main", message=subject)
    done = await reconciler.reconcile(_repository(server))
    [event] = done.events
    assert event.message == f"stored artifact for commit '{subject[:50]}...'"


async def test_recovering_with_the_same_artifact_reports_succeeded(
    server: GitServer, reconciler: GitRepositoryReconciler
) -> None:
    server.commit("apps.git", {"app.yaml": "v1"}, branch="main", message="Add podinfo")
    obj = _repository(server)
    obj["status"] = (await reconciler.reconcile(obj)).status
    obj["status"]["conditions"] = [
        {"type": "FetchFailed", "status": "True", "reason": "GitOperationFailed", "message": "x"}
    ]
    done = await reconciler.reconcile(obj)
    revision = done.status["artifact"]["revision"]
    assert [(e.type, e.reason, e.message) for e in done.events] == [
        ("Normal", "Succeeded", f"stored artifact for commit '{revision}'"),
        (
            "Trace",
            "GitOperationSucceeded",
            f"no changes since last reconciliation: observed revision '{revision}'",
        ),
    ]


async def test_old_artifacts_deleted_are_reported_as_garbage_collected(
    server: GitServer, reconciler: GitRepositoryReconciler
) -> None:
    obj = _repository(server)
    reasons = []
    for version in ("v1", "v2", "v3"):  # the store keeps two (retention=2)
        server.commit("apps.git", {"app.yaml": version}, branch="main", message=version)
        done = await reconciler.reconcile(obj)
        obj["status"] = done.status
        reasons.append([(e.type, e.reason, e.message) for e in done.events][1:])
    assert reasons == [
        [],
        [],
        [("Trace", "GarbageCollectionSucceeded", "garbage collected 1 artifacts")],
    ]


async def test_a_failed_fetch_is_reported_in_source_controllers_words(
    server: GitServer, reconciler: GitRepositoryReconciler
) -> None:
    server.commit("apps.git", {"app.yaml": "v1"}, branch="main", message="Add podinfo")
    obj = _repository(server)
    obj["spec"]["ref"] = {"branch": "nope"}
    with pytest.raises(Transient) as failed:
        await reconciler.reconcile(obj)
    assert failed.value.reason == "GitOperationFailed"
    assert failed.value.message.startswith("failed to checkout and determine revision: ")
    assert "nope" in failed.value.message
