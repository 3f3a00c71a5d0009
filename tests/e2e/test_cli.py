"""The ``fluxd`` command line against a real control plane, a real git server and the daemon.

Every command runs as a child process (``python -m fluxd.cli``), as a user
runs it. Objects the daemon should reconcile live in one namespace the daemon
watches; objects it must leave alone (build, diff, timeouts) live in the
per-test namespace, which it does not watch.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.seedflow import KUSTOMIZATION
from testenv.api import Api, wait_for
from testenv.cluster import Cluster, free_port, running
from testenv.gitserver import GitServer
from tests.support.cli import fluxd, table
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    secret,
    wait_condition,
)

USER, TOKEN = "k3s", "gitea-pat-0123456789abcdef"
LEASE = "cli-tests"
REALM_TOML = "[network]\nuse_udp = true\n"
SEED_FILES: dict[str, str | bytes | None] = {
    "realm/ix/kustomization.yaml": KUSTOMIZATION,
    "realm/ix/realm_ix.toml": REALM_TOML,
}
OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"


@dataclass
class Setup:
    """The daemon, the namespace it watches, and the git server it fetches from."""

    daemon: Fluxd
    watched: str
    git: GitServer

    def repo(self, files: dict[str, str | bytes | None] | None = None) -> tuple[str, str]:
        name = f"k3s/{uuid.uuid4().hex[:8]}.git"
        self.git.create_repo(name)
        return name, self.git.commit(name, files or SEED_FILES)

    def ready_source(
        self, api: Api, *, files: dict[str, str | bytes | None] | None = None
    ) -> tuple[str, str]:
        """A GitRepository the daemon fetched; returns (name, sha)."""
        repo, sha = self.repo(files)
        name = f"repo-{uuid.uuid4().hex[:6]}"
        git_repository(
            api,
            self.watched,
            name,
            {"interval": "10m", "url": self.git.url(repo), "secretRef": {"name": "gitea-auth"}},
        )
        wait_condition(api, git_repository_path(self.watched, name))
        return name, sha


@pytest.fixture(scope="module")
def setup(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    watched = f"cli-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(watched)
    secret(cluster.api, watched, "gitea-auth", {"username": USER, "password": TOKEN})
    with GitServer(username=USER, password=TOKEN, default_branch="master") as git:
        daemon = Fluxd(
            cluster,
            tmp_path_factory.mktemp("fluxd-cli"),
            extra_args=[
                f"--lease-name={LEASE}",
                f"--watch-namespaces={watched}",
                "--max-retry-delay=5s",
                "--restarter=false",
            ],
        ).start()
        try:
            yield Setup(daemon=daemon, watched=watched, git=git)
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
            cluster.api.delete(f"/api/v1/namespaces/{watched}")


# -- get ------------------------------------------------------------------------------


def test_get_sources_git_prints_flux_columns(cluster: Cluster, api: Api, setup: Setup) -> None:
    name, sha = setup.ready_source(api)
    result = fluxd(cluster, "get", "sources", "git", name, "-n", setup.watched)
    assert result.code == 0, result.err
    assert table(result.out) == [
        ["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"],
        [
            name,
            f"master@sha1:{sha[:8]}",
            "False",
            "True",
            f"stored artifact for revision 'master@sha1:{sha[:8]}'",
        ],
    ]

    everywhere = fluxd(cluster, "get", "sources", "git", "-A")
    rows = table(everywhere.out)
    assert rows[0] == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert [setup.watched, name, f"master@sha1:{sha[:8]}", "False", "True"] in [r[:5] for r in rows]

    every_kind = fluxd(cluster, "get", "sources", "-n", setup.watched)
    assert [f"gitrepository/{name}", f"master@sha1:{sha[:8]}"] in [
        r[:2] for r in table(every_kind.out)
    ]

    as_json = fluxd(cluster, "get", "sources", "git", name, "-n", setup.watched, "-o", "json")
    assert yaml.safe_load(as_json.out)["status"]["artifact"]["revision"] == f"master@sha1:{sha}"

    wide = fluxd(cluster, "get", "sources", "git", name, "-n", setup.watched, "-o", "wide")
    assert table(wide.out)[0][-1] == "AGE"


def test_get_reports_missing_objects_and_empty_namespaces(
    cluster: Cluster, crds: list[str], namespace: str
) -> None:
    missing = fluxd(cluster, "get", "kustomizations", "nope", "-n", namespace)
    assert missing.code == 1
    assert missing.lines == [f"✗ kustomization 'nope' not found in namespace '{namespace}'"]

    empty = fluxd(cluster, "get", "ks", "-n", namespace)
    assert empty.code == 0
    assert empty.out == ""
    assert empty.lines == [f"✗ no Kustomization objects found in namespace '{namespace}'"]


def test_get_watch_prints_a_row_per_change(
    cluster: Cluster, api: Api, crds: list[str], namespace: str
) -> None:
    git_repository(api, namespace, "watched", {"interval": "1m", "url": "http://127.0.0.1:1/x.git"})
    # Nothing reconciles this namespace: REVISION stays empty, so the words are NAME, SUSPENDED, ...
    argv = [
        sys.executable,
        "-m",
        "fluxd.cli",
        "get",
        "sources",
        "git",
        "--watch",
        "-n",
        namespace,
        "--timeout=60s",
        f"--kubeconfig={cluster.kubeconfig}",
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().split() == [
                "NAME",
                "REVISION",
                "SUSPENDED",
                "READY",
                "MESSAGE",
            ]
            assert child.stdout.readline().split()[:2] == ["watched", "False"]
            api.merge_patch(git_repository_path(namespace, "watched"), {"spec": {"suspend": True}})
            assert child.stdout.readline().split()[:2] == ["watched", "True"]
        finally:
            child.terminate()


# -- reconcile / suspend / resume --------------------------------------------------------


def test_reconcile_source_git_waits_for_the_daemon(
    cluster: Cluster, api: Api, setup: Setup
) -> None:
    name, sha = setup.ready_source(api)
    result = fluxd(cluster, "reconcile", "source", "git", name, "-n", setup.watched)
    assert result.code == 0, result.err
    assert result.lines == [
        f"► annotating GitRepository {name} in {setup.watched} namespace",
        "✔ GitRepository annotated",
        "◎ waiting for GitRepository reconciliation",
        f"✔ fetched revision master@sha1:{sha}",
    ]
    obj = api.get(git_repository_path(setup.watched, name))
    requested = obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert obj["status"]["lastHandledReconcileAt"] == requested


def test_reconcile_fails_when_the_object_is_not_ready(
    cluster: Cluster, api: Api, setup: Setup
) -> None:
    git_repository(
        api,
        setup.watched,
        "broken",
        {
            "interval": "10m",
            "url": setup.git.url("k3s/missing.git"),
            "secretRef": {"name": "gitea-auth"},
        },
    )
    wait_condition(api, git_repository_path(setup.watched, "broken"), status="False")
    result = fluxd(cluster, "reconcile", "source", "git", "broken", "-n", setup.watched)
    assert result.code == 1
    assert result.lines[-1].startswith("✗ GitRepository reconciliation failed: ")
    ready = condition(api.get(git_repository_path(setup.watched, "broken")))
    assert ready is not None and ready["message"] in result.lines[-1]


def test_reconcile_times_out_when_nothing_reconciles(
    cluster: Cluster, api: Api, crds: list[str], namespace: str
) -> None:
    git_repository(api, namespace, "orphan", {"interval": "1m", "url": "http://127.0.0.1:1/x.git"})
    result = fluxd(cluster, "reconcile", "source", "git", "orphan", "-n", namespace, "--timeout=3s")
    assert result.code == 1
    assert result.lines[-1] == (
        f"✗ timed out after 3s waiting for GitRepository '{namespace}/orphan' to be reconciled: "
        "is fluxd running?"
    )


def test_reconcile_of_a_missing_object_is_one_line(
    cluster: Cluster, crds: list[str], namespace: str
) -> None:
    result = fluxd(cluster, "reconcile", "ks", "nope", "-n", namespace)
    assert result.code == 1
    assert result.lines == [f"✗ kustomization 'nope' not found in namespace '{namespace}'"]


def test_suspend_and_resume(cluster: Cluster, api: Api, setup: Setup) -> None:
    name, sha = setup.ready_source(api)
    path = git_repository_path(setup.watched, name)

    suspended = fluxd(cluster, "suspend", "source", "git", name, "-n", setup.watched)
    assert suspended.code == 0, suspended.err
    assert suspended.lines == [
        f"► suspending gitrepository {name} in {setup.watched} namespace",
        "✔ gitrepository suspended",
    ]
    assert api.get(path)["spec"]["suspend"] is True
    listed = fluxd(cluster, "get", "sources", "git", name, "-n", setup.watched)
    assert table(listed.out)[1][2] == "True"

    refused = fluxd(cluster, "reconcile", "source", "git", name, "-n", setup.watched)
    assert refused.code == 1
    assert refused.lines == [
        f"✗ gitrepository '{name}' in namespace '{setup.watched}' is suspended: "
        f"resume it with 'fluxd resume source git {name} -n {setup.watched}'"
    ]

    resumed = fluxd(cluster, "resume", "source", "git", name, "-n", setup.watched)
    assert resumed.code == 0, resumed.err
    assert resumed.lines == [
        f"► resuming gitrepository {name} in {setup.watched} namespace",
        "✔ gitrepository resumed",
        "◎ waiting for GitRepository reconciliation",
        f"✔ fetched revision master@sha1:{sha}",
    ]
    assert api.get(path)["spec"]["suspend"] is False


def test_reconcile_kustomization_with_source(cluster: Cluster, api: Api, setup: Setup) -> None:
    source, sha = setup.ready_source(api)
    name = f"ks-{uuid.uuid4().hex[:6]}"
    kustomization(
        api,
        setup.watched,
        name,
        {
            "interval": "10m",
            "path": "./realm/ix",
            "prune": True,
            "targetNamespace": setup.watched,
            "sourceRef": {"kind": "GitRepository", "name": source},
        },
    )
    wait_condition(api, kustomization_path(setup.watched, name), timeout=120)
    new_sha = setup.git.commit(
        _repo_of(api, setup.watched, source), {"realm/ix/realm_ix.toml": "changed = true\n"}
    )
    assert new_sha != sha

    result = fluxd(
        cluster, "reconcile", "kustomization", name, "--with-source", "-n", setup.watched
    )
    assert result.code == 0, result.err
    assert result.lines == [
        f"► annotating GitRepository {source} in {setup.watched} namespace",
        "✔ GitRepository annotated",
        "◎ waiting for GitRepository reconciliation",
        f"✔ fetched revision master@sha1:{new_sha}",
        f"► annotating Kustomization {name} in {setup.watched} namespace",
        "✔ Kustomization annotated",
        "◎ waiting for Kustomization reconciliation",
        f"✔ applied revision master@sha1:{new_sha}",
    ]
    live = api.get(f"/api/v1/namespaces/{setup.watched}/secrets/realm-config-ix")
    assert base64.b64decode(live["data"]["realm_ix.toml"]) == b"changed = true\n"

    listed = fluxd(cluster, "get", "ks", name, "-n", setup.watched)
    assert table(listed.out)[1][:4] == [name, f"master@sha1:{new_sha[:8]}", "False", "True"]


def _repo_of(api: Api, namespace: str, source: str) -> str:
    url = str(api.get(git_repository_path(namespace, source))["spec"]["url"])
    return url.split("/", 3)[3]


# -- events -------------------------------------------------------------------------------


def test_events_for_one_object(cluster: Cluster, api: Api, setup: Setup) -> None:
    name, _ = setup.ready_source(api)
    result = fluxd(cluster, "events", "--for", f"GitRepository/{name}", "-n", setup.watched)
    assert result.code == 0, result.err
    rows = table(result.out)
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert ["Normal", "NewArtifact", f"GitRepository/{name}"] in [r[1:4] for r in rows[1:]]
    assert {r[3] for r in rows[1:]} == {f"GitRepository/{name}"}

    everything = fluxd(cluster, "events", "-A", "--types=Normal")
    header, *others = table(everything.out)
    assert header[0] == "NAMESPACE"
    assert [setup.watched, "Normal", "NewArtifact", f"GitRepository/{name}"] in [
        r[:1] + r[2:5] for r in others
    ]

    wrong = fluxd(cluster, "events", "--for", "Deployment", "-n", setup.watched)
    assert wrong.code == 2
    assert wrong.lines[0].startswith("✗ --for expects Kind/name")


# -- build / diff -------------------------------------------------------------------------


def _checkout(tmp_path: Path) -> Path:
    """A local checkout: an app that refers to a base one level up, with ${vars}."""
    (tmp_path / ".git").mkdir()
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("resources:\n  - config.yaml\n  - secret.yaml\n")
    (base / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n"
        "data:\n  greeting: ${GREETING}\n  region: ${REGION:=eu}\n"
    )
    (base / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secret\n"
        "stringData:\n  token: ${TOKEN}\n"
    )
    app = tmp_path / "apps" / "demo"
    app.mkdir(parents=True)
    (app / "kustomization.yaml").write_text("resources:\n  - ../../base\n")
    return app


def _build_spec(namespace: str) -> dict[str, Any]:
    return {
        "interval": "10m",
        "path": "./apps/demo",
        "prune": True,
        "targetNamespace": namespace,
        "sourceRef": {"kind": "GitRepository", "name": "unused"},
        "postBuild": {
            "substitute": {"GREETING": "hello"},
            "substituteFrom": [{"kind": "Secret", "name": "vars"}],
        },
    }


def test_build_renders_like_the_daemon_without_writing(
    cluster: Cluster, api: Api, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    app = _checkout(tmp_path)
    secret(api, namespace, "vars", {"TOKEN": "s3cr3t"})
    kustomization(api, namespace, "demo", _build_spec(namespace))

    result = fluxd(cluster, "build", "kustomization", "demo", "--path", str(app), "-n", namespace)
    assert result.code == 0, result.err
    objects = {doc["kind"]: doc for doc in yaml.safe_load_all(result.out)}
    config = objects["ConfigMap"]
    assert config["data"] == {"greeting": "hello", "region": "eu"}
    assert config["metadata"]["namespace"] == namespace
    assert config["metadata"]["labels"] == {OWNER_NAME: "demo", OWNER_NAMESPACE: namespace}
    assert objects["Secret"]["stringData"] == {"token": "s3cr3t"}
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/app-config") is None


def test_build_dry_run_needs_no_cluster(tmp_path: Path) -> None:
    app = _checkout(tmp_path)
    spec = _build_spec("prod")
    spec["postBuild"]["substitute"]["TOKEN"] = "t"
    (tmp_path / "ks.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "demo", "namespace": "flux-system"},
                "spec": spec,
            }
        )
    )
    argv = [
        sys.executable,
        "-m",
        "fluxd.cli",
        "build",
        "ks",
        "demo",
        "--path",
        str(app),
        "--dry-run",
        "--kustomization-file",
        str(tmp_path / "ks.yaml"),
        "--kubeconfig=/nonexistent",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "⚠️ substituteFrom Secret/vars is not read in --dry-run mode"
    ]
    config = next(d for d in yaml.safe_load_all(done.stdout) if d["kind"] == "ConfigMap")
    assert config["metadata"]["namespace"] == "prod"
    assert config["metadata"]["labels"][OWNER_NAMESPACE] == "flux-system"

    missing = subprocess.run(
        [*argv[:-3], "--kubeconfig=/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "✗ --dry-run needs --kustomization-file: the spec cannot come from the cluster"
    ]


def test_diff_shows_drift_creations_and_prunes(
    cluster: Cluster, api: Api, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    app = _checkout(tmp_path)
    secret(api, namespace, "vars", {"TOKEN": "new-token"})
    kustomization(api, namespace, "demo", _build_spec(namespace))
    owner = {OWNER_NAME: "demo", OWNER_NAMESPACE: namespace}
    api.apply(
        f"/api/v1/namespaces/{namespace}/configmaps/app-config",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": namespace, "labels": owner},
            "data": {"greeting": "bonjour", "region": "eu"},
        },
        manager="kustomize-controller",
    )
    api.apply(
        f"/api/v1/namespaces/{namespace}/secrets/app-secret",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-secret", "namespace": namespace, "labels": owner},
            "stringData": {"token": "old-token"},
        },
        manager="kustomize-controller",
    )
    stale = f"{namespace}_gone__ConfigMap"
    api.merge_patch(
        kustomization_path(namespace, "demo") + "/status",
        {"status": {"inventory": {"entries": [{"id": stale, "v": "v1"}]}}},
    )

    result = fluxd(cluster, "diff", "kustomization", "demo", "--path", str(app), "-n", namespace)
    assert result.code == 1, result.err
    assert f"► ConfigMap/{namespace}/app-config drifted" in result.out
    assert "-  greeting: bonjour\n+  greeting: hello\n" in result.out
    assert f"► Secret/{namespace}/app-secret drifted" in result.out
    assert "-  token: '*** (before)'\n+  token: '*** (after)'\n" in result.out
    for value in ("old-token", "new-token"):
        assert value not in result.out
        assert base64.b64encode(value.encode()).decode() not in result.out
    assert f"► ConfigMap/{namespace}/gone deleted" in result.out
    assert result.lines == ["✗ identified at least one change, exiting with non-zero exit code"]
    live = api.get(f"/api/v1/namespaces/{namespace}/configmaps/app-config")
    assert live["data"]["greeting"] == "bonjour"

    built = fluxd(cluster, "build", "kustomization", "demo", "--path", str(app), "-n", namespace)
    for doc in yaml.safe_load_all(built.out):
        plural = "configmaps" if doc["kind"] == "ConfigMap" else "secrets"
        api.apply(
            f"/api/v1/namespaces/{namespace}/{plural}/{doc['metadata']['name']}",
            doc,
            manager="kustomize-controller",
        )
    api.merge_patch(
        kustomization_path(namespace, "demo") + "/status", {"status": {"inventory": None}}
    )
    clean = fluxd(cluster, "diff", "kustomization", "demo", "--path", str(app), "-n", namespace)
    assert (clean.code, clean.out, clean.err) == (0, "", "")


def test_diff_lists_objects_to_create(
    cluster: Cluster, api: Api, crds: list[str], namespace: str, tmp_path: Path
) -> None:
    app = _checkout(tmp_path)
    secret(api, namespace, "vars", {"TOKEN": "t"})
    kustomization(api, namespace, "demo", _build_spec(namespace))
    result = fluxd(cluster, "diff", "ks", "demo", "--path", str(app), "-n", namespace)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"► ConfigMap/{namespace}/app-config created",
        f"► Secret/{namespace}/app-secret created",
    ]


# -- check --------------------------------------------------------------------------------


def _service_account(api: Api, namespace: str, name: str, *, cluster_admin: bool) -> None:
    api.apply(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
    )
    if cluster_admin:
        binding = f"{namespace}-{name}"
        api.apply(
            f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{binding}",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )


def test_check_passes_with_a_running_daemon(
    cluster: Cluster, api: Api, setup: Setup, namespace: str
) -> None:
    _service_account(api, namespace, "fluxd", cluster_admin=True)
    wait_for(
        lambda: api.get_or_none(f"/apis/coordination.k8s.io/v1/namespaces/default/leases/{LEASE}"),
        timeout=60,
        what="lease",
    )
    result = fluxd(
        cluster,
        "check",
        "-n",
        namespace,
        "--lease-name",
        LEASE,
        "--lease-namespace",
        "default",
        "--webhook-url",
        setup.daemon.webhook_url,
    )
    assert result.code == 0, result.err
    assert result.lines[0] == "► checking prerequisites"
    assert result.lines[1].startswith("✔ Kubernetes 1.") and result.lines[1].endswith(" >=1.26.0-0")
    assert "✔ gitrepositories.source.toolkit.fluxcd.io/v1" in result.lines
    assert "✔ kustomizations.kustomize.toolkit.fluxcd.io/v1" in result.lines
    assert f"► checking permissions of system:serviceaccount:{namespace}:fluxd" in result.lines
    assert any(
        line.startswith(f"✔ leader lease default/{LEASE} held by '") for line in result.lines
    )
    assert any(
        line.startswith(f"✔ webhook {setup.daemon.webhook_url} answers (HTTP ")
        for line in result.lines
    )
    assert result.lines[-1] == "✔ all checks passed"
    assert not [line for line in result.lines if line.startswith("✗")]


def test_check_reports_each_failure(
    cluster: Cluster, api: Api, crds: list[str], namespace: str
) -> None:
    _service_account(api, namespace, "fluxd", cluster_admin=False)
    closed = f"http://127.0.0.1:{free_port()}/"
    result = fluxd(
        cluster, "check", "-n", namespace, "--lease-name", "nobody-leads", "--webhook-url", closed
    )
    assert result.code == 1
    user = f"system:serviceaccount:{namespace}:fluxd"
    assert (
        f"✗ {user} cannot get, list, watch, patch, update gitrepositories.source.toolkit.fluxcd.io"
        in result.lines
    )
    assert (
        f"✗ no leader lease {namespace}/nobody-leads: fluxd is not running here "
        "(or runs with another --lease-name/--lease-namespace)"
    ) in result.lines
    assert f"✗ webhook {closed} is not reachable: connection refused" in result.lines
    assert result.lines[-1] == "✗ check failed"

    pre = fluxd(cluster, "check", "--pre")
    assert pre.code == 0
    assert pre.lines[-1] == "✔ prerequisites checks passed"


# -- errors a user meets ------------------------------------------------------------------


def test_unreachable_cluster_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    port = free_port()
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    for command in (("get", "ks"), ("reconcile", "source", "git", "x"), ("events",), ("check",)):
        result = fluxd(cluster, *command, kubeconfig=kubeconfig)
        assert result.code == 1
        assert (
            result.lines[-1]
            == f"✗ cannot reach the API server at https://127.0.0.1:{port}: connection refused"
        )


def test_missing_crds_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    with running(workdir=tmp_path / "bare") as bare:
        for command in (
            ("get", "sources", "git"),
            ("reconcile", "ks", "apps"),
            ("suspend", "alert", "a"),
        ):
            result = fluxd(bare, *command)
            assert result.code == 1
            assert result.lines == [
                f"✗ CRDs are not installed ({_crd_of(command)} is missing): "
                "run 'fluxd gen crds | kubectl apply -f -'"
            ]
        checked = fluxd(bare, "check", "--service-account=")
        assert checked.code == 1
        assert (
            "✗ gitrepositories.source.toolkit.fluxcd.io: not installed: "
            "run 'fluxd gen crds | kubectl apply -f -'"
        ) in checked.lines


def _crd_of(command: tuple[str, ...]) -> str:
    if "git" in command:
        return "gitrepositories.source.toolkit.fluxcd.io"
    if "ks" in command:
        return "kustomizations.kustomize.toolkit.fluxcd.io"
    return "alerts.notification.toolkit.fluxcd.io"


def test_version(cluster: Cluster) -> None:
    result = fluxd(cluster, "version", "--server")
    assert result.code == 0
    client, server = result.out.splitlines()
    assert client.startswith("fluxd ")
    assert server.startswith("kubernetes v1.")
