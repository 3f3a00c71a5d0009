"""Helm repositories and charts as source-controller sees them, without Helm or Go.

Everything here is plain data in, plain data out (no Kubernetes, no network):

* an index: parsed from ``index.yaml`` and stored, like Flux, as JSON under
  ``index-<hex>.yaml``, its revision the ``sha256:`` digest of what the
  repository served;
* the chart version an index offers for a ``spec.version`` range, picked as
  Flux's ``GetChartVersion`` picks it (an exact match first, else the highest
  stable version in the range), and the URL it is downloaded from;
* a chart package: a ``.tgz`` laid out as ``helm package`` lays it out
  (``<name>/Chart.yaml`` first, then the chart's files, ``.helmignore``
  honoured), with the version's build metadata set and ``spec.valuesFiles``
  merged into ``values.yaml`` when the HelmChart asks for it;
* a chart's dependencies that ``charts/`` lacks, and where Flux looks for
  them (the source for ``file://``, a repository URL otherwise).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pathspec
import semver
import yaml

from fluxd.source.errors import InvalidSource, SourceError
from fluxd.source.semver_range import SemverRange, parse_tag_version

__all__ = [
    "ChartBuildFailed",
    "ChartDependency",
    "ChartPackage",
    "ChartVersion",
    "IndexationFailed",
    "chart_download_url",
    "chart_identity",
    "check_dependency_version",
    "dependency_repository_url",
    "index_artifact",
    "load_index",
    "local_dependency_dir",
    "merge_values",
    "missing_dependencies",
    "normalize_repository_url",
    "package_chart",
    "repackage_chart",
    "select_chart_version",
    "unpack_chart",
    "with_version_metadata",
]

# Helm's own limits (helm.sh/helm pkg/repo, pkg/chart/loader).
MAX_INDEX_SIZE = 100 * 1024 * 1024
MAX_CHART_SIZE = 100 * 1024 * 1024

CHART_PULL_SUCCEEDED = "ChartPullSucceeded"
CHART_PACKAGE_SUCCEEDED = "ChartPackageSucceeded"


class IndexationFailed(SourceError):
    """The repository's index could not be fetched or read (reason IndexationFailed)."""

    reason: str = "IndexationFailed"


class ChartBuildFailed(SourceError):
    """A chart could not be pulled or packaged; ``kind`` is Flux's build error reason."""

    #: Flux's BuildErrorReason (reason, summary) pairs.
    REFERENCE = ("InvalidChartReference", "invalid chart reference")
    PULL = ("ChartPullError", "chart pull error")
    METADATA = ("MetadataPatchError", "chart metadata patch error")
    VALUES = ("ValuesFilesError", "values files merge error")
    PACKAGE = ("ChartPackageError", "chart package error")
    DEPENDENCY = ("DependencyBuildError", "dependency build error")

    def __init__(self, kind: tuple[str, str], detail: str) -> None:
        super().__init__(f"{kind[1]}: {detail}")
        self.reason = kind[0]
        # As Flux: a wrong reference, version or values file needs the user; the rest is retried.
        self.persistent = kind in (self.REFERENCE, self.METADATA, self.VALUES)


class _IndexLoader(yaml.SafeLoader):
    """YAML as Helm reads it: timestamps stay the strings they are written as."""


_IndexLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(data: bytes | str, what: str) -> Any:
    try:
        return yaml.load(data, Loader=_IndexLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ValueError(f"{what}: {error}") from None


def load_index(data: bytes) -> dict[str, Any]:
    """The index a repository served, checked as Helm checks it (not empty, has apiVersion)."""
    if len(data) > MAX_INDEX_SIZE:
        raise IndexationFailed(
            f"index exceeds the maximum index file size of {MAX_INDEX_SIZE} bytes"
        )
    try:
        index = _load_yaml(data, "failed to load Helm repository from index YAML")
    except ValueError as error:
        raise IndexationFailed(str(error)) from None
    if not index:
        raise IndexationFailed(
            "failed to load Helm repository from index YAML: index.yaml file is empty"
        )
    if not isinstance(index, dict) or not index.get("apiVersion"):
        raise IndexationFailed(
            "failed to load Helm repository from index YAML: no API version specified"
        )
    entries = index.get("entries")
    if entries is not None and not isinstance(entries, dict):
        raise IndexationFailed(
            "failed to load Helm repository from index YAML: entries is not a map"
        )
    return index


def index_artifact(data: bytes) -> tuple[str, str, bytes]:
    """(revision, file name, file content) of the artifact for a served ``index.yaml``.

    The revision is the digest of the bytes served; the file holds the index as
    JSON (which any YAML reader reads), as source-controller stores it.
    """
    index = load_index(data)
    hexdigest = hashlib.sha256(data).hexdigest()
    content = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    return f"sha256:{hexdigest}", f"index-{hexdigest}.yaml", content


@dataclass(frozen=True)
class ChartVersion:
    """One entry of an index: a chart's name, version and where to download it."""

    name: str
    version: str
    urls: tuple[str, ...]
    digest: str | None


def _entry(entry: Mapping[str, Any], name: str) -> ChartVersion:
    urls = tuple(str(url) for url in entry.get("urls") or [])
    digest = entry.get("digest")
    return ChartVersion(
        name=str(entry.get("name") or name),
        version=str(entry.get("version", "")),
        urls=urls,
        digest=str(digest) if digest else None,
    )


def select_chart_version(index: Mapping[str, Any], name: str, version: str) -> ChartVersion:
    """The chart version the index offers for ``version`` (a version or a semver range).

    As Flux: an exact version string wins; otherwise the highest version in the
    range, ``*`` or empty meaning the latest stable one; equal versions (they
    differ in build metadata) go to the one created last.
    """
    entries = (index.get("entries") or {}).get(name)
    if entries is None:
        raise ChartBuildFailed(
            ChartBuildFailed.REFERENCE,
            "failed to get chart version for remote reference: no chart name found",
        )
    if not entries:
        raise ChartBuildFailed(
            ChartBuildFailed.REFERENCE,
            "failed to get chart version for remote reference: no chart version found",
        )
    if version:
        for entry in entries:
            if str(entry.get("version", "")) == version:
                return _entry(entry, name)
    wanted = "*" if version in ("", "*") else version
    try:
        rng = SemverRange.parse(wanted)
    except ValueError as error:
        raise ChartBuildFailed(
            ChartBuildFailed.REFERENCE,
            f"failed to get chart version for remote reference: {error}",
        ) from None
    best: tuple[semver.Version, str, Mapping[str, Any]] | None = None
    for entry in entries:
        parsed = parse_tag_version(str(entry.get("version", "")))
        if parsed is None or not rng.matches(parsed):
            continue
        comparable = parsed.replace(build=None)
        created = str(entry.get("created", ""))
        if best is None or (comparable, created) > (best[0], best[1]):
            best = (comparable, created, entry)
    if best is None:
        raise ChartBuildFailed(
            ChartBuildFailed.REFERENCE,
            "failed to get chart version for remote reference: "
            f"no '{name}' chart with version matching '{version}' found",
        )
    return _entry(best[2], name)


def chart_download_url(repository_url: str, chart: ChartVersion) -> str:
    """Where to download ``chart``: its first URL, resolved against the repository's URL."""
    if not chart.urls:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL,
            "failed to download chart for remote reference: "
            f"chart '{chart.name}' has no downloadable URLs",
        )
    reference = chart.urls[0]
    if urllib.parse.urlsplit(reference).scheme:
        return reference
    # Helm's ResolveReferenceURL: relative to the repository URL taken as a directory.
    base = repository_url if repository_url.endswith("/") else repository_url + "/"
    return urllib.parse.urljoin(base, reference)


def same_host(first: str, second: str) -> bool:
    """Whether two URLs name the same host (credentials only go there without passCredentials)."""
    return urllib.parse.urlsplit(first).netloc == urllib.parse.urlsplit(second).netloc


def with_version_metadata(version: str, metadata: str) -> str:
    """``version`` with its SemVer build metadata set to ``metadata`` (empty: unchanged)."""
    if not metadata:
        return version
    parsed = parse_tag_version(version)
    if parsed is None:
        raise ChartBuildFailed(
            ChartBuildFailed.METADATA,
            f"failed to parse version from chart metadata as SemVer: {version}",
        )
    plain = version.split("+", 1)[0]
    return f"{plain}+{metadata}"


def merge_values(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_values(current, value)
        else:
            merged[key] = value
    return merged


def _merged_values_files(
    root: Path, files: Sequence[str], *, ignore_missing: bool, where: str
) -> tuple[dict[str, Any], list[str]]:
    """Merge the values files (relative to ``root``) in order; the ones found are returned too."""
    merged: dict[str, Any] = {}
    found: list[str] = []
    real_root = Path(os.path.realpath(root))
    for relative in files:
        parts = PurePosixPath(relative).parts
        candidate = Path(os.path.realpath(real_root.joinpath(*parts)))
        if not candidate.is_relative_to(real_root) or not candidate.is_file():
            if ignore_missing:
                continue
            raise ChartBuildFailed(
                ChartBuildFailed.VALUES, f"no values file found at path '{relative}'{where}"
            )
        try:
            values = _load_yaml(candidate.read_bytes(), f"unmarshaling values from '{relative}'")
        except ValueError as error:
            raise ChartBuildFailed(ChartBuildFailed.VALUES, f"{error}") from None
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ChartBuildFailed(
                ChartBuildFailed.VALUES, f"unmarshaling values from '{relative}' failed: not a map"
            )
        merged = merge_values(merged, values)
        found.append(relative)
    return merged, found


@dataclass(frozen=True)
class ChartPackage:
    """A packaged chart: its name, version (with metadata) and the values files merged in."""

    name: str
    version: str
    content: bytes
    values_files: tuple[str, ...]
    packaged: bool

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    def summary(self) -> str:
        """Flux's words for the build (the Ready message of a HelmChart)."""
        action = "packaged" if self.packaged else "pulled"
        text = f"{action} '{self.name}' chart with version '{self.version}'"
        if self.values_files:
            quoted = " ".join(self.values_files)
            text += f" and merged values files [{quoted}]"
        return text


def _chart_metadata(chart_dir: Path) -> dict[str, Any]:
    chart_file = chart_dir / "Chart.yaml"
    if not chart_file.is_file():
        raise ChartBuildFailed(
            ChartBuildFailed.PACKAGE,
            f"failed to load chart: Chart.yaml file is missing in '{chart_dir.name}'",
        )
    try:
        metadata = _load_yaml(chart_file.read_bytes(), "failed to load Chart.yaml")
    except ValueError as error:
        raise ChartBuildFailed(ChartBuildFailed.PACKAGE, str(error)) from None
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise ChartBuildFailed(
            ChartBuildFailed.PACKAGE, "validation: chart.metadata.name is required"
        )
    if not metadata.get("version"):
        raise ChartBuildFailed(
            ChartBuildFailed.PACKAGE, "validation: chart.metadata.version is required"
        )
    metadata["version"] = str(metadata["version"])
    return metadata


@dataclass(frozen=True)
class ChartDependency:
    """One entry of Chart.yaml's (or Chart.lock's) ``dependencies``."""

    name: str
    version: str
    repository: str
    alias: str

    @property
    def chart_name(self) -> str:
        """The name the subchart has inside the parent: its alias, if it has one."""
        return self.alias or self.name

    @property
    def local(self) -> bool:
        """A dependency in the source itself: no repository, or a ``file://`` one."""
        return not self.repository or self.repository.startswith("file://")


def _vendored_names(chart_dir: Path) -> set[str]:
    """The names of the subcharts in ``charts/``: directories and packages, as Helm loads them."""
    vendored = chart_dir / "charts"
    names: set[str] = set()
    if not vendored.is_dir():
        return names
    for entry in vendored.iterdir():
        if entry.is_dir() and (entry / "Chart.yaml").is_file():
            with contextlib.suppress(ChartBuildFailed):
                names.add(str(_chart_metadata(entry)["name"]))
        elif entry.is_file() and entry.name.endswith(".tgz"):
            with contextlib.suppress(tarfile.TarError, OSError, EOFError, ValueError):
                names.add(_packaged_chart_name(entry.read_bytes()))
    return names


def _packaged_chart_name(content: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        for member in archive:
            if PurePosixPath(member.name).name == "Chart.yaml" and member.name.count("/") == 1:
                extracted = archive.extractfile(member)
                if extracted is not None:
                    metadata = _load_yaml(extracted.read(), "Chart.yaml")
                    return str((metadata or {}).get("name", ""))
    raise ValueError("no Chart.yaml")


def missing_dependencies(chart_dir: Path) -> list[ChartDependency]:
    """The dependencies not vendored in ``charts/``, as Flux's dependency manager finds them.

    Chart.lock's entries take the place of Chart.yaml's when there is one; when
    as many subcharts are vendored as there are dependencies, none is missing.
    """
    metadata = _chart_metadata(chart_dir)
    requested: Any = metadata.get("dependencies") or []
    lock_file = chart_dir / "Chart.lock"
    if lock_file.is_file():
        try:
            lock = _load_yaml(lock_file.read_bytes(), "failed to load Chart.lock")
        except ValueError as error:
            raise ChartBuildFailed(ChartBuildFailed.PACKAGE, str(error)) from None
        if isinstance(lock, dict) and lock.get("dependencies") is not None:
            requested = lock["dependencies"]
    dependencies = [
        ChartDependency(
            name=str(entry.get("name", "")),
            version=str(entry.get("version") or ""),
            repository=str(entry.get("repository") or ""),
            alias=str(entry.get("alias") or ""),
        )
        for entry in requested
        if isinstance(entry, Mapping) and entry.get("name")
    ]
    vendored = _vendored_names(chart_dir)
    if len(vendored) == len(dependencies):
        return []
    return [dependency for dependency in dependencies if dependency.chart_name not in vendored]


def local_dependency_dir(source_root: Path, chart_path: str, dependency: ChartDependency) -> Path:
    """The chart a ``file://`` dependency names (relative to the chart), its version checked."""
    where = f"(reference '{dependency.repository}')"
    if dependency.repository:
        parsed = urllib.parse.urlsplit(dependency.repository)
        relative = PurePosixPath(chart_path, parsed.netloc + parsed.path)
    else:
        relative = PurePosixPath(chart_path, "charts", dependency.name)
    real_root = Path(os.path.realpath(source_root))
    parts = [part for part in relative.parts if part not in ("/", ".")]
    candidate = Path(os.path.realpath(real_root.joinpath(*parts)))
    # Flux names the path as joined below the source root, cleaned.
    shown = "/" + posixpath.normpath("/".join(parts)).lstrip("/")
    if not candidate.is_relative_to(real_root) or not candidate.is_dir():
        raise ChartBuildFailed(
            ChartBuildFailed.DEPENDENCY,
            f"failed to add local dependency '{dependency.chart_name}': "
            f"no chart found at '{shown}' {where}",
        )
    metadata = _chart_metadata(candidate)
    check_dependency_version(dependency, str(metadata["version"]), local=True)
    return candidate


def check_dependency_version(dependency: ChartDependency, version: str, *, local: bool) -> None:
    """Refuse a subchart whose version is not in the dependency's range (Helm's words)."""
    kind = "local" if local else "remote"
    try:
        rng = SemverRange.parse(dependency.version or "*")
    except ValueError as error:
        raise ChartBuildFailed(
            ChartBuildFailed.DEPENDENCY,
            f"failed to add {kind} dependency '{dependency.chart_name}': invalid "
            f"version/constraint format '{dependency.version}': {error}",
        ) from None
    parsed = parse_tag_version(version)
    if parsed is None or not rng.matches(parsed):
        raise ChartBuildFailed(
            ChartBuildFailed.DEPENDENCY,
            f"failed to add {kind} dependency '{dependency.chart_name}': can't get a valid "
            f"version for constraint '{dependency.version}'",
        )


def dependency_repository_url(dependency: ChartDependency) -> str:
    """The normalised URL of a remote dependency's repository; Flux's refusals otherwise."""
    url = dependency.repository
    if url.startswith(("oci://", "http://", "https://")):
        return normalize_repository_url(url)
    if url.startswith("@"):
        raise ChartBuildFailed(
            ChartBuildFailed.DEPENDENCY,
            f"failed to add remote dependency '{dependency.chart_name}': aliased repository "
            f"dependency is not supported: {url}",
        )
    raise ChartBuildFailed(
        ChartBuildFailed.DEPENDENCY,
        f"failed to add remote dependency '{dependency.chart_name}': invalid dependency "
        f"repository URL: {url}",
    )


def normalize_repository_url(url: str) -> str:
    """Flux's NormalizeURL: an OCI URL without a trailing slash, any other with one."""
    if url.startswith("oci://"):
        return url.rstrip("/")
    return url.rstrip("/") + "/"


def chart_identity(chart_dir: Path, version_metadata: str = "") -> tuple[str, str]:
    """The name and the version (with ``version_metadata``) packaging ``chart_dir`` gives."""
    metadata = _chart_metadata(chart_dir)
    return str(metadata["name"]), with_version_metadata(str(metadata["version"]), version_metadata)


def _check_dependencies(chart_dir: Path, provided: Mapping[str, Path]) -> None:
    """Refuse to package a chart with a dependency neither vendored nor resolved.

    Packaging without it would publish a chart that Helm refuses to render.
    """
    missing = [
        dependency.chart_name
        for dependency in missing_dependencies(chart_dir)
        if dependency.chart_name not in provided
    ]
    if missing:
        raise ChartBuildFailed(
            ChartBuildFailed.DEPENDENCY,
            f"chart dependencies {missing} are neither in the chart's charts/ directory "
            "nor resolved from a repository",
        )


def _helmignore(chart_dir: Path) -> pathspec.GitIgnoreSpec:
    path = chart_dir / ".helmignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    # Helm always leaves out its own ignore file and VCS metadata.
    return pathspec.GitIgnoreSpec.from_lines([*lines, ".helmignore", ".git/"])


def _chart_files(chart_dir: Path) -> list[tuple[str, Path]]:
    rules = _helmignore(chart_dir)
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(chart_dir, followlinks=False):
        base = Path(directory)
        relative_dir = base.relative_to(chart_dir).as_posix()
        kept_dirs = []
        for name in sorted(dirnames):
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            if not rules.match_file(relative + "/"):
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            path = base / name
            if path.is_symlink() or not path.is_file() or rules.match_file(relative):
                continue
            found.append((relative, path))
    found.sort()
    return found


def _dump_yaml(document: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True).encode()


def _tar_gz(entries: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def package_chart(
    chart_dir: Path,
    *,
    version_metadata: str = "",
    values_files: Sequence[str] = (),
    values_root: Path | None = None,
    ignore_missing_values_files: bool = False,
    packaged: bool = True,
    subcharts: Mapping[str, Path] | None = None,
) -> ChartPackage:
    """Package the chart in ``chart_dir`` as ``helm package`` does.

    ``values_files`` are relative to ``values_root`` (the source's root, for a
    chart from a GitRepository; the chart itself, for a pulled chart); merged
    in order, they replace the chart's ``values.yaml``. ``subcharts`` are the
    resolved dependencies (name inside the parent → chart directory), added
    under ``charts/<name>/`` as Helm saves a chart's dependencies.
    """
    subcharts = subcharts or {}
    metadata = _chart_metadata(chart_dir)
    _check_dependencies(chart_dir, subcharts)
    name = str(metadata["name"])
    version = with_version_metadata(str(metadata["version"]), version_metadata)
    metadata["version"] = version
    values: bytes | None = None
    merged_files: list[str] = []
    if values_files:
        merged, merged_files = _merged_values_files(
            values_root or chart_dir,
            values_files,
            ignore_missing=ignore_missing_values_files,
            where="",
        )
        values = _dump_yaml(merged) if merged_files else None
    entries: list[tuple[str, bytes]] = [(f"{name}/Chart.yaml", _dump_yaml(metadata))]
    files = _chart_files(chart_dir)
    for relative, path in files:
        if relative == "Chart.yaml":
            continue
        data = values if relative == "values.yaml" and values is not None else path.read_bytes()
        entries.append((f"{name}/{relative}", data))
    if values is not None and not any(relative == "values.yaml" for relative, _ in files):
        entries.append((f"{name}/values.yaml", values))
    for subchart_name, subchart_dir in sorted(subcharts.items()):
        entries += _subchart_entries(f"{name}/charts/{subchart_name}", subchart_name, subchart_dir)
    content = _tar_gz(entries)
    if len(content) > MAX_CHART_SIZE:
        raise ChartBuildFailed(
            ChartBuildFailed.PACKAGE, f"chart exceeds the maximum size of {MAX_CHART_SIZE} bytes"
        )
    return ChartPackage(name, version, content, tuple(merged_files), packaged)


def _subchart_entries(prefix: str, name: str, chart_dir: Path) -> list[tuple[str, bytes]]:
    """A dependency's files under ``prefix``, named ``name`` (its alias) in its Chart.yaml."""
    metadata = _chart_metadata(chart_dir)
    metadata["name"] = name
    entries = [(f"{prefix}/Chart.yaml", _dump_yaml(metadata))]
    for relative, path in _chart_files(chart_dir):
        if relative != "Chart.yaml":
            entries.append((f"{prefix}/{relative}", path.read_bytes()))
    return entries


def unpack_chart(content: bytes, dest: Path) -> Path:
    """Extract a chart package into ``dest``; returns the chart's directory."""
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            archive.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL, f"failed to load downloaded chart: {error}"
        ) from None
    tops = [entry for entry in dest.iterdir() if entry.is_dir()]
    if len(tops) != 1:
        raise ChartBuildFailed(
            ChartBuildFailed.PULL, "failed to load downloaded chart: not one chart directory"
        )
    return tops[0]


def pulled_chart(content: bytes, *, expected_name: str, expected_version: str) -> ChartPackage:
    """A downloaded chart, kept byte for byte (nothing to change in it)."""
    return ChartPackage(expected_name, expected_version, content, (), packaged=False)


def repackage_chart(
    content: bytes,
    scratch: Path,
    *,
    version_metadata: str,
    values_files: Sequence[str],
    ignore_missing_values_files: bool,
) -> ChartPackage:
    """A downloaded chart with values files (from inside the chart) merged in, packaged again."""
    chart_dir = unpack_chart(content, scratch)
    chart = package_chart(
        chart_dir,
        version_metadata=version_metadata,
        values_files=values_files,
        values_root=chart_dir,
        ignore_missing_values_files=ignore_missing_values_files,
    )
    # Pulled, not packaged from a source tree: Flux names the build so.
    return ChartPackage(
        chart.name, chart.version, chart.content, chart.values_files, packaged=False
    )


def local_chart_dir(source_root: Path, chart_path: str) -> Path:
    """The directory ``spec.chart`` names inside a source artifact, refused if outside it."""
    parts = [part for part in PurePosixPath(chart_path).parts if part not in ("/", ".")]
    if ".." in parts:
        raise InvalidSource(
            f"invalid chart reference: path '{chart_path}' is outside the source",
            reason=ChartBuildFailed.REFERENCE[0],
        )
    chart_dir = source_root.joinpath(*parts)
    if not chart_dir.is_dir():
        raise ChartBuildFailed(
            ChartBuildFailed.REFERENCE,
            f"path '{chart_path}' does not exist in the source artifact",
        )
    return chart_dir
