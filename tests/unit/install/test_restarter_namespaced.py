"""components/restarter-namespaced: the restarter's rights in flux-system only, as Reloader's
chart grants them for ``watchGlobally: false``, and the daemon told to watch only there."""

from __future__ import annotations

import pytest

from fluxd.settings import load
from tests.support.install import NAMESPACE, Access, Manifest, allows, find
from tests.unit.install.test_manifests import _container, _rules_bound_to_fluxd

# What the restarter does to workloads (fluxd-restarter in manifests/rbac.yaml).
RESTARTS = (
    *(
        Access(verb, "apps", kind)
        for kind in ("deployments", "statefulsets", "daemonsets")
        for verb in ("get", "list", "watch", "patch")
    ),
    *(Access(verb, "argoproj.io", "rollouts") for verb in ("get", "list", "watch", "patch")),
    *(Access(verb, "batch", "cronjobs") for verb in ("get", "list", "watch")),
    Access("update", "batch", "cronjobs", "finalizers"),
    Access("create", "batch", "jobs"),
)


def _in(access: Access, namespace: str | None) -> Access:
    return Access(access.verb, access.group, access.resource, access.subresource, namespace or "")


def _holds(objects: list[Manifest], access: Access, namespace: str | None) -> bool:
    return allows(_rules_bound_to_fluxd(objects, namespace=namespace), _in(access, namespace))


@pytest.mark.parametrize("access", RESTARTS, ids=str)
def test_the_restarter_may_roll_workloads_in_flux_system_only(
    restarter_namespaced: list[Manifest], confined: list[Manifest], access: Access
) -> None:
    assert _holds(restarter_namespaced, access, NAMESPACE)
    assert not _holds(restarter_namespaced, access, "apps")
    assert not _holds(restarter_namespaced, access, None)
    # Without the component the grant is cluster-wide.
    assert _holds(confined, access, None)


def test_config_objects_stay_readable_for_flux_objects(
    restarter_namespaced: list[Manifest],
) -> None:
    for kind in ("secrets", "configmaps"):
        assert _holds(restarter_namespaced, Access("watch", "", kind), None)


def test_namespaces_are_not_readable(restarter_namespaced: list[Manifest]) -> None:
    # Only the restarter's namespace-selector lists them; fluxd refuses it in this scope.
    assert not _holds(restarter_namespaced, Access("list", "", "namespaces"), None)


def test_only_the_restarters_grant_changes(
    restarter_namespaced: list[Manifest], confined: list[Manifest]
) -> None:
    def names(objects: list[Manifest]) -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in objects}

    assert names(confined) - names(restarter_namespaced) == {
        ("ClusterRole", "fluxd-restarter"),
        ("ClusterRoleBinding", "fluxd-restarter"),
    }
    assert names(restarter_namespaced) - names(confined) == {
        ("Role", "fluxd-restarter"),
        ("RoleBinding", "fluxd-restarter"),
    }
    role = find(restarter_namespaced, "Role", "fluxd-restarter")
    assert role["metadata"]["namespace"] == NAMESPACE


def test_the_daemon_watches_its_own_namespace(
    restarter_namespaced: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        item["name"]: item["value"]
        for item in _container(restarter_namespaced)["env"]
        if "value" in item
    }
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)
    settings = load(environ=env)
    assert settings.restarter_scope == "namespace"
    assert settings.effective_restarter_namespaces == (NAMESPACE,)
