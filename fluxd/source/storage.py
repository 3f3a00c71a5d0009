"""Where artifacts live on disk, how they are named and served, and how they are collected.

Layout and URLs follow Flux's source-controller, so ``status.artifact`` looks
the same: ``<root>/gitrepository/<namespace>/<name>/<commit>.tar.gz``, served
at ``<base_url>/gitrepository/<namespace>/<name>/<commit>.tar.gz``. A new
artifact is written to a temporary file in the same directory and renamed into
place, so a reader never sees half a tarball. After each new artifact the
object's directory keeps the newest ``retention`` artifacts (by modification
time, always including the current one) and the rest are deleted.

:func:`resolve_safe` is the one way from a requested relative path to a file,
used by the HTTP artifact server: it refuses anything that would leave the
storage root (``..``, absolute paths, symlinks pointing out).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO

import anyio
import anyio.to_thread

from fluxd.api.source import Artifact
from fluxd.source.artifact import pack
from fluxd.source.errors import ArtifactPathRefused, StorageOperationFailed
from fluxd.source.ignore import IgnoreRules

__all__ = ["DEFAULT_RETENTION", "Storage", "resolve_safe"]

DEFAULT_RETENTION = 2
_ARCHIVE_SUFFIX = ".tar.gz"
_TEMP_PREFIX = ".tmp-"
_RESOLVED_LIMIT = 4096


def resolve_safe(root: Path, relpath: str, *, real_root: Path | None = None) -> Path:
    """The file ``relpath`` names under ``root``; raise ArtifactPathRefused if it is outside.

    ``real_root`` is ``root`` with its links resolved, when the caller already knows it.
    """
    if "\x00" in relpath:
        raise ArtifactPathRefused("artifact path contains a NUL byte")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relpath:
        raise ArtifactPathRefused(f"artifact path '{relpath}' is outside the storage")
    real_root = real_root or Path(os.path.realpath(root))
    candidate = Path(os.path.realpath(real_root.joinpath(*pure.parts)))
    if candidate == real_root or not candidate.is_relative_to(real_root):
        raise ArtifactPathRefused(f"artifact path '{relpath}' is outside the storage")
    return candidate


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Storage:
    """The artifact store under ``root``, with URLs rooted at ``base_url``."""

    def __init__(self, root: Path, *, base_url: str, retention: int = DEFAULT_RETENTION) -> None:
        if retention < 1:
            raise ValueError("artifact retention must keep at least one artifact")
        self.root = root
        self.base_url = base_url.rstrip("/")
        self.retention = retention
        self._real_root: Path | None = None
        # Paths already found safe: fluxd alone writes under the root, so a path that
        # resolved inside it stays inside, and a poll is one stat instead of a realpath.
        self._resolved: dict[str, Path] = {}

    # naming

    @staticmethod
    def artifact_path(*, kind: str, namespace: str, name: str, filename: str) -> str:
        """Relative path of an artifact: ``gitrepository/<ns>/<name>/<file>``."""
        for part in (namespace, name, filename):
            if not part or "/" in part or part in (".", ".."):
                raise StorageOperationFailed(f"invalid artifact path component '{part}'")
        return f"{kind.lower()}/{namespace}/{name}/{filename}"

    def url_for(self, relpath: str) -> str:
        return f"{self.base_url}/{relpath.lstrip('/')}"

    def local_path(self, relpath: str) -> Path:
        known = self._resolved.get(relpath)
        if known is not None:
            return known
        if self._real_root is None:
            # Resolved once: every poll checks its artifact is still here.
            self._real_root = Path(os.path.realpath(self.root))
        resolved = resolve_safe(self.root, relpath, real_root=self._real_root)
        if len(self._resolved) >= _RESOLVED_LIMIT:
            self._resolved.clear()
        self._resolved[relpath] = resolved
        return resolved

    def exists(self, artifact: Artifact) -> bool:
        """Whether the artifact's file is in the storage (e.g. after a restart)."""
        try:
            return self.local_path(artifact["path"]).is_file()
        except ArtifactPathRefused:
            return False

    # writing

    async def store(
        self,
        *,
        kind: str = "GitRepository",
        namespace: str,
        name: str,
        revision: str,
        commit: str,
        source_dir: Path,
        ignore: str | None = None,
        collected: list[Path] | None = None,
    ) -> Artifact:
        """Pack ``source_dir`` as the artifact for ``revision``, then collect old ones.

        ``ignore`` is ``spec.ignore``; the ``.sourceignore`` files are read
        from ``source_dir``. All of it (walking the tree for ignore files,
        packing, deleting old artifacts) runs in a worker thread. The old
        artifacts deleted are added to ``collected`` when it is given.
        """
        return await anyio.to_thread.run_sync(
            lambda: self.store_sync(
                kind=kind,
                namespace=namespace,
                name=name,
                revision=revision,
                commit=commit,
                source_dir=source_dir,
                ignore=ignore,
                collected=collected,
            )
        )

    def store_sync(
        self,
        *,
        kind: str = "GitRepository",
        namespace: str,
        name: str,
        revision: str,
        commit: str,
        source_dir: Path,
        ignore: str | None = None,
        collected: list[Path] | None = None,
    ) -> Artifact:
        """Blocking form of :meth:`store`, for callers already in a worker thread."""
        rules = IgnoreRules.load(source_dir, spec_ignore=ignore)

        def write(handle: IO[bytes]) -> tuple[str, int]:
            packed = pack(source_dir, handle, rules=rules)
            return packed.digest, packed.size

        return self._place(
            kind=kind,
            namespace=namespace,
            name=name,
            revision=revision,
            filename=f"{commit}{_ARCHIVE_SUFFIX}",
            write=write,
            failure="unable to archive artifact",
            collected=collected,
        )

    async def store_file(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        revision: str,
        commit: str,
        source_file: Path,
        collected: list[Path] | None = None,
    ) -> Artifact:
        """Store a ready tarball as it is (an OCI layer copied), then collect old ones."""
        return await anyio.to_thread.run_sync(
            lambda: self._store_file_sync(
                kind=kind,
                namespace=namespace,
                name=name,
                revision=revision,
                commit=commit,
                source_file=source_file,
                collected=collected,
            )
        )

    def _store_file_sync(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        revision: str,
        commit: str,
        source_file: Path,
        collected: list[Path] | None,
    ) -> Artifact:
        def write(handle: IO[bytes]) -> tuple[str, int]:
            hashed = hashlib.sha256()
            size = 0
            with source_file.open("rb") as source:
                while chunk := source.read(1 << 16):
                    hashed.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
            return f"sha256:{hashed.hexdigest()}", size

        return self._place(
            kind=kind,
            namespace=namespace,
            name=name,
            revision=revision,
            filename=f"{commit}{_ARCHIVE_SUFFIX}",
            write=write,
            failure="unable to copy artifact to storage",
            collected=collected,
        )

    def _place(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        revision: str,
        filename: str,
        write: Callable[[IO[bytes]], tuple[str, int]],
        failure: str,
        collected: list[Path] | None,
    ) -> Artifact:
        """Write an artifact through a temporary file renamed into place, then collect old ones.

        ``write`` fills the file and returns its ``sha256:`` digest and size.
        """
        relpath = self.artifact_path(kind=kind, namespace=namespace, name=name, filename=filename)
        final = self.root.joinpath(*relpath.split("/"))
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed, not closed-and-deleted
                prefix=_TEMP_PREFIX, dir=final.parent, delete=False
            )
            temp = Path(handle.name)
            try:
                with handle:
                    digest, size = write(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                temp.chmod(0o644)
                os.replace(temp, final)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        except OSError as error:
            raise StorageOperationFailed(
                f"{failure} {relpath}: {error.strerror or error}"
            ) from None
        artifact: Artifact = {
            "path": relpath,
            "url": self.url_for(relpath),
            "revision": revision,
            "digest": digest,
            "lastUpdateTime": _now_rfc3339(),
            "size": size,
        }
        deleted = self.collect_garbage_sync(current=relpath)
        if collected is not None:
            collected.extend(deleted)
        return artifact

    def store_file_sync(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        filename: str,
        revision: str,
        content: bytes,
        collected: list[Path] | None = None,
    ) -> Artifact:
        """Store ``content`` as the artifact file ``filename`` (a Helm index or chart).

        Written and renamed into place like a tarball, then old artifacts are collected.
        """

        def write(handle: IO[bytes]) -> tuple[str, int]:
            handle.write(content)
            return f"sha256:{hashlib.sha256(content).hexdigest()}", len(content)

        return self._place(
            kind=kind,
            namespace=namespace,
            name=name,
            revision=revision,
            filename=filename,
            write=write,
            failure="unable to save artifact",
            collected=collected,
        )

    def latest_link_url(self, *, relpath: str, link_name: str) -> str | None:
        """status.url when ``link_name`` already points at the artifact, else None.

        One readlink, cheap enough for the event loop: an unchanged poll then
        needs no worker thread to keep the link.
        """
        try:
            target = self.local_path(relpath)
            if os.readlink(target.parent / link_name) != target.name:
                return None
        except (OSError, ArtifactPathRefused):
            return None
        return self.url_for(f"{relpath.rsplit('/', 1)[0]}/{link_name}")

    def link_latest_sync(self, *, relpath: str, link_name: str) -> str:
        """Point ``link_name`` beside the artifact at it; return the link's URL (status.url)."""
        target = self.local_path(relpath)
        link = target.parent / link_name
        temp = target.parent / f"{_TEMP_PREFIX}{link_name}"
        try:
            temp.unlink(missing_ok=True)
            temp.symlink_to(target.name)
            os.replace(temp, link)
        except OSError as error:
            raise StorageOperationFailed(
                f"failed to update status URL symlink: {error.strerror or error}"
            ) from None
        return self.url_for(f"{relpath.rsplit('/', 1)[0]}/{link_name}")

    # collecting

    async def collect_garbage(self, *, current: str) -> list[Path]:
        """Keep the newest ``retention`` artifacts next to ``current`` (always kept)."""
        return await anyio.to_thread.run_sync(lambda: self.collect_garbage_sync(current=current))

    def collect_garbage_sync(self, *, current: str) -> list[Path]:
        """Blocking form of :meth:`collect_garbage`; returns the deleted files."""
        keep = self.local_path(current)
        directory = keep.parent
        try:
            candidates = [
                entry
                for entry in directory.iterdir()
                # Every kind keeps one file per artifact here (tarball, index, chart), and
                # maybe a link to the latest one (status.url), which is not an artifact.
                if not entry.name.startswith(_TEMP_PREFIX)
                and not entry.is_symlink()
                and entry.is_file()
                and entry != keep
            ]
            candidates.sort(key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
        except OSError as error:
            raise StorageOperationFailed(
                f"unable to list artifacts of {current}: {error.strerror or error}"
            ) from None
        deleted: list[Path] = []
        for stale in candidates[self.retention - 1 :]:
            try:
                stale.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise StorageOperationFailed(
                    f"unable to delete artifact {stale.name}: {error.strerror or error}"
                ) from None
            deleted.append(stale)
        return deleted

    async def remove_all(self, *, kind: str = "GitRepository", namespace: str, name: str) -> bool:
        """Delete every artifact of one object (it was deleted); True if there was any."""
        directory = self.root / kind.lower() / namespace / name
        resolve_safe(self.root, f"{kind.lower()}/{namespace}/{name}")

        def remove() -> bool:
            if not directory.exists():
                return False
            shutil.rmtree(directory)
            return True

        try:
            return await anyio.to_thread.run_sync(remove)
        except OSError as error:
            raise StorageOperationFailed(
                f"unable to remove artifacts of {kind}/{namespace}/{name}: "
                f"{error.strerror or error}"
            ) from None
