"""The names other packages may use from fluxd.source; a change here is an API change."""

from __future__ import annotations

import fluxd.source


def test_public_surface_is_pinned() -> None:
    assert set(fluxd.source.__all__) == {
        "DEFAULT_RETENTION",
        "ArtifactCache",
        "ArtifactPathRefused",
        "ArtifactUnavailable",
        "AuthenticationFailed",
        "GitAuth",
        "GitOperationFailed",
        "GitRef",
        "GitTimeout",
        "GitWorkers",
        "IgnoreRules",
        "InvalidSource",
        "PackedArchive",
        "ProxySettings",
        "Resolved",
        "SourceError",
        "Storage",
        "StorageOperationFailed",
        "VerificationFailed",
        "VerificationKeys",
        "apply_include",
        "check_sparse_checkout",
        "checkout",
        "pack",
        "redact_url",
        "resolve",
        "resolve_safe",
        "unpack",
        "needs_verification",
        "verification_mode",
        "verify_checkout",
    }
    for name in fluxd.source.__all__:
        assert getattr(fluxd.source, name) is not None


def test_only_invalid_source_is_stalled() -> None:
    stalled = {
        error.__name__
        for error in (
            fluxd.source.AuthenticationFailed,
            fluxd.source.GitOperationFailed,
            fluxd.source.GitTimeout,
            fluxd.source.StorageOperationFailed,
            fluxd.source.ArtifactPathRefused,
            fluxd.source.InvalidSource,
        )
        if error.stalled
    }
    assert stalled == {"InvalidSource"}
