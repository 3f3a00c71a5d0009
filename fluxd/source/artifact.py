"""Packing a checkout into an artifact tarball, and unpacking one for ``spec.include``.

The artifact is a gzip-compressed tar of the files that survive the ignore
rules. It is deterministic, so the same tree always yields the same
``sha256:`` digest: entries are sorted by path, and, like Flux, every header
is stripped of what depends on the machine: mtime 0, uid/gid 0, no user or
group names, and modes normalised to 0750 for directories, 0700 for
executable files and 0600 for other files. The gzip header carries no name
and no time either.

Symlinks are left out, as Flux leaves them out: a link is neither followed nor
stored, so a link pointing outside the repository (``/etc/passwd``, ``../..``)
cannot put anything from outside the checkout into the artifact, and a link
inside it is dropped too. Only regular files and directories are packed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from fluxd.source.errors import StorageOperationFailed
from fluxd.source.ignore import IgnoreRules

__all__ = ["PackedArchive", "apply_include", "pack", "unpack"]

_DIR_MODE = 0o750
_FILE_MODE = 0o600
_EXEC_MODE = 0o700
_COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class PackedArchive:
    """What :func:`pack` wrote: ``sha256:<hex>`` of the file and its size in bytes."""

    digest: str
    size: int


class _HashingWriter:
    """A write-only file that hashes and counts what goes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"


def _entries(root: Path, rules: IgnoreRules) -> list[tuple[str, Path, bool]]:
    """(archive name, path, is_dir) of everything to pack, sorted by name."""
    entries: list[tuple[str, Path, bool]] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        relative_dir = base.relative_to(root).as_posix()
        # Never descend into repository metadata; VCS patterns exclude it anyway.
        dirnames[:] = [name for name in dirnames if name != ".git"]
        for name in [*dirnames, *filenames]:
            path = base / name
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                continue
            is_dir = stat.S_ISDIR(mode)
            if not rules.excluded(relative, is_dir=is_dir):
                entries.append((relative, path, is_dir))
    entries.sort(key=lambda entry: entry[0])
    return entries


def _header(name: str, path: Path, *, is_dir: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = _DIR_MODE
    else:
        st = path.lstat()
        info.size = st.st_size
        info.mode = _EXEC_MODE if st.st_mode & 0o111 else _FILE_MODE
    return info


def pack(source: Path, target: IO[bytes], *, rules: IgnoreRules) -> PackedArchive:
    """Write the deterministic tar.gz of ``source`` (filtered by ``rules``) to ``target``."""
    writer = _HashingWriter(target)
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=writer, mtime=0, compresslevel=_COMPRESS_LEVEL
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, path, is_dir in _entries(source, rules):
            info = _header(name, path, is_dir=is_dir)
            if is_dir:
                archive.addfile(info)
                continue
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    writer.flush()
    return PackedArchive(digest=writer.digest, size=writer.size)


def unpack(archive_file: Path, dest: Path) -> None:
    """Extract an artifact into ``dest``, refusing links, devices and paths escaping it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive_file, mode="r:gz") as archive:
            for member in archive:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise StorageOperationFailed(
                        f"artifact '{archive_file.name}' has an entry outside its root: "
                        f"'{member.name}'"
                    )
                if not (member.isfile() or member.isdir()):
                    continue
                target = dest.joinpath(*name.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(_EXEC_MODE if member.mode & 0o111 else _FILE_MODE)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise StorageOperationFailed(
            f"unable to extract artifact '{archive_file.name}': {error}"
        ) from None


def _inside(root: Path, relative: str, *, what: str) -> Path:
    """``root/relative`` as long as it stays inside ``root`` (no '..', no absolute path)."""
    parts = PurePosixPath(relative.strip()).parts
    parts = tuple(part for part in parts if part not in ("/", "."))
    if ".." in parts:
        raise StorageOperationFailed(f"include {what} '{relative}' points outside the artifact")
    return root.joinpath(*parts)


def apply_include(*, artifact_file: Path, from_path: str, checkout_dir: Path, to_path: str) -> None:
    """Copy ``from_path`` of another artifact into ``to_path`` of this checkout (``spec.include``).

    Files already at the destination are overwritten; other files there stay.
    """
    with tempfile.TemporaryDirectory(prefix="fluxd-include-") as scratch:
        unpacked = Path(scratch) / "unpacked"
        unpack(artifact_file, unpacked)
        source = _inside(unpacked, from_path, what="fromPath")
        destination = _inside(checkout_dir, to_path, what="toPath")
        if not source.exists():
            raise StorageOperationFailed(
                f"include fromPath '{from_path}' does not exist in artifact '{artifact_file.name}'"
            )
        # A symlink in the checkout must not carry the copy outside of it.
        if not Path(os.path.realpath(destination)).is_relative_to(os.path.realpath(checkout_dir)):
            raise StorageOperationFailed(
                f"include toPath '{to_path}' leads outside the artifact through a symlink"
            )
        try:
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True, symlinks=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)
        except OSError as error:
            raise StorageOperationFailed(
                f"unable to copy include '{from_path}' to '{to_path}': {error.strerror}"
            ) from None
