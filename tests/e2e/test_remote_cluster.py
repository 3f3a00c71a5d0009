"""Kustomizations that apply to a remote cluster through ``spec.kubeConfig.secretRef``.

Two real control planes: the local one runs the daemon and holds the
Kustomization, its status and the kubeconfig Secret (as a user would make it);
the remote one receives the objects. Apply, prune, health checks and deletion
happen there; an unreachable remote is reported at once and holds nobody else up.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from testenv.api import Api, wait_for
from testenv.cluster import Cluster, free_port
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
from tests.support.remote import embedded_kubeconfig

SOURCE = "apps"
KUBECONFIG_SECRET = "remote-kubeconfig"


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
        tmp_path_factory.mktemp("fluxd-remote"),
        extra_args=["--lease-name=remote-cluster-tests", "--max-retry-delay=5s"],
    ).start()
    yield fluxd
    assert fluxd.stop() == 0, fluxd.log_tail()


@pytest.fixture
def remote_namespace(remote_cluster: Cluster, namespace: str) -> Iterator[str]:
    """The local test namespace's twin in the remote cluster, where the objects go."""
    remote_cluster.create_namespace(namespace)
    yield namespace
    remote_cluster.api.delete(f"/api/v1/namespaces/{namespace}")


def _kubeconfig_secret(api: Api, namespace: str, remote: Cluster, *, server: str = "") -> None:
    """The remote's kubeconfig in a local Secret, as ``kubectl create secret`` would make it."""
    text = embedded_kubeconfig(
        server=server or remote.server,
        ca_cert=remote.pki.ca_cert,
        client_cert=remote.pki.admin_cert,
        client_key=remote.pki.admin_key,
    )
    secret(api, namespace, KUBECONFIG_SECRET, {"value.yaml": text})


def _source(api: Api, git: GitServer, namespace: str, files: dict[str, Any]) -> tuple[str, str]:
    repo = f"remote/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    sha = git.commit(repo, files)
    git_repository(
        api,
        namespace,
        SOURCE,
        {"interval": "1h", "url": git.url(repo), "ref": {"branch": "master"}},
    )
    return repo, sha


def _spec(namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "interval": "10m",
        "path": "./deploy",
        "prune": True,
        "targetNamespace": namespace,
        "sourceRef": {"kind": "GitRepository", "name": SOURCE},
        "kubeConfig": {"secretRef": {"name": KUBECONFIG_SECRET}},
        **extra,
    }


def _configmap(name: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


def _service(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
        }
    )


def _applied(api: Api, namespace: str, name: str, sha: str) -> dict[str, Any]:
    return wait_condition(
        api,
        kustomization_path(namespace, name),
        extra=lambda o: o["status"].get("lastAppliedRevision") == f"master@sha1:{sha}",
    )


def _configmap_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def test_objects_are_applied_and_pruned_in_the_remote_cluster(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    remote_cluster: Cluster,
    remote_namespace: str,
) -> None:
    files: dict[str, str | bytes | None] = {
        "deploy/a.yaml": _configmap("settings-a"),
        "deploy/b.yaml": _configmap("settings-b"),
    }
    repo, sha = _source(api, git, namespace, files)
    _kubeconfig_secret(api, namespace, remote_cluster)
    kustomization(api, namespace, "backend", _spec(namespace))

    obj = _applied(api, namespace, "backend", sha)
    remote = remote_cluster.api
    for name in ("settings-a", "settings-b"):
        assert remote.get(_configmap_path(namespace, name))["data"] == {"k": name}
        assert api.get_or_none(_configmap_path(namespace, name)) is None
    assert {entry["id"] for entry in obj["status"]["inventory"]["entries"]} == {
        f"{namespace}_settings-a__ConfigMap",
        f"{namespace}_settings-b__ConfigMap",
    }

    new_sha = git.commit(repo, {"deploy/b.yaml": None})
    request_reconcile(api, git_repository_path(namespace, SOURCE))
    _applied(api, namespace, "backend", new_sha)
    assert remote.get_or_none(_configmap_path(namespace, "settings-b")) is None
    assert remote.get_or_none(_configmap_path(namespace, "settings-a")) is not None


def test_a_health_check_waits_on_the_remote_objects(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    remote_cluster: Cluster,
    remote_namespace: str,
) -> None:
    files: dict[str, str | bytes | None] = {
        "deploy/cm.yaml": _configmap("settings"),
        "deploy/svc.yaml": _service("web"),
    }
    _, sha = _source(api, git, namespace, files)
    _kubeconfig_secret(api, namespace, remote_cluster)
    kustomization(api, namespace, "web", _spec(namespace, wait=True, timeout="1m"))

    obj = _applied(api, namespace, "web", sha)
    healthy = condition(obj, "Healthy")
    assert healthy is not None and healthy["status"] == "True", obj["status"]
    assert remote_cluster.api.get_or_none(f"/api/v1/namespaces/{namespace}/services/web")
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}/services/web") is None


def test_an_unreachable_remote_is_reported_and_holds_nobody_up(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, remote_cluster: Cluster
) -> None:
    _source(api, git, namespace, {"deploy/cm.yaml": _configmap("settings")})
    # Nothing listens there: the remote is down.
    server = f"https://127.0.0.1:{free_port()}"
    _kubeconfig_secret(api, namespace, remote_cluster, server=server)
    kustomization(api, namespace, "unreachable", _spec(namespace))
    local_spec = _spec(namespace)
    del local_spec["kubeConfig"]
    kustomization(api, namespace, "local", local_spec)

    failed = wait_condition(
        api,
        kustomization_path(namespace, "unreachable"),
        status="False",
        reason="ReconciliationFailed",
        timeout=30,
    )
    message = condition(failed)["message"]  # type: ignore[index]
    assert f"cannot reach the API server at {server}" in message
    wait_condition(api, kustomization_path(namespace, "local"), timeout=30)
    assert api.get_or_none(_configmap_path(namespace, "settings")) is not None

    def warned() -> bool:
        return any(
            event.get("type") == "Warning" and server in str(event.get("message"))
            for event in events_for(api, namespace, "unreachable")
        )

    wait_for(warned, what="a Warning event naming the unreachable server")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung API server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"


def test_a_remote_that_never_answers_is_reported_within_the_connect_timeout(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    remote_cluster: Cluster,
    silent_server: str,
) -> None:
    _source(api, git, namespace, {"deploy/cm.yaml": _configmap("settings")})
    _kubeconfig_secret(api, namespace, remote_cluster, server=silent_server)
    kustomization(api, namespace, "hung", _spec(namespace))
    local_spec = _spec(namespace)
    del local_spec["kubeConfig"]
    kustomization(api, namespace, "local", local_spec)

    # The local one does not wait for the hung remote's requests to give up.
    local = wait_condition(api, kustomization_path(namespace, "local"), timeout=30)
    hung = api.get(kustomization_path(namespace, "hung"))
    assert (condition(hung) or {}).get("reason") != "ReconciliationSucceeded"
    assert local["status"]["lastAppliedRevision"]

    # Reported as a connection that timed out (bounded at 10 s for TCP and TLS), not as a
    # request that ran out its 30 s.
    failed = wait_condition(
        api,
        kustomization_path(namespace, "hung"),
        status="False",
        reason="ReconciliationFailed",
        timeout=45,
    )
    message = condition(failed)["message"]  # type: ignore[index]
    assert f"cannot reach the API server at {silent_server}: Connection timeout" in message


def test_a_missing_kubeconfig_secret_is_named(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    _source(api, git, namespace, {"deploy/cm.yaml": _configmap("settings")})
    kustomization(api, namespace, "orphan", _spec(namespace))

    failed = wait_condition(
        api,
        kustomization_path(namespace, "orphan"),
        status="False",
        reason="ReconciliationFailed",
        timeout=30,
    )
    assert condition(failed)["message"] == (  # type: ignore[index]
        f"unable to read KubeConfig secret '{namespace}/{KUBECONFIG_SECRET}' error: "
        f'secrets "{KUBECONFIG_SECRET}" not found'
    )


def test_deleting_the_kustomization_collects_the_remote_objects(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    remote_cluster: Cluster,
    remote_namespace: str,
) -> None:
    _, sha = _source(api, git, namespace, {"deploy/cm.yaml": _configmap("settings")})
    _kubeconfig_secret(api, namespace, remote_cluster)
    kustomization(api, namespace, "doomed", _spec(namespace))
    _applied(api, namespace, "doomed", sha)
    path = _configmap_path(namespace, "settings")
    assert remote_cluster.api.get_or_none(path) is not None

    api.delete(kustomization_path(namespace, "doomed"))

    wait_for(
        lambda: api.get_or_none(kustomization_path(namespace, "doomed")) is None,
        what="the Kustomization to be finalized",
    )
    assert remote_cluster.api.get_or_none(path) is None


def test_the_service_account_is_impersonated_in_the_remote_cluster(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    namespace: str,
    remote_cluster: Cluster,
    remote_namespace: str,
) -> None:
    _, sha = _source(api, git, namespace, {"deploy/cm.yaml": _configmap("settings")})
    _kubeconfig_secret(api, namespace, remote_cluster)
    kustomization(api, namespace, "tenant", _spec(namespace, serviceAccountName="deployer"))
    user = f"system:serviceaccount:{namespace}:deployer"

    # The account has no rights in the remote yet: its requests are refused there.
    failed = wait_condition(
        api, kustomization_path(namespace, "tenant"), status="False", timeout=30
    )
    assert user in condition(failed)["message"]  # type: ignore[index]

    remote = remote_cluster.api
    remote.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}},
    )
    remote.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        },
    )
    request_reconcile(api, kustomization_path(namespace, "tenant"))
    _applied(api, namespace, "tenant", sha)
    assert remote.get_or_none(_configmap_path(namespace, "settings")) is not None
