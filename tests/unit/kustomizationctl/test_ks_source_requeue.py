"""A source's new artifact reaches the Kustomizations built from it at once.

A new process refills its storage by storing every source again: the revision
is the one already applied, but the file, its url and often its digest are
new. The Kustomizations deferred on the missing file must be requested then,
not at their next poll; a new revision must also cut a running health wait short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from fluxd.controllers.kustomization import KustomizationReconciler, wire
from fluxd.controllers.manager import Components
from fluxd.controllers.runtime import Controller
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Change, Key
from fluxd.settings import Settings

from .conftest import FakeCluster

REVISION = "main@sha1:" + "a" * 40
FLUX_ARTIFACT = {
    "revision": REVISION,
    "digest": "sha256:" + "1" * 64,
    "path": "gitrepository/ns/src/" + "a" * 40 + ".tar.gz",
    "url": "http://source-controller.flux-system.svc/gitrepository/ns/src/x.tar.gz",
    "lastUpdateTime": "2026-01-01T00:00:00Z",
}


@dataclass
class SourceController:
    """The GitRepository controller as ``wire`` sees it: a kind and its hooks."""

    kind: str = "GitRepository"
    after_reconcile: list[Any] = field(default_factory=list)
    requested: list[Key] = field(default_factory=list)
    # Its cache, which wire hands to the Kustomizations; these tests never read through it.
    informer: object = field(default_factory=object)

    def request(self, namespace: str, name: str) -> None:
        self.requested.append((namespace, name))


@dataclass
class Wired:
    source: SourceController
    kustomizations: Controller
    requested: list[Key]

    @property
    def reconciler(self) -> KustomizationReconciler:
        return cast(KustomizationReconciler, self.kustomizations.reconciler)

    def stored(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """The GitRepository reconciled from artifact ``old`` to ``new``."""
        for hook in self.source.after_reconcile:
            hook(repository(old), repository(new))


def repository(artifact: dict[str, Any]) -> Object:
    status = {"artifact": artifact} if artifact else {}
    return {"metadata": {"namespace": "ns", "name": "src"}, "status": status}


@pytest.fixture
async def wired(tmp_path: Path, cluster: FakeCluster) -> Wired:
    source = SourceController()
    components = Components(controllers=[cast(Controller, source)])
    await wire(
        kube=cast(Kube, cluster),
        recorder=cast(EventRecorder, object()),
        settings=Settings(storage_path=str(tmp_path)),
        components=components,
    )
    kustomizations = components.controller("Kustomization")
    assert kustomizations is not None
    requested: list[Key] = []
    kustomizations.request = lambda namespace, name: requested.append((namespace, name))  # type: ignore[method-assign]
    reconciler = cast(KustomizationReconciler, kustomizations.reconciler)
    for name, source_name in (("app", "src"), ("other", "elsewhere")):
        reconciler.index(
            Change.ADDED,
            {
                "metadata": {"namespace": "ns", "name": name, "generation": 1},
                "spec": {"sourceRef": {"kind": "GitRepository", "name": source_name}},
            },
            None,
        )
    return Wired(source, kustomizations, requested)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"digest": "sha256:" + "2" * 64}, id="digest"),
        pytest.param({"url": "http://fluxd.flux-system.svc/ns/src/x.tar.gz"}, id="url"),
        pytest.param({"lastUpdateTime": "2026-01-01T00:05:00Z"}, id="lastUpdateTime"),
    ],
)
def test_the_same_revision_stored_again_requests_its_users(
    wired: Wired, changed: dict[str, str]
) -> None:
    wired.stored(FLUX_ARTIFACT, {**FLUX_ARTIFACT, **changed})
    assert wired.requested == [("ns", "app")]


def test_a_status_patch_that_keeps_the_artifact_requests_nobody(wired: Wired) -> None:
    wired.stored(FLUX_ARTIFACT, dict(FLUX_ARTIFACT))
    assert wired.requested == []


def test_a_first_artifact_requests_its_users(wired: Wired) -> None:
    wired.stored({}, FLUX_ARTIFACT)
    assert wired.requested == [("ns", "app")]


async def test_only_new_content_cuts_a_health_wait_short(wired: Wired) -> None:
    waiting = anyio.Event()
    wired.reconciler.interrupts[("ns", "app")] = waiting
    wired.stored(FLUX_ARTIFACT, {**FLUX_ARTIFACT, "url": "http://fluxd/x.tar.gz"})
    assert not waiting.is_set()
    wired.stored(FLUX_ARTIFACT, {**FLUX_ARTIFACT, "revision": "main@sha1:" + "b" * 40})
    assert waiting.is_set()
    assert wired.requested == [("ns", "app"), ("ns", "app")]


async def test_an_oci_repository_artifact_requests_the_kustomizations_built_from_it(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    git, oci = SourceController(), SourceController(kind="OCIRepository")
    components = Components(controllers=[cast(Controller, git), cast(Controller, oci)])
    await wire(
        kube=cast(Kube, cluster),
        recorder=cast(EventRecorder, object()),
        settings=Settings(storage_path=str(tmp_path)),
        components=components,
    )
    kustomizations = components.controller("Kustomization")
    assert kustomizations is not None
    requested: list[Key] = []
    kustomizations.request = lambda namespace, name: requested.append((namespace, name))  # type: ignore[method-assign]
    reconciler = cast(KustomizationReconciler, kustomizations.reconciler)
    for name, kind in (("from-git", "GitRepository"), ("from-oci", "OCIRepository")):
        reconciler.index(
            Change.ADDED,
            {
                "metadata": {"namespace": "ns", "name": name, "generation": 1},
                "spec": {"sourceRef": {"kind": kind, "name": "src"}},
            },
            None,
        )
    oci_artifact = {**FLUX_ARTIFACT, "revision": "production@sha256:" + "c" * 64}
    for hook in oci.after_reconcile:
        hook(repository({}), repository(oci_artifact))
    assert requested == [("ns", "from-oci")]
    # A missing OCI artifact asks the OCIRepository controller to store it again.
    reconciler.request_source["OCIRepository"]("ns", "src")
    assert oci.requested == [("ns", "src")] and git.requested == []
