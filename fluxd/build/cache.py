"""A bounded cache of build results, keyed by a digest of everything that shapes them.

Reconciling at every ``interval`` must not rerun kustomize when nothing changed.
The key covers the artifact content (its digest), the path, the build-relevant
spec options, the daemon's build settings and the substitution variables (hashed,
so values are never kept in the key). Concurrent builds of one key share a
single engine run.

Two things keep it honest:

* A build that uses remote bases is never cached. Its result also depends on
  what a moving ref (``?ref=main``, or none) points at now, which no digest of
  the artifact covers; Flux rebuilds at every interval, and so do we. Not
  caching is simpler than a lifetime tied to each Kustomization's interval and
  cannot serve a stale base even once.
* A build that decrypted anything is never cached either: plaintext of a
  SOPS-encrypted input is not kept past the reconcile that decrypted it.
* Entries are kept as JSON text, not objects: every reader needs a private
  copy, and decoding JSON (off the event loop, in a thread) is far cheaper than
  ``copy.deepcopy`` of thousands of dicts on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluxd.build.errors import ManifestError
from fluxd.build.options import BuildOptions, BuildSettings

Objects = list[dict[str, Any]]


@dataclass(frozen=True)
class Built:
    """One engine run's objects, and whether they may be served again from the cache."""

    objects: Objects
    cacheable: bool = True


def _serialize(objects: Objects) -> str:
    try:
        return json.dumps(objects, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ManifestError(f"build output is not valid JSON data: {error}") from error


def _deserialize(text: str) -> Objects:
    objects: Objects = json.loads(text)
    return objects


def tree_digest(root: Path) -> str:
    """A sha256 over every file's relative path and content (and symlink targets)."""
    digest = hashlib.sha256()
    for current, directories, files in os.walk(root):
        directories.sort()
        base = Path(current)
        for name in sorted([*files, *(d for d in directories if (base / d).is_symlink())]):
            entry = base / name
            digest.update(entry.relative_to(root).as_posix().encode("utf-8") + b"\0")
            if entry.is_symlink():
                digest.update(b"link:" + os.readlink(entry).encode("utf-8") + b"\0")
            else:
                content = entry.read_bytes()
                digest.update(f"{len(content)}:".encode() + content)
    return "sha256:" + digest.hexdigest()


def build_key(
    *,
    artifact_digest: str,
    path: str,
    options: BuildOptions,
    settings: BuildSettings,
    variables: Mapping[str, str] | None,
    decryption: str | None = None,
) -> str:
    """The cache key of one build: a sha256 over its inputs.

    ``decryption`` is the fingerprint of the decryption keys: two builds share a
    result (even one in flight) only when they may decrypt the same things.
    """
    material = {
        "decryption": decryption,
        "artifact": artifact_digest,
        "path": path,
        "options": options.fingerprint(),
        "settings": repr(settings),
        "variables": sorted((variables or {}).items()),
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


class BuildCache:
    """Least-recently-used build results, at most ``max_entries`` of them."""

    def __init__(self, *, max_entries: int = 64) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[str]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _text(self, key: str) -> str | None:
        text = self._entries.get(key)
        if text is not None:
            self._entries.move_to_end(key)
        return text

    def _store(self, key: str, text: str) -> None:
        self._entries[key] = text
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: str) -> Objects | None:
        """A private copy of the cached objects, or ``None``."""
        text = self._text(key)
        return None if text is None else _deserialize(text)

    def put(self, key: str, objects: Objects) -> None:
        self._store(key, _serialize(objects))

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_build(self, key: str, produce: Callable[[], Awaitable[Built]]) -> Objects:
        """Return the cached result for ``key``, running ``produce`` once if absent."""
        cached = self._text(key)
        if cached is not None:
            self.hits += 1
            return await asyncio.to_thread(_deserialize, cached)
        pending = self._in_flight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.to_thread(_deserialize, await asyncio.shield(pending))
        self.misses += 1
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            built = await produce()
            # Waiters decode their own copies, so the producer keeps the originals.
            text = await asyncio.to_thread(_serialize, built.objects)
        except BaseException as error:
            if isinstance(error, Exception):
                future.set_exception(error)
                # Waiters re-raise it; retrieving it here stops asyncio from
                # logging "exception was never retrieved" when nobody waited.
                future.exception()
            else:
                future.cancel()
            raise
        else:
            if built.cacheable:
                self._store(key, text)
            future.set_result(text)
            return built.objects
        finally:
            self._in_flight.pop(key, None)
