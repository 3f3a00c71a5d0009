"""OCIRepository's pure decisions: the URL, credentials, tag choice, layer choice, revision."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from fluxd.source import InvalidSource
from fluxd.source.errors import AuthenticationFailed
from fluxd.source.oci import (
    HELM_CHART_LAYER,
    OCIAddress,
    OCILayerOperationFailed,
    OCIPullFailed,
    RegistryCredentials,
    TagSelectionFailed,
    oci_revision,
    select_layer,
    tag_by_semver,
)

DIGEST = "sha256:" + "ab" * 32
FLUX_LAYER = "application/vnd.cncf.flux.content.v1.tar+gzip"


@pytest.mark.parametrize(
    ("url", "registry", "repository"),
    [
        pytest.param("oci://ghcr.io/org/app", "ghcr.io", "org/app", id="host"),
        pytest.param("oci://127.0.0.1:5000/k3s/app", "127.0.0.1:5000", "k3s/app", id="port"),
        pytest.param("oci://localhost/app", "localhost", "app", id="localhost"),
        pytest.param("oci://org/app", "index.docker.io", "org/app", id="docker-hub"),
    ],
)
def test_urls_split_into_registry_and_repository(url: str, registry: str, repository: str) -> None:
    assert OCIAddress.parse(url) == OCIAddress(registry, repository)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(
            "https://ghcr.io/org/app",
            "URL must be in format 'oci://<domain>/<org>/<repo>'",
            id="scheme",
        ),
        pytest.param("oci://ghcr.io", "URL must be in format", id="no-repository"),
        pytest.param(
            "oci://ghcr.io/org/app:v1", "URL must not contain a tag; remove ':v1'", id="tag"
        ),
        pytest.param("oci://ghcr.io/Org/App", "repository can only contain", id="upper-case"),
    ],
)
def test_bad_urls_are_stalled_with_flux_words(url: str, message: str) -> None:
    with pytest.raises(InvalidSource) as raised:
        OCIAddress.parse(url)
    assert message in raised.value.message
    assert raised.value.reason == "URLInvalid" and raised.value.stalled


def _docker_config(auths: dict[str, Any]) -> dict[str, bytes]:
    return {".dockerconfigjson": json.dumps({"auths": auths}).encode()}


@pytest.mark.parametrize(
    "auths",
    [
        pytest.param({"ghcr.io": {"auth": base64.b64encode(b"me:pw:x").decode()}}, id="auth"),
        pytest.param({"ghcr.io": {"username": "me", "password": "pw:x"}}, id="fields"),
        pytest.param({"https://ghcr.io/v1/": {"username": "me", "password": "pw:x"}}, id="url-key"),
    ],
)
def test_credentials_come_from_the_entry_for_the_registry(auths: dict[str, Any]) -> None:
    other = {"quay.io": {"username": "someone", "password": "else"}}
    found = RegistryCredentials.from_docker_config(
        _docker_config({**other, **auths}), registry="ghcr.io", secret_name="pull"
    )
    assert (found.username, found.password) == ("me", "pw:x")


def test_a_config_without_the_registry_pulls_anonymously() -> None:
    found = RegistryCredentials.from_docker_config(
        _docker_config({"quay.io": {"auth": "eDp5"}}), registry="ghcr.io", secret_name="pull"
    )
    assert found.anonymous


def test_a_secret_that_is_not_a_docker_config_is_an_authentication_failure() -> None:
    with pytest.raises(AuthenticationFailed, match=re.escape("no '.dockerconfigjson' key")):
        RegistryCredentials.from_docker_config(
            {"username": b"me"}, registry="ghcr.io", secret_name="pull"
        )


TAGS = ["latest", "v1.0.0", "v1.2.0", "v1.10.1", "v2.0.0-rc.1", "1.3.0", "prod-1.4.0"]


@pytest.mark.parametrize(
    ("expression", "tag_filter", "expected"),
    [
        pytest.param(">=1.0.0 <2.0.0", "", "v1.10.1", id="highest-in-range"),
        pytest.param("~1.2", "", "v1.2.0", id="tilde"),
        pytest.param(">=1.0.0", "", "v1.10.1", id="no-prerelease-unless-asked"),
        pytest.param(">=2.0.0-0", "", "v2.0.0-rc.1", id="prerelease-asked"),
        pytest.param("*", "^1\\.", "1.3.0", id="filter-first"),
    ],
)
def test_semver_picks_the_highest_matching_tag(
    expression: str, tag_filter: str, expected: str
) -> None:
    assert tag_by_semver(TAGS, expression, tag_filter) == expected


def test_helm_chart_tags_carry_build_metadata_as_underscores() -> None:
    tags = ["1.0.0_build.1", "1.0.0_build.2", "0.9.0"]
    assert tag_by_semver(tags, ">=1.0.0", media_type=HELM_CHART_LAYER) == "1.0.0_build.2"
    # Other media types read the tag as written: '_' makes it no version at all.
    assert tag_by_semver(tags, ">=0.1.0") == "0.9.0"


def test_semver_without_a_match_says_so() -> None:
    with pytest.raises(
        TagSelectionFailed, match=re.escape("no match found for semver: >=3.0.0")
    ) as raised:
        tag_by_semver(TAGS, ">=3.0.0")
    assert raised.value.reason == "ReadOperationFailed"


def test_a_bad_semver_range_is_a_read_failure() -> None:
    with pytest.raises(TagSelectionFailed, match="semver 'one' parse error"):
        tag_by_semver(TAGS, "one")


MANIFEST = {
    "layers": [
        {"mediaType": "application/vnd.example.first", "digest": "sha256:" + "1" * 64},
        {"mediaType": FLUX_LAYER, "digest": "sha256:" + "2" * 64},
    ]
}


def test_the_first_layer_is_used_without_a_media_type() -> None:
    assert select_layer(MANIFEST)["digest"] == "sha256:" + "1" * 64


def test_the_layer_with_the_selected_media_type_is_used() -> None:
    assert select_layer(MANIFEST, FLUX_LAYER)["digest"] == "sha256:" + "2" * 64


def test_a_media_type_no_layer_has_is_a_layer_operation_failure() -> None:
    with pytest.raises(OCILayerOperationFailed) as raised:
        select_layer(MANIFEST, "application/vnd.example.none")
    assert raised.value.message == (
        "failed to find layer with media type 'application/vnd.example.none' in artifact"
    )
    assert raised.value.reason == "OCIArtifactLayerOperationFailed"


def test_an_artifact_without_layers_is_refused() -> None:
    with pytest.raises(OCILayerOperationFailed, match="no layers found in artifact"):
        select_layer({"layers": []})


def test_revisions_are_in_fluxs_format() -> None:
    assert oci_revision("v1.2.0", DIGEST) == f"v1.2.0@{DIGEST}"
    assert oci_revision(None, DIGEST) == DIGEST


def test_a_digest_ref_that_is_not_a_sha256_digest_is_a_pull_failure() -> None:
    with pytest.raises(OCIPullFailed, match="invalid digest 'sha256:nothex'") as raised:
        oci_revision(None, "sha256:nothex")
    assert raised.value.reason == "OCIArtifactPullFailed"
