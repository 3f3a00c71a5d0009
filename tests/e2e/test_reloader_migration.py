"""A Reloader install's container args, pasted onto `fluxd run`, keep rolling the same workloads.

The daemon runs with the args Reloader's chart renders for custom annotation
names (``reloader.custom_annotations``) and Reloader's spellings of the other
flags, plus only what the test needs to share the control plane (lease name,
coalescing window). Workloads carrying the renamed annotations roll; one
carrying Reloader's default name does not, since the user renamed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.e2e.test_restarter import (
    SELECTOR_LABEL,
    WINDOW,
    change_secret,
    labelled_namespace,
    restarted,
    stays,
    wait_restarter_ready,
)
from tests.support import restarter as r
from tests.support.daemon import Fluxd, stop_all

GROUP = "migration"
A = "acme.example"
# What Reloader's chart renders for these values (templates/deployment.yaml),
# flag and value as separate args where the chart writes them so.
RELOADER_ARGS = [
    "--log-format=json",
    "--log-level=debug",
    f'--namespace-selector="{SELECTOR_LABEL}:{GROUP}"',
    "--pprof-addr=:6060",
    "--configmap-annotation",
    f"{A}/configmap-reload",
    "--secret-annotation",
    f"{A}/secret-reload",
    "--auto-annotation",
    f"{A}/auto",
    "--secret-auto-annotation",
    f"{A}/secret-auto",
    "--configmap-auto-annotation",
    f"{A}/configmap-auto",
    "--auto-search-annotation",
    f"{A}/search",
    "--search-match-annotation",
    f"{A}/match",
    "--ignore-annotation",
    f"{A}/ignore",
    "--pause-deployment-annotation",
    f"{A}/pause-period",
    "--pause-deployment-time-annotation",
    f"{A}/paused-at",
    "--is-Argo-Rollouts=false",
    "--reload-on-create=false",
    "--reload-on-delete=false",
    "--sync-after-restart=true",
    "--reload-strategy=env-vars",
    "--enable-ha=true",
]


@pytest.fixture(scope="module")
def migrated(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fluxd]:
    workdir: Path = tmp_path_factory.mktemp("reloader-migration")
    daemon = Fluxd(
        cluster,
        workdir,
        name="fluxd-migration",
        extra_args=[
            f"--lease-name=restarter-{GROUP}-{uuid.uuid4().hex[:6]}",
            f"--restart-coalesce-window={WINDOW}",
            *RELOADER_ARGS,
        ],
        env={"METRICS_COUNT_BY_NAMESPACE": "enabled"},
    ).start()
    try:
        wait_restarter_ready(daemon, starts=1)
        yield daemon
    finally:
        stop_all(daemon)


@pytest.fixture
def ns(cluster: Cluster, migrated: Fluxd) -> Iterator[str]:
    name = labelled_namespace(cluster, GROUP)
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


def change_config_map(api: Api, namespace: str, name: str, data: dict[str, str]) -> None:
    api.merge_patch(r.path("ConfigMap", namespace, name), {"data": data})


def test_workloads_annotated_with_the_renamed_annotations_roll(
    api: Api, ns: str, migrated: Fluxd
) -> None:
    r.create(api, ns, r.secret("creds", {"token": "1"}))
    r.create(api, ns, r.secret("quiet", {"token": "1"}, annotations={f"{A}/ignore": "true"}))
    r.create(api, ns, r.config_map("settings", {"level": "1"}))
    r.create(api, ns, r.config_map("matched", {"level": "1"}, annotations={f"{A}/match": "true"}))

    def deployment(name: str, annotations: dict[str, str], *, uses: str = "") -> None:
        """A Deployment annotated so, mounting the Secret or ConfigMap ``uses`` ("Kind/name")."""
        volumes = []
        if uses:
            kind, _, config = uses.partition("/")
            volume = r.secret_volume if kind == "Secret" else r.config_map_volume
            volumes = [volume("config", config)]
        containers = [r.app_container(mounts=["config"] if uses else [])]
        body = r.workload(name, annotations=annotations, containers=containers, volumes=volumes)
        r.create(api, ns, body)

    deployment("by-auto", {f"{A}/auto": "true"}, uses="Secret/creds")
    deployment("by-secret-auto", {f"{A}/secret-auto": "true"}, uses="Secret/creds")
    deployment("by-secret-list", {f"{A}/secret-reload": "creds"})
    deployment(
        "by-configmap-list", {f"{A}/configmap-reload": "settings"}, uses="ConfigMap/settings"
    )
    deployment("by-search", {f"{A}/search": "true"}, uses="ConfigMap/matched")
    deployment(
        "paused-after", {f"{A}/auto": "true", f"{A}/pause-period": "1h"}, uses="Secret/creds"
    )
    # Reloader's default name: the user renamed it, so it selects nothing now.
    deployment("old-name", {"reloader.stakater.com/auto": "true"}, uses="Secret/creds")
    deployment("uses-ignored", {f"{A}/auto": "true"}, uses="Secret/quiet")

    change_secret(api, ns, "creds", {"token": "2"})
    change_secret(api, ns, "quiet", {"token": "2"})
    change_config_map(api, ns, "settings", {"level": "2"})
    change_config_map(api, ns, "matched", {"level": "2"})

    rolled = {
        "by-auto": "STAKATER_CREDS_SECRET",
        "by-secret-auto": "STAKATER_CREDS_SECRET",
        "by-secret-list": "STAKATER_CREDS_SECRET",
        "by-configmap-list": "STAKATER_SETTINGS_CONFIGMAP",
        "by-search": "STAKATER_MATCHED_CONFIGMAP",
        "paused-after": "STAKATER_CREDS_SECRET",
    }
    for name, variable in rolled.items():
        wait_for(
            restarted(api, ns, "Deployment", name, variable), timeout=60, what=f"{name} rolled"
        )

    # The renamed pause annotations: paused, and the time recorded under the user's name.
    paused = api.get(r.path("Deployment", ns, "paused-after"))
    assert paused["spec"].get("paused") is True
    assert f"{A}/paused-at" in paused["metadata"]["annotations"]
    assert "deployment.reloader.stakater.com/paused-at" not in paused["metadata"]["annotations"]

    # Reloader's per-namespace counter (METRICS_COUNT_BY_NAMESPACE=enabled).
    wait_for(
        lambda: (
            migrated.metric(
                "reloader_reload_executed_total_by_namespace", success="true", namespace=ns
            )
            == len(rolled)
        ),
        timeout=30,
        what="restarts counted for the namespace",
    )

    # No event marks "decided not to restart": the rolled ones above were written after
    # the same changes, so a quiet period shows the other two stay as they are.
    stays(
        lambda: (
            restarted(api, ns, "Deployment", "old-name", "STAKATER_CREDS_SECRET")() is None
            and restarted(api, ns, "Deployment", "uses-ignored", "STAKATER_QUIET_SECRET")() is None
        ),
        what="Reloader's default annotation name and an ignored Secret restart nothing",
    )


def test_a_refused_reloader_flag_stops_the_daemon_naming_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    daemon = Fluxd(
        cluster,
        tmp_path,
        name="fluxd-refused",
        extra_args=[*RELOADER_ARGS, "--webhook-url", "https://hooks.example.com/reload"],
    ).start(wait_ready=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=60) == 2
    assert "--webhook-url=https://hooks.example.com/reload is not supported" in daemon.log_tail()


def test_scope_namespace_restarts_only_in_the_pods_namespace(
    api: Api, cluster: Cluster, crds: list[str], tmp_path: Path
) -> None:
    """Reloader's watchGlobally: false, as components/restarter-namespaced configures it."""
    inside = f"t-{uuid.uuid4().hex[:10]}"
    outside = f"t-{uuid.uuid4().hex[:10]}"
    for namespace in (inside, outside):
        cluster.create_namespace(namespace)
        r.create(api, namespace, r.secret("creds", {"token": "1"}))
        r.create(
            api,
            namespace,
            r.workload(
                "app",
                annotations={r.AUTO: "true"},
                containers=[r.app_container(mounts=["config"])],
                volumes=[r.secret_volume("config", "creds")],
            ),
        )
    daemon = Fluxd(
        cluster,
        tmp_path,
        name="fluxd-scoped",
        extra_args=[
            f"--lease-name=restarter-scoped-{uuid.uuid4().hex[:6]}",
            f"--restart-coalesce-window={WINDOW}",
            "--restarter-scope=namespace",
        ],
        env={"POD_NAMESPACE": inside},
    ).start()
    try:
        wait_restarter_ready(daemon, starts=1)
        change_secret(api, outside, "creds", {"token": "2"})
        change_secret(api, inside, "creds", {"token": "2"})
        variable = "STAKATER_CREDS_SECRET"
        wait_for(
            restarted(api, inside, "Deployment", "app", variable), timeout=60, what="rolled inside"
        )
        # The outside change was made first; by now it would have rolled if it were watched.
        stays(
            lambda: restarted(api, outside, "Deployment", "app", variable)() is None,
            what="a workload outside the pod's namespace must not restart",
        )
    finally:
        stop_all(daemon)
        for namespace in (inside, outside):
            cluster.api.delete(f"/api/v1/namespaces/{namespace}")
