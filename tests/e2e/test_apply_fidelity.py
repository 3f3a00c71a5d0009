"""Apply fidelity against a real control plane: what the cluster keeps, loses and rolls.

``spec.ignore`` keeps a hand-set field through later reconciles (and only where
a rule says so); objects first written with ``kubectl apply`` lose the fields
Git removes once a Kustomization owns them (field-manager takeover); one
commit changing a Secret and the Deployment that uses it rolls the Deployment
once (kube-controller-manager is real, so every rollout is a new ReplicaSet).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testenv.api import Api, wait_for
from testenv.cluster import Cluster, environ_for
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.flux import (
    condition,
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    request_reconcile,
    wait_condition,
)
from tests.support.install import KUBECTL

SOURCE = "apps"


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(default_branch="master") as server:
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    fluxd = Fluxd(
        cluster,
        tmp_path_factory.mktemp("fluxd-apply"),
        extra_args=["--lease-name=apply-fidelity-tests", "--max-retry-delay=5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


# -- helpers --------------------------------------------------------------------


def _source(
    api: Api, git: GitServer, namespace: str, files: dict[str, Any], *, name: str = SOURCE
) -> tuple[str, str]:
    repo = f"apps/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    sha = git.commit(repo, files)
    git_repository(
        api,
        namespace,
        name,
        {"interval": "1h", "url": git.url(repo), "ref": {"branch": "master"}},
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
    sha = git.commit(repo, files)
    request_reconcile(api, git_repository_path(namespace, name))
    return sha


def _spec(namespace: str, *, source: str = SOURCE, **extra: Any) -> dict[str, Any]:
    return {
        "interval": "1h",
        "path": "./app",
        "prune": True,
        "targetNamespace": namespace,
        "sourceRef": {"kind": "GitRepository", "name": source},
        **extra,
    }


def _applied(api: Api, namespace: str, sha: str, *, name: str = "app") -> dict[str, Any]:
    return wait_condition(
        api,
        kustomization_path(namespace, name),
        timeout=120,
        extra=lambda o: o["status"].get("lastAppliedRevision") == f"master@sha1:{sha}",
    )


def _reconciled(api: Api, namespace: str) -> dict[str, Any]:
    """Ask for a reconcile as `flux reconcile` does and wait until it has been handled."""
    path = kustomization_path(namespace, "app")
    requested = request_reconcile(api, path)
    return wait_condition(
        api, path, extra=lambda o: o["status"].get("lastHandledReconcileAt") == requested
    )


def _deployment(name: str, *, env: dict[str, str] | None = None, **template: Any) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **template.pop("metadata", {})},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], **template},
            },
        },
    }


def _deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def _kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(KUBECTL), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ_for(cluster),
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def _kustomization_yaml(*resources: str) -> str:
    return yaml.safe_dump({"resources": list(resources)})


# -- spec.ignore --------------------------------------------------------------------


def test_ignored_replicas_keep_the_hand_set_value_and_others_are_corrected(
    api: Api, cluster: Cluster, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    files = {
        "app/kustomization.yaml": _kustomization_yaml("web.yaml", "api.yaml"),
        "app/web.yaml": yaml.safe_dump(_deployment("web")),
        "app/api.yaml": yaml.safe_dump(_deployment("api")),
    }
    _, sha = _source(api, git, namespace, files)
    rule = {"paths": ["/spec/replicas"], "target": {"kind": "Deployment", "name": "web"}}
    kustomization(api, namespace, "app", _spec(namespace, ignore=[rule]))
    _applied(api, namespace, sha)

    for name in ("web", "api"):
        _kubectl(cluster, "-n", namespace, "scale", f"deployment/{name}", "--replicas=3")
    _reconciled(api, namespace)

    web = api.get(_deployment_path(namespace, "web"))
    assert web["spec"]["replicas"] == 3, "spec.ignore must keep the hand-set replicas"
    api_deployment = api.get(_deployment_path(namespace, "api"))
    assert api_deployment["spec"]["replicas"] == 1, "without a rule, drift is corrected"


def test_a_hand_edit_is_undone_at_every_reconcile_after_it(
    api: Api, cluster: Cluster, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    # Without spec.ignore: the applier remembers what it applied, and must still see edits.
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
    files = {
        "app/kustomization.yaml": _kustomization_yaml("settings.yaml", "web.yaml"),
        "app/settings.yaml": yaml.safe_dump({**config, "data": {"mode": "git"}}),
        "app/web.yaml": yaml.safe_dump(_deployment("web")),
    }
    _, sha = _source(api, git, namespace, files)
    kustomization(api, namespace, "app", _spec(namespace))
    _applied(api, namespace, sha)
    config_path = f"/api/v1/namespaces/{namespace}/configmaps/settings"

    for round_ in range(2):
        api.merge_patch(config_path, {"data": {"mode": f"hand-{round_}"}})
        _kubectl(cluster, "-n", namespace, "scale", "deployment/web", f"--replicas={3 + round_}")
        _reconciled(api, namespace)
        assert api.get(config_path)["data"] == {"mode": "git"}, f"edit {round_} stayed"
        assert api.get(_deployment_path(namespace, "web"))["spec"]["replicas"] == 1
        # Nothing changed since: a reconcile leaves both as they are.
        _reconciled(api, namespace)
        assert api.get(config_path)["data"] == {"mode": "git"}


# -- field-manager takeover ---------------------------------------------------------


def test_a_deployment_created_with_kubectl_apply_loses_the_env_var_git_removes(
    api: Api, cluster: Cluster, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    both = _deployment("web", env={"LOG_LEVEL": "debug", "FEATURE_X": "on"})
    _kubectl(cluster, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(both))
    files = {
        "app/kustomization.yaml": _kustomization_yaml("web.yaml"),
        "app/web.yaml": yaml.safe_dump(both),
    }
    repo, sha = _source(api, git, namespace, files)
    kustomization(api, namespace, "app", _spec(namespace))
    _applied(api, namespace, sha)

    one = _deployment("web", env={"LOG_LEVEL": "debug"})
    new_sha = _push(api, git, namespace, repo, {"app/web.yaml": yaml.safe_dump(one)})
    _applied(api, namespace, new_sha)

    live = api.get(_deployment_path(namespace, "web"))
    env = live["spec"]["template"]["spec"]["containers"][0].get("env")
    assert env == [{"name": "LOG_LEVEL", "value": "debug"}]
    annotations = live["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    managers = {entry["manager"] for entry in live["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" not in managers


# -- one rollout per commit ---------------------------------------------------------


def _settled(api: Api, namespace: str, name: str) -> dict[str, Any]:
    """The Deployment once kube-controller-manager has acted on its latest template."""

    def check() -> dict[str, Any] | None:
        live = api.get(_deployment_path(namespace, name))
        observed = live.get("status", {}).get("observedGeneration", 0)
        return live if observed >= live["metadata"]["generation"] else None

    settled: dict[str, Any] = wait_for(check, timeout=60, what=f"Deployment {name} observed")
    return settled


def _replica_sets(api: Api, namespace: str, app: str) -> list[dict[str, Any]]:
    return api.items(
        f"/apis/apps/v1/namespaces/{namespace}/replicasets", labelSelector=f"app={app}"
    )


def _restarter_outcomes(daemon: Fluxd) -> float:
    """Changes the restarter has finished with: restarts written plus workloads up to date."""
    restarted = daemon.metric("reloader_reload_executed_total", success="true") or 0.0
    current = daemon.metric("fluxd_restarter_skipped_total", reason="up-to-date") or 0.0
    return restarted + current


def test_one_commit_changing_a_secret_and_its_deployment_rolls_it_once(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    def files(level: str, image: str) -> dict[str, Any]:
        web = _deployment("web", metadata={"annotations": {"reloader.stakater.com/auto": "true"}})
        container = web["spec"]["template"]["spec"]["containers"][0]
        container["image"] = image
        container["envFrom"] = [{"secretRef": {"name": "web-config"}}]
        kustomization_file = {
            "resources": ["web.yaml"],
            # A fixed name: the Secret changes in place, so only a restarter rolls the pods.
            "generatorOptions": {"disableNameSuffixHash": True},
            "secretGenerator": [{"name": "web-config", "literals": [f"LOG_LEVEL={level}"]}],
        }
        return {
            "app/kustomization.yaml": yaml.safe_dump(kustomization_file),
            "app/web.yaml": yaml.safe_dump(web),
        }

    repo, sha = _source(api, git, namespace, files("info", "nginx:1.27"))
    kustomization(api, namespace, "app", _spec(namespace))
    _applied(api, namespace, sha)
    _settled(api, namespace, "web")
    assert len(_replica_sets(api, namespace, "web")) == 1
    handled = _restarter_outcomes(daemon)

    new_sha = _push(api, git, namespace, repo, files("debug", "nginx:1.28"))
    _applied(api, namespace, new_sha)
    # The restarter sees the Secret change and either restarts the Deployment or finds
    # its record current; only then is the number of rollouts final.
    wait_for(
        lambda: _restarter_outcomes(daemon) > handled,
        timeout=60,
        what="the restarter to handle the Secret change",
    )
    live = _settled(api, namespace, "web")

    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    replica_sets = _replica_sets(api, namespace, "web")
    assert len(replica_sets) == 2, "one commit must roll the Deployment once: " + ", ".join(
        rs["metadata"]["name"] for rs in replica_sets
    )

    # The record is part of what fluxd applies now: a later reconcile finds no drift.
    generation = live["metadata"]["generation"]
    assert _reconciled(api, namespace)["status"]["lastAppliedRevision"] == f"master@sha1:{new_sha}"
    assert api.get(_deployment_path(namespace, "web"))["metadata"]["generation"] == generation


# -- progress visibility ------------------------------------------------------------


def test_a_dependent_moves_only_after_its_dependency_is_ready_on_the_new_revision(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    """The dependency's new revision waits for a Deployment whose scheduling the test opens."""
    gate = f"fluxd.test/gate-{namespace}"
    gated = _deployment("gated", nodeSelector={gate: "open"})

    def configmap(name: str, value: str) -> str:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        return yaml.safe_dump({**body, "data": {"v": value}})

    repo_a, _ = _source(api, git, namespace, {"app/a.yaml": configmap("a", "1")}, name="first")
    repo_b, sha_b = _source(api, git, namespace, {"app/b.yaml": configmap("b", "1")}, name="second")
    kustomization(api, namespace, "a", _spec(namespace, source="first", wait=True, timeout="3m"))
    kustomization(api, namespace, "b", _spec(namespace, source="second", dependsOn=[{"name": "a"}]))
    _applied(api, namespace, sha_b, name="b")

    new_a = _push(
        api, git, namespace, repo_a, {"app/gated.yaml": yaml.safe_dump(gated)}, name="first"
    )
    progressing = wait_condition(
        api, kustomization_path(namespace, "a"), status="Unknown", reason="Progressing"
    )
    reconciling = condition(progressing, "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True"
    assert f"master@sha1:{new_a}" in reconciling["message"]
    new_b = _push(api, git, namespace, repo_b, {"app/b.yaml": configmap("b", "2")}, name="second")
    waiting = wait_condition(
        api, kustomization_path(namespace, "b"), status="False", reason="DependencyNotReady"
    )
    assert waiting["status"]["lastAttemptedRevision"] == f"master@sha1:{sha_b}"

    node = api.items("/api/v1/nodes")[0]["metadata"]["name"]
    api.merge_patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {gate: "open"}}})
    try:
        moved = _applied(api, namespace, new_b, name="b")
    finally:
        api.merge_patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {gate: None}}})

    dependency = api.get(kustomization_path(namespace, "a"))
    assert dependency["status"]["lastAppliedRevision"] == f"master@sha1:{new_a}"
    ready_a, ready_b = condition(dependency), condition(moved)
    assert ready_a is not None and ready_b is not None
    assert ready_a["lastTransitionTime"] <= ready_b["lastTransitionTime"]
