"""Which config objects a pod uses, and which container gets the digest."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.restarter import (
    ConfigKind,
    ConfigReference,
    ReferenceSource,
    container_for,
    pod_references,
    referenced_configs,
)
from tests.unit.restarter.restarter_objects import container, secret_volume

SECRET = ConfigKind.SECRET
CONFIGMAP = ConfigKind.CONFIGMAP


def spec(
    containers: list[dict[str, Any]],
    *,
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    built: dict[str, Any] = {"containers": containers, "volumes": volumes or []}
    if init:
        built["initContainers"] = init
    return built


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        pytest.param(
            spec([container("app", mounts=["cfg"])], volumes=[secret_volume("cfg", "tls")]),
            ConfigReference(SECRET, "tls", "app", False, ReferenceSource.VOLUME),
            id="secret-volume",
        ),
        pytest.param(
            spec(
                [container("app", mounts=["cfg"])],
                volumes=[{"name": "cfg", "configMap": {"name": "settings"}}],
            ),
            ConfigReference(CONFIGMAP, "settings", "app", False, ReferenceSource.VOLUME),
            id="configmap-volume",
        ),
        pytest.param(
            spec(
                [container("app", mounts=["all"])],
                volumes=[
                    {
                        "name": "all",
                        "projected": {
                            "sources": [
                                {"serviceAccountToken": {"path": "token"}},
                                {"secret": {"name": "tls"}},
                                {"configMap": {"name": "settings"}},
                            ]
                        },
                    }
                ],
            ),
            ConfigReference(CONFIGMAP, "settings", "app", False, ReferenceSource.PROJECTED_VOLUME),
            id="projected-configmap",
        ),
        pytest.param(
            spec(
                [
                    container(
                        "app",
                        env=[
                            {
                                "name": "PW",
                                "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}},
                            }
                        ],
                    )
                ]
            ),
            ConfigReference(SECRET, "db", "app", False, ReferenceSource.ENV),
            id="env-secret-key-ref",
        ),
        pytest.param(
            spec(
                [
                    container(
                        "app",
                        env=[
                            {
                                "name": "LVL",
                                "valueFrom": {"configMapKeyRef": {"name": "log", "key": "l"}},
                            }
                        ],
                    )
                ]
            ),
            ConfigReference(CONFIGMAP, "log", "app", False, ReferenceSource.ENV),
            id="env-configmap-key-ref",
        ),
        pytest.param(
            spec([container("app", env_from=[{"secretRef": {"name": "api"}}])]),
            ConfigReference(SECRET, "api", "app", False, ReferenceSource.ENV_FROM),
            id="envfrom-secret",
        ),
        pytest.param(
            spec([container("app", env_from=[{"configMapRef": {"name": "flags"}}])]),
            ConfigReference(CONFIGMAP, "flags", "app", False, ReferenceSource.ENV_FROM),
            id="envfrom-configmap",
        ),
        pytest.param(
            spec(
                [container("app")],
                init=[container("migrate", env_from=[{"secretRef": {"name": "db"}}])],
            ),
            ConfigReference(SECRET, "db", "migrate", True, ReferenceSource.ENV_FROM),
            id="init-container",
        ),
    ],
)
def test_every_source_kind_is_found(pod_spec: dict[str, Any], expected: ConfigReference) -> None:
    assert expected in pod_references(pod_spec)


def test_unmounted_volume_is_not_a_use() -> None:
    pod_spec = spec([container("app")], volumes=[secret_volume("cfg", "tls")])
    assert referenced_configs(pod_spec) == frozenset()


def test_projected_secret_and_configmap_both_count() -> None:
    pod_spec = spec(
        [container("app", mounts=["all"])],
        volumes=[
            {
                "name": "all",
                "projected": {
                    "sources": [{"secret": {"name": "tls"}}, {"configMap": {"name": "s"}}]
                },
            }
        ],
    )
    assert referenced_configs(pod_spec) == {(SECRET, "tls"), (CONFIGMAP, "s")}


@pytest.mark.parametrize(
    ("pod_spec", "auto", "expected"),
    [
        pytest.param(
            spec(
                [container("sidecar"), container("app", mounts=["cfg"])],
                volumes=[secret_volume("cfg", "tls")],
            ),
            True,
            "app",
            id="mounting-container",
        ),
        pytest.param(
            spec(
                [
                    container("sidecar", env_from=[{"secretRef": {"name": "tls"}}]),
                    container("app", mounts=["cfg"]),
                ],
                volumes=[secret_volume("cfg", "tls")],
            ),
            True,
            "app",
            id="mount-wins-over-env",
        ),
        pytest.param(
            spec(
                [container("app"), container("proxy")],
                init=[container("fetch", mounts=["cfg"])],
                volumes=[secret_volume("cfg", "tls")],
            ),
            True,
            "app",
            id="init-use-picks-first-container",
        ),
        pytest.param(
            spec([container("app"), container("proxy", env_from=[{"secretRef": {"name": "tls"}}])]),
            True,
            "proxy",
            id="env-container",
        ),
        pytest.param(spec([container("app")]), True, None, id="unused-auto-none"),
        pytest.param(
            spec([container("app"), container("b")]), False, "app", id="unused-list-first"
        ),
        pytest.param(spec([]), False, None, id="no-containers"),
    ],
)
def test_container_choice(pod_spec: dict[str, Any], auto: bool, expected: str | None) -> None:
    assert container_for(pod_spec, kind=SECRET, name="tls", auto=auto) == expected


def test_kind_is_part_of_the_reference() -> None:
    pod_spec = spec([container("app", env_from=[{"configMapRef": {"name": "tls"}}])])
    assert container_for(pod_spec, kind=SECRET, name="tls", auto=True) is None
    assert container_for(pod_spec, kind=CONFIGMAP, name="tls", auto=True) == "app"
