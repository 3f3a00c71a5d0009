"""Reloader's digest of a Secret or ConfigMap, bit for bit.

The digest is what gets recorded on a workload (env var value or annotation
``hash``), so it must equal what Reloader writes: a workload Reloader already
stamped must compare equal, or swapping Reloader for fluxd restarts everything.

The formula, as Reloader implements it:

* one entry per key, ``key + "=" + value``;
* ConfigMap: ``data`` values as they are; ``binaryData`` values as standard,
  padded base64 of the bytes;
* Secret: ``data`` values as the decoded bytes (Go turns ``[]byte`` into a
  string without re-encoding);
* entries sorted bytewise, joined with ``";"``;
* hashed, written as lower-case hex.

The hash function changed across Reloader releases: SHA-1 (40 hex digits) up
to and including the releases users pin today (v1.0.x), SHA-512/256 (64 hex
digits) in the newest ones, which for a short while also wrote an empty string
for an empty object. fluxd writes one algorithm (SHA-1 by default) and accepts
all of them when comparing, so migrating from any of those releases is quiet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fluxd.kube.secrets import InvalidSecretData, secret_bytes
from fluxd.restarter.configs import ConfigKind
from fluxd.restarter.errors import InvalidConfigData


class DigestAlgorithm(StrEnum):
    """Hash functions Reloader releases have used for the config digest."""

    SHA1 = "sha1"
    SHA512_256 = "sha512_256"


def digest_payload(kind: ConfigKind, obj: Mapping[str, Any]) -> bytes:
    """The exact bytes Reloader hashes for ``obj`` (sorted ``key=value`` joined by ``;``).

    For a SecretProviderClass, ``obj`` is one of its SecretProviderClassPodStatus
    objects: Reloader hashes the mounted objects' ``id=version`` and
    ``SecretProviderClassName=<name>``.
    """
    if kind is ConfigKind.SECRET:
        entries = _secret_entries(obj)
    elif kind is ConfigKind.CONFIGMAP:
        entries = _configmap_entries(obj)
    else:
        entries = _pod_status_entries(obj)
    return b";".join(sorted(entries))


def config_digest(
    kind: ConfigKind,
    obj: Mapping[str, Any],
    *,
    algorithm: DigestAlgorithm = DigestAlgorithm.SHA1,
) -> str:
    """Reloader's digest of a Secret or ConfigMap as lower-case hex."""
    return hashlib.new(algorithm.value, digest_payload(kind, obj)).hexdigest()


def config_digests(
    kind: ConfigKind,
    obj: Mapping[str, Any],
    *,
    algorithm: DigestAlgorithm = DigestAlgorithm.SHA1,
) -> tuple[str, frozenset[str]]:
    """The digest to record and every equivalent one, from one pass over the payload.

    Every watched Secret and ConfigMap event needs both; decoding and hashing
    the data once per algorithm (not once per question) keeps a busy
    cluster's events cheap.
    """
    payload = digest_payload(kind, obj)
    by_algorithm = {
        candidate: hashlib.new(candidate.value, payload).hexdigest()
        for candidate in DigestAlgorithm
    }
    equivalent = set(by_algorithm.values())
    if not payload:
        # One Reloader release recorded "" instead of hashing an empty object.
        equivalent.add("")
    return by_algorithm[algorithm], frozenset(equivalent)


def equivalent_digests(kind: ConfigKind, obj: Mapping[str, Any]) -> frozenset[str]:
    """Every value a Reloader release (or fluxd) could have recorded for this content."""
    return config_digests(kind, obj)[1]


def _configmap_entries(obj: Mapping[str, Any]) -> list[bytes]:
    entries = [f"{key}={value}".encode() for key, value in (obj.get("data") or {}).items()]
    for key, value in (obj.get("binaryData") or {}).items():
        # Decoding then re-encoding gives the canonical padded form Go produces.
        raw = _decode(ConfigKind.CONFIGMAP, obj, key=key, value=value)
        entries.append(f"{key}={base64.b64encode(raw).decode('ascii')}".encode())
    return entries


def _pod_status_entries(obj: Mapping[str, Any]) -> list[bytes]:
    status = obj.get("status") or {}
    entries = [
        f"{item.get('id', '')}={item.get('version', '')}".encode()
        for item in status.get("objects") or ()
    ]
    entries.append(f"SecretProviderClassName={status.get('secretProviderClassName', '')}".encode())
    return entries


def _secret_entries(obj: Mapping[str, Any]) -> list[bytes]:
    try:
        values = secret_bytes(obj)
    except InvalidSecretData as error:
        raise _invalid(ConfigKind.SECRET, obj, key=error.key) from None
    return [key.encode() + b"=" + value for key, value in values.items()]


def _decode(kind: ConfigKind, obj: Mapping[str, Any], *, key: str, value: object) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError):
        # "from None": the decoder's own message could quote the value.
        raise _invalid(kind, obj, key=key) from None


def _invalid(kind: ConfigKind, obj: Mapping[str, Any], *, key: str) -> InvalidConfigData:
    metadata = obj.get("metadata") or {}
    return InvalidConfigData(
        kind=kind.value,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        key=key,
    )
