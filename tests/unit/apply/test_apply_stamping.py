"""One rollout per commit: which applied workloads carry the restarter's record, and what."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fluxd.controllers.stamping import ConfigRecords
from fluxd.restarter.configs import ConfigKind
from fluxd.restarter.hashing import DigestAlgorithm, config_digest
from fluxd.restarter.index import ConfigFilter
from fluxd.restarter.stamping import candidate_stamps, stamp
from fluxd.restarter.strategies import RestartStrategy
from fluxd.settings import Settings, SettingsError
from tests.unit.restarter.restarter_objects import env_of, secret, workload

AUTO = {"reloader.stakater.com/auto": "true"}
VARIABLE = "STAKATER_REALM_CONFIG_IX_SECRET"
OLD = secret(data={"realm_ix.toml": b"old"})
NEW = secret(data={"realm_ix.toml": b"new"})


def stamped(
    built_workload: dict[str, Any],
    *,
    live_workload: dict[str, Any] | None,
    live_config: dict[str, Any] | None,
    config: dict[str, Any] = NEW,
    **options: Any,
) -> dict[str, str] | None:
    """The built workload's env after stamping, or None when nothing was stamped."""
    built = copy.deepcopy(built_workload)
    candidates = candidate_stamps(
        [copy.deepcopy(config), built],
        config_filter=options.pop("config_filter", ConfigFilter()),
        namespace_labels={},
        **options,
    )
    done = [
        stamp(candidate, live_workload=live_workload, live_config=live_config)
        for candidate in candidates
    ]
    return env_of(built, "realm") if any(done) else None


def test_a_changing_secret_is_recorded_in_the_workload_applied_with_it() -> None:
    deployment = workload(annotations=AUTO)

    env = stamped(deployment, live_workload=deployment, live_config=OLD)

    assert env == {VARIABLE: config_digest(ConfigKind.SECRET, NEW)}


def test_an_unchanged_secret_adds_no_record_to_a_workload_without_one() -> None:
    deployment = workload(annotations=AUTO)

    assert stamped(deployment, live_workload=deployment, live_config=NEW) is None


def test_an_existing_record_is_kept_even_in_another_algorithm() -> None:
    recorded = config_digest(ConfigKind.SECRET, NEW, algorithm=DigestAlgorithm.SHA512_256)
    live = workload(annotations=AUTO)
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": VARIABLE, "value": recorded}
    ]

    env = stamped(workload(annotations=AUTO), live_workload=live, live_config=NEW)

    assert env == {VARIABLE: recorded}


@pytest.mark.parametrize(
    ("built", "live_workload", "options"),
    [
        pytest.param(workload(annotations=AUTO), None, {}, id="new-workload"),
        pytest.param(workload(), workload(), {}, id="not-annotated"),
        pytest.param(
            workload(annotations=AUTO),
            workload(annotations=AUTO),
            {"strategy": RestartStrategy.ANNOTATIONS},
            id="annotations-strategy",
        ),
        pytest.param(
            workload(annotations={**AUTO, "deployment.reloader.stakater.com/pause-period": "5m"}),
            workload(annotations=AUTO),
            {},
            id="pause-period",
        ),
        pytest.param(
            workload(annotations=AUTO),
            workload(annotations=AUTO),
            {"config_filter": ConfigFilter(ignored_namespaces=frozenset({"edge"}))},
            id="namespace-ignored-by-the-restarter",
        ),
        pytest.param(
            workload(kind="CronJob", api_version="batch/v1", annotations=AUTO),
            workload(kind="CronJob", api_version="batch/v1", annotations=AUTO),
            {},
            id="cronjob",
        ),
    ],
)
def test_workloads_the_restarter_would_not_roll_this_way_are_left_alone(
    built: dict[str, Any], live_workload: dict[str, Any] | None, options: dict[str, Any]
) -> None:
    assert stamped(built, live_workload=live_workload, live_config=OLD, **options) is None


def test_the_restarter_filters_are_not_read_where_the_restarter_does_not_run() -> None:
    bad = "zone in (a"

    # Where the restarter runs, its start-up refuses this; elsewhere Kustomizations still work.
    records = ConfigRecords(Settings(restarter=False, namespace_selector=bad))

    assert not records.enabled
    with pytest.raises(SettingsError):
        ConfigRecords(Settings(namespace_selector=bad))
