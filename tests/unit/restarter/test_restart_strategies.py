"""Recording a restart on a workload (env-vars and annotations), and not restarting twice."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fluxd.restarter import (
    ConfigChange,
    ConfigKind,
    PatchType,
    RestartAction,
    RestartStrategy,
    env_var_name,
    plan_restart,
    recorded_digest,
)
from tests.unit.restarter.restarter_objects import (
    SECRET_NAME,
    apply_strategic,
    configmap,
    container,
    env_of,
    secret,
    workload,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ENV = "STAKATER_REALM_CONFIG_IX_SECRET"
AUTO = {"reloader.stakater.com/auto": "true"}
LAST = "reloader.stakater.com/last-reloaded-from"
DIGESTS = "restarter.fluxd.dev/config-digests"


def change(content: bytes = b"v2", *, previous: str | None = "seen-before") -> ConfigChange:
    return ConfigChange.from_object(
        ConfigKind.SECRET, secret(data={"realm_ix.toml": content}), previous=previous
    )


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        pytest.param("realm-config-ix", ConfigKind.SECRET, ENV, id="scenario"),
        pytest.param(
            "www.stakater.com",
            ConfigKind.CONFIGMAP,
            "STAKATER_WWW_STAKATER_COM_CONFIGMAP",
            id="dots",
        ),
        pytest.param("-lead--trail-", ConfigKind.SECRET, "STAKATER_LEAD_TRAIL__SECRET", id="runs"),
    ],
)
def test_env_var_name(name: str, kind: ConfigKind, expected: str) -> None:
    assert env_var_name(kind, name) == expected


class TestEnvVarsStrategy:
    def test_adds_the_digest_to_the_container_that_mounts_the_secret(self) -> None:
        target = workload(
            annotations=AUTO,
            containers=[container("metrics"), container("realm", mounts=["config"])],
        )
        new = change()
        plan = plan_restart(target, [new], now=NOW)
        assert plan is not None
        assert plan.action is RestartAction.PATCH
        assert plan.patch_type is PatchType.STRATEGIC_MERGE
        assert plan.containers == ("realm",)
        assert plan.body == {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "realm", "env": [{"name": ENV, "value": new.digest}]}
                        ]
                    }
                }
            }
        }

    def test_updates_an_existing_value(self) -> None:
        old = change(b"v1")
        stamped = workload(
            annotations=AUTO,
            containers=[
                container("realm", mounts=["config"], env=[{"name": ENV, "value": old.digest}])
            ],
        )
        new = change(b"v2", previous=old.digest)
        plan = plan_restart(stamped, [new], now=NOW)
        assert plan is not None
        assert env_of(plan.body, "realm") == {ENV: new.digest}

    def test_nothing_when_the_recorded_digest_is_current(self) -> None:
        new = change()
        stamped = workload(
            annotations=AUTO,
            containers=[
                container("realm", mounts=["config"], env=[{"name": ENV, "value": new.digest}])
            ],
        )
        assert plan_restart(stamped, [new], now=NOW) is None

    @pytest.mark.parametrize("algorithm", ["sha1", "sha512_256"])
    def test_workload_stamped_by_reloader_is_untouched(self, algorithm: str) -> None:
        # Reloader's own value, computed here from its formula, not by fluxd.
        payload = b'realm_ix.toml=listen = "0.0.0.0:443"\n'
        reloader_value = hashlib.new(algorithm, payload).hexdigest()
        stamped = workload(
            annotations=AUTO,
            containers=[
                container("realm", mounts=["config"], env=[{"name": ENV, "value": reloader_value}])
            ],
        )
        current = ConfigChange.from_object(ConfigKind.SECRET, secret(), previous="older")
        assert plan_restart(stamped, [current], now=NOW) is None

    def test_first_sight_without_record_does_not_restart(self) -> None:
        assert plan_restart(workload(annotations=AUTO), [change(previous=None)], now=NOW) is None

    def test_catch_up_after_downtime(self) -> None:
        old = change(b"v1")
        stamped = workload(
            annotations=AUTO,
            containers=[
                container("realm", mounts=["config"], env=[{"name": ENV, "value": old.digest}])
            ],
        )
        # Seen for the first time by this process, but the record is stale.
        assert plan_restart(stamped, [change(b"v2", previous=None)], now=NOW) is not None

    def test_applied_plan_is_not_planned_again(self) -> None:
        target = workload(annotations=AUTO)
        new = change()
        plan = plan_restart(target, [new], now=NOW)
        assert plan is not None
        restarted = apply_strategic(target, plan.body)
        assert recorded_digest(restarted, kind=ConfigKind.SECRET, name=SECRET_NAME) == new.digest
        assert plan_restart(restarted, [new], now=NOW) is None

    def test_two_objects_one_patch(self) -> None:
        target = workload(
            annotations=AUTO,
            containers=[
                container(
                    "realm",
                    mounts=["config"],
                    env_from=[{"configMapRef": {"name": "realm-settings"}}],
                )
            ],
        )
        settings = ConfigChange.from_object(
            ConfigKind.CONFIGMAP, configmap(data={"level": "debug"}), previous="x"
        )
        plan = plan_restart(target, [change(), settings], now=NOW)
        assert plan is not None
        assert set(env_of(plan.body, "realm")) == {ENV, "STAKATER_REALM_SETTINGS_CONFIGMAP"}
        assert len(plan.changes) == 2

    def test_existing_variable_is_updated_where_it_is(self) -> None:
        old = change(b"v1")
        target = workload(
            annotations=AUTO,
            containers=[
                container("first", env=[{"name": ENV, "value": old.digest}]),
                container("realm", mounts=["config"]),
            ],
        )
        plan = plan_restart(target, [change(b"v2", previous=old.digest)], now=NOW)
        assert plan is not None
        assert plan.containers == ("first",)

    def test_init_container_use_stamps_the_first_container(self) -> None:
        target = workload(
            annotations=AUTO,
            containers=[container("app"), container("proxy")],
            init_containers=[container("render", mounts=["config"])],
        )
        plan = plan_restart(target, [change()], now=NOW)
        assert plan is not None
        assert plan.containers == ("app",)

    def test_unselected_workload_is_not_restarted(self) -> None:
        assert plan_restart(workload(), [change()], now=NOW) is None

    def test_input_workload_is_not_modified(self) -> None:
        target = workload(annotations=AUTO)
        before = copy.deepcopy(target)
        plan_restart(target, [change()], now=NOW)
        assert target == before


class TestAnnotationsStrategy:
    def test_writes_reloaders_last_reloaded_from(self) -> None:
        new = change()
        plan = plan_restart(
            workload(annotations=AUTO), [new], now=NOW, strategy=RestartStrategy.ANNOTATIONS
        )
        assert plan is not None
        annotations = plan.body["spec"]["template"]["metadata"]["annotations"]
        assert json.loads(annotations[LAST]) == {
            "type": "SECRET",
            "name": SECRET_NAME,
            "namespace": "edge",
            "hash": new.digest,
            "containerRefs": ["realm"],
            "observedAt": int(NOW.timestamp()),
        }
        assert list(json.loads(annotations[LAST])) == [
            "type",
            "name",
            "namespace",
            "hash",
            "containerRefs",
            "observedAt",
        ]

    def test_reloader_annotation_with_other_timestamp_counts_as_current(self) -> None:
        new = change()
        reloader_written = json.dumps(
            {
                "type": "SECRET",
                "name": SECRET_NAME,
                "namespace": "edge",
                "hash": new.digest,
                "containerRefs": ["realm"],
                "observedAt": 1600000000,
            }
        )
        stamped = workload(annotations=AUTO, template_annotations={LAST: reloader_written})
        assert plan_restart(stamped, [new], now=NOW, strategy=RestartStrategy.ANNOTATIONS) is None

    def test_every_object_keeps_its_record(self) -> None:
        target = workload(
            annotations=AUTO,
            containers=[
                container(
                    "realm",
                    mounts=["config"],
                    env_from=[{"configMapRef": {"name": "realm-settings"}}],
                )
            ],
        )
        settings = ConfigChange.from_object(
            ConfigKind.CONFIGMAP, configmap(data={"level": "debug"}), previous="x"
        )
        strategy = RestartStrategy.ANNOTATIONS
        first = plan_restart(target, [change()], now=NOW, strategy=strategy)
        assert first is not None
        target = apply_strategic(target, first.body)
        second = plan_restart(target, [settings], now=NOW, strategy=strategy)
        assert second is not None
        target = apply_strategic(target, second.body)
        # last-reloaded-from now names the ConfigMap, yet the Secret is still known.
        assert plan_restart(target, [change()], now=NOW, strategy=strategy) is None
        assert plan_restart(target, [change(b"v3")], now=NOW, strategy=strategy) is not None

    @pytest.mark.parametrize(
        "kind", [pytest.param("Deployment", id="deployment"), pytest.param("Rollout", id="rollout")]
    )
    def test_pod_template_changes_only_as_reloader_changes_it(self, kind: str) -> None:
        api_version = "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1"
        target = workload(kind=kind, api_version=api_version, annotations=AUTO)
        plan = plan_restart(target, [change()], now=NOW, strategy=RestartStrategy.ANNOTATIONS)
        assert plan is not None
        assert plan.body["spec"]["template"]["metadata"]["annotations"].keys() == {LAST}
        record = json.loads(plan.body["metadata"]["annotations"][DIGESTS])
        assert record == {f"Secret/{SECRET_NAME}": change().digest}

    def test_a_record_left_on_the_pod_template_is_still_read(self) -> None:
        old_record = json.dumps({f"Secret/{SECRET_NAME}": change().digest})
        target = workload(annotations=AUTO, template_annotations={DIGESTS: old_record})
        strategy = RestartStrategy.ANNOTATIONS
        assert plan_restart(target, [change()], now=NOW, strategy=strategy) is None
        plan = plan_restart(target, [change(b"v3")], now=NOW, strategy=strategy)
        assert plan is not None
        assert DIGESTS not in plan.body["spec"]["template"]["metadata"]["annotations"]


class TestRollouts:
    def rollout(self, **annotations: str) -> dict[str, Any]:
        return workload(
            kind="Rollout",
            api_version="argoproj.io/v1alpha1",
            annotations={**AUTO, **annotations},
            containers=[container("metrics"), container("realm", mounts=["config"])],
        )

    def test_template_change_sends_every_container(self) -> None:
        new = change()
        plan = plan_restart(self.rollout(), [new], now=NOW)
        assert plan is not None
        assert plan.patch_type is PatchType.MERGE
        names = [c["name"] for c in plan.body["spec"]["template"]["spec"]["containers"]]
        assert names == ["metrics", "realm"]
        assert env_of(plan.body, "realm") == {ENV: new.digest}

    def test_the_whole_list_patch_applies_only_to_the_version_read(self) -> None:
        target = self.rollout()
        target["metadata"]["resourceVersion"] = "42"
        plan = plan_restart(target, [change()], now=NOW)
        assert plan is not None
        assert plan.body["metadata"] == {"resourceVersion": "42"}

    def test_restart_strategy_sets_restart_at(self) -> None:
        plan = plan_restart(
            self.rollout(**{"reloader.stakater.com/rollout-strategy": "restart"}),
            [change()],
            now=NOW,
        )
        assert plan is not None
        assert plan.body == {"spec": {"restartAt": "2024-05-01T12:00:00Z"}}


class TestPausePeriod:
    def test_restart_pauses_in_the_same_patch(self) -> None:
        target = workload(
            annotations={**AUTO, "deployment.reloader.stakater.com/pause-period": "5m"}
        )
        plan = plan_restart(target, [change()], now=NOW)
        assert plan is not None and plan.pauses
        assert plan.body["spec"]["paused"] is True
        assert plan.body["metadata"]["annotations"] == {
            "deployment.reloader.stakater.com/paused-at": "2024-05-01T12:00:00Z",
            "deployment.reloader.stakater.com/pause-period": "5m",
        }
        assert "template" in plan.body["spec"]

    def test_already_paused_is_not_paused_again(self) -> None:
        target = workload(
            annotations={**AUTO, "deployment.reloader.stakater.com/pause-period": "5m"},
            spec_extra={"paused": True},
        )
        plan = plan_restart(target, [change()], now=NOW)
        assert plan is not None and not plan.pauses
        assert "paused" not in plan.body["spec"]
