"""Charts of an OCI HelmRepository: picking a version among tags, reading the secretRef."""

from __future__ import annotations

import json

import pytest

from fluxd.source.errors import AuthenticationFailed, InvalidSource
from fluxd.source.helm import ChartBuildFailed
from fluxd.source.helm_oci import (
    is_full_version,
    oci_chart_address,
    oci_chart_credentials,
    select_oci_chart_version,
)
from fluxd.source.oci import OCIAddress, RegistryCredentials

# As a registry lists them: Helm wrote each version's '+' as '_'.
TAGS = ["0.1.0", "0.2.0", "0.3.0-rc.1", "0.2.1_build.7", "1.0.0", "latest", "v0.9.0", "1.1"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param("0.x", "0.2.1+build.7", id="range-reads-underscore-as-plus"),
        pytest.param("", "1.0.0", id="empty-is-latest-stable"),
        pytest.param("*", "1.0.0", id="star-is-latest-stable"),
        pytest.param(">=0.3.0-0 <1.0.0", "0.3.0-rc.1", id="prerelease-when-asked"),
        pytest.param("0.2.1+build.7", "0.2.1+build.7", id="exact-match-first"),
        pytest.param("~0.1", "0.1.0", id="tilde"),
    ],
)
def test_the_chart_version_is_picked_among_tags_as_flux_does(version: str, expected: str) -> None:
    assert select_oci_chart_version(TAGS, "app", version) == expected


def test_tags_that_are_not_strict_versions_are_not_candidates() -> None:
    # 'v0.9.0' and '1.1' are not what Helm pushes, so they are never picked.
    assert select_oci_chart_version(["v0.9.0", "1.1", "0.1.0"], "app", "*") == "0.1.0"
    with pytest.raises(ChartBuildFailed) as raised:
        select_oci_chart_version(["latest", "v2.0.0"], "app", "*")
    assert raised.value.reason == "ChartPullError"
    assert "unable to locate any tags in provided repository: app" in raised.value.message


def test_no_tag_in_the_range_is_a_pull_error_with_flux_words() -> None:
    with pytest.raises(ChartBuildFailed) as raised:
        select_oci_chart_version(TAGS, "app", ">=2.0.0")
    assert raised.value.reason == "ChartPullError"
    assert raised.value.message == (
        "chart pull error: failed to get chart version for remote reference: "
        "could not locate a version matching provided version string >=2.0.0"
    )


@pytest.mark.parametrize(
    ("version", "full"),
    [("1.2.3", True), ("v1.2.3", True), ("1.2.3-rc.1+b", True), ("1.2", False), ("1.x", False)],
)
def test_only_a_three_part_version_skips_the_tag_listing(version: str, full: bool) -> None:
    assert is_full_version(version) is full


def test_the_chart_is_a_repository_below_the_helm_repository_url() -> None:
    assert oci_chart_address("oci://127.0.0.1:5000/charts/", "app") == OCIAddress(
        "127.0.0.1:5000", "charts/app"
    )
    with pytest.raises(InvalidSource):
        oci_chart_address("https://127.0.0.1:5000/charts", "app")


def test_the_secret_ref_is_basic_auth_or_a_docker_config() -> None:
    basic = {"username": b"me", "password": b"pw"}
    assert oci_chart_credentials(basic, registry="r:1", secret_name="s") == RegistryCredentials(
        "me", "pw"
    )
    config = json.dumps({"auths": {"r:1": {"username": "bot", "password": "tok"}}}).encode()
    docker = {".dockerconfigjson": config}
    assert oci_chart_credentials(docker, registry="r:1", secret_name="s") == RegistryCredentials(
        "bot", "tok"
    )
    assert oci_chart_credentials(None, registry="r:1", secret_name="s").anonymous
    with pytest.raises(AuthenticationFailed):
        oci_chart_credentials({"username": b"me"}, registry="r:1", secret_name="s")
