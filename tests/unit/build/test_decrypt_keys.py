"""Which Secret a Kustomization's decryption keys come from, as kustomize-controller chooses."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, cast

import pytest

from fluxd.build import BuildCache
from fluxd.controllers.kustomization import KustomizationReconciler
from fluxd.controllers.outcomes import Transient
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import ArtifactCache
from tests.support.sops import age_key
from tests.unit.kustomizationctl.conftest import FakeCluster

LOCAL = age_key()
GLOBAL = age_key()


def secret(namespace: str, name: str, entries: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value).decode() for key, value in entries.items()},
    }


def reconciler(tmp_path: Path, *, sops_age_secret: str = "") -> KustomizationReconciler:
    cluster = FakeCluster()
    cluster.put(secret("apps", "local", {"a.agekey": LOCAL.identity.encode(), "b.asc": b"k"}))
    cluster.put(
        secret("fluxd-system", "global", {"g.agekey": GLOBAL.identity.encode(), "p.asc": b"k"})
    )
    return KustomizationReconciler(
        kube=cast(Kube, cluster),
        settings=Settings(sops_age_secret=sops_age_secret),
        artifacts=ArtifactCache(tmp_path / "s", max_entries=1, workdir=tmp_path / "x"),
        build_cache=BuildCache(max_entries=1),
    )


@pytest.fixture(autouse=True)
def own_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "fluxd-system")


async def test_the_secret_ref_wins_over_the_daemon_wide_secret(tmp_path: Path) -> None:
    spec = {"decryption": {"provider": "sops", "secretRef": {"name": "local"}}}

    keys = await reconciler(tmp_path, sops_age_secret="global")._decryption_keys(
        spec, "apps", attempted={}
    )

    assert keys.age_identities == (LOCAL.identity,)
    assert [name for name, _ in keys.pgp_keys] == ["b.asc"]


async def test_without_a_secret_ref_the_daemon_wide_secret_gives_its_age_keys(
    tmp_path: Path,
) -> None:
    spec = {"decryption": {"provider": "sops"}}

    keys = await reconciler(tmp_path, sops_age_secret="global")._decryption_keys(
        spec, "apps", attempted={}
    )

    assert keys.age_identities == (GLOBAL.identity,)
    assert keys.pgp_keys == ()
    assert keys.origin == "Secret 'fluxd-system/global'"


async def test_without_either_there_are_no_keys(tmp_path: Path) -> None:
    keys = await reconciler(tmp_path)._decryption_keys(
        {"decryption": {"provider": "sops"}}, "apps", attempted={}
    )

    assert keys.empty


async def test_a_missing_decryption_secret_fails_the_build_by_name(tmp_path: Path) -> None:
    spec = {"decryption": {"provider": "sops", "secretRef": {"name": "absent"}}}

    with pytest.raises(Transient) as caught:
        await reconciler(tmp_path)._decryption_keys(spec, "apps", attempted={})

    assert caught.value.reason == "BuildFailed"
    assert "sops decryption Secret 'apps/absent' not found" in str(caught.value)
