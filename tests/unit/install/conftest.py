"""The install rendered once per session: as shipped, and with each optional component."""

from __future__ import annotations

import pytest

from tests.support.install import MANIFESTS, Manifest, kustomize, overlay


@pytest.fixture(scope="session")
def installed() -> list[Manifest]:
    """What `kubectl apply -k manifests/` applies."""
    return kustomize(MANIFESTS)


@pytest.fixture(scope="session")
def confined(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    return overlay(tmp_path_factory.mktemp("confined"), components=["components/confined"])


@pytest.fixture(scope="session")
def restarter_namespaced(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """Confined, with the restarter in flux-system only (Reloader's watchGlobally: false)."""
    return overlay(
        tmp_path_factory.mktemp("restarter-namespaced"),
        components=["components/confined", "components/restarter-namespaced"],
    )
