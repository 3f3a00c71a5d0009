"""What the applier last wrote or verified, per object, so an unchanged object costs one GET.

Every reconcile dry-runs each object to learn whether applying it would change
anything. When the desired object is the one last applied (same digest) and
the live object has not been written since (same resourceVersion: any write
by anyone changes it), the answer is already known: unchanged. The memory is
per process and starts empty, so after a restart every object is dry-run
again once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fluxd.apply.inventory import ObjectRef

Owner = tuple[str, str]
"""(namespace, name) of the Kustomization that applies the objects."""


def digest(obj: Mapping[str, Any], context: str) -> bytes:
    """A digest of the object as it would be sent, with what else shapes the apply."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(f"{context}\n{text}".encode(), digest_size=16).digest()


@dataclass(frozen=True)
class _Verified:
    digest: bytes
    resource_version: str


class AppliedMemory:
    """The digest and resulting resourceVersion of each object last applied or verified."""

    def __init__(self) -> None:
        self._objects: dict[Owner, dict[ObjectRef, _Verified]] = {}

    def known(self, owner: Owner, ref: ObjectRef, digest: bytes) -> bool:
        """Whether ``digest`` is the last form of the object applied or verified."""
        known = self._objects.get(owner, {}).get(ref)
        return known is not None and known.digest == digest

    def unchanged(self, owner: Owner, ref: ObjectRef, digest: bytes, live_version: str) -> bool:
        """Whether ``digest`` was verified against the live object at ``live_version``."""
        known = self._objects.get(owner, {}).get(ref)
        return known is not None and known == _Verified(digest, live_version) and bool(live_version)

    def remember(self, owner: Owner, ref: ObjectRef, digest: bytes, resource_version: str) -> None:
        if resource_version:
            self._objects.setdefault(owner, {})[ref] = _Verified(digest, resource_version)

    def discard(self, owner: Owner, ref: ObjectRef) -> None:
        self._objects.get(owner, {}).pop(ref, None)

    def forget(self, owner: Owner) -> None:
        self._objects.pop(owner, None)

    def __len__(self) -> int:
        return sum(len(objects) for objects in self._objects.values())
