"""The install on a real control plane: accepted as written; its RBAC is enough and no more.

The rendered manifests are server-side dry-run applied object by object. The
RBAC objects are then created for real and fluxd runs with a real token of
its ServiceAccount (TokenRequest, as the kubelet would mount it), through the
seed's flow: GitRepository → Kustomization → Secret → rolling restart. Access
reviews made with the same token show what the account is refused.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from testenv.api import Api, ApiError, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support import restarter as r
from tests.support.daemon import Fluxd
from tests.support.flux import (
    events_for,
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    request_reconcile,
    secret,
    wait_condition,
)
from tests.support.install import (
    CONTROLLER_NEEDS,
    CONTROLLER_NEVER,
    MANIFESTS,
    NAMESPACE,
    SERVICE_ACCOUNT,
    Access,
    Manifest,
    api_path,
    find,
    kustomize,
    overlay,
)

USER, TOKEN = "k3s", "gitea-pat-install-0123456789"
REALM_V1 = '[network]\nuse_udp = true\n\n[[endpoints]]\nlisten = "0.0.0.0:5000"\n'
REALM_V2 = '[network]\nuse_udp = false\n\n[[endpoints]]\nlisten = "0.0.0.0:5001"\n'
SEED_KUSTOMIZATION = (
    "apiVersion: kustomize.config.k8s.io/v1beta1\n"
    "kind: Kustomization\n"
    "secretGenerator:\n"
    "  - name: realm-config-ix\n"
    "    files:\n"
    "      - realm_ix.toml\n"
    "generatorOptions:\n"
    "  disableNameSuffixHash: true\n"
)
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
RELOADER_VARIABLE = "STAKATER_REALM_CONFIG_IX_SECRET"


# -- helpers --------------------------------------------------------------------------


def _plural(api: Api, obj: Manifest) -> tuple[str, bool]:
    """The resource name and scope of ``obj``'s kind, from the server's discovery."""
    group, _, version = obj["apiVersion"].rpartition("/")
    listing = api.get(f"/apis/{group}/{version}" if group else f"/api/{version}")
    for entry in listing["resources"]:
        if entry["kind"] == obj["kind"] and "/" not in entry["name"]:
            return str(entry["name"]), bool(entry["namespaced"])
    raise AssertionError(f"the server does not serve {obj['kind']} ({obj['apiVersion']})")


def _apply(api: Api, obj: Manifest, *, dry_run: bool = False) -> Manifest:
    plural, namespaced = _plural(api, obj)
    query = {"fieldManager": "fluxd-install", "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    return api.request(
        "PATCH",
        api_path(obj, plural=plural, namespaced=namespaced),
        obj,
        content_type="application/apply-patch+yaml",
        query=query,
    )


class Account:
    """Requests made with a ServiceAccount's own bearer token, not the admin's certificate."""

    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.token = token
        credentials = cluster.api.credentials
        self.host, self.port = credentials.host, credentials.port
        self.context = ssl.create_default_context(cafile=str(credentials.ca_cert))

    def allowed(self, access: Access) -> bool:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": access.review_attributes()},
        }
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=30
        )
        try:
            connection.request(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                body=json.dumps(body),
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            response = connection.getresponse()
            payload = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 201, payload
        return bool(payload["status"]["allowed"])

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that authenticates with the token (what in-cluster config amounts to)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testenv",
                    "cluster": {
                        "server": self.cluster.server,
                        "certificate-authority": str(self.cluster.api.credentials.ca_cert),
                    },
                }
            ],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": self.token}}],
            "contexts": [
                {"name": "fluxd", "context": {"cluster": "testenv", "user": SERVICE_ACCOUNT}}
            ],
            "current-context": "fluxd",
        }
        path.write_text(yaml.safe_dump(config))
        return path


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed() -> list[Manifest]:
    return kustomize(MANIFESTS)


@pytest.fixture(scope="module")
def flux_system(cluster: Cluster, crds: list[str], installed: list[Manifest]) -> str:
    """The namespace, created for real from the install (the CRDs come from the crds fixture)."""
    _apply(cluster.api, find(installed, "Namespace", NAMESPACE))
    return NAMESPACE


@pytest.fixture(scope="module")
def account(
    cluster: Cluster, flux_system: str, tmp_path_factory: pytest.TempPathFactory
) -> Account:
    """fluxd's ServiceAccount and controller grants, created for real; no applier binding."""
    confined = overlay(tmp_path_factory.mktemp("confined"), components=["components/confined"])
    for obj in confined:
        if obj["kind"] in RBAC_KINDS:
            _apply(cluster.api, obj)
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    issued = cluster.api.create(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token", request
    )
    return Account(cluster, str(issued["status"]["token"]))


@pytest.fixture
def applier(cluster: Cluster, account: Account, installed: list[Manifest]) -> Iterator[None]:
    """The default install's cluster-admin binding for the applier, for one test."""
    binding = find(installed, "ClusterRoleBinding", "fluxd-applier")
    _apply(cluster.api, binding)
    try:
        yield
    finally:
        cluster.api.delete("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/fluxd-applier")


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=TOKEN, default_branch="master") as server:
        yield server


# -- the manifests as written ---------------------------------------------------------


def test_every_object_of_the_install_is_accepted_by_the_api_server(
    api: Api, flux_system: str, tmp_path: Path, installed: list[Manifest]
) -> None:
    assert find(installed, "NetworkPolicy", "fluxd")
    for obj in installed:
        try:
            accepted = _apply(api, obj, dry_run=True)
        except ApiError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} refused: {error}")
        assert accepted["kind"] == obj["kind"]
        assert accepted["metadata"]["name"] == obj["metadata"]["name"]
        assert accepted["metadata"].get("namespace") == obj["metadata"].get("namespace")


def test_the_pod_passes_the_restricted_pod_security_standard(
    api: Api, account: Account, installed: list[Manifest]
) -> None:
    labels = api.get(f"/api/v1/namespaces/{NAMESPACE}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    template = find(installed, "Deployment", "fluxd")["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fluxd-admission-check", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    # Pod Security admission judges Pods, not Deployments: a dry-run Pod is judged as a real one.
    created = api.request(
        "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod, query={"dryRun": "All"}
    )
    assert created["spec"]["securityContext"]["runAsUser"] == 65532
    privileged = {**pod, "spec": {**pod["spec"], "securityContext": {}}}
    privileged["spec"]["containers"] = [
        {**c, "securityContext": {"privileged": True}} for c in pod["spec"]["containers"]
    ]
    with pytest.raises(ApiError) as refused:
        api.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", privileged, query={"dryRun": "All"}
        )
    assert refused.value.status == 403


# -- RBAC: enough, and no more ------------------------------------------------------------


def test_the_service_account_may_make_every_request_fluxd_makes(account: Account) -> None:
    refused = [str(access) for access in CONTROLLER_NEEDS if not account.allowed(access)]
    assert refused == []


def test_without_the_applier_the_service_account_is_refused_the_rest(account: Account) -> None:
    granted = [str(access) for access in CONTROLLER_NEVER if account.allowed(access)]
    assert granted == []


def test_the_applier_binding_is_what_grants_cluster_wide_writes(
    account: Account, applier: None
) -> None:
    create_bindings = Access("create", "rbac.authorization.k8s.io", "clusterrolebindings")
    assert account.allowed(create_bindings)
    assert account.allowed(Access("delete", "", "nodes"))


# -- the seed's flow as the ServiceAccount -------------------------------------------------


def _gone(api: Api, path: str) -> Callable[[], bool]:
    return lambda: api.get_or_none(path) is None


def _seed_deployment(api: Api, namespace: str) -> None:
    body = r.workload(
        "realm",
        annotations={"reloader.stakater.com/auto": "true"},
        containers=[r.app_container(mounts=["realm-config"])],
        volumes=[r.secret_volume("realm-config", "realm-config-ix")],
    )
    r.create(api, namespace, body)


def _deployer(api: Api, *, account: str, target: str) -> None:
    """A ServiceAccount in flux-system that may manage Secrets in ``target`` and nothing else."""
    api.apply(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    api.apply(
        f"{rbac}/namespaces/{target}/roles/{account}",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                }
            ],
        },
    )
    api.apply(
        f"{rbac}/namespaces/{target}/rolebindings/{account}",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
        },
    )


def test_the_seed_flow_runs_as_the_service_account_without_cluster_admin(
    cluster: Cluster,
    api: Api,
    namespace: str,
    account: Account,
    git: GitServer,
    tmp_path: Path,
) -> None:
    """The confined install: fluxd's own grants for everything, a deployer account to apply.

    Every request but the apply itself is made as fluxd's ServiceAccount with
    only the controller grants, so a missing grant breaks a visible step; a
    Kustomization that names no account is refused, as confinement promises.
    """
    repo = f"k3s/{uuid.uuid4().hex[:8]}.git"
    git.create_repo(repo)
    first = git.commit(
        repo,
        {"realm/ix/kustomization.yaml": SEED_KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_V1},
    )
    source = f"k3s-private-{uuid.uuid4().hex[:6]}"
    deployer = f"deployer-{uuid.uuid4().hex[:6]}"
    _deployer(api, account=deployer, target=namespace)
    secret(api, NAMESPACE, "gitea-auth", {"username": USER, "password": TOKEN})
    git_repository(
        api,
        NAMESPACE,
        source,
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": "master"},
            "secretRef": {"name": "gitea-auth"},
        },
    )
    sync = f"realm-{uuid.uuid4().hex[:6]}"
    unconfined = f"{sync}-as-fluxd"
    for name, extra in ((sync, {"serviceAccountName": deployer}), (unconfined, {})):
        kustomization(
            api,
            NAMESPACE,
            name,
            {
                "interval": "1h",
                "path": "./realm/ix",
                "prune": True,
                "targetNamespace": namespace,
                "sourceRef": {"kind": "GitRepository", "name": source},
                **extra,
            },
        )
    lease = f"install-{uuid.uuid4().hex[:6]}"
    daemon = Fluxd(
        cluster,
        tmp_path / "fluxd",
        name="fluxd-as-sa",
        extra_args=[
            f"--kubeconfig={account.kubeconfig(tmp_path / 'fluxd.kubeconfig')}",
            f"--lease-namespace={NAMESPACE}",
            f"--lease-name={lease}",
            "--restart-coalesce-window=0s",
        ],
    )
    try:
        daemon.start()
        wait_condition(
            api,
            kustomization_path(NAMESPACE, sync),
            timeout=120,
            extra=lambda o: o["status"].get("lastAppliedRevision") == f"master@sha1:{first}",
        )
        generated = api.get(f"/api/v1/namespaces/{namespace}/secrets/realm-config-ix")
        assert r.encoded({"realm_ix.toml": REALM_V1}) == generated["data"]
        refused = wait_condition(
            api, kustomization_path(NAMESPACE, unconfined), status="False", timeout=120
        )
        assert "forbidden" in str(refused["status"]["conditions"]).lower()
        _seed_deployment(api, namespace)
        before = r.env_value(
            r.pod_template(api, namespace, "Deployment", "realm"), RELOADER_VARIABLE
        )

        second = git.commit(repo, {"realm/ix/realm_ix.toml": REALM_V2})
        request_reconcile(api, git_repository_path(NAMESPACE, source))
        wait_condition(
            api,
            kustomization_path(NAMESPACE, sync),
            timeout=120,
            extra=lambda o: o["status"].get("lastAppliedRevision") == f"master@sha1:{second}",
        )

        def rolled() -> str | None:
            value = r.env_value(
                r.pod_template(api, namespace, "Deployment", "realm"), RELOADER_VARIABLE
            )
            return value if value and value != before else None

        wait_for(rolled, timeout=120, what="the Deployment restarted after the push")
        r.wait_rolled_out(api, namespace, "realm", timeout=120)
        # Events were written as the ServiceAccount too.
        assert events_for(api, NAMESPACE, sync)
        assert r.events(api, namespace, name="realm", reason="Reloaded")
        holder = api.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{lease}")
        assert holder["spec"]["holderIdentity"]
        # RBAC denials only: objects other tests left in namespaces being deleted are refused
        # Events with "forbidden: ... because it is being terminated", which is no missing grant.
        forbidden = [
            record
            for record in daemon.log_records()
            if "forbidden" in json.dumps(record).lower()
            and unconfined not in json.dumps(record)
            and "because it is being terminated" not in json.dumps(record)
        ]
        assert forbidden == [], forbidden[:3]

        # Removing the objects lets the daemon run their finalizers (and prune the Secret).
        for path in (
            kustomization_path(NAMESPACE, sync),
            kustomization_path(NAMESPACE, unconfined),
            git_repository_path(NAMESPACE, source),
        ):
            api.delete(path)
            wait_for(_gone(api, path), timeout=90, what=f"{path} finalized")
    finally:
        exit_code = daemon.stop()
    assert exit_code == 0, daemon.log_tail()
