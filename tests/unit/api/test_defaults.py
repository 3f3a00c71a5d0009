"""Defaults and derived values Flux documents for fields a user may leave out."""

from __future__ import annotations

import hashlib

import pytest

from fluxd.api.kustomize import (
    KustomizationSpec,
    deletion_policy,
    retry_interval_seconds,
    timeout_seconds,
)
from fluxd.api.notification import ProviderSpec, provider_timeout_seconds, receiver_webhook_path
from fluxd.api.source import GitRepositorySpec, git_reference, git_timeout_seconds


def kustomization_spec(**extra: object) -> KustomizationSpec:
    spec: KustomizationSpec = {
        "interval": "10m",
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "k3s-private-repo"},
    }
    spec.update(extra)  # type: ignore[typeddict-item]
    return spec


@pytest.mark.parametrize(
    ("extra", "seconds"),
    [
        pytest.param({}, 570.0, id="interval-minus-30s"),
        pytest.param({"timeout": "2m"}, 120.0, id="explicit"),
        pytest.param({"timeout": "5s"}, 30.0, id="floor-30s"),
        pytest.param({"interval": "40s"}, 30.0, id="short-interval-floor"),
    ],
)
def test_kustomization_timeout(extra: dict[str, object], seconds: float) -> None:
    assert timeout_seconds(kustomization_spec(**extra)) == seconds


def test_retry_interval_falls_back_to_interval() -> None:
    assert retry_interval_seconds(kustomization_spec()) == 600.0
    assert retry_interval_seconds(kustomization_spec(retryInterval="1m")) == 60.0


def test_deletion_policy_defaults_to_mirror_prune() -> None:
    assert deletion_policy(kustomization_spec()) == "MirrorPrune"
    assert deletion_policy(kustomization_spec(deletionPolicy="Orphan")) == "Orphan"


def test_git_defaults() -> None:
    spec: GitRepositorySpec = {"url": "http://gitea:3000/k3s/k3s-private.git", "interval": "1m"}
    assert git_timeout_seconds(spec) == 60.0
    assert git_reference(spec) == {"branch": "master"}
    spec["ref"] = {"branch": ""}
    assert git_reference(spec) == {"branch": "master"}
    spec["ref"] = {"tag": "v1.0.10"}
    assert git_reference(spec) == {"tag": "v1.0.10"}


def test_provider_timeout_defaults_to_15s() -> None:
    spec: ProviderSpec = {"type": "dingtalk"}
    assert provider_timeout_seconds(spec) == 15.0
    spec["timeout"] = "3s"
    assert provider_timeout_seconds(spec) == 3.0


def test_receiver_webhook_path_is_flux_compatible() -> None:
    path = receiver_webhook_path(token="s3cr3t", name="gitea", namespace="flux-system")
    expected = hashlib.sha256(b"s3cr3tgiteaflux-system").hexdigest()
    assert path == f"/hook/{expected}"
    assert "s3cr3t" not in path
