"""``spec.kubeConfig``: the Kustomization's objects live in the remote cluster, its status here."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, cast

import pytest

from fluxd.build import BuildCache
from fluxd.controllers.kustomization import KustomizationReconciler
from fluxd.controllers.outcomes import Stalled, Transient
from fluxd.kube import remote as remote_module
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import ArtifactCache
from testenv.certs import Pki, write_pki
from tests.support.remote import embedded_kubeconfig

from .conftest import FakeCluster

SERVER = "https://10.9.8.7:6443"
OWNER = {
    "kustomize.toolkit.fluxcd.io/name": "backend",
    "kustomize.toolkit.fluxcd.io/namespace": "apps",
}


class ClosableCluster(FakeCluster):
    closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def local(pki: Pki) -> FakeCluster:
    cluster = FakeCluster()
    text = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t"})
    cluster.put(
        {
            "kind": "Secret",
            "metadata": {"name": "prod-kubeconfig", "namespace": "apps"},
            "data": {"value.yaml": base64.b64encode(text.encode()).decode()},
        }
    )
    return cluster


@pytest.fixture
def reconciler(local: FakeCluster, tmp_path: Path) -> KustomizationReconciler:
    return KustomizationReconciler(
        kube=cast(Kube, local),
        settings=Settings(),
        artifacts=ArtifactCache(tmp_path / "storage", max_entries=2, workdir=tmp_path / "x"),
        build_cache=BuildCache(max_entries=4),
    )


def _kustomization(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "backend", "namespace": "apps", "generation": 1},
        "spec": {
            "interval": "5m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "src"},
            "kubeConfig": {"secretRef": {"name": "prod-kubeconfig"}},
            **spec,
        },
        "status": {"inventory": {"entries": [{"id": "apps_settings__ConfigMap", "v": "v1"}]}},
    }


def _settings_map(cluster: FakeCluster) -> None:
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "apps", "labels": dict(OWNER)},
        }
    )


async def test_deletion_collects_garbage_in_the_remote_cluster_only(
    reconciler: KustomizationReconciler, local: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ClosableCluster()
    _settings_map(remote)
    _settings_map(local)  # same name here: must be left alone
    servers: list[str] = []

    def connect(config: remote_module.RemoteConfig) -> Kube:
        servers.append(config.server)
        return cast(Kube, remote)

    monkeypatch.setattr(remote_module, "connect", connect)

    await reconciler.finalize(_kustomization())

    assert servers == [SERVER]
    assert remote.get("ConfigMap", "apps", "settings") is None
    assert local.get("ConfigMap", "apps", "settings") is not None
    reconciler.forget(("apps", "backend"))
    await reconciler.remotes.close_retired()
    assert remote.closed


async def test_the_service_account_is_impersonated_in_the_remote_cluster(
    reconciler: KustomizationReconciler,
) -> None:
    obj = _kustomization(serviceAccountName="deployer")
    target = await reconciler._kube_for(obj)
    try:
        assert target.host == SERVER
        assert target._headers == {"Impersonate-User": "system:serviceaccount:apps:deployer"}
    finally:
        await reconciler.remotes.close()


async def test_a_missing_kubeconfig_secret_fails_the_reconcile_as_flux_does(
    reconciler: KustomizationReconciler,
) -> None:
    obj = _kustomization(kubeConfig={"secretRef": {"name": "stage-kubeconfig"}})
    with pytest.raises(Transient) as raised:
        await reconciler._kube_for(obj, attempted={"lastAttemptedRevision": "main@sha1:abc"})
    failure = raised.value
    assert failure.reason == "ReconciliationFailed"
    assert failure.message == (
        "unable to read KubeConfig secret 'apps/stage-kubeconfig' error: "
        'secrets "stage-kubeconfig" not found'
    )
    assert failure.status == {"lastAttemptedRevision": "main@sha1:abc"}


async def test_dropping_kubeconfig_from_the_spec_closes_the_remote_client(
    reconciler: KustomizationReconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ClosableCluster()
    monkeypatch.setattr(remote_module, "connect", lambda config: cast(Kube, remote))
    obj = _kustomization()
    assert await reconciler._kube_for(obj) is cast(Kube, remote)

    del obj["spec"]["kubeConfig"]
    target = await reconciler._kube_for(obj)
    await reconciler.remotes.close_retired()

    assert target is reconciler.kube
    assert remote.closed


async def test_a_refused_kubeconfig_never_falls_back_to_this_cluster(
    reconciler: KustomizationReconciler, local: FakeCluster
) -> None:
    _settings_map(local)  # same name and owner as the remote object: must be left alone
    obj = _kustomization(kubeConfig={"configMapRef": {"name": "eks"}})

    with pytest.raises(Stalled) as raised:
        await reconciler._kube_for(obj)
    assert raised.value.reason == "UnsupportedField"
    assert raised.value.message.startswith("spec.kubeConfig.configMapRef is not supported")

    await reconciler.finalize(obj)
    assert local.get("ConfigMap", "apps", "settings") is not None
