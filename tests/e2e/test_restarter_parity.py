"""Restarter behaviour Reloader v1.4 has and a user would notice, on a real control plane.

Plain Jobs recreated when their config changes, pod-template-only annotations,
one roll per change under the annotations strategy, and Argo Rollouts (their
CRD installed from Argo's own module) using config through projected volumes
and init containers, and SecretProviderClasses of the Secrets Store CSI
driver (its CRDs installed from its own module; a pod status is written by
the test as the driver would write it). Each test runs on
namespaces labelled for this module's own daemons, so no other daemon acts on
its objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.e2e.test_restarter import (
    change_secret,
    labelled_namespace,
    reloader_sha1,
    start_daemon,
)
from tests.support import restarter as r
from tests.support.crds_thirdparty import (
    ARGO_ROLLOUTS,
    SECRETS_STORE_CSI,
    install_third_party_crds,
)
from tests.support.daemon import Fluxd, stop_all

LAST_RELOADED_FROM = "reloader.stakater.com/last-reloaded-from"
CONFIG_DIGESTS = "restarter.fluxd.dev/config-digests"


@pytest.fixture(scope="module")
def env_vars_daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    daemon = start_daemon(cluster, tmp_path_factory.mktemp("parity-env"), group="parity-env")
    try:
        yield daemon
    finally:
        stop_all(daemon)


@pytest.fixture
def ns(cluster: Cluster, env_vars_daemon: Fluxd) -> Iterator[str]:
    name = labelled_namespace(cluster, "parity-env")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


def job(name: str, *, containers: list[dict[str, Any]], volumes: list[dict[str, Any]]) -> Any:
    pod_spec: dict[str, Any] = {"containers": containers, "restartPolicy": "Never"}
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": {r.AUTO: "true"}, "labels": {"team": "edge"}},
        "spec": {
            "backoffLimit": 4,
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def test_a_plain_job_is_recreated_with_the_same_spec(api: Api, ns: str) -> None:
    r.create(api, ns, r.secret("job-secret", {"token": "a"}))
    token = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "job-secret", "key": "token"}}}
    users = {
        "by-volume": job(
            "by-volume",
            containers=[r.app_container(mounts=["secret"])],
            volumes=[r.secret_volume("secret", "job-secret")],
        ),
        "by-env-from": job(
            "by-env-from",
            containers=[r.app_container(env_from=[{"secretRef": {"name": "job-secret"}}])],
            volumes=[],
        ),
        "by-value-from": job(
            "by-value-from", containers=[r.app_container(env=[token])], volumes=[]
        ),
    }
    jobs_path = f"/apis/batch/v1/namespaces/{ns}/jobs"
    before = {name: api.create(jobs_path, body) for name, body in users.items()}

    change_secret(api, ns, "job-secret", {"token": "b"})

    digest = reloader_sha1({"token": b"b"})
    for name, old in before.items():

        def recreated(name: str = name, old: Any = old) -> Any:
            current = api.get_or_none(f"{jobs_path}/{name}")
            if current is None or current["metadata"]["uid"] == old["metadata"]["uid"]:
                return None
            return current

        new = wait_for(recreated, timeout=60, what=f"job {name} recreated")
        assert new["metadata"]["labels"]["team"] == "edge"
        assert new["metadata"]["annotations"][r.AUTO] == "true"
        assert new["spec"]["backoffLimit"] == 4
        # A new selector of its own, not the old Job's.
        assert new["spec"]["selector"] != old["spec"]["selector"]
        assert r.env_value(new["spec"]["template"], "STAKATER_JOB_SECRET_SECRET") == digest
        old_container = old["spec"]["template"]["spec"]["containers"][0]
        new_container = dict(new["spec"]["template"]["spec"]["containers"][0])
        new_env = [e for e in new_container.pop("env") if not e["name"].startswith("STAKATER_")]
        if new_env:
            new_container["env"] = new_env
        assert new_container == old_container


def last_reloaded_hash(api: Api, namespace: str, kind: str, name: str) -> str | None:
    annotations = r.pod_template(api, namespace, kind, name)["metadata"].get("annotations") or {}
    raw = annotations.get(LAST_RELOADED_FROM)
    return str(json.loads(raw)["hash"]) if raw else None


def test_a_statefulset_rolls_for_config_reached_through_a_projected_volume(
    api: Api, ns: str
) -> None:
    """Alone or mixed with other sources, a projected ConfigMap/Secret is one the pod uses."""
    r.create(api, ns, r.config_map("sts-config", {"mode": "a"}))
    r.create(api, ns, r.secret("sts-secret", {"token": "a"}))
    projected = {
        "name": "all",
        "projected": {
            "sources": [
                {"configMap": {"name": "sts-config"}},
                {"secret": {"name": "sts-secret"}},
                {
                    "downwardAPI": {
                        "items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]
                    }
                },
            ]
        },
    }
    r.create(
        api,
        ns,
        r.workload(
            "sts",
            kind="StatefulSet",
            annotations={r.AUTO: "true"},
            containers=[r.app_container(mounts=["all"])],
            volumes=[projected],
        ),
    )

    api.merge_patch(r.path("ConfigMap", ns, "sts-config"), {"data": {"mode": "b"}})
    digest = wait_for(
        lambda: r.env_value(
            r.pod_template(api, ns, "StatefulSet", "sts"), "STAKATER_STS_CONFIG_CONFIGMAP"
        ),
        timeout=60,
        what="the StatefulSet rolled for its projected ConfigMap",
    )
    assert digest == reloader_sha1({"mode": b"b"})

    change_secret(api, ns, "sts-secret", {"token": "b"})
    secret_digest = wait_for(
        lambda: r.env_value(
            r.pod_template(api, ns, "StatefulSet", "sts"), "STAKATER_STS_SECRET_SECRET"
        ),
        timeout=60,
        what="the StatefulSet rolled for its projected Secret",
    )
    assert secret_digest == reloader_sha1({"token": b"b"})


def test_annotations_strategy_rolls_once_per_sequential_update_with_template_only_auto(
    cluster: Cluster, api: Api, crds: list[str], tmp_path: Path
) -> None:
    namespace = labelled_namespace(cluster, "parity-annotations")
    daemon = start_daemon(
        cluster, tmp_path, group="parity-annotations", extra=["--reload-strategy=annotations"]
    )
    try:
        r.create(api, namespace, r.config_map("settings", {"mode": "0"}))
        # The auto annotation is on the pod template only, not on the DaemonSet.
        r.create(
            api,
            namespace,
            r.workload(
                "agent",
                kind="DaemonSet",
                template_annotations={r.AUTO: "true"},
                containers=[r.app_container(mounts=["settings"])],
                volumes=[r.config_map_volume("settings", "settings")],
            ),
        )
        seen: list[str] = []
        for step in ("1", "2", "3"):
            api.merge_patch(r.path("ConfigMap", namespace, "settings"), {"data": {"mode": step}})
            wanted = reloader_sha1({"mode": step.encode()})

            def rolled(wanted: str = wanted) -> bool:
                return last_reloaded_hash(api, namespace, "DaemonSet", "agent") == wanted

            wait_for(rolled, timeout=60, what=f"roll for update {step}")
            seen.append(wanted)
        assert len(set(seen)) == 3
        # The pod template carries Reloader's annotation only; fluxd's record of
        # every object's digest is on the DaemonSet's own metadata.
        daemon_set = api.get(r.path("DaemonSet", namespace, "agent"))
        template_annotations = daemon_set["spec"]["template"]["metadata"]["annotations"]
        assert set(template_annotations) == {r.AUTO, LAST_RELOADED_FROM}
        record = json.loads(daemon_set["metadata"]["annotations"][CONFIG_DIGESTS])
        assert record == {"ConfigMap/settings": seen[-1]}
        # Three rolls: the DaemonSet's template changed three times after creation.
        assert r.generation(api, namespace, "DaemonSet", "agent") == 4
    finally:
        stop_all(daemon)
        api.delete(f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def rollouts_daemon(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    # The Rollout CRD first: the daemon looks for the kind when it starts.
    install_third_party_crds(cluster.api, ARGO_ROLLOUTS)
    daemon = start_daemon(
        cluster,
        tmp_path_factory.mktemp("parity-rollouts"),
        group="parity-rollouts",
        extra=["--restart-argo-rollouts=true"],
    )
    try:
        yield daemon
    finally:
        stop_all(daemon)


def rollout(name: str, pod_spec: dict[str, Any], *, on_template: bool = False) -> dict[str, Any]:
    """A Rollout with ``reloader.stakater.com/auto`` on itself, or on its pod template only."""
    labels = {"app": name}
    auto = {r.AUTO: "true"}
    template: dict[str, Any] = {"metadata": {"labels": labels}, "spec": pod_spec}
    metadata: dict[str, Any] = {"name": name}
    if on_template:
        template["metadata"]["annotations"] = auto
    else:
        metadata["annotations"] = auto
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {"canary": {}},
            "template": template,
        },
    }


def test_rollouts_roll_for_projected_init_container_and_template_only_auto(
    cluster: Cluster, api: Api, rollouts_daemon: Fluxd
) -> None:
    namespace = labelled_namespace(cluster, "parity-rollouts")
    try:
        r.create(api, namespace, r.config_map("rollout-config", {"mode": "a"}))
        r.create(api, namespace, r.secret("rollout-secret", {"token": "a"}))
        rollouts = f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts"
        projected = {
            "name": "all",
            "projected": {
                "sources": [
                    {"configMap": {"name": "rollout-config"}},
                    {
                        "downwardAPI": {
                            "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
                        }
                    },
                ]
            },
        }
        api.create(
            rollouts,
            rollout(
                "by-projected",
                {"containers": [r.app_container(mounts=["all"])], "volumes": [projected]},
            ),
        )
        api.create(
            rollouts,
            rollout(
                "by-init",
                {
                    "initContainers": [r.app_container("setup", mounts=["secret"])],
                    "containers": [r.app_container("main"), r.app_container("sidecar")],
                    "volumes": [r.secret_volume("secret", "rollout-secret")],
                },
            ),
        )
        api.create(
            rollouts,
            rollout(
                "template-auto",
                {"containers": [r.app_container(mounts=["all"])], "volumes": [projected]},
                on_template=True,
            ),
        )
        before = {
            name: api.get(f"{rollouts}/{name}")
            for name in ("by-projected", "by-init", "template-auto")
        }

        api.merge_patch(r.path("ConfigMap", namespace, "rollout-config"), {"data": {"mode": "b"}})
        change_secret(api, namespace, "rollout-secret", {"token": "b"})

        # No Argo controller runs here: the Rollout's template change is what a user sees.
        wanted = {
            "by-projected": ("STAKATER_ROLLOUT_CONFIG_CONFIGMAP", reloader_sha1({"mode": b"b"})),
            "by-init": ("STAKATER_ROLLOUT_SECRET_SECRET", reloader_sha1({"token": b"b"})),
            "template-auto": (
                "STAKATER_ROLLOUT_CONFIG_CONFIGMAP",
                reloader_sha1({"mode": b"b"}),
            ),
        }
        for name, (variable, digest) in wanted.items():

            def stamped(name: str = name, variable: str = variable) -> Any:
                template = api.get(f"{rollouts}/{name}")["spec"]["template"]
                return template if r.env_value(template, variable) else None

            template = wait_for(stamped, timeout=60, what=f"rollout {name} template changed")
            assert template["spec"]["containers"][0]["env"] == [{"name": variable, "value": digest}]
            old = before[name]["spec"]["template"]["spec"]
            assert template["spec"].get("initContainers") == old.get("initContainers")
            assert template["spec"]["volumes"] == old["volumes"]
        by_init = api.get(f"{rollouts}/by-init")["spec"]["template"]["spec"]
        assert "env" not in by_init["containers"][1]
    finally:
        api.delete(f"/api/v1/namespaces/{namespace}")


CSI = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/{ns}/{plural}"


def test_a_rotated_secret_provider_class_restarts_its_users(
    cluster: Cluster, api: Api, crds: list[str], tmp_path: Path
) -> None:
    install_third_party_crds(api, SECRETS_STORE_CSI)
    namespace = labelled_namespace(cluster, "parity-csi")
    daemon = start_daemon(
        cluster, tmp_path, group="parity-csi", extra=["--enable-csi-integration=true"]
    )
    try:
        classes = CSI.format(ns=namespace, plural="secretproviderclasses")
        statuses = CSI.format(ns=namespace, plural="secretproviderclasspodstatuses")
        api.create(
            classes,
            {
                "apiVersion": "secrets-store.csi.x-k8s.io/v1",
                "kind": "SecretProviderClass",
                "metadata": {"name": "vault-db"},
                "spec": {"provider": "vault", "parameters": {"objects": "db-password"}},
            },
        )
        api.create(
            statuses,
            {
                "apiVersion": "secrets-store.csi.x-k8s.io/v1",
                "kind": "SecretProviderClassPodStatus",
                "metadata": {"name": "app-pod-vault-db"},
                "status": {
                    "podName": "app-pod",
                    "secretProviderClassName": "vault-db",
                    "mounted": True,
                    "targetPath": "/var/lib/kubelet/pods/x/volumes/secrets",
                    "objects": [{"id": "db-password", "version": "1"}],
                },
            },
        )
        csi_volume = {
            "name": "secrets",
            "csi": {
                "driver": "secrets-store.csi.k8s.io",
                "readOnly": True,
                "volumeAttributes": {"secretProviderClass": "vault-db"},
            },
        }
        r.create(
            api,
            namespace,
            r.workload(
                "vault-user",
                annotations={"secretproviderclass.reloader.stakater.com/auto": "true"},
                containers=[r.app_container("sidecar"), r.app_container("app", mounts=["secrets"])],
                volumes=[csi_volume],
            ),
        )

        api.merge_patch(
            f"{statuses}/app-pod-vault-db",
            {"status": {"objects": [{"id": "db-password", "version": "2"}]}},
        )

        # Reloader's formula, written out: sorted id=version and the class name, sha1.
        digest = hashlib.sha1(b"SecretProviderClassName=vault-db;db-password=2").hexdigest()
        variable = "STAKATER_VAULT_DB_SECRETPROVIDERCLASS"
        template = wait_for(
            lambda: (
                t
                if r.env_value(
                    t := r.pod_template(api, namespace, "Deployment", "vault-user"), variable
                )
                else None
            ),
            timeout=60,
            what="deployment restarted for the rotated secret",
        )
        containers = {c["name"]: c for c in template["spec"]["containers"]}
        assert containers["app"]["env"] == [{"name": variable, "value": digest}]
        assert "env" not in containers["sidecar"]
    finally:
        stop_all(daemon)
        api.delete(f"/api/v1/namespaces/{namespace}")
