"""Security promises, checked from outside: no secret leaks, no file escapes, no forged hooks.

One daemon (with ``--no-remote-bases``) is driven through successes and
failures that handle seeded secret values; afterwards the daemon's log, every
Event, every Flux status and /metrics are searched for them. The artifact
server, the receiver, the build sandbox and ``serviceAccountName`` are then
attacked the way a careless or hostile user would.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer, Symlink
from tests.support.badinputs import http, tracebacks, wait_not_ready
from tests.support.chat import ChatServer, dingtalk_alert, gitea_headers, gitea_push
from tests.support.daemon import Fluxd
from tests.support.flux import (
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    secret,
    wait_condition,
)

USER = "k3s"
GIT_PASSWORD = "seeded-git-password-9c1e7d"
WRONG_PASSWORD = "seeded-wrong-password-44ab0f"
WEBHOOK_TOKEN = "seeded-webhook-token-2b8e51"
SECRET_VALUE = "seeded-secret-data-77f3c2"
PROVIDER_TOKEN = "SECseeded-provider-signing-5d0a"
ROBOT_ACCESS_TOKEN = "seeded-robot-access-token-a91b"
SEEDS = (
    GIT_PASSWORD,
    WRONG_PASSWORD,
    WEBHOOK_TOKEN,
    SECRET_VALUE,
    PROVIDER_TOKEN,
    ROBOT_ACCESS_TOKEN,
)
RECEIVERS = "/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers"
FLUX_LISTS = (
    "/apis/source.toolkit.fluxcd.io/v1/gitrepositories",
    "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations",
    "/apis/notification.toolkit.fluxcd.io/v1/receivers",
    "/apis/notification.toolkit.fluxcd.io/v1beta3/providers",
    "/apis/notification.toolkit.fluxcd.io/v1beta3/alerts",
)
KUSTOMIZATION_HEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
FILES: dict[str, Any] = {
    "secret/kustomization.yaml": KUSTOMIZATION_HEAD
    + "secretGenerator:\n  - name: app-credentials\n    literals:\n"
    + f"      - password={SECRET_VALUE}\n"
    + "generatorOptions:\n  disableNameSuffixHash: true\n",
    # The same value in a Secret the API server refuses (the name is invalid).
    "badsecret/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: Bad_Name\n"
    + f"stringData:\n  password: {SECRET_VALUE}\n",
    "abspath/kustomization.yaml": KUSTOMIZATION_HEAD + "resources:\n  - /etc/passwd\n",
    "dotdot/kustomization.yaml": KUSTOMIZATION_HEAD + "resources:\n  - ../../../../etc/passwd\n",
    "symlink/etc": Symlink("/etc"),
    "symlink/kustomization.yaml": KUSTOMIZATION_HEAD
    + "secretGenerator:\n  - name: stolen\n    files:\n      - etc/passwd\n",
    "linkedfile/passwd": Symlink("/etc/passwd"),
    "linkedfile/kustomization.yaml": KUSTOMIZATION_HEAD
    + "configMapGenerator:\n  - name: stolen\n    files:\n      - passwd\n",
    "remote/kustomization.yaml": KUSTOMIZATION_HEAD
    + "resources:\n  - https://github.com/stakater/Reloader//deployments/kubernetes?ref=v1.0.0\n",
    "cluster/role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
    "metadata:\n  name: {role}\nrules: []\n",
}
PASSWD_MARKERS = ("root:x:0", "/bin/bash", "/usr/sbin/nologin")


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=GIT_PASSWORD, default_branch="main") as server:
        server.create_repo("owner/config.git")
        server.commit("owner/config.git", FILES)
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    instance = Fluxd(
        cluster,
        Path(tmp_path_factory.mktemp("fluxd-security")),
        name="fluxd-security",
        extra_args=[
            f"--lease-name=security-{uuid.uuid4().hex[:8]}",
            "--max-retry-delay=5s",
            "--requeue-dependency=2s",
            "--no-remote-bases=true",
            "--notification-max-attempts=2",
        ],
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


def _source(api: Api, git: GitServer, namespace: str) -> str:
    secret(api, namespace, "git-auth", {"username": USER, "password": GIT_PASSWORD})
    git_repository(
        api,
        namespace,
        "repo",
        {
            "interval": "1h",
            "url": git.url("owner/config.git"),
            "ref": {"branch": "main"},
            "secretRef": {"name": "git-auth"},
        },
    )
    path = git_repository_path(namespace, "repo")
    wait_condition(api, path, timeout=90)
    return path


def _kustomization(api: Api, namespace: str, name: str, path: str, **spec: Any) -> str:
    kustomization(
        api,
        namespace,
        name,
        {
            "interval": "1h",
            "path": path,
            "prune": True,
            "targetNamespace": namespace,
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
    )
    return kustomization_path(namespace, name)


# -- secrets never leak ------------------------------------------------------------------------


def _encodings(value: str) -> tuple[str, ...]:
    return (value, base64.b64encode(value.encode()).decode())


def _leaks(text: str) -> list[str]:
    return [seed for seed in SEEDS for form in _encodings(seed) if form in text]


def test_seeded_secrets_appear_in_no_log_event_status_or_metric(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    # Successes: a fetch with the password, a Secret built from seeded data.
    _source(api, git, namespace)
    wait_condition(api, _kustomization(api, namespace, "secret", "./secret"), timeout=90)
    # Failures: a wrong password, the seeded value in a Secret the API refuses.
    secret(api, namespace, "wrong-auth", {"username": USER, "password": WRONG_PASSWORD})
    git_repository(
        api,
        namespace,
        "wrong",
        {
            "interval": "1h",
            "url": git.url("owner/config.git"),
            "ref": {"branch": "main"},
            "secretRef": {"name": "wrong-auth"},
        },
    )
    wait_not_ready(
        api,
        git_repository_path(namespace, "wrong"),
        reasons=("AuthenticationFailed", "GitOperationFailed"),
    )
    wait_not_ready(
        api,
        _kustomization(api, namespace, "badsecret", "./badsecret"),
        reasons=("ReconciliationFailed",),
    )
    # A robot with a signing secret, alerted about the failures.
    with ChatServer(
        dingtalk_access_token=ROBOT_ACCESS_TOKEN, dingtalk_secret=PROVIDER_TOKEN
    ) as chat:
        dingtalk_alert(api, chat, namespace, name="all", kinds=("GitRepository", "Kustomization"))
        wait_for(
            lambda: any(
                r.get("msg") == "notification object is ready"
                and r.get("object") == f"{namespace}/all"
                for r in daemon.log_records()
            ),
            timeout=60,
            what="the Alert to be live",
        )
        api.merge_patch(
            git_repository_path(namespace, "wrong"),
            {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}},
        )
        chat.wait_for_request("/robot/send", what="an alert")
    # A Receiver: one forged delivery, one genuine.
    secret(api, namespace, "webhook-token", {"token": WEBHOOK_TOKEN})
    url = _receiver(api, daemon, namespace)
    body = gitea_push()
    assert http(url, body, headers=gitea_headers(body, secret="forged"))[0] == 401
    assert http(url, body, headers=gitea_headers(body, secret=WEBHOOK_TOKEN))[0] == 200

    found: dict[str, list[str]] = {}
    found["daemon log"] = _leaks(daemon.log_path.read_text(errors="replace"))
    found["events"] = _leaks(json.dumps(api.items("/api/v1/events")))
    found["events.k8s.io"] = _leaks(json.dumps(api.items("/apis/events.k8s.io/v1/events")))
    statuses = [item.get("status") for path in FLUX_LISTS for item in api.items(path)]
    found["statuses"] = _leaks(json.dumps(statuses))
    found["metrics"] = _leaks(daemon.get("/metrics")[1])
    assert {where: seeds for where, seeds in found.items() if seeds} == {}
    # The successful build really carried the value (the search above could not miss it).
    built = api.get(f"/api/v1/namespaces/{namespace}/secrets/app-credentials")
    assert base64.b64decode(built["data"]["password"]).decode() == SECRET_VALUE


def _receiver(api: Api, daemon: Fluxd, namespace: str) -> str:
    api.create(
        RECEIVERS.format(ns=namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "hook"},
            "spec": {
                "type": "gitea",
                "resources": [{"kind": "GitRepository", "name": "repo"}],
                "secretRef": {"name": "webhook-token"},
            },
        },
    )
    path: str = wait_for(
        lambda: (
            api.get(f"{RECEIVERS.format(ns=namespace)}/hook").get("status", {}).get("webhookPath")
        ),
        timeout=60,
        what="the Receiver's webhook path",
    )
    return daemon.webhook_url + path


# -- webhooks ----------------------------------------------------------------------------------


def test_forged_and_altered_replayed_deliveries_are_refused(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    _source(api, git, namespace)
    secret(api, namespace, "webhook-token", {"token": WEBHOOK_TOKEN})
    url = _receiver(api, daemon, namespace)
    genuine = gitea_push()
    headers = gitea_headers(genuine, secret=WEBHOOK_TOKEN)
    altered = genuine.replace(b"refs/heads/", b"refs/heads/evil-")
    assert altered != genuine

    assert http(url, genuine, headers=gitea_headers(genuine, secret="guess"))[0] == 401
    assert http(url, altered, headers=headers)[0] == 401  # replayed signature, new body
    assert http(url, genuine, headers={})[0] == 401  # no signature at all
    repo = api.get(git_repository_path(namespace, "repo"))
    assert "reconcile.fluxcd.io/requestedAt" not in (repo["metadata"].get("annotations") or {})

    assert http(url, genuine, headers=headers)[0] == 200
    wait_for(
        lambda: (
            "reconcile.fluxcd.io/requestedAt"
            in (
                api.get(git_repository_path(namespace, "repo"))["metadata"].get("annotations") or {}
            )
        ),
        timeout=30,
        what="the genuine delivery to request a reconcile",
    )


# -- the artifact server -----------------------------------------------------------------------


def _raw_get(daemon: Fluxd, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation)."""
    connection = HTTPConnection("127.0.0.1", daemon.storage_port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_artifact_server_serves_artifacts_and_nothing_else(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    repo = _source(api, git, namespace)
    artifact = api.get(repo)["status"]["artifact"]
    served = "/" + artifact["path"]
    status, body = _raw_get(daemon, served)
    assert status == 200 and body[:2] == b"\x1f\x8b", "the artifact itself is served"
    # ... on the storage port only: the metrics port (open to Prometheus) never serves it.
    assert daemon.get(served)[0] == 404

    storage = daemon.workdir / "storage"
    folder = storage / Path(artifact["path"]).parent
    os.symlink("/etc/passwd", folder / "passwd.tar.gz")
    os.symlink("/etc", folder / "etc")
    os.symlink("/etc", storage / "gitrepository" / "etc")
    base = f"/gitrepository/{namespace}/repo"
    attempts = [
        f"{base}/../../../../../../etc/passwd",
        f"{base}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"{base}/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gitrepository/%2fetc%2fpasswd",
        "/gitrepository//etc/passwd",
        "/etc/passwd",
        f"{base}/passwd.tar.gz",
        f"{base}/etc/passwd",
        "/gitrepository/etc/passwd",
        f"/{storage}/gitrepository/{namespace}/repo/{Path(artifact['path']).name}",
    ]
    answers = {attempt: _raw_get(daemon, attempt) for attempt in attempts}
    assert {a: s for a, (s, _) in answers.items() if s != 404} == {}
    for _, body in answers.values():
        assert not any(marker.encode() in body for marker in PASSWD_MARKERS)


# -- builds stay inside their artifact ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        pytest.param("./abspath", ("/etc/passwd",), id="absolute-path"),
        pytest.param("./dotdot", ("etc/passwd",), id="dot-dot"),
        pytest.param("./symlink", ("etc",), id="symlink-to-etc"),
        pytest.param("./linkedfile", ("passwd",), id="symlinked-file"),
    ],
)
def test_builds_cannot_read_outside_their_artifact(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str, path: str, words: tuple[str, ...]
) -> None:
    logged = len(daemon.log_records())
    _source(api, git, namespace)
    ks = _kustomization(api, namespace, "escape", path)
    ready = wait_not_ready(api, ks, reasons=("BuildFailed",), words=words)
    assert not any(marker in ready["message"] for marker in PASSWD_MARKERS), ready["message"]
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}/secrets/stolen") is None
    assert api.get_or_none(f"/api/v1/namespaces/{namespace}/configmaps/stolen") is None
    log = daemon.log_path.read_text(errors="replace")
    assert not any(marker in log for marker in PASSWD_MARKERS)
    assert tracebacks(daemon, since=logged) == []


def test_remote_bases_are_refused_when_disabled(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    _source(api, git, namespace)
    ks = _kustomization(api, namespace, "remote", "./remote")
    wait_not_ready(api, ks, reasons=("BuildFailed",), words=("remote bases are disabled",))


# -- serviceAccountName confines the applier ---------------------------------------------------


def test_service_account_confines_what_a_kustomization_may_create(
    api: Api, daemon: Fluxd, git: GitServer, namespace: str
) -> None:
    role_name = f"escalated-{namespace}"
    repo = f"owner/cluster-{namespace}.git"
    git.create_repo(repo)
    git.commit(
        repo,
        {
            "role.yaml": FILES["cluster/role.yaml"].format(role=role_name),
            "secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: allowed\n"
            "stringData:\n  a: b\n",
        },
    )
    api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "secrets-only"}},
    )
    api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "secrets-only"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}],
        },
    )
    api.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "secrets-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "secrets-only",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "secrets-only", "namespace": namespace}
            ],
        },
    )
    secret(api, namespace, "git-auth", {"username": USER, "password": GIT_PASSWORD})
    git_repository(
        api,
        namespace,
        "repo",
        {
            "interval": "1h",
            "url": git.url(repo),
            "ref": {"branch": "main"},
            "secretRef": {"name": "git-auth"},
        },
    )
    ks = _kustomization(api, namespace, "confined", "./", serviceAccountName="secrets-only")
    ready = wait_not_ready(api, ks, reasons=("ReconciliationFailed",), words=("forbidden",))
    assert role_name in ready["message"] or "ClusterRole" in ready["message"]
    assert api.get_or_none(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role_name}") is None
