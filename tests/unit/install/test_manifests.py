"""`kubectl apply -k manifests/`: what lands in the cluster, rendered by the real kustomize."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxd.api.crds import all_kinds
from fluxd.settings import load, split_addr
from tests.support.install import (
    CONTROLLER_NEEDS,
    CONTROLLER_NEVER,
    MANIFESTS,
    NAMESPACE,
    ROOT,
    SERVICE_ACCOUNT,
    Access,
    Manifest,
    allows,
    find,
)

CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}
# The built-in role every cluster has (not part of the install).
CLUSTER_ADMIN = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]


def _container(objects: list[Manifest]) -> dict[str, Any]:
    deployment = find(objects, "Deployment", "fluxd")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _pod_spec(objects: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment", "fluxd")["spec"]["template"]["spec"]
    return spec


def _args(objects: list[Manifest]) -> dict[str, str]:
    container = _container(objects)
    assert container["command"] == ["fluxd", "run"]
    flags = {}
    for arg in container["args"]:
        name, _, value = arg.partition("=")
        flags[name] = value
    return flags


def _rules_bound_to_fluxd(objects: list[Manifest], *, namespace: str | None) -> list[Manifest]:
    """Rules the ServiceAccount holds (cluster-wide, or in ``namespace`` through RoleBindings)."""
    rules: list[Manifest] = []
    for binding in objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == SERVICE_ACCOUNT
            and s["namespace"] == NAMESPACE
            for s in subjects
        ):
            continue
        role_ref = binding["roleRef"]
        if role_ref == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        }:
            rules.extend(CLUSTER_ADMIN)
            continue
        role = next(
            (
                obj
                for obj in objects
                if obj["kind"] == role_ref["kind"] and obj["metadata"]["name"] == role_ref["name"]
            ),
            None,
        )
        assert role is not None, f"{binding['metadata']['name']} binds a role not in the install"
        rules.extend(role.get("rules", []))
    return rules


def _holds(objects: list[Manifest], access: Access) -> bool:
    return allows(_rules_bound_to_fluxd(objects, namespace=access.namespace or None), access)


# -- namespace and scope ------------------------------------------------------------


def test_the_install_creates_flux_system_first(installed: list[Manifest]) -> None:
    assert installed[0]["kind"] == "Namespace"
    assert installed[0]["metadata"]["name"] == NAMESPACE


def test_every_namespaced_object_lands_in_flux_system(installed: list[Manifest]) -> None:
    stray = [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in installed
        if obj["kind"] not in CLUSTER_SCOPED and obj["metadata"].get("namespace") != NAMESPACE
    ]
    assert stray == []


def test_the_install_brings_the_crds_from_manifests_crds(installed: list[Manifest]) -> None:
    crds = MANIFESTS / "crds"
    listed = yaml.safe_load((crds / "kustomization.yaml").read_text())["resources"]
    expected = {yaml.safe_load((crds / entry).read_text())["metadata"]["name"] for entry in listed}
    names = {o["metadata"]["name"] for o in installed if o["kind"] == "CustomResourceDefinition"}
    assert len(listed) == len(all_kinds())
    assert names == expected


def _flux_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"v{version}"


def test_every_object_carries_fluxs_install_labels(installed: list[Manifest]) -> None:
    # `flux check`, `flux version`, `flux logs` and `flux uninstall` select on these.
    expected = {
        "app.kubernetes.io/instance": "flux-system",
        "app.kubernetes.io/part-of": "flux",
        "app.kubernetes.io/version": _flux_version(),
    }
    unlabelled = [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in installed
        if not expected.items() <= obj["metadata"].get("labels", {}).items()
    ]
    assert unlabelled == []


def test_the_crds_alone_carry_fluxs_install_labels() -> None:
    # Applied on their own (manifests/crds), `flux version` still reads the distribution.
    for path in sorted((MANIFESTS / "crds").glob("*_*.yaml")):
        labels = yaml.safe_load(path.read_text())["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "flux", path.name
        assert labels["app.kubernetes.io/version"] == _flux_version(), path.name


def test_the_pods_are_fluxs_and_fluxds(installed: list[Manifest]) -> None:
    deployment = find(installed, "Deployment", "fluxd")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    # `flux logs` finds pods by the Deployment's template labels; fluxd's selector is its name.
    assert pod_labels["app.kubernetes.io/part-of"] == "flux"
    assert pod_labels["app.kubernetes.io/name"] == "fluxd"
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "fluxd"}}


# -- settings -------------------------------------------------------------------------


def test_the_shipped_settings_are_config_fluxd_yaml() -> None:
    assert (MANIFESTS / "fluxd.yaml").read_text() == (ROOT / "config" / "fluxd.yaml").read_text(), (
        "manifests/fluxd.yaml differs from config/fluxd.yaml: cp config/fluxd.yaml manifests/"
    )


def test_the_daemon_reads_its_settings_from_the_configmap(installed: list[Manifest]) -> None:
    configmap = find(installed, "ConfigMap")
    assert configmap["data"] == {"fluxd.yaml": (ROOT / "config" / "fluxd.yaml").read_text()}
    config_path = Path(_args(installed)["--config"])
    mount = next(m for m in _container(installed)["volumeMounts"] if m["name"] == "config")
    assert config_path == Path(mount["mountPath"]) / "fluxd.yaml"
    volume = next(v for v in _pod_spec(installed)["volumes"] if v["name"] == "config")
    # kustomize renamed the generated ConfigMap (content hash) and the reference with it.
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]


def test_artifacts_of_the_installed_daemon_are_served_on_loopback_only(
    installed: list[Manifest],
) -> None:
    # A private repository's artifacts hold its secrets: nothing in the cluster downloads them.
    args = _args(installed)
    assert "--storage-addr" not in args and "--storage-adv-addr" not in args
    settings = load(environ={}, config_file=str(ROOT / "config" / "fluxd.yaml"))
    host, storage_port = split_addr(settings.storage_addr)
    assert host == "127.0.0.1"
    service = find(installed, "Service", "fluxd")
    assert storage_port not in {p["port"] for p in service["spec"]["ports"]}


def test_pod_identity_comes_from_the_downward_api(installed: list[Manifest]) -> None:
    env = {
        e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in _container(installed)["env"]
    }
    assert env["POD_NAME"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["fieldPath"] == "metadata.namespace"
    assert env["POD_IP"]["fieldPath"] == "status.podIP"


def test_storage_and_scratch_space_are_empty_dirs(installed: list[Manifest]) -> None:
    volumes = {v["name"]: v for v in _pod_spec(installed)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(installed)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/data"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Bounded, so growth of the storage cannot fill the node's disk.
    assert volumes[mounts["/data"]]["emptyDir"]["sizeLimit"] == "1Gi"
    assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"] == "256Mi"
    assert _args(installed)["--storage-path"] == "/data"


# -- the pod ----------------------------------------------------------------------------


def test_the_pod_runs_as_an_unprivileged_numeric_user(installed: list[Manifest]) -> None:
    pod = _pod_spec(installed)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(installed)["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert _pod_spec(installed)["serviceAccountName"] == SERVICE_ACCOUNT


def test_probes_use_the_metrics_port(installed: list[Manifest]) -> None:
    container = _container(installed)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-prom"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-prom"}
    metrics_port = yaml.safe_load((ROOT / "config" / "fluxd.yaml").read_text())["metrics-addr"]
    assert ports["http-prom"] == int(metrics_port.rpartition(":")[2])


def test_one_replica_with_resources_sized_above_the_idle_footprint(
    installed: list[Manifest],
) -> None:
    deployment = find(installed, "Deployment", "fluxd")
    assert deployment["spec"]["replicas"] == 1
    resources = _container(installed)["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert resources["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert _container(installed)["image"] == "ghcr.io/fluxd/fluxd:0.1.0"


def test_the_service_exposes_the_webhook_and_metrics_ports(installed: list[Manifest]) -> None:
    service = find(installed, "Service", "fluxd")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http-webhook": (9292, "http-webhook"), "http-prom": (8080, "http-prom")}
    container_ports = {p["name"] for p in _container(installed)["ports"]}
    assert container_ports == {"http-webhook", "http-prom", "http-events"}
    pod_labels = find(installed, "Deployment", "fluxd")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


# -- RBAC -------------------------------------------------------------------------------


@pytest.mark.parametrize("access", CONTROLLER_NEEDS, ids=str)
def test_the_controller_grants_cover_every_request_fluxd_makes(
    confined: list[Manifest], access: Access
) -> None:
    assert _holds(confined, access)


@pytest.mark.parametrize("access", CONTROLLER_NEVER, ids=str)
def test_without_the_applier_nothing_else_is_granted(
    confined: list[Manifest], access: Access
) -> None:
    assert not _holds(confined, access)


def test_leases_are_granted_only_in_flux_system(installed: list[Manifest]) -> None:
    lease = Access("update", "coordination.k8s.io", "leases", namespace=NAMESPACE)
    assert _holds(installed, lease)
    role_binding = find(installed, "RoleBinding", "fluxd-leader-election")
    assert role_binding["metadata"]["namespace"] == NAMESPACE
    cluster_rules = _rules_bound_to_fluxd(
        [obj for obj in installed if obj["metadata"]["name"] != "fluxd-applier"], namespace=None
    )
    assert not allows(cluster_rules, Access("get", "coordination.k8s.io", "leases"))


def test_the_applier_is_cluster_admin_and_the_only_broad_grant(
    installed: list[Manifest], confined: list[Manifest]
) -> None:
    applier = find(installed, "ClusterRoleBinding", "fluxd-applier")
    assert applier["roleRef"]["name"] == "cluster-admin"
    assert applier["subjects"] == [
        {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    ]
    removed = {(o["kind"], o["metadata"]["name"]) for o in installed} - {
        (o["kind"], o["metadata"]["name"]) for o in confined
    }
    assert removed == {("ClusterRoleBinding", "fluxd-applier")}
    everything_else = [o for o in installed if o["metadata"]["name"] != "fluxd-applier"]
    assert everything_else == confined
    wildcard = [
        rule
        for obj in installed
        if obj["kind"] in ("ClusterRole", "Role")
        for rule in obj.get("rules", [])
        if "*" in rule.get("verbs", []) + rule.get("resources", []) + rule.get("apiGroups", [])
    ]
    assert wildcard == []


# -- network policy ------------------------------------------------------------------------


def test_network_policy_admits_the_webhook_from_anywhere_and_metrics_from_monitoring(
    installed: list[Manifest],
) -> None:
    policy = find(installed, "NetworkPolicy", "fluxd")
    assert policy["metadata"]["namespace"] == NAMESPACE
    pod_labels = find(installed, "Deployment", "fluxd")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    webhook, metrics, events = policy["spec"]["ingress"]
    assert events == {
        "from": [{"podSelector": {}}],
        "ports": [{"port": "http-events", "protocol": "TCP"}],
    }
    assert "from" not in webhook
    assert [p["port"] for p in webhook["ports"]] == ["http-webhook"]
    assert [p["port"] for p in metrics["ports"]] == ["http-prom"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    } in (metrics["from"])


def test_flux_controllers_reach_the_events_endpoint_at_their_default_address(
    installed: list[Manifest],
) -> None:
    # Flux installs its controllers with
    # --events-addr=http://notification-controller.flux-system.svc.cluster.local./ (port 80).
    service = find(installed, "Service", "notification-controller")
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http-events", "protocol": "TCP"}
    ]
    pod_labels = find(installed, "Deployment", "fluxd")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"]: p["containerPort"] for p in _container(installed)["ports"]}
    settings = load(environ={}, config_file=str(ROOT / "config" / "fluxd.yaml"))
    assert container_ports["http-events"] == split_addr(settings.events_addr)[1]
