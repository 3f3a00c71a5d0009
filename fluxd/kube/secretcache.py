"""Secrets read by resourceVersion: one watch of every Secret's metadata, a GET only when one moved.

Sources poll every interval and read their credentials each time; Flux's
controllers answer those reads from controller-runtime's cache. fluxd keeps
Secret payloads out of memory unless something asked for them: a watch of
Secret metadata (names and versions only, which the notification side needs
anyway to reload Providers and Receivers) tells whether the copy read last time
is still current. A Secret is fetched again when the watch has a newer version,
when the watch is not synced yet, or when it does not know the Secret (just
created, or missing: the API server has the last word on "not found").
"""

from __future__ import annotations

from collections.abc import Sequence

from fluxd.kube.client import Kube, Object
from fluxd.kube.informer import Change, Informer, key_of
from fluxd.kube.resources import SECRET


def _identity(obj: Object) -> Object:
    """Of a Secret's metadata, what finding and versioning it needs."""
    metadata = obj.get("metadata", {})
    return {
        "metadata": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "resourceVersion": metadata.get("resourceVersion"),
        }
    }


def _version(obj: Object | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class SecretCache:
    """Secrets as of their latest version, read from the API server only when it changed."""

    def __init__(self, kube: Kube, *, namespaces: Sequence[str] = ()) -> None:
        self.kube = kube
        self.watch = Informer(
            kube, SECRET, namespaces=namespaces, metadata_only=True, transform=_identity
        )
        self.watch.add_handler(self._forget_deleted)
        self._read: dict[tuple[str, str], Object] = {}

    async def get(self, namespace: str, name: str) -> Object:
        """The Secret; raises ``errors.NotFound`` as ``Kube.get`` does."""
        key = (namespace, name)
        known = self.watch.get(namespace, name) if self.watch.synced.is_set() else None
        held = self._read.get(key)
        if known is not None and held is not None and _version(held) == _version(known):
            return held
        secret = await self.kube.get(SECRET, name, namespace=namespace)
        self._read[key] = secret
        return secret

    def __len__(self) -> int:
        return len(self._read)

    def _forget_deleted(self, change: Change, obj: Object, old: Object | None) -> None:
        if change is Change.DELETED:
            self._read.pop(key_of(obj), None)

    async def run(self) -> None:
        await self.watch.run()
