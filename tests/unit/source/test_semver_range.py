"""spec.ref.semver ranges in the Masterminds syntax Flux users write."""

from __future__ import annotations

import pytest

from fluxd.source.semver_range import SemverRange, highest_match

TAGS = [
    "v0.9.0",
    "v1.0.0",
    "v1.2.0",
    "v1.2.7",
    "1.10.0",
    "v1.11.0-rc.1",
    "v2.0.0",
    "v2.1.0",
    "latest",
]


@pytest.mark.parametrize(
    ("rng", "expected"),
    [
        pytest.param(">=1.0.0 <2.0.0", "1.10.0", id="space-and"),
        pytest.param(">=1.0.0, <2.0.0", "1.10.0", id="comma-and"),
        pytest.param(">= 1.0.0 < 2.0.0", "1.10.0", id="spaced-operators"),
        pytest.param("~1.2", "v1.2.7", id="tilde"),
        pytest.param("^1.2.0", "1.10.0", id="caret"),
        pytest.param("1.2.x", "v1.2.7", id="wildcard"),
        pytest.param("*", "v2.1.0", id="any"),
        pytest.param("<1.0.0 || >=2.1.0", "v2.1.0", id="or"),
        pytest.param("1.0 - 1.2", "v1.2.7", id="hyphen"),
        pytest.param("<1.0.0", "v0.9.0", id="below"),
        pytest.param(">=1.11.0-rc.0 <1.12.0", "v1.11.0-rc.1", id="prerelease-opt-in"),
        pytest.param(">=3.0.0", None, id="no-match"),
    ],
)
def test_highest_matching_tag(rng: str, expected: str | None) -> None:
    assert highest_match(SemverRange.parse(rng), TAGS) == expected


@pytest.mark.parametrize("rng", ["", ">=", "1.2.3.4", "banana", "||"])
def test_invalid_range_is_rejected(rng: str) -> None:
    with pytest.raises(ValueError):
        SemverRange.parse(rng)
