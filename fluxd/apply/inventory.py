"""The Kustomization inventory, ownership labels and per-object apply policy.

``status.inventory.entries`` lists what a Kustomization applied, in Flux's
format: ``id`` is ``<namespace>_<name>_<group>_<kind>`` (empty strings for a
cluster-scoped object or the core group; a ``:`` in a name, as in RBAC names,
is written ``__``) and ``v`` is the API version. Diffing the previous inventory
against the new one yields the objects to garbage-collect, and only objects
carrying this Kustomization's owner labels are ever deleted. Users steer single
objects with Flux's labels/annotations (``ssa``, ``prune``, ``force``,
``reconcile``), read here into an :class:`ObjectPolicy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

from fluxd.apply.order import group_of

GROUP = "kustomize.toolkit.fluxcd.io"
OWNER_NAME_LABEL = f"{GROUP}/name"
OWNER_NAMESPACE_LABEL = f"{GROUP}/namespace"
SSA_KEY = f"{GROUP}/ssa"
PRUNE_KEY = f"{GROUP}/prune"
FORCE_KEY = f"{GROUP}/force"
RECONCILE_KEY = f"{GROUP}/reconcile"

_SEPARATOR = "_"
# cli-utils writes RBAC names' colons as a double underscore.
_COLON_ENCODED = "__"


class InventoryEntry(TypedDict):
    id: str
    v: str


class InventoryError(ValueError):
    """An inventory entry id is not ``<namespace>_<name>_<group>_<kind>``."""


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One object as the inventory records it."""

    namespace: str
    name: str
    group: str
    kind: str
    version: str = ""

    @property
    def id(self) -> str:
        name = self.name.replace(":", _COLON_ENCODED)
        return _SEPARATOR.join((self.namespace, name, self.group, self.kind))

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as in Flux events."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObjectRef:
        metadata = obj.get("metadata") or {}
        api_version = str(obj.get("apiVersion", ""))
        return cls(
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
            group=group_of(api_version),
            kind=str(obj.get("kind", "")),
            version=api_version.rpartition("/")[2],
        )

    @classmethod
    def parse(cls, entry_id: str, version: str = "") -> ObjectRef:
        fields = entry_id.split(_SEPARATOR)
        if len(fields) < 4:
            raise InventoryError(f"invalid inventory entry id {entry_id!r}")
        # Only the name can hold the separator (an encoded colon): namespace,
        # group and kind never do.
        namespace, group, kind = fields[0], fields[-2], fields[-1]
        name = _SEPARATOR.join(fields[1:-2]).replace(_COLON_ENCODED, ":")
        if not name or not kind:
            raise InventoryError(f"invalid inventory entry id {entry_id!r}")
        return cls(namespace=namespace, name=name, group=group, kind=kind, version=version)

    def same_object(self, other: ObjectRef) -> bool:
        """Equal apart from the API version (which may change between revisions)."""
        return self.id == other.id

    def entry(self) -> InventoryEntry:
        return {"id": self.id, "v": self.version}


def inventory_from_objects(objects: Iterable[Mapping[str, Any]]) -> list[ObjectRef]:
    """The inventory of applied objects, without duplicates, in the given order."""
    seen: set[str] = set()
    refs = []
    for obj in objects:
        ref = ObjectRef.from_object(obj)
        if ref.id not in seen:
            seen.add(ref.id)
            refs.append(ref)
    return refs


def parse_inventory(inventory: Mapping[str, Any] | None) -> list[ObjectRef]:
    """Read ``status.inventory`` (``{"entries": [{"id", "v"}, ...]}``)."""
    if not inventory:
        return []
    entries = inventory.get("entries") or []
    return [ObjectRef.parse(str(entry["id"]), str(entry.get("v", ""))) for entry in entries]


def format_inventory(refs: Iterable[ObjectRef]) -> dict[str, list[InventoryEntry]]:
    """The ``status.inventory`` value for ``refs``."""
    return {"entries": [ref.entry() for ref in refs]}


def stale_objects(old: Sequence[ObjectRef], new: Sequence[ObjectRef]) -> list[ObjectRef]:
    """Objects of the previous inventory that the new one no longer has."""
    current = {ref.id for ref in new}
    return [ref for ref in old if ref.id not in current]


def owner_labels(*, name: str, namespace: str) -> dict[str, str]:
    return {OWNER_NAME_LABEL: name, OWNER_NAMESPACE_LABEL: namespace}


def stamp_owner(objects: Iterable[dict[str, Any]], *, name: str, namespace: str) -> None:
    """Add the owner labels of Kustomization ``namespace/name`` to every object."""
    labels_to_add = owner_labels(name=name, namespace=namespace)
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        labels = metadata.get("labels") or {}
        labels.update(labels_to_add)
        metadata["labels"] = labels


def is_owned_by(obj: Mapping[str, Any], *, name: str, namespace: str) -> bool:
    """Whether an in-cluster object carries the owner labels of ``namespace/name``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(OWNER_NAME_LABEL) == name and labels.get(OWNER_NAMESPACE_LABEL) == namespace


class ApplyPolicy(StrEnum):
    """Values of ``kustomize.toolkit.fluxcd.io/ssa``."""

    OVERRIDE = "Override"
    MERGE = "Merge"
    IF_NOT_PRESENT = "IfNotPresent"
    IGNORE = "Ignore"


@dataclass(frozen=True)
class ObjectPolicy:
    """How the apply loop treats one object."""

    apply: ApplyPolicy = ApplyPolicy.OVERRIDE
    #: ``prune: disabled`` keeps the object when it leaves the source.
    prune: bool = True
    #: ``force: enabled`` (or ``spec.force``) recreates it on immutable-field changes.
    force: bool = False
    #: ``reconcile: disabled`` neither applies nor prunes it.
    reconcile: bool = True

    @property
    def skip_apply(self) -> bool:
        return not self.reconcile or self.apply is ApplyPolicy.IGNORE

    @property
    def skip_prune(self) -> bool:
        return not self.reconcile or not self.prune


def object_policy(obj: Mapping[str, Any], *, force: bool = False) -> ObjectPolicy:
    """Read the policy labels/annotations (case-insensitive values, as Flux does)."""
    apply = ApplyPolicy.OVERRIDE
    ssa_value = _metadata_value(obj, SSA_KEY)
    for policy in ApplyPolicy:
        if ssa_value is not None and ssa_value.lower() == policy.value.lower():
            apply = policy
    return ObjectPolicy(
        apply=apply,
        prune=not _metadata_is(obj, PRUNE_KEY, "disabled"),
        force=force or _metadata_is(obj, FORCE_KEY, "enabled"),
        reconcile=not _metadata_is(obj, RECONCILE_KEY, "disabled"),
    )


def _metadata_value(obj: Mapping[str, Any], key: str) -> str | None:
    metadata = obj.get("metadata") or {}
    for source in (metadata.get("annotations") or {}, metadata.get("labels") or {}):
        value = source.get(key)
        if value:
            return str(value)
    return None


def _metadata_is(obj: Mapping[str, Any], key: str, expected: str) -> bool:
    metadata = obj.get("metadata") or {}
    return any(
        str(source.get(key) or "").lower() == expected
        for source in (metadata.get("labels") or {}, metadata.get("annotations") or {})
    )
