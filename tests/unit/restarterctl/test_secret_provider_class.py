"""SecretProviderClass restarts (Secrets Store CSI driver), as Reloader v1.4 does them.

Reloader watches SecretProviderClassPodStatus objects and acts on updates
only: when the digest of the mounted objects' ``id=version`` pairs changes,
the workloads mounting the SecretProviderClass through a CSI volume are
restarted, decided by the ``secretproviderclass.reloader.stakater.com/*``
annotations and the class's own ``ignore``/``match`` annotations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.restarter.restarter_objects import NAMESPACE, container, workload
from tests.unit.restarterctl.test_restarter_service import (
    FakeApi,
    env_in,
    eventually,
    running,
    settle,
)

CLASS = "vault-db"
ENV = "STAKATER_VAULT_DB_SECRETPROVIDERCLASS"
SPC_AUTO = {"secretproviderclass.reloader.stakater.com/auto": "true"}


def reloader_digest(objects: dict[str, str]) -> str:
    """Reloader's formula, written out independently: sorted id=version and the class name."""
    entries = sorted(
        [f"{key}={value}" for key, value in objects.items()] + [f"SecretProviderClassName={CLASS}"]
    )
    return hashlib.sha1(";".join(entries).encode()).hexdigest()


def provider_class(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": CLASS, "namespace": NAMESPACE}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata,
        "spec": {"provider": "vault"},
    }


def pod_status(objects: dict[str, str] | None, *, name: str = "pod-1-vault-db") -> dict[str, Any]:
    status: dict[str, Any] = {"secretProviderClassName": CLASS, "podName": "pod-1", "mounted": True}
    if objects is not None:
        status["objects"] = [{"id": key, "version": value} for key, value in objects.items()]
    return {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClassPodStatus",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "status": status,
    }


def csi_user(name: str = "realm-ix", **annotations: str) -> dict[str, Any]:
    return workload(
        name,
        annotations=annotations,
        containers=[container("sidecar"), container("realm", mounts=["secrets"])],
        volumes=[
            {
                "name": "secrets",
                "csi": {
                    "driver": "secrets-store.csi.k8s.io",
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": CLASS},
                },
            }
        ],
    )


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.csi = True
    fake.put(provider_class())
    fake.put(pod_status({"db-password": "v1"}))
    yield fake


async def test_a_rotated_secret_restarts_the_container_mounting_the_class(api: FakeApi) -> None:
    api.put(csi_user(**SPC_AUTO))
    api.put(workload("unrelated", annotations=SPC_AUTO))
    async with running(api, enable_csi_integration=True):
        await api.emit("MODIFIED", pod_status({"db-password": "v2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")
        await settle()
    [patch] = api.patches("realm-ix")
    assert env_in(patch) == {ENV: reloader_digest({"db-password": "v2"})}
    [touched] = patch["spec"]["template"]["spec"]["containers"]
    assert touched["name"] == "realm"
    assert api.patches("unrelated") == []


@pytest.mark.parametrize(
    ("annotations", "class_annotations", "restarts"),
    [
        pytest.param({"reloader.stakater.com/auto": "true"}, {}, True, id="generic-auto"),
        pytest.param(
            {"secretproviderclass.reloader.stakater.com/reload": CLASS}, {}, True, id="reload-list"
        ),
        pytest.param({"secret.reloader.stakater.com/auto": "true"}, {}, False, id="secret-auto"),
        pytest.param(SPC_AUTO, {"reloader.stakater.com/ignore": "true"}, False, id="ignored-class"),
        pytest.param(
            {**SPC_AUTO, "secretproviderclasses.exclude.reloader.stakater.com/reload": CLASS},
            {},
            False,
            id="excluded",
        ),
        pytest.param(
            {"reloader.stakater.com/search": "true"},
            {"reloader.stakater.com/match": "true"},
            True,
            id="search-match",
        ),
    ],
)
async def test_annotations_decide_as_for_secrets(
    api: FakeApi, annotations: dict[str, str], class_annotations: dict[str, str], restarts: bool
) -> None:
    api.put(provider_class(class_annotations))
    api.put(csi_user(**annotations))
    async with running(api, enable_csi_integration=True):
        await api.emit("MODIFIED", pod_status({"db-password": "v2"}))
        await settle()
    assert bool(api.patches("realm-ix")) is restarts


async def test_creations_deletions_and_unchanged_versions_restart_nothing(api: FakeApi) -> None:
    api.put(csi_user(**SPC_AUTO))
    async with running(api, enable_csi_integration=True):
        await api.emit("ADDED", pod_status({"db-password": "v9"}, name="pod-2-vault-db"))
        await api.emit("MODIFIED", pod_status({"db-password": "v1"}))
        await api.emit("DELETED", pod_status({"db-password": "v1"}))
        await settle()
    assert api.writes == []


async def test_a_status_that_gains_its_objects_counts_as_a_change(api: FakeApi) -> None:
    api.put(pod_status(None))
    api.put(csi_user(**SPC_AUTO))
    async with running(api, enable_csi_integration=True):
        await api.emit("MODIFIED", pod_status({"db-password": "v1"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")


async def test_without_the_setting_pod_statuses_are_not_watched(api: FakeApi) -> None:
    api.put(csi_user(**SPC_AUTO))
    async with running(api):
        await api.emit("MODIFIED", pod_status({"db-password": "v2"}))
        await settle()
    assert api.writes == []
    assert "SecretProviderClassPodStatus" not in {kind for kind, _ in api.lists}
