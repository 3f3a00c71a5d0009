"""The reconciler's own logic: artifacts from storage, indexes, dependency checks."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from fluxd.build import BuildCache
from fluxd.controllers.kustomization import KustomizationReconciler
from fluxd.controllers.outcomes import Deferred, Stalled, Transient, Waiting
from fluxd.kube.client import Kube
from fluxd.kube.informer import Change
from fluxd.settings import Settings
from fluxd.source import ArtifactCache, ArtifactUnavailable

from .conftest import FakeCluster


def store_artifact(root: Path, files: dict[str, str], name: str = "abc") -> dict[str, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    relpath = f"gitrepository/ns/src/{name}.tar.gz"
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return {"path": relpath, "digest": f"sha256:{hashlib.sha256(buffer.getvalue()).hexdigest()}"}


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactCache:
    cache = ArtifactCache(tmp_path / "storage", max_entries=2, workdir=tmp_path / "extracted")
    return cache


async def test_an_artifact_is_extracted_once_per_digest(artifacts: ArtifactCache) -> None:
    artifact = store_artifact(artifacts.root, {"realm/ix/realm_ix.toml": "a = 1\n"})
    first = await artifacts.extract(artifact)
    assert (first / "realm/ix/realm_ix.toml").read_text() == "a = 1\n"
    (artifacts.root / artifact["path"]).unlink()
    assert await artifacts.extract(artifact) == first


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        pytest.param({"digest": "sha256:" + "0" * 64}, "digest mismatch", id="digest-mismatch"),
        pytest.param({"path": "../../etc/passwd"}, "outside the storage", id="outside-storage"),
        pytest.param({"path": "gitrepository/ns/src/gone.tar.gz"}, "cannot read", id="missing"),
    ],
)
async def test_a_bad_artifact_is_refused(
    artifacts: ArtifactCache, tamper: dict[str, str], message: str
) -> None:
    artifact = {**store_artifact(artifacts.root, {"a.yaml": "x"}), **tamper}
    with pytest.raises(ArtifactUnavailable, match=message):
        await artifacts.extract(artifact)


async def test_extractions_are_bounded(artifacts: ArtifactCache) -> None:
    extracted = [
        await artifacts.extract(store_artifact(artifacts.root, {"f": str(n)}, name=f"c{n}"))
        for n in range(4)
    ]
    assert [path.exists() for path in extracted] == [False, False, True, True]


def kustomization(
    name: str, *, source: str = "src", depends: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {
            "sourceRef": {"kind": "GitRepository", "name": source},
            "dependsOn": [{"name": dep} for dep in depends],
        },
    }


@pytest.fixture
def reconciler(cluster: FakeCluster, artifacts: ArtifactCache) -> KustomizationReconciler:
    return KustomizationReconciler(
        kube=cast(Kube, cluster),
        settings=Settings(requeue_dependency=30.0),
        artifacts=artifacts,
        build_cache=BuildCache(max_entries=4),
    )


def test_indexes_follow_the_informer(reconciler: KustomizationReconciler) -> None:
    reconciler.index(Change.ADDED, kustomization("a"), None)
    reconciler.index(Change.ADDED, kustomization("b", depends=("a",)), None)
    assert reconciler.users_of("GitRepository", "ns", "src") == {("ns", "a"), ("ns", "b")}
    assert reconciler.dependents[("ns", "a")] == {("ns", "b")}

    moved = kustomization("b", source="other")
    reconciler.index(Change.MODIFIED, moved, kustomization("b", depends=("a",)))
    assert reconciler.users_of("GitRepository", "ns", "src") == {("ns", "a")}
    assert reconciler.users_of("GitRepository", "ns", "other") == {("ns", "b")}
    assert reconciler.dependents[("ns", "a")] == set()

    reconciler.index(Change.DELETED, kustomization("a"), None)
    assert reconciler.users_of("GitRepository", "ns", "src") == set()


def test_a_spec_change_interrupts_a_running_wait(reconciler: KustomizationReconciler) -> None:
    event = anyio.Event()
    reconciler.interrupts[("ns", "a")] = event
    old = kustomization("a")
    reconciler.index(Change.MODIFIED, old, old)
    assert not event.is_set()
    new = kustomization("a")
    new["metadata"]["generation"] = 2
    reconciler.index(Change.MODIFIED, new, old)
    assert event.is_set()


def dependency(
    *,
    ready: bool,
    generation: int = 1,
    observed: int = 1,
    applied: str = "r1",
    attempted: str = "r1",
) -> dict[str, Any]:
    obj = kustomization("dep")
    obj["metadata"]["generation"] = generation
    obj["status"] = {
        "observedGeneration": observed,
        "lastAppliedRevision": applied,
        "lastAttemptedRevision": attempted,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return obj


@pytest.mark.parametrize(
    ("dep", "message"),
    [
        pytest.param(None, "dependency 'ns/dep' not found", id="missing"),
        pytest.param(dependency(ready=False), "dependency 'ns/dep' is not ready", id="not-ready"),
        pytest.param(
            dependency(ready=True, generation=2),
            "dependency 'ns/dep' is not ready",
            id="stale-generation",
        ),
        pytest.param(
            dependency(ready=True, attempted="r2"),
            "dependency 'ns/dep' revision is not up to date",
            id="attempt-pending",
        ),
        pytest.param(
            dependency(ready=True, applied="r0", attempted="r0"),
            "dependency 'ns/dep' revision is not up to date",
            id="same-source-behind",
        ),
        pytest.param(dependency(ready=True), None, id="ready"),
    ],
)
async def test_dependencies_must_be_ready_and_current(
    reconciler: KustomizationReconciler,
    cluster: FakeCluster,
    dep: dict[str, Any] | None,
    message: str | None,
) -> None:
    if dep is not None:
        dep.update({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization"})
        cluster.put(dep)
    waiting = kustomization("app", depends=("dep",))
    if message is None:
        await reconciler._check_dependencies(waiting, {"revision": "r1"})
        return
    with pytest.raises(Waiting) as raised:
        await reconciler._check_dependencies(waiting, {"revision": "r1"})
    assert raised.value.message == message
    assert raised.value.reason == "DependencyNotReady"
    assert raised.value.requeue_after == 30.0


async def test_a_missing_artifact_is_waited_for_quietly_then_reported(
    reconciler: KustomizationReconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process starts with empty storage: no Ready=False while the source re-stores."""
    artifact = {
        "path": "gitrepository/ns/src/0123.tar.gz",
        "digest": "sha256:" + "1" * 64,
        "revision": "main@sha1:" + "0" * 40,
    }
    asked: list[tuple[str, str]] = []
    reconciler.request_source["GitRepository"] = lambda namespace, name: asked.append(
        (namespace, name)
    )
    obj = {**kustomization("a"), "spec": {**kustomization("a")["spec"], "path": "./"}}
    clock = [100.0]
    monkeypatch.setattr("fluxd.controllers.kustomization.time.monotonic", lambda: clock[0])

    with pytest.raises(Deferred) as deferred:
        await reconciler._build(obj, artifact, attempted={})
    assert deferred.value.requeue_after <= 2.0 and deferred.value.event is False
    assert asked == [("ns", "src")]

    clock[0] += 31.0  # the source never stored it: say so
    with pytest.raises(Transient) as failed:
        await reconciler._build(obj, artifact, attempted={})
    assert failed.value.reason == "ArtifactFailed"
    assert "cannot read artifact" in failed.value.message


class StatusRecorder:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    async def patch_status(
        self, resource: Any, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        self.patches.append(status)
        return {}


async def test_a_new_revision_shows_progress_before_the_build(
    artifacts: ArtifactCache,
) -> None:
    kube = StatusRecorder()
    reconciler = KustomizationReconciler(
        kube=cast(Kube, kube), settings=Settings(), artifacts=artifacts, build_cache=BuildCache()
    )
    obj = kustomization("a")
    obj["spec"]["interval"] = "5m"  # Flux's default timeout: the interval less 30s
    obj["status"] = {
        "observedGeneration": 1,
        "lastAttemptedRevision": "main@sha1:old",
        "lastAppliedRevision": "main@sha1:old",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
    }

    await reconciler._mark_progressing(obj, "main@sha1:new")

    (patch,) = kube.patches
    by_type = {c["type"]: c for c in patch["conditions"]}
    assert by_type["Ready"]["status"] == "Unknown"
    assert by_type["Ready"]["reason"] == "Progressing"
    assert by_type["Reconciling"]["message"] == (
        "Fetching manifests for revision main@sha1:new with a timeout of 4m30s"
    )
    # A dependent reading it now waits: the dependency is not Ready.
    assert obj["status"]["conditions"] == patch["conditions"]

    obj["status"]["lastAttemptedRevision"] = "main@sha1:new"
    await reconciler._mark_progressing(obj, "main@sha1:new")
    assert len(kube.patches) == 1  # an unchanged revision is not re-announced


async def test_an_oci_repository_is_a_source_and_an_unknown_kind_is_refused(
    reconciler: KustomizationReconciler, cluster: FakeCluster
) -> None:
    artifact = {"path": "ocirepository/ns/src/sha256:abc.tar.gz", "revision": "v1@sha256:abc"}
    cluster.objects[("OCIRepository", "ns", "src")] = {
        "metadata": {"name": "src", "namespace": "ns"},
        "status": {"artifact": artifact},
    }
    obj = kustomization("a")
    obj["spec"]["sourceRef"] = {"kind": "OCIRepository", "name": "src"}
    assert await reconciler._artifact(obj) == artifact

    obj["spec"]["sourceRef"] = {"kind": "HelmChart", "name": "src"}
    with pytest.raises(Stalled) as refused:
        await reconciler._artifact(obj)
    assert refused.value.message == "source 'src' kind 'HelmChart' not supported"
