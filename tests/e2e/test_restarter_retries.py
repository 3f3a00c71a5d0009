"""A restart the API server refuses for a while is retried until it lands, exactly once.

A ValidatingAdmissionPolicy stands in for every reason a write can fail for a
while (an admission webhook denying or timing out, 429s, 5xx): the Secret
changes while updates of its Deployment are denied, the restarter keeps
retrying with backoff, and once the denial is lifted the Deployment rolls to
the new Secret once: one new ReplicaSet, one ``Reloaded`` Event.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from tests.support import restarter as r
from tests.support.daemon import Fluxd, stop_all

# Backoff from 750ms doubling to this cap: about 20 s of denial is 7 attempts.
MAX_RETRY_DELAY_SECONDS = 5
DENIED_ATTEMPTS = 7
VARIABLE = "STAKATER_APP_CONFIG_SECRET"


def reloader_sha1(data: Mapping[str, bytes]) -> str:
    """Reloader's digest, computed independently of fluxd."""
    return hashlib.sha1(
        b";".join(sorted(k.encode() + b"=" + v for k, v in data.items()))
    ).hexdigest()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def daemon(cluster: Cluster, crds: list[str], namespace: str, tmp_path: Path) -> Iterator[Fluxd]:
    # Scoped by --watch-namespaces: no other test's daemon watches this namespace,
    # and this one watches nothing else.
    fluxd = Fluxd(
        cluster,
        tmp_path,
        name="fluxd-retries",
        extra_args=[
            f"--lease-name=restarter-retries-{uuid.uuid4().hex[:6]}",
            f"--watch-namespaces={namespace}",
            "--restart-coalesce-window=1s",
            f"--max-retry-delay={MAX_RETRY_DELAY_SECONDS}s",
            "--log-level=debug",
        ],
    ).start()
    try:
        wait_for(lambda: watching(fluxd), timeout=90, what="restarter watching")
        yield fluxd
    finally:
        stop_all(fluxd)


def watching(fluxd: Fluxd) -> bool:
    fluxd.check_alive()
    return any(rec.get("msg") == "restarter watching" for rec in fluxd.log_records())


def denied_attempts(fluxd: Fluxd, name: str) -> int:
    return sum(
        1
        for rec in fluxd.log_records()
        if rec.get("msg") == "workload restart failed" and name in str(rec.get("workload"))
    )


def test_a_denied_restart_lands_once_the_denial_is_lifted(
    api: Api, namespace: str, daemon: Fluxd
) -> None:
    r.create(api, namespace, r.secret("app-config", {"app.toml": "v1"}))
    r.create(
        api,
        namespace,
        r.workload(
            "app",
            annotations={r.AUTO: "true"},
            containers=[r.app_container(mounts=["config"])],
            volumes=[r.secret_volume("config", "app-config")],
        ),
    )
    before = r.wait_rolled_out(api, namespace, "app")
    assert len(r.replica_sets(api, namespace, "app")) == 1

    policy = r.deny_deployment_updates(api, namespace, "app")
    try:
        api.merge_patch(
            r.path("Secret", namespace, "app-config"), {"data": r.encoded({"app.toml": "v2"})}
        )
        failed = wait_for(
            lambda: r.events(api, namespace, name="app", reason="ReloadFail"),
            timeout=60,
            what="ReloadFail event",
        )
        assert "deployment app is frozen" in failed[0]["note"]
        # Keep denying for about 20 s of retries: far past any fixed attempt budget.
        wait_for(
            lambda: denied_attempts(daemon, "app") >= DENIED_ATTEMPTS,
            timeout=90,
            what=f"{DENIED_ATTEMPTS} denied attempts",
        )
        assert r.env_value(r.pod_template(api, namespace, "Deployment", "app"), VARIABLE) is None
    finally:
        r.allow_deployment_updates(api, policy)

    digest = wait_for(
        lambda: r.env_value(r.pod_template(api, namespace, "Deployment", "app"), VARIABLE),
        timeout=60,
        what="restart after the denial is lifted",
    )
    assert digest == reloader_sha1({"app.toml": b"v2"})
    after = r.wait_rolled_out(api, namespace, "app")
    # A retry left behind would write within one max-retry-delay; wait two, then count.
    time.sleep(2 * MAX_RETRY_DELAY_SECONDS)
    assert r.generation(api, namespace, "Deployment", "app") == before["metadata"]["generation"] + 1
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert len(r.replica_sets(api, namespace, "app")) == 2
    assert len(r.events(api, namespace, name="app", reason="Reloaded")) == 1
    assert (daemon.metric("reloader_reload_executed_total", success="false") or 0) >= (
        DENIED_ATTEMPTS
    )
