"""Artifacts unpacked for the builds that read them, once per digest.

The artifact's owner (this package) also hands out its contents: a build
asks for the directory of an artifact by its ``status.artifact``, the tarball
is read from the storage root only, checked against its sha256 digest,
unpacked into a private directory in a worker thread, and kept while it is
in use and among the most recently used.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from fluxd.source.artifact import unpack
from fluxd.source.errors import ArtifactPathRefused, SourceError
from fluxd.source.storage import resolve_safe


class ArtifactUnavailable(Exception):
    """The artifact file is missing, unreadable, or its content does not match its digest.

    ``missing`` says the file is not in storage at all: its source can store it
    again (a new process, or one that took over from Flux, starts empty).
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass
class ArtifactCache:
    """Artifacts extracted once per digest into a private directory, least recently used first out.

    Reads only files under the storage ``root``; a tarball whose sha256 differs
    from the digest in ``status.artifact`` is refused.
    """

    root: Path
    max_entries: int = 16
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fluxd-artifacts-")))
    _entries: OrderedDict[str, Path] = field(default_factory=OrderedDict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _in_use: dict[str, int] = field(default_factory=dict)

    async def extract(self, artifact: Mapping[str, Any]) -> Path:
        digest = str(artifact.get("digest") or "")
        relpath = str(artifact.get("path") or "")
        if not digest.startswith("sha256:") or not relpath:
            raise ArtifactUnavailable("artifact has no path or sha256 digest")
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            found = self._entries.get(digest)
            if found is not None and found.is_dir():
                self._entries.move_to_end(digest)
                return found
            try:
                archive = resolve_safe(self.root, relpath)
            except ArtifactPathRefused as error:
                raise ArtifactUnavailable(str(error)) from error
            target = self.workdir / digest.removeprefix("sha256:")
            await anyio.to_thread.run_sync(self._verify_and_unpack, archive, digest, target)
            self._entries[digest] = target
            await self._evict()
            return target

    def acquire(self, digest: str) -> None:
        self._in_use[digest] = self._in_use.get(digest, 0) + 1

    def release(self, digest: str) -> None:
        count = self._in_use.get(digest, 0) - 1
        if count > 0:
            self._in_use[digest] = count
        else:
            self._in_use.pop(digest, None)

    async def _evict(self) -> None:
        evicted: list[Path] = []
        for digest in list(self._entries):
            if len(self._entries) <= self.max_entries:
                break
            if self._in_use.get(digest):
                continue
            evicted.append(self._entries.pop(digest))
            self._locks.pop(digest, None)
        if evicted:
            # Removing an unpacked repository is file-system work: never on the event loop.
            await anyio.to_thread.run_sync(_remove_all, evicted)

    @staticmethod
    def _verify_and_unpack(archive: Path, digest: str, target: Path) -> None:
        hasher = hashlib.sha256()
        try:
            with archive.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    hasher.update(chunk)
        except OSError as error:
            raise ArtifactUnavailable(
                f"cannot read artifact '{archive.name}': {error.strerror or error}",
                missing=isinstance(error, FileNotFoundError),
            ) from None
        actual = f"sha256:{hasher.hexdigest()}"
        if actual != digest:
            raise ArtifactUnavailable(
                f"artifact '{archive.name}' digest mismatch: expected {digest}, got {actual}"
            )
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            unpack(archive, staging)
        except SourceError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise ArtifactUnavailable(str(error)) from None
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _remove_all(paths: Iterable[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
