"""The real ``flux`` CLI (v2.9.5, built from flux2's module) against fluxd on a real control plane.

A Flux user's tools must work unchanged: ``flux check`` finds fluxd's
Deployment and CRDs by Flux's install labels, ``flux version`` reads the
distribution from them, and the get / reconcile / tree / trace / events /
debug commands read and write fluxd's objects as they do Flux's.

``flux logs`` reads pod logs through the kubelet, which the fake nodes of the
test cluster do not serve; the shape of fluxd's log lines is held to what
``flux logs`` decodes in tests/unit/runtime/test_logs.py instead.

The Deployment is the installed one (manifests/, rendered by kustomize) in the
watched namespace; the fake nodes run its pod, so it becomes ready as it would
in a cluster. The daemon itself runs as a local process (tests/support/daemon).
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.seedflow import KUSTOMIZATION
from testenv import build
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.flux import (
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    secret,
    wait_condition,
)
from tests.support.install import MANIFESTS, find, kustomize

USER, TOKEN = "k3s", "gitea-pat-0123456789abcdef"
SEED_FILES: dict[str, str | bytes | None] = {
    "realm/ix/kustomization.yaml": KUSTOMIZATION,
    "realm/ix/realm_ix.toml": "[network]\nuse_udp = true\n",
}
FLUX_VERSION = f"v{build.FLUX_VERSION}"
FLUXD_VERSION = "v0.1.0"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line]


@dataclass
class Setup:
    """fluxd, the namespace it watches (with its Deployment), a ready source and Kustomization."""

    flux: Path
    home: Path
    cluster: Cluster
    daemon: Fluxd
    git: GitServer
    namespace: str
    repo: str
    source: str
    kustomization: str
    sha: str

    def run(self, *args: str, timeout: float = 120) -> Run:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            # `flux check` asks GitHub for the latest release; the tests do not reach out.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        argv = [str(self.flux), *args, f"--kubeconfig={self.cluster.kubeconfig}"]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        return Run(done.returncode, done.stdout, done.stderr)


def _columns(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("\t")] for line in text.splitlines() if line]


def _install_deployment(api: Api, namespace: str) -> None:
    """The Deployment (and its ServiceAccount) exactly as `kubectl apply -k manifests/` makes it."""
    installed = kustomize(MANIFESTS)
    account = find(installed, "ServiceAccount", "fluxd")
    deployment = find(installed, "Deployment", "fluxd")
    for obj, path in (
        (account, f"/api/v1/namespaces/{namespace}/serviceaccounts/fluxd"),
        (deployment, f"/apis/apps/v1/namespaces/{namespace}/deployments/fluxd"),
    ):
        body: dict[str, Any] = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        api.apply(path, body)

    def available() -> bool:
        live = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/fluxd")
        status = live.get("status", {})
        return bool(
            status.get("observedGeneration") == live["metadata"]["generation"]
            and status.get("availableReplicas") == 1
        )

    wait_for(available, timeout=120, what="fluxd's Deployment available on the fake nodes")


@pytest.fixture(scope="module")
def setup(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    flux = build.ensure_binaries(build.FLUX_CLI) / "flux"
    namespace = f"fluxcli-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace)
    api = cluster.api
    secret(api, namespace, "gitea-auth", {"username": USER, "password": TOKEN})
    _install_deployment(api, namespace)
    with GitServer(username=USER, password=TOKEN, default_branch="master") as git:
        daemon = Fluxd(
            cluster,
            tmp_path_factory.mktemp("fluxd-flux-cli"),
            extra_args=[
                "--lease-name=flux-cli-tests",
                f"--watch-namespaces={namespace}",
                "--max-retry-delay=5s",
                "--restarter=false",
            ],
        ).start()
        try:
            repo = f"k3s/{uuid.uuid4().hex[:8]}.git"
            git.create_repo(repo)
            sha = git.commit(repo, SEED_FILES, message="Seed the realm config")
            git_repository(
                api,
                namespace,
                "realm",
                {"interval": "10m", "url": git.url(repo), "secretRef": {"name": "gitea-auth"}},
            )
            kustomization(
                api,
                namespace,
                "realm-ix",
                {
                    "interval": "10m",
                    "path": "./realm/ix",
                    "prune": True,
                    "targetNamespace": namespace,
                    "sourceRef": {"kind": "GitRepository", "name": "realm"},
                },
            )
            wait_condition(api, git_repository_path(namespace, "realm"))
            wait_condition(api, kustomization_path(namespace, "realm-ix"), timeout=120)
            yield Setup(
                flux=flux,
                home=tmp_path_factory.mktemp("flux-home"),
                cluster=cluster,
                daemon=daemon,
                git=git,
                namespace=namespace,
                repo=repo,
                source="realm",
                kustomization="realm-ix",
                sha=sha,
            )
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
            api.delete(f"/api/v1/namespaces/{namespace}")


def test_flux_check_pre_passes(setup: Setup) -> None:
    result = setup.run("check", "--pre")
    assert result.code == 0, result.err
    assert result.lines[-1] == "✔ prerequisites checks passed"
    assert any(line.startswith("✔ Kubernetes 1.34") for line in result.lines), result.err


def test_flux_check_finds_fluxds_deployment_image_and_crds(setup: Setup) -> None:
    result = setup.run("check", "-n", setup.namespace)
    assert result.code == 0, result.err
    lines = result.lines
    assert f"✔ distribution: flux-{FLUXD_VERSION}" in lines
    assert "✔ fluxd: deployment ready" in lines
    assert "► ghcr.io/fluxd/fluxd:0.1.0" in lines
    served = [
        "alerts.notification.toolkit.fluxcd.io/v1beta3",
        "gitrepositories.source.toolkit.fluxcd.io/v1",
        "kustomizations.kustomize.toolkit.fluxcd.io/v1",
        "ocirepositories.source.toolkit.fluxcd.io/v1",
        "providers.notification.toolkit.fluxcd.io/v1beta3",
        "receivers.notification.toolkit.fluxcd.io/v1",
    ]
    assert sorted(line[2:] for line in lines if line[2:] in served) == served
    assert lines[-1] == "✔ all checks passed"


def test_flux_version_reports_the_distribution_and_fluxd(setup: Setup) -> None:
    result = setup.run("version", "-n", setup.namespace)
    assert result.code == 0, result.err
    assert yaml.safe_load(result.out) == {
        "flux": FLUX_VERSION,
        "distribution": f"flux-{FLUXD_VERSION}",
        "fluxd": "0.1.0",
    }


def test_flux_get_sources_git(setup: Setup) -> None:
    result = setup.run("get", "sources", "git", "-n", setup.namespace)
    assert result.code == 0, result.err
    header, *rows = _columns(result.out)
    assert header == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    [row] = [r for r in rows if r[0] == setup.source]
    assert row[1].startswith("master@sha1:")
    assert row[2:4] == ["False", "True"]
    assert row[4].startswith("stored artifact for revision 'master@sha1:")


def test_flux_get_kustomizations(setup: Setup) -> None:
    result = setup.run("get", "kustomizations", "-n", setup.namespace)
    assert result.code == 0, result.err
    header, *rows = _columns(result.out)
    assert header == ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    [row] = [r for r in rows if r[0] == setup.kustomization]
    assert row[1].startswith("master@sha1:")
    assert row[2:4] == ["False", "True"]
    assert row[4].startswith("Applied revision: master@sha1:")


def test_flux_reconcile_kustomization_with_source(setup: Setup) -> None:
    new_sha = setup.git.commit(
        setup.repo, {"realm/ix/realm_ix.toml": "[network]\nuse_udp = false\n"}
    )
    result = setup.run(
        "reconcile", "kustomization", setup.kustomization, "--with-source", "-n", setup.namespace
    )
    assert result.code == 0, result.err
    assert result.lines == [
        f"► annotating GitRepository {setup.source} in {setup.namespace} namespace",
        "✔ GitRepository annotated",
        "◎ waiting for GitRepository reconciliation",
        f"✔ fetched revision master@sha1:{new_sha}",
        f"► annotating Kustomization {setup.kustomization} in {setup.namespace} namespace",
        "✔ Kustomization annotated",
        "◎ waiting for Kustomization reconciliation",
        f"✔ applied revision master@sha1:{new_sha}",
    ]


def test_flux_tree_kustomization(setup: Setup) -> None:
    result = setup.run("tree", "kustomization", setup.kustomization, "-n", setup.namespace)
    assert result.code == 0, result.err
    assert result.out.rstrip("\n").splitlines() == [
        f"Kustomization/{setup.namespace}/{setup.kustomization}",
        f"└── Secret/{setup.namespace}/realm-config-ix",
    ]


def test_flux_trace_an_applied_object(setup: Setup) -> None:
    result = setup.run(
        "trace",
        "realm-config-ix",
        "--kind=Secret",
        "--api-version=v1",
        "-n",
        setup.namespace,
    )
    # `flux trace` prints its failures and still exits 0: the report is what counts.
    assert result.code == 0, result.err
    assert result.err == ""
    fields = [
        tuple(part.strip() for part in line.split(":", 1))
        for line in result.out.splitlines()
        if ":" in line
    ]
    assert ("Status", "Managed by Flux") in fields
    assert ("Kustomization", setup.kustomization) in fields
    assert ("Path", "./realm/ix") in fields
    assert ("GitRepository", setup.source) in fields
    assert ("URL", setup.git.url(setup.repo)) in fields
    revisions = [value for key, value in fields if key == "Revision"]
    assert len(revisions) == 2
    assert all(revision.startswith("master@sha1:") for revision in revisions)


def test_flux_events_for_the_kustomization(setup: Setup) -> None:
    result = setup.run(
        "events", "--for", f"Kustomization/{setup.kustomization}", "-n", setup.namespace
    )
    assert result.code == 0, result.err
    header, *rows = _columns(result.out)
    assert header == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    # The CLI lists the source's events with the Kustomization's.
    assert {row[3] for row in rows} == {
        f"Kustomization/{setup.kustomization}",
        f"GitRepository/{setup.source}",
    }
    finished = [row[4] for row in rows if row[1:3] == ["Normal", "ReconciliationSucceeded"]]
    assert finished, rows
    # kustomize-controller's words, both durations as Go's Duration.String prints them.
    took = re.fullmatch(r"Reconciliation finished in (\S+), next run in 10m0s", finished[-1])
    assert took is not None, finished
    assert re.fullmatch(r"(\d+m)?\d+(\.\d+)?(ms|s)", took[1]), took[1]
    # Go prints a measured duration to the nanosecond ("1.234567891s", "523.456789ms").
    significant = "".join(c for c in took[1] if c.isdigit()).lstrip("0")
    assert len(significant) >= 5, took[1]


def test_flux_debug_kustomization_shows_history(setup: Setup) -> None:
    result = setup.run(
        "debug", "kustomization", setup.kustomization, "--show-history", "-n", setup.namespace
    )
    assert result.code == 0, result.err
    first, *rest = result.out.splitlines()
    assert first.startswith("# History documentation:")
    history = yaml.safe_load("\n".join(rest))
    latest = history[0]
    assert latest["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert latest["digest"].startswith("sha256:")
    assert latest["metadata"]["revision"].startswith("master@sha1:")
    assert latest["totalReconciliations"] >= 1


def test_flux_events_for_the_source_name_the_commit(setup: Setup) -> None:
    result = setup.run("events", "--for", f"GitRepository/{setup.source}", "-n", setup.namespace)
    assert result.code == 0, result.err
    _, *rows = _columns(result.out)
    # source-controller's words: the new artifact is named by its commit's subject.
    assert ["Normal", "NewArtifact", f"GitRepository/{setup.source}"] in [r[1:4] for r in rows]
    messages = {row[4] for row in rows if row[2] == "NewArtifact"}
    assert "stored artifact for commit 'Seed the realm config'" in messages


def test_the_daemons_log_lines_are_what_flux_logs_decodes(setup: Setup) -> None:
    records = setup.daemon.log_records()
    applied = [r for r in records if r.get("msg") == "server-side apply completed"]
    assert applied, "the Kustomization's apply was not logged"
    line = applied[-1]
    # What `flux logs --kind=Kustomization --name=realm-ix --namespace=<ns>` filters on.
    assert line["controllerKind"] == "Kustomization"
    assert line["name"] == setup.kustomization
    assert line["namespace"] == setup.namespace
    assert line["level"] == "info"
    assert {"ts", "logger", "reconcileID"} <= set(line)
