"""The bad-input matrix: every mistake a user can make ends as something they can act on.

Each case feeds one bad input to one daemon shared by the module and checks
what a user would see: Ready=False with a reason and a message naming the
problem (or the HTTP answer, or the API server's schema rejection), a Warning
Event where Flux emits one, the daemon still alive with no traceback in its
log, and a healthy Kustomization next door that keeps reconciling.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from testenv.api import Api, ApiError, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.badinputs import (
    Neighbour,
    html_server,
    http,
    tracebacks,
    wait_not_ready,
    wait_warning,
)
from tests.support.chat import ChatServer, gitea_headers, gitea_push
from tests.support.daemon import Fluxd
from tests.support.flux import (
    git_repository,
    git_repository_path,
    kustomization,
    kustomization_path,
    secret,
    wait_condition,
)

USER, PASSWORD = "k3s", "badinputs-pat-5a1d"
WEBHOOK_TOKEN = "badinputs-webhook-token"
BODY_LIMIT = 32 * 1024
SOURCE = "repo"
RECEIVERS = "/apis/notification.toolkit.fluxcd.io/v1/namespaces/{ns}/receivers"
NOTIFICATION = "/apis/notification.toolkit.fluxcd.io/v1beta3/namespaces/{ns}"
VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
VAP_BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
SOURCE_FAILURES = ("GitOperationFailed", "AuthenticationFailed", "InvalidSource")


def _config_map(name: str, data: str = "value: one", **labels: str) -> str:
    label_block = "".join(f"    {k}: {v!r}\n" for k, v in labels.items())
    meta = f"metadata:\n  name: {name}\n" + (f"  labels:\n{label_block}" if labels else "")
    body = "\n".join(f"  {line}" for line in data.splitlines())
    return f"apiVersion: v1\nkind: ConfigMap\n{meta}data:\n{body}\n"


KUSTOMIZATION_HEAD = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
JOB = (
    "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n"
    "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
    "        - name: main\n          image: {image}\n"
)
FILES: dict[str, str] = {
    "good/cm.yaml": _config_map("neighbour-config"),
    "malformed/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\ndata: [x\n",
    "badkustomization/kustomization.yaml": KUSTOMIZATION_HEAD + "resources: {not: [a list\n",
    "missingfile/kustomization.yaml": KUSTOMIZATION_HEAD + "resources:\n  - nowhere.yaml\n",
    "escape/kustomization.yaml": KUSTOMIZATION_HEAD + "resources:\n  - ../../../../../etc/hosts\n",
    "remote/kustomization.yaml": KUSTOMIZATION_HEAD
    + "resources:\n  - http://127.0.0.1:1/owner/unreachable.git//base?ref=v1.0.0\n",
    "undefined/cm.yaml": _config_map("needs-var", "value: ${CLUSTER_REGION}"),
    "duplicate/a.yaml": _config_map("twice"),
    "duplicate/b.yaml": _config_map("twice", "value: two"),
    "notk8s/settings.yaml": "listen: 0.0.0.0:5000\nworkers: 4\n",
    "unknownkind/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    "badport/svc.yaml": (
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n"
        "  ports:\n    - port: 70000\n  selector:\n    app: web\n"
    ),
    "plain/cm.yaml": _config_map("plain-config"),
    "denied/cm.yaml": _config_map("refused-config", **{"badinputs-deny": "true"}),
    "job/job.yaml": JOB.format(image="busybox:1.36"),
    "cluster/role.yaml": (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
        "metadata:\n  name: badinputs-role\nrules: []\n"
    ),
}


@dataclass
class Env:
    """Everything a case needs: the cluster client, the daemon, servers and its namespace."""

    api: Api
    daemon: Fluxd
    git: GitServer
    repo: str
    namespace: str

    def source(self, name: str = SOURCE, **spec: Any) -> str:
        """A GitRepository for the shared repository (or ``spec`` overrides); returns its path."""
        secret(self.api, self.namespace, "git-auth", {"username": USER, "password": PASSWORD})
        full = {
            "interval": "1h",
            "timeout": "20s",
            "url": self.git.url(self.repo),
            "ref": {"branch": "main"},
            "secretRef": {"name": "git-auth"},
            **spec,
        }
        git_repository(
            self.api, self.namespace, name, {k: v for k, v in full.items() if v is not None}
        )
        return git_repository_path(self.namespace, name)

    def kustomization(self, name: str, path: str, **spec: Any) -> str:
        kustomization(
            self.api,
            self.namespace,
            name,
            {
                "interval": "1h",
                "path": path,
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": SOURCE},
                "targetNamespace": self.namespace,
                **spec,
            },
        )
        return kustomization_path(self.namespace, name)

    def fails(
        self, path: str, *, reasons: tuple[str, ...], words: tuple[str, ...], event: bool = True
    ) -> str:
        """Ready=False with one of ``reasons``, ``words`` in the message, a Warning Event."""
        ready = wait_not_ready(self.api, path, reasons=reasons, words=words)
        if event:
            name = path.rsplit("/", 1)[1]
            wait_warning(self.api, self.namespace, name, reasons=(ready["reason"],))
        return str(ready["message"])

    def rejected(self, path: str, body: dict[str, Any], *, words: tuple[str, ...]) -> None:
        """The API server refuses ``body`` with a schema error naming ``words``."""
        with pytest.raises(ApiError) as caught:
            self.api.create(path, body)
        assert caught.value.status == 422, caught.value
        for word in words:
            assert word.lower() in str(caught.value).lower(), caught.value


# -- sources -----------------------------------------------------------------------------------


def wrong_credentials(env: Env) -> None:
    secret(env.api, env.namespace, "wrong", {"username": USER, "password": "not-the-token"})
    path = env.source("wrong-creds", secretRef={"name": "wrong"})
    env.fails(path, reasons=SOURCE_FAILURES, words=("authentication", "127.0.0.1"))


def no_credentials_for_private_repo(env: Env) -> None:
    path = env.source("anonymous", secretRef=None)
    env.fails(path, reasons=SOURCE_FAILURES, words=("authentication",))


def unreachable_host(env: Env) -> None:
    path = env.source("unreachable", url="http://127.0.0.1:1/owner/repo.git", secretRef=None)
    env.fails(path, reasons=("GitOperationFailed",), words=("127.0.0.1:1",))


def tls_without_ca(env: Env) -> None:
    with GitServer(tls=True) as tls_git:
        tls_git.create_repo("owner/repo.git")
        tls_git.commit("owner/repo.git", {"a.txt": "a"})
        path = env.source("tls", url=tls_git.url("owner/repo.git"), secretRef=None)
        env.fails(path, reasons=SOURCE_FAILURES, words=("certificate", "ca.crt"))


def missing_secret(env: Env) -> None:
    path = env.source("missing-secret", secretRef={"name": "does-not-exist"})
    env.fails(path, reasons=("AuthenticationFailed",), words=("does-not-exist", "not found"))


def username_without_password(env: Env) -> None:
    secret(env.api, env.namespace, "half", {"username": USER})
    path = env.source("half-secret", secretRef={"name": "half"})
    env.fails(path, reasons=("AuthenticationFailed",), words=("password",))


def ssh_without_known_hosts(env: Env) -> None:
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    secret(env.api, env.namespace, "ssh-key", {"identity": key})
    path = env.source(
        "ssh", url="ssh://git@127.0.0.1:1/owner/repo.git", secretRef={"name": "ssh-key"}
    )
    env.fails(path, reasons=("AuthenticationFailed",), words=("known_hosts",))


def html_instead_of_git(env: Env) -> None:
    with html_server() as base:
        path = env.source("html", url=f"{base}/owner/repo.git", secretRef=None)
        env.fails(path, reasons=("GitOperationFailed",), words=("/owner/repo.git", "content-type"))


def branch_not_found(env: Env) -> None:
    path = env.source("no-branch", ref={"branch": "no-such-branch"})
    env.fails(path, reasons=("GitOperationFailed",), words=("no-such-branch",))


def tag_not_found(env: Env) -> None:
    path = env.source("no-tag", ref={"tag": "v9.9.9"})
    env.fails(path, reasons=("GitOperationFailed",), words=("v9.9.9",))


def empty_repository(env: Env) -> None:
    env.git.create_repo(f"owner/empty-{env.namespace}.git")
    path = env.source("empty", url=env.git.url(f"owner/empty-{env.namespace}.git"))
    env.fails(path, reasons=("GitOperationFailed",), words=("empty",))


def bad_semver_range(env: Env) -> None:
    path = env.source("bad-semver", ref={"semver": "not a range >>"})
    env.fails(path, reasons=SOURCE_FAILURES, words=("semver",))


def semver_nothing_matches(env: Env) -> None:
    path = env.source("no-match", ref={"semver": ">=9.0.0"})
    env.fails(path, reasons=("GitOperationFailed",), words=(">=9.0.0",))


def short_commit_sha(env: Env) -> None:
    path = env.source("short-sha", ref={"commit": "abc1234"})
    env.fails(path, reasons=SOURCE_FAILURES, words=("abc1234",))


# -- builds ------------------------------------------------------------------------------------


def _build_fails(env: Env, name: str, path: str, *words: str, **spec: Any) -> str:
    env.source()
    ks = env.kustomization(name, path, **spec)
    return env.fails(ks, reasons=("BuildFailed",), words=words)


def malformed_yaml(env: Env) -> None:
    _build_fails(env, "malformed", "./malformed", "cm.yaml")


def bad_kustomization_file(env: Env) -> None:
    _build_fails(env, "bad-kustomization", "./badkustomization", "kustomization.yaml")


def missing_file(env: Env) -> None:
    _build_fails(env, "missing-file", "./missingfile", "nowhere.yaml")


def resource_escapes_the_artifact(env: Env) -> None:
    message = _build_fails(env, "escape", "./escape", "etc/hosts")
    assert "localhost" not in message


def spec_path_escapes_the_artifact(env: Env) -> None:
    env.source()
    ks = env.kustomization("spec-escape", "../../..")
    env.fails(ks, reasons=("BuildFailed", "ArtifactFailed"), words=("../../..",))


def path_not_in_the_repository(env: Env) -> None:
    env.source()
    ks = env.kustomization("no-path", "./not/there")
    env.fails(ks, reasons=("BuildFailed", "ArtifactFailed"), words=("not/there",))


def remote_base_unreachable(env: Env) -> None:
    _build_fails(env, "remote", "./remote", "127.0.0.1:1")


def undefined_variable(env: Env) -> None:
    _build_fails(
        env, "undefined", "./undefined", "CLUSTER_REGION", postBuild={"substitute": {"a": "b"}}
    )


def duplicate_resource_ids(env: Env) -> None:
    _build_fails(env, "duplicate", "./duplicate", "twice")


def not_kubernetes_yaml(env: Env) -> None:
    _build_fails(env, "not-k8s", "./notk8s", "settings.yaml")


# -- apply -------------------------------------------------------------------------------------


def unknown_kind(env: Env) -> None:
    env.source()
    ks = env.kustomization("unknown-kind", "./unknownkind")
    env.fails(ks, reasons=("ReconciliationFailed",), words=("Widget",))


def invalid_port(env: Env) -> None:
    env.source()
    ks = env.kustomization("bad-port", "./badport")
    env.fails(ks, reasons=("ReconciliationFailed",), words=("Service/", "web", "70000"))


def immutable_job_template(env: Env) -> None:
    repo = f"owner/job-{env.namespace}.git"
    env.git.create_repo(repo)
    env.git.commit(repo, {"job.yaml": JOB.format(image="busybox:1.36")})
    env.source(url=env.git.url(repo))
    ks = env.kustomization("job", "./")
    wait_condition(env.api, ks, timeout=90)
    env.git.commit(repo, {"job.yaml": JOB.format(image="busybox:1.37")})
    env.api.merge_patch(
        git_repository_path(env.namespace, SOURCE),
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": uuid.uuid4().hex}}},
    )
    env.fails(ks, reasons=("ReconciliationFailed",), words=("Job/", "once", "immutable"))


def target_namespace_missing(env: Env) -> None:
    env.source()
    ks = env.kustomization("target-ns", "./plain", targetNamespace="no-such-namespace")
    env.fails(ks, reasons=("ReconciliationFailed",), words=("no-such-namespace", "not found"))


def rejected_by_admission_policy(env: Env) -> None:
    name = f"badinputs-deny-{env.namespace}"
    _admission_policy(
        env,
        name,
        rule={"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]},
        operations=["CREATE", "UPDATE"],
        expression="!has(object.metadata.labels) || !('badinputs-deny' in object.metadata.labels)",
        message="ConfigMaps labelled badinputs-deny are refused here",
    )
    try:
        _wait_until_refused(
            env,
            f"/api/v1/namespaces/{env.namespace}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "probe", "labels": {"badinputs-deny": "true"}},
            },
        )
        env.source()
        ks = env.kustomization("denied", "./denied")
        env.fails(ks, reasons=("ReconciliationFailed",), words=("refused-config", "refused here"))
    finally:
        _remove_policy(env, name)


def service_account_without_rights(env: Env) -> None:
    env.api.create(
        f"/api/v1/namespaces/{env.namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}},
    )
    env.source()
    ks = env.kustomization("as-nobody", "./plain", serviceAccountName="nobody")
    env.fails(ks, reasons=("ReconciliationFailed",), words=("forbidden", "nobody"))


def source_not_found(env: Env) -> None:
    ks = env.kustomization("orphan", "./plain", sourceRef={"kind": "GitRepository", "name": "gone"})
    env.fails(ks, reasons=("ArtifactFailed",), words=("gone", "not found"), event=False)


# -- fields fluxd refuses rather than ignores ----------------------------------------------------


def sops_workload_identity_refused(env: Env) -> None:
    # No KMS can be reached: decrypting nothing must not pass for decrypting.
    env.source()
    ks = env.kustomization(
        "sops",
        "./plain",
        decryption={"provider": "sops", "serviceAccountName": "kms"},
    )
    env.fails(
        ks, reasons=("UnsupportedField",), words=("spec.decryption.serviceAccountName", "identity")
    )
    assert env.api.get(ks).get("status", {}).get("inventory") is None


def verification_keys_missing(env: Env) -> None:
    path = env.source("verified", verify={"mode": "HEAD", "secretRef": {"name": "pgp-keys"}})
    env.fails(path, reasons=("VerificationError",), words=("public keys secret", "pgp-keys"))
    assert env.api.get(path).get("status", {}).get("artifact") is None


def cloud_provider_refused(env: Env) -> None:
    """Workload identity cannot be had here: the field is refused by name, nothing fetched."""
    path = env.source("cloud", provider="azure")
    env.fails(path, reasons=("UnsupportedField",), words=("spec.provider", "azure"))
    assert env.api.get(path).get("status", {}).get("artifact") is None


def _admission_policy(
    env: Env,
    name: str,
    *,
    rule: dict[str, Any],
    operations: list[str],
    expression: str,
    message: str,
) -> None:
    env.api.create(
        VAP,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{**rule, "operations": operations}]},
                "validations": [{"expression": expression, "message": message}],
            },
        },
    )
    env.api.create(
        VAP_BINDINGS,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": env.namespace}
                    }
                },
            },
        },
    )


def _wait_until_refused(env: Env, collection: str, probe: dict[str, Any]) -> None:
    """The API server loads policies asynchronously: wait until a dry-run probe is denied."""

    def refused() -> bool:
        try:
            env.api.request("POST", collection, probe, query={"dryRun": "All"})
        except ApiError as error:
            return error.status in (403, 422)
        return False

    wait_for(refused, timeout=60, what="the admission policy to take effect")


def _remove_policy(env: Env, name: str) -> None:
    env.api.delete(f"{VAP_BINDINGS}/{name}")
    env.api.delete(f"{VAP}/{name}")


# -- restarter ---------------------------------------------------------------------------------


def _deployment(env: Env, name: str, config: str) -> str:
    path = f"/apis/apps/v1/namespaces/{env.namespace}/deployments/{name}"
    env.api.apply(
        path,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "annotations": {"reloader.stakater.com/auto": "true"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox:1.36",
                                "envFrom": [{"configMapRef": {"name": config}}],
                            }
                        ]
                    },
                },
            },
        },
    )
    return path


def _config(env: Env, name: str, value: str) -> None:
    env.api.apply(
        f"/api/v1/namespaces/{env.namespace}/configmaps/{name}",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}},
    )


def restart_refused_by_admission_policy(env: Env) -> None:
    name = f"badinputs-freeze-{env.namespace}"
    _config(env, "app-config", "one")
    _deployment(env, "frozen", "app-config")
    _admission_policy(
        env,
        name,
        rule={"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]},
        operations=["UPDATE"],
        expression="object.spec.template == oldObject.spec.template",
        message="pod templates are frozen in this namespace",
    )
    try:
        # The policy is loaded asynchronously by the API server: keep changing the
        # config until the restart is refused.
        def refused() -> dict[str, Any] | None:
            _config(env, "app-config", uuid.uuid4().hex)
            try:
                return wait_warning(
                    env.api, env.namespace, "frozen", reasons=("ReloadFail",), timeout=8
                )
            except TimeoutError:
                return None

        event = wait_for(refused, timeout=90, what="a refused restart")
        assert "frozen" in event["message"] and "denied" in event["message"].lower()
    finally:
        _remove_policy(env, name)


def workload_deleted_mid_restart(env: Env) -> None:
    _config(env, "short-config", "one")
    path = _deployment(env, "short-lived", "short-config")
    _config(env, "short-config", "two")
    env.api.delete(path)
    # A later change to another workload's config still rolls it.
    _config(env, "survivor-config", "one")
    survivor = _deployment(env, "survivor", "survivor-config")
    _config(env, "survivor-config", "two")
    wait_for(
        lambda: (
            env.api.get(survivor)["spec"]["template"]["spec"]["containers"][0].get("env")
            or env.api.get(survivor)["spec"]["template"]["metadata"].get("annotations")
        ),
        timeout=60,
        what="the surviving Deployment to be restarted",
    )


# -- receivers ---------------------------------------------------------------------------------


def _receiver(env: Env, kind: str = "gitea") -> str:
    secret(env.api, env.namespace, "webhook-token", {"token": WEBHOOK_TOKEN})
    env.api.create(
        RECEIVERS.format(ns=env.namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "hook"},
            "spec": {
                "type": kind,
                "resources": [{"kind": "GitRepository", "name": SOURCE}],
                "secretRef": {"name": "webhook-token"},
            },
        },
    )
    path: str = wait_for(
        lambda: (
            env.api.get(f"{RECEIVERS.format(ns=env.namespace)}/hook")
            .get("status", {})
            .get("webhookPath")
        ),
        timeout=60,
        what="the Receiver's webhook path",
    )
    return env.daemon.webhook_url + path


def _no_reconcile_requested(env: Env) -> None:
    repo = env.api.get_or_none(git_repository_path(env.namespace, SOURCE))
    annotations = (repo or {}).get("metadata", {}).get("annotations") or {}
    assert "reconcile.fluxcd.io/requestedAt" not in annotations


def bad_signature(env: Env) -> None:
    env.source()
    url = _receiver(env)
    body = gitea_push()
    assert http(url, body, headers=gitea_headers(body, secret="forged"))[0] == 401
    _no_reconcile_requested(env)


def wrong_token_generic(env: Env) -> None:
    env.source()
    url = _receiver(env, "generic")
    wrong = url.rsplit("/", 1)[0] + "/" + "f" * 64
    assert http(wrong, b"{}", headers={"Content-Type": "application/json"})[0] == 404
    _no_reconcile_requested(env)


def malformed_payload(env: Env) -> None:
    env.source()
    url = _receiver(env)
    body = b'{"ref": "refs/heads/main", "after": '
    assert http(url, body, headers=gitea_headers(body, secret=WEBHOOK_TOKEN))[0] == 400
    _no_reconcile_requested(env)


def oversized_body(env: Env) -> None:
    env.source()
    url = _receiver(env)
    body = b'{"padding": "' + b"x" * (BODY_LIMIT + 1) + b'"}'
    assert http(url, body, headers=gitea_headers(body, secret=WEBHOOK_TOKEN))[0] == 413
    _no_reconcile_requested(env)


def wrong_method(env: Env) -> None:
    env.source()
    url = _receiver(env)
    assert http(url, method="GET")[0] == 405
    _no_reconcile_requested(env)


def unknown_path(env: Env) -> None:
    body = gitea_push()
    status, _ = http(
        env.daemon.webhook_url + "/hook/" + "0" * 64,
        body,
        headers=gitea_headers(body, secret=WEBHOOK_TOKEN),
    )
    assert status == 404
    assert http(env.daemon.webhook_url + "/../metrics", method="GET")[0] == 404


# -- providers ---------------------------------------------------------------------------------


def _alerting(env: Env, provider_spec: dict[str, Any]) -> None:
    env.api.create(
        f"{NOTIFICATION.format(ns=env.namespace)}/providers",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "chat"},
            "spec": provider_spec,
        },
    )
    env.api.create(
        f"{NOTIFICATION.format(ns=env.namespace)}/alerts",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Alert",
            "metadata": {"name": "failures"},
            "spec": {
                "providerRef": {"name": "chat"},
                "eventSeverity": "error",
                "eventSources": [{"kind": "GitRepository", "name": "*"}],
            },
        },
    )


def _deliveries(env: Env, provider: str) -> float:
    value = env.daemon.metric(
        "fluxd_notification_deliveries_total", provider=provider, outcome="failed"
    )
    return value or 0.0


def _delivery_fails(env: Env, spec: dict[str, Any]) -> None:
    before = _deliveries(env, spec["type"])
    _alerting(env, spec)
    wait_for(
        lambda: any(
            r.get("msg") == "notification object is ready" and r.get("controllerKind") == "Alert"
            for r in env.daemon.log_records()
            if r.get("object") == f"{env.namespace}/failures"
        ),
        timeout=60,
        what="the Alert to be live",
    )
    env.source("broken", url="http://127.0.0.1:1/owner/repo.git", secretRef=None)
    wait_for(lambda: _deliveries(env, spec["type"]) > before, timeout=90, what="a failed delivery")


def provider_unreachable(env: Env) -> None:
    _delivery_fails(env, {"type": "generic", "address": "http://127.0.0.1:1/hooks/flux"})


def provider_answers_500(env: Env) -> None:
    with ChatServer(fail_with=500) as chat:
        secret(
            env.api,
            env.namespace,
            "robot",
            {"address": chat.dingtalk_address, "token": chat.dingtalk_secret},
        )
        _delivery_fails(env, {"type": "dingtalk", "secretRef": {"name": "robot"}})
        assert chat.requests("/robot/send"), "the robot was never called"


def provider_bad_url(env: Env) -> None:
    _alerting(env, {"type": "generic", "address": "http://exa mple.invalid:99999/x"})
    event = wait_warning(env.api, env.namespace, "failures", reasons=("ProviderNotReady",))
    assert "not a valid http" in event["message"]
    assert "exa mple" not in event["message"]


def provider_secret_missing(env: Env) -> None:
    _alerting(env, {"type": "generic", "secretRef": {"name": "no-such-secret"}})
    event = wait_warning(env.api, env.namespace, "failures", reasons=("ProviderNotReady",))
    assert "no-such-secret" in event["message"]


# -- schema ------------------------------------------------------------------------------------


def _git_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "invalid"},
        "spec": spec,
    }


def _ks_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "invalid"},
        "spec": spec,
    }


GIT_COLLECTION = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"
KS_COLLECTION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}/kustomizations"
SOURCE_REF = {"kind": "GitRepository", "name": SOURCE}


def schema_bad_interval(env: Env) -> None:
    body = _git_body(interval="every day", url="http://127.0.0.1/x.git")
    env.rejected(GIT_COLLECTION.format(ns=env.namespace), body, words=("interval",))


def schema_missing_url(env: Env) -> None:
    body = _git_body(interval="1m")
    env.rejected(GIT_COLLECTION.format(ns=env.namespace), body, words=("url", "required"))


def schema_bad_url_scheme(env: Env) -> None:
    body = _git_body(interval="1m", url="ftp://127.0.0.1/x.git")
    env.rejected(GIT_COLLECTION.format(ns=env.namespace), body, words=("url",))


def schema_missing_prune(env: Env) -> None:
    body = _ks_body(interval="1m", sourceRef=SOURCE_REF)
    env.rejected(KS_COLLECTION.format(ns=env.namespace), body, words=("prune", "required"))


def schema_bad_source_kind(env: Env) -> None:
    body = _ks_body(interval="1m", prune=True, sourceRef={"kind": "Helm", "name": "x"})
    env.rejected(KS_COLLECTION.format(ns=env.namespace), body, words=("kind", "Helm"))


def schema_bad_provider_type(env: Env) -> None:
    env.rejected(
        f"{NOTIFICATION.format(ns=env.namespace)}/providers",
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1beta3",
            "kind": "Provider",
            "metadata": {"name": "invalid"},
            "spec": {"type": "carrier-pigeon"},
        },
        words=("type", "carrier-pigeon"),
    )


def schema_bad_receiver_type(env: Env) -> None:
    env.rejected(
        RECEIVERS.format(ns=env.namespace),
        {
            "apiVersion": "notification.toolkit.fluxcd.io/v1",
            "kind": "Receiver",
            "metadata": {"name": "invalid"},
            "spec": {
                "type": "fax",
                "resources": [{"kind": "GitRepository", "name": "x"}],
                "secretRef": {"name": "s"},
            },
        },
        words=("type", "fax"),
    )


Case = Callable[[Env], None]
CASES = [
    pytest.param(wrong_credentials, id="source-wrong-credentials"),
    pytest.param(no_credentials_for_private_repo, id="source-no-credentials"),
    pytest.param(unreachable_host, id="source-unreachable-host"),
    pytest.param(tls_without_ca, id="source-tls-without-ca"),
    pytest.param(missing_secret, id="source-missing-secret"),
    pytest.param(username_without_password, id="source-username-without-password"),
    pytest.param(ssh_without_known_hosts, id="source-ssh-without-known-hosts"),
    pytest.param(html_instead_of_git, id="source-html-not-git"),
    pytest.param(branch_not_found, id="source-branch-not-found"),
    pytest.param(tag_not_found, id="source-tag-not-found"),
    pytest.param(empty_repository, id="source-empty-repository"),
    pytest.param(bad_semver_range, id="source-bad-semver-range"),
    pytest.param(semver_nothing_matches, id="source-semver-no-match"),
    pytest.param(short_commit_sha, id="source-short-commit-sha"),
    pytest.param(malformed_yaml, id="build-malformed-yaml"),
    pytest.param(bad_kustomization_file, id="build-bad-kustomization-yaml"),
    pytest.param(missing_file, id="build-missing-file"),
    pytest.param(resource_escapes_the_artifact, id="build-resource-path-escape"),
    pytest.param(spec_path_escapes_the_artifact, id="build-spec-path-escape"),
    pytest.param(path_not_in_the_repository, id="build-path-not-found"),
    pytest.param(remote_base_unreachable, id="build-remote-base-unreachable"),
    pytest.param(undefined_variable, id="build-undefined-variable"),
    pytest.param(duplicate_resource_ids, id="build-duplicate-ids"),
    pytest.param(not_kubernetes_yaml, id="build-not-kubernetes-yaml"),
    pytest.param(unknown_kind, id="apply-unknown-kind"),
    pytest.param(invalid_port, id="apply-invalid-port"),
    pytest.param(immutable_job_template, id="apply-immutable-job-template"),
    pytest.param(target_namespace_missing, id="apply-target-namespace-missing"),
    pytest.param(rejected_by_admission_policy, id="apply-admission-policy"),
    pytest.param(service_account_without_rights, id="apply-service-account-forbidden"),
    pytest.param(source_not_found, id="apply-source-not-found"),
    pytest.param(sops_workload_identity_refused, id="refused-decryption-workload-identity"),
    pytest.param(verification_keys_missing, id="gitrepository-verify-keys-missing"),
    pytest.param(cloud_provider_refused, id="refused-gitrepository-provider"),
    pytest.param(restart_refused_by_admission_policy, id="restarter-admission-policy"),
    pytest.param(workload_deleted_mid_restart, id="restarter-workload-deleted"),
    pytest.param(bad_signature, id="receiver-bad-signature"),
    pytest.param(wrong_token_generic, id="receiver-wrong-token"),
    pytest.param(malformed_payload, id="receiver-malformed-payload"),
    pytest.param(oversized_body, id="receiver-oversized-body"),
    pytest.param(wrong_method, id="receiver-wrong-method"),
    pytest.param(unknown_path, id="receiver-unknown-path"),
    pytest.param(provider_bad_url, id="provider-bad-url"),
    pytest.param(provider_unreachable, id="provider-unreachable"),
    pytest.param(provider_answers_500, id="provider-500"),
    pytest.param(provider_secret_missing, id="provider-secret-missing"),
    pytest.param(schema_bad_interval, id="schema-bad-interval"),
    pytest.param(schema_missing_url, id="schema-missing-url"),
    pytest.param(schema_bad_url_scheme, id="schema-bad-url-scheme"),
    pytest.param(schema_missing_prune, id="schema-missing-prune"),
    pytest.param(schema_bad_source_kind, id="schema-bad-source-kind"),
    pytest.param(schema_bad_provider_type, id="schema-bad-provider-type"),
    pytest.param(schema_bad_receiver_type, id="schema-bad-receiver-type"),
]


# -- fixtures and the test ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def git() -> Iterator[GitServer]:
    with GitServer(username=USER, password=PASSWORD, default_branch="main") as server:
        server.create_repo("owner/config.git")
        server.commit("owner/config.git", FILES, tags=("v1.0.0",))
        yield server


@pytest.fixture(scope="module")
def daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    instance = Fluxd(
        cluster,
        Path(tmp_path_factory.mktemp("fluxd-badinputs")),
        name="fluxd-badinputs",
        extra_args=[
            f"--lease-name=badinputs-{uuid.uuid4().hex[:8]}",
            "--max-retry-delay=5s",
            "--requeue-dependency=2s",
            f"--webhook-body-limit={BODY_LIMIT}",
            "--notification-max-attempts=2",
            "--restart-coalesce-window=0s",
            # The undefined-variable case is about strict mode (lenient is Flux's default).
            "--strict-post-build-substitutions",
        ],
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def neighbour(cluster: Cluster, daemon: Fluxd, git: GitServer) -> Iterator[Neighbour]:
    """A healthy GitRepository and Kustomization in their own namespace."""
    api = cluster.api
    namespace = f"neighbour-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace)
    env = Env(api=api, daemon=daemon, git=git, repo="owner/config.git", namespace=namespace)
    env.source()
    path = env.kustomization("healthy", "./good")
    wait_condition(api, path, timeout=120)
    yield Neighbour(api=api, path=path)
    api.delete(f"/api/v1/namespaces/{namespace}")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_reported_and_the_daemon_carries_on(
    api: Api,
    daemon: Fluxd,
    git: GitServer,
    neighbour: Neighbour,
    namespace: str,
    case: Case,
) -> None:
    logged_before = len(daemon.log_records())
    env = Env(api=api, daemon=daemon, git=git, repo="owner/config.git", namespace=namespace)

    case(env)

    daemon.check_alive()
    neighbour.still_reconciles()
    assert tracebacks(daemon, since=logged_before) == [], daemon.log_tail()
