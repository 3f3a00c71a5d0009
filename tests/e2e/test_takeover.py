"""Taking over from a running Flux: fluxd replaces the real controllers without a red flash.

Flux's own source-controller and kustomize-controller (built from the Go
module proxy) make a seed-like Kustomization Ready: a Secret from a
secretGenerator and a Deployment that mounts it. They stop, fluxd starts on
the same objects with empty storage. A watch from the test records every
status the GitRepository and the Kustomization go through meanwhile: none may
be Ready=False. The applied objects keep their uid and resourceVersion (nothing
re-created or re-applied with changes) and no ReplicaSet appears (nothing
rolled). Then fluxd applies a new commit as usual.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, ApiError, wait_for
from testenv.cluster import Cluster
from testenv.flux import FluxControllers, flux_only_crds
from testenv.gitserver import GitServer
from tests.support.crds import CRD_PATH, install_documents
from tests.support.daemon import Fluxd
from tests.support.flux import GIT_REPOSITORIES, KUSTOMIZATIONS, condition, secret

REPO = "team/app.git"
NAME = "app"
LABEL = "fluxd.test/takeover"
KUSTOMIZE = """apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
secretGenerator:
  - name: app-config
    files:
      - config.toml
generatorOptions:
  disableNameSuffixHash: true
"""
CONFIG = 'listen = "0.0.0.0:5000"\nremote = "203.0.113.10:443"\n'
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
        - name: app
          image: registry.invalid/app:1.0
          volumeMounts:
            - {name: config, mountPath: /etc/app}
      volumes:
        - name: config
          secret: {secretName: app-config}
"""


@dataclass
class StatusRecorder:
    """Every version of the objects under ``path`` the API server sends a watch."""

    api: Api
    path: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> StatusRecorder:
        listed = self.api.request("GET", self.path)
        self.seen.extend(listed.get("items", []))
        version = listed["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._run, args=(version,), daemon=True)
        self.thread.start()
        return self

    def _run(self, version: str) -> None:
        while not self.stopping.is_set():
            try:
                for event in self.api.watch(self.path, resource_version=version, timeout=5):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.seen.append(obj)
            except ApiError as error:
                if error.status != 410:
                    raise
                # Too old a version: carry on from a fresh list, which sees the current state.
                listed = self.api.request("GET", self.path)
                self.seen.extend(listed.get("items", []))
                version = listed["metadata"]["resourceVersion"]

    def stop(self) -> list[dict[str, Any]]:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), f"the watch of {self.path} did not stop"
        return self.seen


def ready_status(obj: dict[str, Any]) -> str | None:
    found = condition(obj)
    return None if found is None else str(found["status"])


def not_ready(seen: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(name, resourceVersion, Ready condition) of every recorded version that was Ready=False."""
    return [
        (obj["metadata"]["name"], obj["metadata"]["resourceVersion"], condition(obj))
        for obj in seen
        if ready_status(obj) == "False"
    ]


def identity(obj: dict[str, Any]) -> tuple[str, str, int]:
    metadata = obj["metadata"]
    return metadata["uid"], metadata["resourceVersion"], int(metadata.get("generation", 0))


@dataclass
class Handover:
    git: GitServer
    namespace: str
    workdir: Path
    flux: FluxControllers

    @property
    def repository_path(self) -> str:
        return f"{GIT_REPOSITORIES.format(ns=self.namespace)}/{NAME}"

    @property
    def kustomization_path(self) -> str:
        return f"{KUSTOMIZATIONS.format(ns=self.namespace)}/{NAME}"

    @property
    def secret_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets/app-config"

    @property
    def deployment_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.namespace}/deployments/app"

    def replica_sets(self, api: Api) -> set[str]:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/replicasets"
        return {rs["metadata"]["uid"] for rs in api.items(path)}


@pytest.fixture(scope="module")
def handover(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Handover]:
    api = cluster.api
    namespace = f"takeover-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("takeover")
    flux_crds = install_documents(api, flux_only_crds())
    cluster.create_namespace(namespace)
    flux = FluxControllers(cluster, workdir / "flux", label_selector=f"{LABEL}={namespace}")
    with GitServer(username="git", password="s3cret") as git:
        git.create_repo(REPO)
        git.commit(
            REPO,
            {
                "app/kustomization.yaml": KUSTOMIZE,
                "app/config.toml": CONFIG,
                "app/deployment.yaml": DEPLOYMENT,
            },
        )
        secret(api, namespace, "git-auth", {"username": "git", "password": "s3cret"})
        labels = {LABEL: namespace}
        api.apply(
            f"{GIT_REPOSITORIES.format(ns=namespace)}/{NAME}",
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
                "spec": {
                    "url": git.url(REPO),
                    "ref": {"branch": "main"},
                    # Long: after the first fetch only a request moves it.
                    "interval": "1h",
                    "secretRef": {"name": "git-auth"},
                },
            },
        )
        api.apply(
            f"{KUSTOMIZATIONS.format(ns=namespace)}/{NAME}",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
                "spec": {
                    "interval": "1h",
                    "path": "./app",
                    "prune": True,
                    "targetNamespace": namespace,
                    "sourceRef": {"kind": "GitRepository", "name": NAME},
                },
            },
        )
        try:
            flux.start()
            yield Handover(git, namespace, workdir, flux)
        finally:
            flux.stop()
            api.delete(f"/api/v1/namespaces/{namespace}")
            for name in flux_crds:
                api.delete(f"{CRD_PATH}/{name}")


def test_fluxd_takes_over_from_flux_without_a_red_flash(
    cluster: Cluster, handover: Handover
) -> None:
    api = cluster.api
    flux = handover.flux

    def flux_applied() -> bool:
        for controller in flux.controllers:
            controller.check_alive()
        ks = api.get(handover.kustomization_path)
        deployment = api.get_or_none(handover.deployment_path)
        return (
            ready_status(ks) == "True"
            and deployment is not None
            and deployment.get("status", {}).get("availableReplicas") == 1
            and deployment["status"].get("observedGeneration")
            == deployment["metadata"]["generation"]
        )

    try:
        wait_for(flux_applied, timeout=180, what="Flux to apply the Kustomization")
    except TimeoutError:
        pytest.fail(f"Flux never made the Kustomization Ready:\n{flux.log_tails()}")
    flux_artifact = api.get(handover.repository_path)["status"]["artifact"]
    flux_status = api.get(handover.kustomization_path)["status"]
    revision = flux_status["lastAppliedRevision"]
    assert flux_artifact["url"].startswith(f"http://127.0.0.1:{flux.storage_port}/")
    secret_before = identity(api.get(handover.secret_path))
    deployment_before = identity(api.get(handover.deployment_path))
    replica_sets = handover.replica_sets(api)
    assert len(replica_sets) == 1

    recorders = [
        StatusRecorder(api, GIT_REPOSITORIES.format(ns=handover.namespace)).start(),
        StatusRecorder(api, KUSTOMIZATIONS.format(ns=handover.namespace)).start(),
    ]
    flux.stop()
    daemon = Fluxd(cluster, handover.workdir / "fluxd", extra_args=["--lease-name=takeover"])
    daemon.start()
    try:
        storage = daemon.storage_url

        def restored() -> bool:
            artifact = api.get(handover.repository_path)["status"]["artifact"]
            return bool(artifact["url"].startswith(f"{storage}/"))

        wait_for(restored, timeout=60, what="fluxd to store the artifact again")

        def kustomization_reconciled() -> bool:
            daemon.check_alive()
            return any(
                record.get("msg") == "reconciled"
                and record.get("controllerKind") == "Kustomization"
                and record.get("namespace") == handover.namespace
                for record in daemon.log_records()
            )

        wait_for(kustomization_reconciled, timeout=60, what="fluxd to reconcile the Kustomization")
        repositories, kustomizations = (recorder.stop() for recorder in recorders)

        assert not_ready(repositories) == []
        assert not_ready(kustomizations) == []
        assert all(ready_status(obj) == "True" for obj in kustomizations), [
            condition(obj) for obj in kustomizations
        ]
        status = api.get(handover.kustomization_path)["status"]
        assert status["lastAppliedRevision"] == revision
        assert status["inventory"] == flux_status["inventory"]
        assert identity(api.get(handover.secret_path)) == secret_before
        assert identity(api.get(handover.deployment_path)) == deployment_before
        assert handover.replica_sets(api) == replica_sets

        # fluxd carries on as the owner: a new commit is fetched and applied.
        changed = CONFIG.replace("203.0.113.10", "203.0.113.20")
        sha = handover.git.commit(REPO, {"app/config.toml": changed}, message="app: move remote")
        api.merge_patch(
            handover.repository_path,
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "after-takeover"}}},
        )

        def applied_new_commit() -> bool:
            ks = api.get(handover.kustomization_path)
            return (
                ks["status"].get("lastAppliedRevision") == f"main@sha1:{sha}"
                and ready_status(ks) == "True"
            )

        wait_for(applied_new_commit, timeout=90, what="fluxd to apply the new commit")
        data = api.get(handover.secret_path)["data"]["config.toml"]
        assert base64.b64decode(data).decode() == changed
    finally:
        for recorder in recorders:
            recorder.stopping.set()
        # Deleted while fluxd runs, so it removes its finalizers.
        api.delete(handover.kustomization_path)
        api.delete(handover.repository_path)
        wait_for(
            lambda: (
                api.get_or_none(handover.kustomization_path) is None
                and api.get_or_none(handover.repository_path) is None
            ),
            timeout=60,
            what="the Flux objects finalized",
        )
        assert daemon.stop() == 0, daemon.log_tail()
