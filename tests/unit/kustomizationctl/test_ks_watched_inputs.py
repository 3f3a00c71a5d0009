"""The ConfigMap/Secret → Kustomization index behind watched inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from fluxd.build import BuildCache
from fluxd.controllers.kustomization import KustomizationReconciler
from fluxd.kube.client import Kube
from fluxd.kube.informer import Change
from fluxd.settings import Settings
from fluxd.source import ArtifactCache

from .conftest import FakeCluster


def kustomization(name: str, *refs: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {
            "sourceRef": {"kind": "GitRepository", "name": "src"},
            "postBuild": {"substituteFrom": list(refs)},
        },
    }


def test_users_of_substitution_inputs_follow_the_informer(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    reconciler = KustomizationReconciler(
        kube=cast(Kube, cluster),
        settings=Settings(),
        artifacts=ArtifactCache(tmp_path / "s", max_entries=2, workdir=tmp_path / "x"),
        build_cache=BuildCache(max_entries=2),
    )
    vars_cm = {"kind": "ConfigMap", "name": "vars"}
    reconciler.index(Change.ADDED, kustomization("a", vars_cm), None)
    reconciler.index(
        Change.ADDED,
        kustomization("b", vars_cm, {"kind": "Secret", "name": "vars", "optional": True}),
        None,
    )
    assert reconciler.substituting_from("ConfigMap", "ns", "vars") == {("ns", "a"), ("ns", "b")}
    # A Secret and a ConfigMap of one name are different inputs.
    assert reconciler.substituting_from("Secret", "ns", "vars") == {("ns", "b")}

    reconciler.index(Change.MODIFIED, kustomization("a"), kustomization("a", vars_cm))
    assert reconciler.substituting_from("ConfigMap", "ns", "vars") == {("ns", "b")}
    reconciler.index(Change.DELETED, kustomization("b"), None)
    assert reconciler.substituting_from("Secret", "ns", "vars") == set()
