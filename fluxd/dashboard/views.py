"""What the pages show, worked out from cached objects: pure functions, no I/O, no HTML.

Everything here reads the plain dicts the controllers' informers keep
(GitRepositories and Kustomizations with their status) and the journal's
records. Nothing reads a Secret: the only Secret facts shown are names, as
inventories and restart records carry them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fluxd.api import meta
from fluxd.apply.inventory import InventoryError, ObjectRef, parse_inventory
from fluxd.dashboard.journal import ConfigRef, Journal, Restart

Object = Mapping[str, Any]

KUSTOMIZATION_GROUP = "kustomize.toolkit.fluxcd.io"


@dataclass(frozen=True)
class State:
    """One look at the daemon: its caches and its journal, as they are now."""

    identity: str
    leading: bool
    sources: Sequence[Object]
    kustomizations: Sequence[Object]
    journal: Journal


StateSource = Callable[[], State]


@dataclass(frozen=True)
class Readiness:
    status: str
    reason: str
    message: str

    @property
    def css(self) -> str:
        return {"True": "ready", "False": "failed"}.get(self.status, "unknown")


def readiness(obj: Object) -> Readiness:
    if (obj.get("spec") or {}).get("suspend"):
        return Readiness("Unknown", "Suspended", "reconciliation is suspended")
    condition = meta.condition_of(obj, meta.ConditionType.READY)
    if condition is None:
        return Readiness("Unknown", "", "not reconciled yet")
    return Readiness(
        str(condition.get("status", "Unknown")),
        str(condition.get("reason", "")),
        str(condition.get("message", "")),
    )


def name_of(obj: Object) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def public_url(url: str) -> str:
    """``url`` without credentials (``https://user:token@host/x`` → ``https://host/x``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


# -- sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    namespace: str
    name: str
    url: str
    ref: str
    revision: str
    fetched_at: str
    ready: Readiness


def source_rows(sources: Iterable[Object]) -> list[SourceRow]:
    rows = []
    for source in sources:
        namespace, name = name_of(source)
        spec = source.get("spec") or {}
        artifact = (source.get("status") or {}).get("artifact") or {}
        ref = spec.get("ref") or {}
        shown_ref = next(
            (
                f"{key} {ref[key]}"
                for key in ("name", "commit", "tag", "semver", "branch")
                if key in ref
            ),
            "",
        )
        rows.append(
            SourceRow(
                namespace=namespace,
                name=name,
                url=public_url(str(spec.get("url", ""))),
                ref=shown_ref,
                revision=str(artifact.get("revision", "")),
                fetched_at=str(artifact.get("lastUpdateTime", "")),
                ready=readiness(source),
            )
        )
    return sorted(rows, key=lambda row: (row.namespace, row.name))


# -- Kustomizations and their inventory ---------------------------------------------------


@dataclass(frozen=True)
class TreeNode:
    """One object of an inventory; a Kustomization's node holds its own inventory."""

    label: str
    children: tuple[TreeNode, ...] = ()


def _label(ref: ObjectRef) -> str:
    return ref.subject


def inventory_tree(root: Object, kustomizations: Iterable[Object]) -> TreeNode:
    """The tree ``flux tree kustomization`` prints: inventories, nested Kustomizations expanded."""
    by_key = {name_of(ks): ks for ks in kustomizations}

    def walk(ks: Object, seen: frozenset[tuple[str, str]]) -> TreeNode:
        namespace, name = name_of(ks)
        try:
            refs = parse_inventory((ks.get("status") or {}).get("inventory"))
        except InventoryError:
            refs = []
        children = []
        for ref in refs:
            key = (ref.namespace, ref.name)
            nested = by_key.get(key)
            if (
                ref.kind == "Kustomization"
                and ref.group == KUSTOMIZATION_GROUP
                and nested is not None
                and key not in seen
            ):
                children.append(walk(nested, seen | {key}))
            else:
                children.append(TreeNode(_label(ref)))
        return TreeNode(f"Kustomization/{namespace}/{name}", tuple(children))

    return walk(root, frozenset({name_of(root)}))


def tree_text(node: TreeNode) -> str:
    """``node`` drawn as ``flux tree`` draws it (├── └── │)."""
    lines = [node.label]

    def draw(children: Sequence[TreeNode], prefix: str) -> None:
        for index, child in enumerate(children):
            last = index == len(children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.label}")
            draw(child.children, prefix + ("    " if last else "│   "))

    draw(node.children, "")
    return "\n".join(lines)


@dataclass(frozen=True)
class KustomizationRow:
    namespace: str
    name: str
    source: str
    path: str
    applied: str
    attempted: str
    ready: Readiness
    objects: int
    tree: TreeNode


def kustomization_row(ks: Object, kustomizations: Sequence[Object]) -> KustomizationRow:
    namespace, name = name_of(ks)
    spec = ks.get("spec") or {}
    status = ks.get("status") or {}
    source = spec.get("sourceRef") or {}
    return KustomizationRow(
        namespace=namespace,
        name=name,
        source=f"{source.get('kind', '')}/{source.get('namespace') or namespace}/"
        f"{source.get('name', '')}",
        path=str(spec.get("path") or "./"),
        applied=str(status.get("lastAppliedRevision", "")),
        attempted=str(status.get("lastAttemptedRevision", "")),
        ready=readiness(ks),
        objects=len((status.get("inventory") or {}).get("entries") or []),
        tree=inventory_tree(ks, kustomizations),
    )


def kustomization_rows(kustomizations: Sequence[Object]) -> list[KustomizationRow]:
    rows = [kustomization_row(ks, kustomizations) for ks in kustomizations]
    return sorted(rows, key=lambda row: (row.namespace, row.name))


def find_kustomization(
    kustomizations: Iterable[Object], namespace: str, name: str
) -> Object | None:
    return next((ks for ks in kustomizations if name_of(ks) == (namespace, name)), None)


# -- where a restarted workload's config came from ----------------------------------------


@dataclass(frozen=True)
class Provenance:
    """The Kustomization that applied a config, and the revision applied when it changed."""

    config: ConfigRef
    kustomization: str
    revision: str
    path: str
    commit_url: str = ""
    path_url: str = ""


@dataclass(frozen=True)
class RestartRow:
    restart: Restart
    provenance: tuple[Provenance, ...] = field(default_factory=tuple)


def _moment(text: object) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def revision_at(ks: Object, at: float) -> str:
    """The revision a Kustomization had applied at ``at`` (from ``status.history``)."""
    status = ks.get("status") or {}
    for snapshot in status.get("history") or []:  # newest first
        first = _moment(snapshot.get("firstReconciled"))
        revision = (snapshot.get("metadata") or {}).get("revision")
        if revision and first is not None and first <= at:
            return str(revision)
    return str(status.get("lastAppliedRevision", ""))


def commit_of(revision: str) -> str:
    """The commit hash of ``main@sha1:<hex>`` (empty when the revision names none)."""
    _, _, digest = revision.rpartition("@")
    algorithm, _, value = digest.partition(":")
    return value if algorithm in ("sha1", "sha256") else ""


def forge_links(url: str, commit: str, path: str) -> tuple[str, str]:
    """Web links to a commit and to a path at that commit, for an http(s) repository URL.

    Gitea's layout (``/commit/<sha>``, ``/src/commit/<sha>/<path>``) unless the
    host is GitHub's or GitLab's; SSH URLs and unknown revisions get no link.
    """
    base = public_url(url)
    if not commit or not base.startswith(("http://", "https://")):
        return "", ""
    base = base.removesuffix("/").removesuffix(".git")
    path = path.strip().removeprefix("./").strip("/")
    host = urlsplit(base).hostname or ""
    if host == "github.com":
        return f"{base}/commit/{commit}", f"{base}/tree/{commit}/{path}"
    if "gitlab" in host:
        return f"{base}/-/commit/{commit}", f"{base}/-/tree/{commit}/{path}"
    return f"{base}/commit/{commit}", f"{base}/src/commit/{commit}/{path}"


def provenance(
    config: ConfigRef, at: float, kustomizations: Iterable[Object], sources: Iterable[Object]
) -> list[Provenance]:
    found = []
    config_id = ObjectRef(config.namespace, config.name, "", config.kind).id
    source_by_key = {name_of(source): source for source in sources}
    for ks in kustomizations:
        entries = ((ks.get("status") or {}).get("inventory") or {}).get("entries") or []
        if not any(entry.get("id") == config_id for entry in entries):
            continue
        namespace, name = name_of(ks)
        spec = ks.get("spec") or {}
        source_ref = spec.get("sourceRef") or {}
        source = source_by_key.get(
            (str(source_ref.get("namespace") or namespace), str(source_ref.get("name", "")))
        )
        revision = revision_at(ks, at)
        path = str(spec.get("path") or "./")
        url = str((source or {}).get("spec", {}).get("url", ""))
        commit_url, path_url = forge_links(url, commit_of(revision), path)
        found.append(
            Provenance(
                config=config,
                kustomization=f"{namespace}/{name}",
                revision=revision,
                path=path,
                commit_url=commit_url,
                path_url=path_url,
            )
        )
    return found


def restart_rows(state: State) -> list[RestartRow]:
    rows = []
    for restart in state.journal.restarts.newest_first():
        found: list[Provenance] = []
        for config in restart.configs:
            found += provenance(config, restart.at, state.kustomizations, state.sources)
        rows.append(RestartRow(restart, tuple(found)))
    return rows
