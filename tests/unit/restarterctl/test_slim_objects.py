"""Slim cached objects answer every question the restarter asks exactly as the full ones do."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.restarter import (
    ConfigKind,
    pause_state,
    profile_workload,
    recorded_digest,
    workload_key,
)
from fluxd.restarter.slim import config_change_of, slim_config, slim_workload
from tests.unit.restarter.restarter_objects import configmap, container, secret, workload

PROJECTED = {
    "name": "bundle",
    "projected": {
        "sources": [
            {"configMap": {"name": "realm-settings", "items": [{"key": "a", "path": "a"}]}},
            {"secret": {"name": "tls", "optional": True}},
            {"downwardAPI": {"items": [{"path": "labels"}]}},
        ]
    },
}

WORKLOADS = [
    pytest.param(workload(annotations={"reloader.stakater.com/auto": "true"}), id="seed"),
    pytest.param(
        workload(
            kind="StatefulSet",
            containers=[container("app", mounts=["bundle", "scratch"])],
            volumes=[PROJECTED, {"name": "scratch", "emptyDir": {}}],
            template_annotations={"reloader.stakater.com/search": "true"},
        ),
        id="projected-and-template-annotations",
    ),
    pytest.param(
        workload(
            kind="CronJob",
            api_version="batch/v1",
            annotations={"secret.reloader.stakater.com/reload": "db-.*"},
            containers=[
                container(
                    "job",
                    env=[
                        {"name": "PLAIN", "value": "x"},
                        {
                            "name": "TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "db", "key": "t"}},
                        },
                        {"name": "STAKATER_DB_SECRET", "value": "abc"},
                    ],
                    env_from=[{"configMapRef": {"name": "settings"}}],
                )
            ],
            volumes=[],
        ),
        id="cronjob-env",
    ),
    pytest.param(
        workload(
            annotations={
                "deployment.reloader.stakater.com/pause-period": "5m",
                "deployment.reloader.stakater.com/paused-at": "2024-05-01T12:00:00Z",
                "secrets.exclude.reloader.stakater.com/reload": "tls",
                "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 5000 + "}",
            },
            template_annotations={
                "reloader.stakater.com/last-reloaded-from": (
                    '{"type":"SECRET","name":"realm-config-ix","hash":"h"}'
                ),
            },
            init_containers=[container("setup", mounts=["config"])],
            spec_extra={"paused": True},
        ),
        id="paused-with-records",
    ),
]


@pytest.mark.parametrize("full", WORKLOADS)
def test_slim_workload_gives_the_same_answers(full: dict[str, Any]) -> None:
    slim = slim_workload(full)
    assert workload_key(slim) == workload_key(full)
    assert profile_workload(slim) == profile_workload(full)
    assert pause_state(slim) == pause_state(full)
    for kind, name in [(ConfigKind.SECRET, "realm-config-ix"), (ConfigKind.SECRET, "db")]:
        assert recorded_digest(slim, kind=kind, name=name) == recorded_digest(
            full, kind=kind, name=name
        )


def test_slim_workload_drops_what_the_restarter_never_reads() -> None:
    full = workload(
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "edge"},
        containers=[container("realm", mounts=["config"], env=[{"name": "LOG", "value": "x"}])],
    )
    full["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    slim = slim_workload(full)
    assert slim["metadata"]["annotations"] == {}
    assert slim["spec"]["template"]["spec"]["containers"] == [
        {"name": "realm", "volumeMounts": [{"name": "config"}]}
    ]


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        pytest.param(ConfigKind.SECRET, secret(data={"k": b"\x00\xffsecret"}), id="secret"),
        pytest.param(
            ConfigKind.CONFIGMAP,
            configmap(data={"a": "1"}, binary={"b": b"\x01"}),
            id="configmap-binary",
        ),
    ],
)
def test_slim_config_keeps_digests_and_never_data(kind: ConfigKind, obj: dict[str, Any]) -> None:
    obj["metadata"]["labels"] = {"app": "realm"}
    obj["metadata"]["annotations"] = {"reloader.stakater.com/match": "true", "other": "x"}
    slim = slim_config(kind, obj)
    change = config_change_of(slim)
    assert change is not None
    assert change.digest and change.digest in change.equivalent
    assert change.annotations == {"reloader.stakater.com/match": "true"}
    assert slim["metadata"]["labels"] == {"app": "realm"}
    assert "data" not in slim and "binaryData" not in slim
    encoded = obj["data"] if kind is ConfigKind.SECRET else obj["binaryData"]
    assert not any(value in repr(slim) for value in encoded.values())


def test_slim_config_marks_undecodable_data_instead_of_failing() -> None:
    broken = secret()
    broken["data"] = {"k": "not base64!"}
    assert config_change_of(slim_config(ConfigKind.SECRET, broken)) is None
