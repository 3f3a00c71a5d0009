"""Kustomizations against a real control plane, real git servers and the real daemon.

The seed's flow (a private repo's file becomes a Secret and follows pushes),
garbage collection, the Reloader install with a pinned remote base, dependsOn
chains, health waits, and failures that must leave the last good apply alone.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.seedflow import KUSTOMIZATION
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    events_for,
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    request_reconcile,
    secret,
    wait_condition,
)

USER, TOKEN = "k3s", "gitea-pat-0123456789abcdef"
SOURCE = "k3s-private-repo"
OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
REALM_TOML = '[network]\nuse_udp = true\n\n[[endpoints]]\nlisten = "0.0.0.0:5000"\n'
SEED_FILES: dict[str, str | bytes | None] = {
    "realm/ix/kustomization.yaml": KUSTOMIZATION,
    "realm/ix/realm_ix.toml": REALM_TOML,
}


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=TOKEN, default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def public_git() -> Iterator[GitServer]:
    """An unauthenticated server standing in for github.com (remote kustomize bases)."""
    with GitServer(default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    # A long dependency requeue: dependents and sources must be woken by their
    # hooks, not found by polling, or these tests time out.
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-ks"),
        extra_args=[
            "--lease-name=kustomization-tests",
            "--max-retry-delay=5s",
            "--requeue-dependency=3m",
            "--kustomization-concurrency=8",
        ],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


# -- helpers --------------------------------------------------------------------


def _source(
    api: Api, git: GitServer, namespace: str, files: dict[str, Any], *, name: str = SOURCE
) -> tuple[str, str]:
    """A new repository with ``files`` and a GitRepository for it; returns (repo, sha)."""
    repo = f"k3s/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    sha = git.commit(repo, files)
    secret(api, namespace, "gitea-auth", {"username": USER, "password": TOKEN})
    git_repository(
        api,
        namespace,
        name,
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": "master"},
            "secretRef": {"name": "gitea-auth"},
        },
    )
    return repo, sha


def _push(
    api: Api,
    git: GitServer,
    namespace: str,
    repo: str,
    files: dict[str, Any],
    *,
    name: str = SOURCE,
) -> str:
    """Commit ``files`` and ask the GitRepository to fetch now, as a Gitea webhook would."""
    sha = git.commit(repo, files)
    request_reconcile(api, git_repository_path(namespace, name))
    return sha


def _spec(path: str, *, source: str = SOURCE, **extra: Any) -> dict[str, Any]:
    return {
        "interval": "10m",
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": source},
        **extra,
    }


def _applied(api: Api, namespace: str, name: str, sha: str, timeout: float = 90) -> dict[str, Any]:
    return wait_condition(
        api,
        kustomization_path(namespace, name),
        timeout=timeout,
        extra=lambda o: o["status"].get("lastAppliedRevision") == f"master@sha1:{sha}",
    )


def _configmap(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> str:
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    )


def _deployment(name: str, **pod_spec: Any) -> str:
    labels = {"app": name}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **pod_spec},
                },
            },
        }
    )


def _event_messages(api: Api, namespace: str, name: str) -> list[str]:
    return [str(e.get("message", "")) for e in events_for(api, namespace, name)]


def _configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


# -- the seed ---------------------------------------------------------------------


def test_seed_secret_follows_the_pushed_config(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo, sha = _source(api, git, namespace, SEED_FILES)
    kustomization(api, namespace, "realm-ix", _spec("./realm/ix", targetNamespace=namespace))

    obj = _applied(api, namespace, "realm-ix", sha)
    assert condition(obj)["message"] == f"Applied revision: master@sha1:{sha}"  # type: ignore[index]
    assert obj["status"]["lastAttemptedRevision"] == f"master@sha1:{sha}"
    assert obj["status"]["inventory"] == {
        "entries": [{"id": f"{namespace}_realm-config-ix__Secret", "v": "v1"}]
    }
    stored = api.get(f"/api/v1/namespaces/{namespace}/secrets/realm-config-ix")
    assert base64.b64decode(stored["data"]["realm_ix.toml"]) == REALM_TOML.encode()
    assert stored["metadata"]["labels"][OWNER_NAME] == "realm-ix"
    assert stored["metadata"]["labels"][OWNER_NAMESPACE] == namespace
    created = f"Secret/{namespace}/realm-config-ix created"
    wait_for(lambda: created in _event_messages(api, namespace, "realm-ix"), what=created)

    changed = REALM_TOML + '\n[[endpoints]]\nlisten = "0.0.0.0:5001"\n'
    new_sha = _push(api, git, namespace, repo, {"realm/ix/realm_ix.toml": changed})
    _applied(api, namespace, "realm-ix", new_sha)
    stored = api.get(f"/api/v1/namespaces/{namespace}/secrets/realm-config-ix")
    assert base64.b64decode(stored["data"]["realm_ix.toml"]) == changed.encode()
    configured = f"Secret/{namespace}/realm-config-ix configured"
    wait_for(lambda: configured in _event_messages(api, namespace, "realm-ix"), what=configured)
    revisions = [
        e.get("metadata", {}).get("annotations", {}).get("kustomize.toolkit.fluxcd.io/revision")
        for e in events_for(api, namespace, "realm-ix")
        if e.get("message") == configured
    ]
    assert f"master@sha1:{new_sha}" in revisions

    # status.history as kustomize-controller keeps it, newest first (flux debug --show-history).
    history = api.get(kustomization_path(namespace, "realm-ix"))["status"]["history"]
    assert [s["metadata"]["revision"] for s in history[:2]] == [
        f"master@sha1:{new_sha}",
        f"master@sha1:{sha}",
    ]
    assert history[0]["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert (
        history[0]["digest"].startswith("sha256:") and history[0]["digest"] != history[1]["digest"]
    )
    assert history[0]["totalReconciliations"] >= 1


def test_builds_run_in_the_long_lived_engine_the_image_installs(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    _, sha = _source(api, git, namespace, SEED_FILES)
    kustomization(api, namespace, "realm-ix", _spec("./realm/ix", targetNamespace=namespace))
    _applied(api, namespace, "realm-ix", sha)

    chosen = [r for r in daemon.log_records() if r.get("msg") == "kustomize engine"]
    assert [r["engine"] for r in chosen] and {r["engine"] for r in chosen} == {"fluxd-kustomize"}
    assert daemon.process is not None
    children = [
        Path(f"/proc/{pid}/comm").read_text().strip()
        for task in Path(f"/proc/{daemon.process.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    assert children.count("fluxd-kustomize") == 1, children


# -- garbage collection -------------------------------------------------------------


def test_prune_deletes_only_what_we_own_and_may_delete(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    files = {
        "app/keep.yaml": _configmap("keep", {"a": "1"}),
        "app/gone.yaml": _configmap("gone", {"a": "1"}),
        "app/protected.yaml": _configmap(
            "protected", {"a": "1"}, {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
        ),
        "app/adopted.yaml": _configmap("adopted", {"a": "1"}),
    }
    repo, sha = _source(api, git, namespace, files)
    kustomization(api, namespace, "app", _spec("./app", targetNamespace=namespace))
    _applied(api, namespace, "app", sha)
    # Someone else takes this one over: without our labels it is no longer ours to delete.
    api.merge_patch(
        _configmap_path(namespace, "adopted"),
        {"metadata": {"labels": {OWNER_NAME: None, OWNER_NAMESPACE: None}}},
    )

    removed = {"app/gone.yaml": None, "app/protected.yaml": None, "app/adopted.yaml": None}
    new_sha = _push(api, git, namespace, repo, removed)
    obj = _applied(api, namespace, "app", new_sha)

    assert obj["status"]["inventory"]["entries"] == [
        {"id": f"{namespace}_keep__ConfigMap", "v": "v1"}
    ]
    assert api.get_or_none(_configmap_path(namespace, "gone")) is None
    assert api.get_or_none(_configmap_path(namespace, "protected")) is not None
    assert api.get_or_none(_configmap_path(namespace, "adopted")) is not None
    deleted = f"ConfigMap/{namespace}/gone deleted"
    wait_for(lambda: deleted in _event_messages(api, namespace, "app"), what=deleted)

    # Deleting the Kustomization (MirrorPrune with prune: true) removes what it applied.
    api.delete(kustomization_path(namespace, "app"))
    wait_for(
        lambda: api.get_or_none(kustomization_path(namespace, "app")) is None,
        timeout=60,
        what="Kustomization gone",
    )
    assert api.get_or_none(_configmap_path(namespace, "keep")) is None
    assert api.get_or_none(_configmap_path(namespace, "protected")) is not None


# -- the Reloader install ---------------------------------------------------------------


def test_reloader_installs_from_a_pinned_remote_base_into_a_new_namespace(
    api: Api, daemon: Fluxd, git: GitServer, public_git: GitServer, namespace: str
) -> None:
    upstream = "stakater/Reloader.git"
    public_git.create_repo(upstream)
    base = "deployments/kubernetes"
    public_git.commit(
        upstream,
        {
            f"{base}/kustomization.yaml": "resources:\n- serviceaccount.yaml\n- deployment.yaml\n",
            f"{base}/serviceaccount.yaml": yaml.safe_dump(
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reloader"}}
            ),
            f"{base}/deployment.yaml": _deployment(
                "reloader-reloader", serviceAccountName="reloader"
            ),
        },
        tags=("v1.0.10",),
    )
    # A later commit on the default branch must not be what ?ref=v1.0.10 builds.
    public_git.commit(upstream, {f"{base}/deployment.yaml": _deployment("reloader-unreleased")})
    remote = f"git::{public_git.base_url}/{upstream}//{base}?ref=v1.0.10"
    files = {
        "infra/reloader/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["namespace.yaml", remote],
                "namespace": "reloader",
            }
        ),
        "infra/reloader/namespace.yaml": yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "reloader"}}
        ),
    }
    _, sha = _source(api, git, namespace, files)
    kustomization(api, namespace, "reloader", _spec("./infra/reloader", wait=True))
    try:
        obj = _applied(api, namespace, "reloader", sha, timeout=120)
        assert condition(obj, "Healthy")["status"] == "True"  # type: ignore[index]
        ns = api.get("/api/v1/namespaces/reloader")
        assert ns["metadata"]["labels"][OWNER_NAME] == "reloader"
        deployment = api.get("/apis/apps/v1/namespaces/reloader/deployments/reloader-reloader")
        assert deployment["status"].get("readyReplicas") == 1
        assert api.get_or_none("/api/v1/namespaces/reloader/serviceaccounts/reloader")
        assert (
            api.get_or_none("/apis/apps/v1/namespaces/reloader/deployments/reloader-unreleased")
            is None
        )
        ids = {entry["id"] for entry in obj["status"]["inventory"]["entries"]}
        assert ids == {
            "_reloader__Namespace",
            "reloader_reloader__ServiceAccount",
            "reloader_reloader-reloader_apps_Deployment",
        }
    finally:
        api.delete(kustomization_path(namespace, "reloader"))


def test_a_remote_base_on_a_moving_branch_is_rebuilt_every_interval(
    api: Api, daemon: Fluxd, git: GitServer, public_git: GitServer, namespace: str
) -> None:
    # The source repository never changes (and polls hourly); only the remote base's
    # branch moves. Flux rebuilds at every interval, so the move shows within one.
    upstream = f"team/{uuid.uuid4().hex[:8]}.git"
    public_git.create_repo(upstream)
    public_git.commit(
        upstream,
        {
            "base/kustomization.yaml": "resources:\n- settings.yaml\n",
            "base/settings.yaml": _configmap("shared-settings", {"level": "one"}),
        },
    )
    remote = f"git::{public_git.base_url}/{upstream}//base?ref=master"
    files = {
        "apps/kustomization.yaml": yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [remote],
                "namespace": namespace,
            }
        )
    }
    _, sha = _source(api, git, namespace, files)
    kustomization(api, namespace, "moving-base", _spec("./apps", interval="10s"))
    try:
        _applied(api, namespace, "moving-base", sha)
        settings = _configmap_path(namespace, "shared-settings")
        assert api.get(settings)["data"] == {"level": "one"}

        public_git.commit(
            upstream, {"base/settings.yaml": _configmap("shared-settings", {"level": "two"})}
        )
        # Three intervals of margin for a loaded machine; the source would take an hour.
        wait_for(
            lambda: api.get(settings)["data"] == {"level": "two"},
            timeout=30,
            what="the moved remote base applied at the next interval",
        )
    finally:
        api.delete(kustomization_path(namespace, "moving-base"))


# -- dependsOn ---------------------------------------------------------------------------


def test_depends_on_chain_applies_in_order(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    files = {f"{layer}/cm.yaml": _configmap(f"layer-{layer}", {"x": "1"}) for layer in "abc"}
    _, sha = _source(api, git, namespace, files)
    kustomization(
        api, namespace, "c", _spec("./c", targetNamespace=namespace, dependsOn=[{"name": "b"}])
    )
    kustomization(
        api, namespace, "b", _spec("./b", targetNamespace=namespace, dependsOn=[{"name": "a"}])
    )
    waiting = wait_condition(
        api, kustomization_path(namespace, "c"), status="False", reason="DependencyNotReady"
    )
    assert condition(waiting)["message"] == f"dependency '{namespace}/b' is not ready"  # type: ignore[index]
    assert api.get_or_none(_configmap_path(namespace, "layer-c")) is None

    kustomization(api, namespace, "a", _spec("./a", targetNamespace=namespace))
    # The dependency requeue is minutes long: only "a became ready → request b" gets here.
    for layer in "abc":
        _applied(api, namespace, layer, sha)
    created = [
        api.get(_configmap_path(namespace, f"layer-{layer}"))["metadata"]["creationTimestamp"]
        for layer in "abc"
    ]
    assert created == sorted(created)


def test_a_dependent_waits_while_its_dependency_applies_a_new_revision(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    """The dependency shows its work (Ready=Unknown, Reconciling) and the dependent waits.

    Two sources, so the dependent cannot tell from the revision alone: only the
    dependency's progress status keeps it from applying too early.
    """
    unschedulable = {"nodeSelector": {"fluxd.test/no-such-node": "true"}}
    repo_a, sha_a = _source(api, git, namespace, {"a/cm.yaml": _configmap("dep-a", {"v": "1"})})
    repo_b, sha_b = _source(
        api, git, namespace, {"b/cm.yaml": _configmap("dep-b", {"v": "1"})}, name="second"
    )
    kustomization(
        api, namespace, "a", _spec("./a", targetNamespace=namespace, wait=True, timeout="1m")
    )
    kustomization(
        api,
        namespace,
        "b",
        _spec("./b", source="second", targetNamespace=namespace, dependsOn=[{"name": "a"}]),
    )
    _applied(api, namespace, "a", sha_a)
    _applied(api, namespace, "b", sha_b)

    # a's next revision waits a minute for a Deployment that cannot be scheduled.
    new_a = git.commit(repo_a, {"a/stuck.yaml": _deployment("stuck", **unschedulable)})
    request_reconcile(api, git_repository_path(namespace, SOURCE))
    progressing = wait_condition(
        api,
        kustomization_path(namespace, "a"),
        status="Unknown",
        reason="Progressing",
        timeout=60,
    )
    reconciling = condition(progressing, "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True"
    assert f"master@sha1:{new_a}" in reconciling["message"]

    new_b = git.commit(repo_b, {"b/cm.yaml": _configmap("dep-b", {"v": "2"})})
    request_reconcile(api, git_repository_path(namespace, "second"))
    waiting = wait_condition(
        api,
        kustomization_path(namespace, "b"),
        status="False",
        reason="DependencyNotReady",
        timeout=40,
    )
    assert waiting["status"]["lastAppliedRevision"] == f"master@sha1:{sha_b}", new_b
    cm = api.get(_configmap_path(namespace, "dep-b"))
    assert cm["data"] == {"v": "1"}


# -- health -----------------------------------------------------------------------------


def test_wait_reports_health_and_a_new_commit_cancels_a_wait(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    unschedulable = {"nodeSelector": {"fluxd.test/no-such-node": "true"}}
    _, sha = _source(
        api,
        git,
        namespace,
        {
            "good/deploy.yaml": _deployment("web"),
            "stuck/deploy.yaml": _deployment("stuck", **unschedulable),
        },
    )
    repo2, _ = _source(
        api, git, namespace, {"app/deploy.yaml": _deployment("app", **unschedulable)}, name="second"
    )
    kustomization(api, namespace, "good", _spec("./good", targetNamespace=namespace, wait=True))
    kustomization(
        api,
        namespace,
        "stuck",
        _spec("./stuck", targetNamespace=namespace, wait=True, timeout="30s"),
    )
    kustomization(
        api,
        namespace,
        "waiting",
        _spec("./app", source="second", targetNamespace=namespace, wait=True, timeout="10m"),
    )

    # While "waiting" waits (for up to ten minutes), a fix is pushed: it is applied at once.
    wait_for(
        lambda: api.get_or_none(f"/apis/apps/v1/namespaces/{namespace}/deployments/app"),
        timeout=90,
        what="Deployment app applied",
    )
    fixed = _push(
        api, git, namespace, repo2, {"app/deploy.yaml": _deployment("app")}, name="second"
    )
    obj = _applied(api, namespace, "waiting", fixed, timeout=120)
    assert condition(obj, "Healthy")["status"] == "True"  # type: ignore[index]

    good = _applied(api, namespace, "good", sha)
    assert condition(good, "Healthy")["status"] == "True"  # type: ignore[index]

    stuck = wait_condition(
        api,
        kustomization_path(namespace, "stuck"),
        status="False",
        reason="HealthCheckFailed",
        timeout=120,
    )
    message = condition(stuck)["message"]  # type: ignore[index]
    assert f"Deployment/{namespace}/stuck" in message
    assert condition(stuck, "Healthy")["status"] == "False"  # type: ignore[index]
    # The objects were applied even though they never became ready.
    assert stuck["status"]["inventory"]["entries"] == [
        {"id": f"{namespace}_stuck_apps_Deployment", "v": "v1"}
    ]
    assert "lastAppliedRevision" not in stuck["status"]


# -- failures ------------------------------------------------------------------------------

WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
BAD_SERVICE = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad-port"},
        "spec": {"ports": [{"port": 70000}], "selector": {"app": "x"}},
    }
)
FAILURES = [
    # (case, files in the breaking commit, expected reason, text the message must contain)
    pytest.param(
        "broken-yaml",
        {"broken-yaml/extra.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n"},
        "BuildFailed",
        "extra.yaml",
        id="broken-yaml",
    ),
    pytest.param(
        "missing-file",
        {"missing-file/kustomization.yaml": "resources:\n- cm.yaml\n- missing.yaml\n"},
        "BuildFailed",
        "missing.yaml",
        id="missing-file",
    ),
    pytest.param(
        "unknown-kind",
        {"unknown-kind/extra.yaml": WIDGET},
        "ReconciliationFailed",
        "Widget",
        id="unknown-kind-without-crd",
    ),
    pytest.param(
        # Fails in lenient mode too (an undefined variable alone becomes empty, as in Flux).
        "bad-substitution",
        {"bad-substitution/extra.yaml": _configmap("uses-var", {"v": "${UNCLOSED_VAR"})},
        "BuildFailed",
        "uses-var",
        id="malformed-substitution",
    ),
    pytest.param("path-escape", {}, "ArtifactFailed", "outside", id="path-escaping-the-root"),
    pytest.param(
        "invalid-object",
        {"invalid-object/extra.yaml": BAD_SERVICE},
        "ReconciliationFailed",
        "bad-port",
        id="object-rejected-by-the-api-server",
    ),
]
CASES = [str(param.values[0]) for param in FAILURES]


@pytest.fixture(scope="module")
def broken(cluster: Cluster, daemon: Fluxd, git: GitServer) -> Iterator[tuple[str, str]]:
    """Every failure case applied once successfully, then broken; yields (namespace, sha)."""
    api = cluster.api
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(namespace)
    files: dict[str, Any] = {
        f"{case}/cm.yaml": _configmap(f"{case}-cm", {"generation": "1"}) for case in CASES
    }
    files["missing-file/kustomization.yaml"] = "resources:\n- cm.yaml\n"
    files["bad-substitution/extra.yaml"] = _configmap("uses-var", {"v": "${GREETING}"})
    repo, sha = _source(api, git, namespace, files)
    for case in CASES:
        extra: dict[str, Any] = {"targetNamespace": namespace}
        if case == "bad-substitution":
            extra["postBuild"] = {"substitute": {"GREETING": "hello"}}
        kustomization(api, namespace, case, _spec(f"./{case}", **extra))
    for case in CASES:
        _applied(api, namespace, case, sha)

    api.merge_patch(kustomization_path(namespace, "path-escape"), {"spec": {"path": "../outside"}})
    breaking: dict[str, Any] = {
        f"{case}/cm.yaml": _configmap(f"{case}-cm", {"generation": "2"}) for case in CASES
    }
    for param in FAILURES:
        breaking.update(dict(param.values[1]))  # type: ignore[call-overload]
    new_sha = _push(api, git, namespace, repo, breaking)
    yield namespace, new_sha
    api.delete(f"/api/v1/namespaces/{namespace}")


@pytest.mark.parametrize(("case", "files", "reason", "fragment"), FAILURES)
def test_a_failure_names_the_culprit_and_keeps_the_last_good_apply(
    api: Api,
    broken: tuple[str, str],
    case: str,
    files: dict[str, Any],
    reason: str,
    fragment: str,
) -> None:
    namespace, _ = broken
    obj = wait_condition(
        api, kustomization_path(namespace, case), status="False", reason=reason, timeout=90
    )
    assert fragment in condition(obj)["message"]  # type: ignore[index]
    entries = obj["status"]["inventory"]["entries"]
    assert {"id": f"{namespace}_{case}-cm__ConfigMap", "v": "v1"} in entries
    live = api.get(_configmap_path(namespace, f"{case}-cm"))
    assert live["data"] == {"generation": "1"}
