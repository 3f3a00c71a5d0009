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
