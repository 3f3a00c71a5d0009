"""Reloader-compatible restarts against a real control plane and the real daemon.

Most checks share one daemon (``shared``) that only watches namespaces labelled
for it; tests that stop, kill or reconfigure a daemon run their own, on
namespaces labelled for them, so two daemons never act on the same objects.
Restarts are checked the way a user sees them: ReplicaSets, pod templates,
Jobs and Events.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support import restarter as r
from tests.support.daemon import Fluxd, stop_all

SELECTOR_LABEL = "restarter-e2e"
WINDOW = "1s"
# Long enough for a restart that should not happen to have happened (window + patch + watch).
QUIET_SECONDS = 5.0


def reloader_sha1(data: Mapping[str, bytes]) -> str:
    """Reloader's digest, computed independently of fluxd: sha1 of sorted key=value joined by ;."""
    entries = sorted(key.encode() + b"=" + value for key, value in data.items())
    return hashlib.sha1(b";".join(entries)).hexdigest()


def labelled_namespace(cluster: Cluster, value: str) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    cluster.api.merge_patch(
        f"/api/v1/namespaces/{name}", {"metadata": {"labels": {SELECTOR_LABEL: value}}}
    )
    return name


def start_daemon(
    cluster: Cluster, workdir: Path, *, group: str, extra: Sequence[str] = ()
) -> Fluxd:
    daemon = Fluxd(
        cluster,
        workdir,
        name=f"fluxd-{group}",
        extra_args=[
            f"--lease-name=restarter-{group}-{uuid.uuid4().hex[:6]}",
            f"--namespace-selector={SELECTOR_LABEL}={group}",
            f"--restart-coalesce-window={WINDOW}",
            "--log-level=debug",
            *extra,
        ],
    ).start()
    wait_restarter_ready(daemon, starts=1)
    return daemon


def wait_restarter_ready(daemon: Fluxd, *, starts: int) -> None:
    """Wait until the restarter has listed everything ``starts`` times (this log holds all runs)."""

    def ready() -> bool:
        daemon.check_alive()
        watching = [rec for rec in daemon.log_records() if rec.get("msg") == "restarter watching"]
        return len(watching) >= starts

    wait_for(ready, timeout=90, what=f"{daemon.name} restarter watching")


def stays(condition: Callable[[], bool], *, seconds: float = QUIET_SECONDS, what: str) -> None:
    """Assert ``condition`` holds for ``seconds`` (for things that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.5)


def change_secret(api: Api, namespace: str, name: str, data: Mapping[str, str | bytes]) -> None:
    api.merge_patch(r.path("Secret", namespace, name), {"data": r.encoded(data)})


def restarted(
    api: Api, namespace: str, kind: str, name: str, variable: str
) -> Callable[[], str | None]:
    return lambda: r.env_value(r.pod_template(api, namespace, kind, name), variable)


@pytest.fixture(scope="module")
def shared(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    daemon = start_daemon(cluster, tmp_path_factory.mktemp("restarter-shared"), group="shared")
    try:
        yield daemon
    finally:
        stop_all(daemon)


@pytest.fixture
def ns(cluster: Cluster, shared: Fluxd) -> Iterator[str]:
    """A namespace the shared daemon watches."""
    name = labelled_namespace(cluster, "shared")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


# -- the user's scenario ---------------------------------------------------------------


def test_seed_secret_change_replaces_every_pod_and_metadata_change_does_nothing(
    api: Api, ns: str, shared: Fluxd
) -> None:
    r.create(api, ns, r.secret("realm-config-ix", {"realm_ix.toml": "port = 1"}))
    r.create(
        api,
        ns,
        r.workload(
            "realm-ix",
            annotations={r.AUTO: "true"},
            containers=[r.app_container("realm", mounts=["config"])],
            volumes=[r.secret_volume("config", "realm-config-ix")],
            replicas=2,
        ),
    )
    r.wait_rolled_out(api, ns, "realm-ix")
    old_pods = {pod["metadata"]["name"] for pod in r.pods(api, ns, "realm-ix")}
    assert len(r.replica_sets(api, ns, "realm-ix")) == 1
    # The daemon is shared: compare with the count before this test's restart.
    reloads_before = shared.metric("reloader_reload_executed_total", success="true") or 0

    change_secret(api, ns, "realm-config-ix", {"realm_ix.toml": "port = 2"})

    variable = "STAKATER_REALM_CONFIG_IX_SECRET"
    digest = wait_for(
        restarted(api, ns, "Deployment", "realm-ix", variable), timeout=60, what="env var"
    )
    assert digest == reloader_sha1({"realm_ix.toml": b"port = 2"})
    deployment = r.wait_rolled_out(api, ns, "realm-ix")
    assert len(r.replica_sets(api, ns, "realm-ix")) == 2
    wait_for(
        lambda: (
            len(r.pods(api, ns, "realm-ix")) == 2
            and not old_pods & {pod["metadata"]["name"] for pod in r.pods(api, ns, "realm-ix")}
        ),
        timeout=120,
        what="every old pod replaced",
    )
    # The user-visible record: an Event with Reloader's reason and wording.
    reloaded = wait_for(
        lambda: r.events(api, ns, name="realm-ix", reason="Reloaded"), timeout=30, what="event"
    )
    assert "realm-config-ix" in reloaded[0]["note"]
    assert reloaded[0]["type"] == "Normal"
    wait_for(
        lambda: (
            (shared.metric("reloader_reload_executed_total", success="true") or 0)
            == reloads_before + 1
        ),
        timeout=30,
        what="one more successful reload counted",
    )

    # Labels and annotations only: same content, nothing rolls.
    generation = deployment["metadata"]["generation"]
    api.merge_patch(
        r.path("Secret", ns, "realm-config-ix"),
        {"metadata": {"labels": {"team": "edge"}, "annotations": {"note": "relabelled"}}},
    )
    stays(
        lambda: r.generation(api, ns, "Deployment", "realm-ix") == generation,
        what="a metadata-only change must not restart",
    )
    assert len(r.replica_sets(api, ns, "realm-ix")) == 2


# -- annotations ---------------------------------------------------------------------


def test_reloader_annotations_select_exactly_the_workloads_reloader_would(
    api: Api, ns: str
) -> None:
    """One change per case, then one quiet period for every case that must not restart."""
    mount = [r.app_container(mounts=["config"])]
    for name in ("s-typed", "s-wrong-type", "db-main", "s-ignored", "s-excluded", "s-template"):
        annotations = {"reloader.stakater.com/ignore": "true"} if name == "s-ignored" else None
        r.create(api, ns, r.secret(name, {"v": "1"}, annotations=annotations))
    r.create(
        api,
        ns,
        r.config_map("cm-match", {"v": "1"}, annotations={"reloader.stakater.com/match": "true"}),
    )
    r.create(api, ns, r.config_map("cm-plain", {"v": "1"}))

    def with_volume(kind: str, source: str) -> list[dict[str, Any]]:
        if kind == "Secret":
            return [r.secret_volume("config", source)]
        return [r.config_map_volume("config", source)]

    cases: dict[str, tuple[dict[str, str], dict[str, str], str, str]] = {
        # name: (workload annotations, template annotations, kind, object)
        "typed": ({"secret.reloader.stakater.com/auto": "true"}, {}, "Secret", "s-typed"),
        "wrong-type": (
            {"configmap.reloader.stakater.com/auto": "true"},
            {},
            "Secret",
            "s-wrong-type",
        ),
        "listed": ({"secret.reloader.stakater.com/reload": "other, db-.*"}, {}, "", "db-main"),
        "search": ({"reloader.stakater.com/search": "true"}, {}, "ConfigMap", "cm-match"),
        "search-no-match": ({"reloader.stakater.com/search": "true"}, {}, "ConfigMap", "cm-plain"),
        "ignored": ({r.AUTO: "true"}, {}, "Secret", "s-ignored"),
        "excluded": (
            {r.AUTO: "true", "secrets.exclude.reloader.stakater.com/reload": "s-excluded"},
            {},
            "Secret",
            "s-excluded",
        ),
        "template-auto": ({}, {r.AUTO: "true"}, "Secret", "s-template"),
    }
    for name, (annotations, template_annotations, kind, source) in cases.items():
        r.create(
            api,
            ns,
            r.workload(
                name,
                annotations=annotations,
                template_annotations=template_annotations,
                containers=mount if kind else None,
                volumes=with_volume(kind, source) if kind else (),
            ),
        )
    generations = {name: r.generation(api, ns, "Deployment", name) for name in cases}

    for name in ("s-typed", "s-wrong-type", "db-main", "s-ignored", "s-excluded", "s-template"):
        change_secret(api, ns, name, {"v": "2"})
    for name in ("cm-match", "cm-plain"):
        api.merge_patch(r.path("ConfigMap", ns, name), {"data": {"v": "2"}})

    expected = {
        "typed": "STAKATER_S_TYPED_SECRET",
        "listed": "STAKATER_DB_MAIN_SECRET",
        "search": "STAKATER_CM_MATCH_CONFIGMAP",
        "template-auto": "STAKATER_S_TEMPLATE_SECRET",
    }
    for name, variable in expected.items():
        wait_for(
            restarted(api, ns, "Deployment", name, variable), timeout=60, what=f"{name} restarted"
        )
    quiet = sorted(set(cases) - set(expected))
    stays(
        lambda: all(r.generation(api, ns, "Deployment", n) == generations[n] for n in quiet),
        what=f"none of {quiet} may restart",
    )
    # A reload list names objects the pod does not use: the digest goes into the first container.
    listed = r.pod_template(api, ns, "Deployment", "listed")
    assert listed["spec"]["containers"][0]["env"][0]["name"] == "STAKATER_DB_MAIN_SECRET"


# -- kinds and references -------------------------------------------------------------


def test_statefulset_daemonset_cronjob_and_every_way_of_using_a_config(api: Api, ns: str) -> None:
    r.create(api, ns, r.secret("app-secret", {"token": "a"}))
    r.create(api, ns, r.config_map("app-config", {"mode": "a"}))
    auto = {r.AUTO: "true"}
    # StatefulSet: ConfigMap through a projected volume.
    r.create(
        api,
        ns,
        r.workload(
            "stateful",
            kind="StatefulSet",
            annotations=auto,
            containers=[r.app_container(mounts=["all"])],
            volumes=[
                {"name": "all", "projected": {"sources": [{"configMap": {"name": "app-config"}}]}}
            ],
        ),
    )
    # DaemonSet: Secret through envFrom.
    r.create(
        api,
        ns,
        r.workload(
            "daemon",
            kind="DaemonSet",
            annotations=auto,
            containers=[r.app_container(env_from=[{"secretRef": {"name": "app-secret"}}])],
        ),
    )
    # Deployment: Secret mounted only by an init container; the digest goes to the first container.
    r.create(
        api,
        ns,
        r.workload(
            "init-user",
            annotations=auto,
            init_containers=[r.app_container("setup", mounts=["secret"])],
            containers=[r.app_container("main"), r.app_container("sidecar")],
            volumes=[r.secret_volume("secret", "app-secret")],
        ),
    )
    # CronJob: Secret through env valueFrom; a change starts a Job, the CronJob stays as it is.
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "token"}}}]
    cronjob = r.create(
        api,
        ns,
        r.workload(
            "nightly", kind="CronJob", annotations=auto, containers=[r.app_container(env=env)]
        ),
    )

    change_secret(api, ns, "app-secret", {"token": "b"})
    api.merge_patch(r.path("ConfigMap", ns, "app-config"), {"data": {"mode": "b"}})

    secret_digest = reloader_sha1({"token": b"b"})
    config_digest = hashlib.sha1(b"mode=b").hexdigest()
    stateful = wait_for(
        restarted(api, ns, "StatefulSet", "stateful", "STAKATER_APP_CONFIG_CONFIGMAP"),
        timeout=60,
        what="sts",
    )
    assert stateful == config_digest
    daemon = wait_for(
        restarted(api, ns, "DaemonSet", "daemon", "STAKATER_APP_SECRET_SECRET"),
        timeout=60,
        what="ds",
    )
    assert daemon == secret_digest
    template = wait_for(
        lambda: (
            t
            if r.env_value(
                t := r.pod_template(api, ns, "Deployment", "init-user"),
                "STAKATER_APP_SECRET_SECRET",
            )
            else None
        ),
        timeout=60,
        what="init container user restarted",
    )
    assert template["spec"]["containers"][0]["env"] == [
        {"name": "STAKATER_APP_SECRET_SECRET", "value": secret_digest}
    ]
    assert "env" not in template["spec"]["containers"][1]
    jobs = wait_for(lambda: r.jobs_of(api, ns, "nightly"), timeout=60, what="job from cronjob")
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["name"].startswith("nightly-")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert r.env_value(job["spec"]["template"], "STAKATER_APP_SECRET_SECRET") == secret_digest
    after = api.get(r.path("CronJob", ns, "nightly"))
    assert after["metadata"]["generation"] == cronjob["metadata"]["generation"]


def test_secret_and_configmap_changed_together_roll_once(api: Api, ns: str) -> None:
    r.create(api, ns, r.secret("both-secret", {"a": "1"}))
    r.create(api, ns, r.config_map("both-config", {"b": "1"}))
    r.create(
        api,
        ns,
        r.workload(
            "both",
            annotations={r.AUTO: "true"},
            containers=[r.app_container(mounts=["s", "c"])],
            volumes=[r.secret_volume("s", "both-secret"), r.config_map_volume("c", "both-config")],
        ),
    )
    r.wait_rolled_out(api, ns, "both")
    generation = r.generation(api, ns, "Deployment", "both")

    change_secret(api, ns, "both-secret", {"a": "2"})
    api.merge_patch(r.path("ConfigMap", ns, "both-config"), {"data": {"b": "2"}})

    def both_recorded() -> bool:
        template = r.pod_template(api, ns, "Deployment", "both")
        return bool(
            r.env_value(template, "STAKATER_BOTH_SECRET_SECRET")
            and r.env_value(template, "STAKATER_BOTH_CONFIG_CONFIGMAP")
        )

    wait_for(both_recorded, timeout=60, what="both digests recorded")
    r.wait_rolled_out(api, ns, "both")
    assert r.generation(api, ns, "Deployment", "both") == generation + 1
    stays(lambda: len(r.replica_sets(api, ns, "both")) == 2, what="exactly one new ReplicaSet")


# -- failures and unusual data --------------------------------------------------------


def test_deleted_binary_large_and_forbidden_are_reported_and_the_daemon_keeps_going(
    api: Api, ns: str, shared: Fluxd
) -> None:
    binary = bytes(range(256)) * 4
    large = b"x" * (1024 * 1024 - 1024)
    r.create(api, ns, r.secret("gone", {"v": "1"}))
    r.create(api, ns, r.secret("binary", {"blob": binary}))
    r.create(api, ns, r.secret("large", {"big": large}))
    r.create(api, ns, r.secret("frozen", {"v": "1"}))
    for name, secret_name in (
        ("uses-gone", "gone"),
        ("uses-binary", "binary"),
        ("uses-large", "large"),
        ("locked", "frozen"),
    ):
        r.create(
            api,
            ns,
            r.workload(
                name,
                annotations={r.AUTO: "true"},
                containers=[r.app_container(mounts=["config"])],
                volumes=[r.secret_volume("config", secret_name)],
            ),
        )
    r.deny_deployment_updates(api, ns, "locked")
    failures_before = shared.metric("reloader_reload_executed_total", success="false") or 0

    api.delete(r.path("Secret", ns, "gone"))
    change_secret(api, ns, "frozen", {"v": "2"})
    change_secret(api, ns, "binary", {"blob": binary[::-1]})
    change_secret(api, ns, "large", {"big": large.replace(b"x", b"y", 1)})

    binary_digest = wait_for(
        restarted(api, ns, "Deployment", "uses-binary", "STAKATER_BINARY_SECRET"),
        timeout=60,
        what="binary",
    )
    assert binary_digest == reloader_sha1({"blob": binary[::-1]})
    large_digest = wait_for(
        restarted(api, ns, "Deployment", "uses-large", "STAKATER_LARGE_SECRET"),
        timeout=60,
        what="large",
    )
    assert large_digest == reloader_sha1({"big": large.replace(b"x", b"y", 1)})

    failed = wait_for(
        lambda: r.events(api, ns, name="locked", reason="ReloadFail"),
        timeout=60,
        what="ReloadFail event",
    )
    assert failed[0]["type"] == "Warning"
    assert "locked is frozen" in failed[0]["note"]
    assert (shared.metric("reloader_reload_executed_total", success="false") or 0) > failures_before
    records = shared.log_records()
    assert any(
        rec.get("msg") == "workload restart failed" and "locked" in str(rec.get("workload"))
        for rec in records
    )
    assert any(
        str(rec.get("msg", "")).startswith("config object deleted; its workloads are not restarted")
        and "gone" in str(rec.get("object"))
        for rec in records
    )
    assert r.generation(api, ns, "Deployment", "uses-gone") == 1
    # No Secret data ever reaches the log.
    assert "port = " not in shared.log_path.read_text()
    shared.check_alive()


# -- strategies, start-up, downtime and pause -----------------------------------------


def test_annotations_strategy_records_reloaders_last_reloaded_from(
    cluster: Cluster, api: Api, crds: list[str], tmp_path: Path
) -> None:
    namespace = labelled_namespace(cluster, "annotations")
    daemon = start_daemon(
        cluster, tmp_path, group="annotations", extra=["--reload-strategy=annotations"]
    )
    try:
        r.create(api, namespace, r.secret("realm-config-ix", {"realm_ix.toml": "a"}))
        r.create(
            api,
            namespace,
            r.workload(
                "realm-ix",
                annotations={r.AUTO: "true"},
                containers=[r.app_container("realm", mounts=["config"])],
                volumes=[r.secret_volume("config", "realm-config-ix")],
            ),
        )
        r.wait_rolled_out(api, namespace, "realm-ix")
        change_secret(api, namespace, "realm-config-ix", {"realm_ix.toml": "b"})

        def recorded() -> dict[str, Any] | None:
            annotations = (
                r.pod_template(api, namespace, "Deployment", "realm-ix")["metadata"].get(
                    "annotations"
                )
                or {}
            )
            raw = annotations.get("reloader.stakater.com/last-reloaded-from")
            return json.loads(raw) if raw else None

        source = wait_for(recorded, timeout=60, what="last-reloaded-from")
        assert source["type"] == "SECRET"
        assert source["name"] == "realm-config-ix"
        assert source["namespace"] == namespace
        assert source["hash"] == reloader_sha1({"realm_ix.toml": b"b"})
        assert source["containerRefs"] == ["realm"]
        template = r.pod_template(api, namespace, "Deployment", "realm-ix")
        assert r.env_value(template, "STAKATER_REALM_CONFIG_IX_SECRET") is None
        r.wait_rolled_out(api, namespace, "realm-ix")
        assert len(r.replica_sets(api, namespace, "realm-ix")) == 2
    finally:
        stop_all(daemon)
        api.delete(f"/api/v1/namespaces/{namespace}")


def test_migration_restarts_nothing_and_downtime_changes_roll_exactly_once(
    cluster: Cluster, api: Api, crds: list[str], tmp_path: Path
) -> None:
    namespace = labelled_namespace(cluster, "downtime")
    old = {"config.json": b'{"v": 1}'}
    r.create(api, namespace, r.secret("used", old))
    r.create(api, namespace, r.secret("unused", {"x": "1"}))
    r.create(api, namespace, r.secret("fresh", {"y": "1"}))
    stamp = {"name": "STAKATER_USED_SECRET", "value": reloader_sha1(old)}
    # A: left behind by Reloader, stamped with the Secret's current digest.
    r.create(
        api,
        namespace,
        r.workload(
            "a",
            annotations={r.AUTO: "true"},
            containers=[r.app_container(mounts=["config"], env=[stamp])],
            volumes=[r.secret_volume("config", "used")],
        ),
    )
    # C: never restarted by anyone (no record); its Secret does not change.
    r.create(
        api,
        namespace,
        r.workload(
            "c",
            annotations={r.AUTO: "true"},
            containers=[r.app_container(mounts=["config"])],
            volumes=[r.secret_volume("config", "fresh")],
        ),
    )
    r.wait_rolled_out(api, namespace, "a")
    r.wait_rolled_out(api, namespace, "c")
    generations = {name: r.generation(api, namespace, "Deployment", name) for name in ("a", "c")}

    daemon = start_daemon(cluster, tmp_path, group="downtime")
    try:
        # Migration from Reloader: everything is up to date, nothing rolls.
        stays(
            lambda: all(
                r.generation(api, namespace, "Deployment", n) == g for n, g in generations.items()
            ),
            what="start-up must not restart up-to-date workloads",
        )
        assert daemon.stop() == 0

        new = {"config.json": b'{"v": 2}'}
        change_secret(api, namespace, "used", new)
        change_secret(api, namespace, "unused", {"x": "2"})

        daemon.start()
        wait_restarter_ready(daemon, starts=2)
        wait_for(
            lambda: (
                r.env_value(
                    r.pod_template(api, namespace, "Deployment", "a"), "STAKATER_USED_SECRET"
                )
                == reloader_sha1(new)
            ),
            timeout=60,
            what="a caught up",
        )
        r.wait_rolled_out(api, namespace, "a")
        stays(
            lambda: (
                r.generation(api, namespace, "Deployment", "a") == generations["a"] + 1
                and r.generation(api, namespace, "Deployment", "c") == generations["c"]
            ),
            what="a rolls exactly once, c never",
        )
        assert len(r.replica_sets(api, namespace, "a")) == 2
    finally:
        stop_all(daemon)
        api.delete(f"/api/v1/namespaces/{namespace}")


def test_pause_period_survives_a_killed_daemon_and_the_deployment_is_resumed(
    cluster: Cluster, api: Api, crds: list[str], tmp_path: Path
) -> None:
    namespace = labelled_namespace(cluster, "pause")
    r.create(api, namespace, r.secret("paused-config", {"v": "1"}))
    r.create(
        api,
        namespace,
        r.workload(
            "held",
            annotations={r.AUTO: "true", "deployment.reloader.stakater.com/pause-period": "15s"},
            containers=[r.app_container(mounts=["config"])],
            volumes=[r.secret_volume("config", "paused-config")],
        ),
    )
    r.wait_rolled_out(api, namespace, "held")
    first = start_daemon(cluster, tmp_path / "first", group="pause")
    second: Fluxd | None = None
    try:
        change_secret(api, namespace, "paused-config", {"v": "2"})

        def paused() -> dict[str, Any] | None:
            deployment = api.get(r.path("Deployment", namespace, "held"))
            annotations = deployment["metadata"].get("annotations") or {}
            if (
                deployment["spec"].get("paused")
                and "deployment.reloader.stakater.com/paused-at" in annotations
            ):
                return deployment
            return None

        wait_for(paused, timeout=60, what="deployment paused")
        assert r.env_value(
            r.pod_template(api, namespace, "Deployment", "held"), "STAKATER_PAUSED_CONFIG_SECRET"
        )
        # Paused: the new template is recorded but not rolled out yet.
        assert len(r.replica_sets(api, namespace, "held")) == 1
        first.kill()

        second = start_daemon(cluster, tmp_path / "second", group="pause")

        def resumed() -> bool:
            deployment = api.get(r.path("Deployment", namespace, "held"))
            annotations = deployment["metadata"].get("annotations") or {}
            return not deployment["spec"].get("paused") and (
                "deployment.reloader.stakater.com/paused-at" not in annotations
            )

        wait_for(resumed, timeout=90, what="deployment resumed after its pause period")
        r.wait_rolled_out(api, namespace, "held")
        assert len(r.replica_sets(api, namespace, "held")) == 2
    finally:
        stop_all(*(d for d in (first, second) if d is not None))
        api.delete(f"/api/v1/namespaces/{namespace}")
