"""The source engine: fetch a GitRepository's ref and turn it into a stored artifact.

No Kubernetes I/O happens here: the GitRepository controller reads the object
and its Secrets, passes plain values in, and writes the status from what comes
back. Typical use, one poll::

    auth = GitAuth.from_secret(secret_data, url=url, secret_name=name)
    workers = GitWorkers(capacity)  # one per process: it bounds the git threads
    resolved = await resolve(url, GitRef.from_spec(spec.get("ref")), auth, workers=workers, ...)
    if resolved.revision != current_revision:
        resolved = await checkout(url, resolved, auth, workdir, sparse_checkout=..., ...)
        await workers.run(functools.partial(verify_checkout, workdir, ...), key=...)  # spec.verify
        artifact = await storage.store(..., source_dir=workdir, ignore=spec.get("ignore"))
"""

from __future__ import annotations

from fluxd.source.artifact import PackedArchive, apply_include, pack, unpack
from fluxd.source.auth import GitAuth, ProxySettings
from fluxd.source.errors import (
    ArtifactPathRefused,
    AuthenticationFailed,
    GitOperationFailed,
    GitTimeout,
    InvalidSource,
    SourceError,
    StorageOperationFailed,
    redact_url,
)
from fluxd.source.extraction import ArtifactCache, ArtifactUnavailable
from fluxd.source.git import GitRef, Resolved, check_sparse_checkout, checkout, resolve
from fluxd.source.ignore import IgnoreRules
from fluxd.source.storage import DEFAULT_RETENTION, Storage, resolve_safe
from fluxd.source.verify import (
    VerificationFailed,
    VerificationKeys,
    needs_verification,
    verification_mode,
    verify_checkout,
)
from fluxd.source.workers import GitWorkers

__all__ = [
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
    "needs_verification",
    "pack",
    "redact_url",
    "resolve",
    "resolve_safe",
    "unpack",
    "verification_mode",
    "verify_checkout",
]
