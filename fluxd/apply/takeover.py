"""Taking over fields that ``kubectl`` (or an earlier controller) wrote, as Flux does.

Server-side apply only removes a field from an object when its last manager
stops applying it. An object first written by ``kubectl apply`` (client side),
``kubectl create``/``edit`` or a controller that used updates is co-owned by
those managers, so a field deleted from Git would stay on the live object for
ever. Before applying, Flux's kustomize-controller therefore rewrites the
object's ``metadata.managedFields``: the entries of the managers below become
(merged into) its own ``Apply`` entry, and kubectl's
``last-applied-configuration`` annotation and Flux v1's checksum
annotation/label are dropped. From then on fluxd is the only applier of those
fields, and the next apply prunes what Git no longer has.

Managers taken over (prefix match, top-level entries only, as Flux):
``kubectl`` (Apply: ``kubectl apply --server-side``; Update:
``kubectl-client-side-apply``, ``kubectl-edit``, ``kubectl-create``...),
``before-first-apply`` (Update), fluxd's own field manager (Update) and each
``override-manager`` setting value (Apply and Update, Flux's
``--override-manager`` flag). Objects marked
``kustomize.toolkit.fluxcd.io/ssa: Merge`` (in Git or in the cluster) are left
as they are: their other managers are meant to keep their fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fluxd.apply.inventory import ApplyPolicy, object_policy

Operation = Literal["Apply", "Update"]

#: Annotations and labels removed from live objects before apply.
CLEANUP_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "kustomize.toolkit.fluxcd.io/checksum",
    "fluxcd.io/sync-checksum",
)
CLEANUP_LABELS = ("fluxcd.io/sync-gc-mark",)


@dataclass(frozen=True)
class FieldManager:
    """A manager whose top-level ``managedFields`` entries are taken over."""

    name: str
    operation: Operation

    def matches(self, entry: Mapping[str, Any]) -> bool:
        return (
            entry.get("operation") == self.operation
            and not entry.get("subresource")
            and str(entry.get("manager", "")).startswith(self.name)
        )


def takeover_managers(
    field_manager: str, overrides: Sequence[str] = ()
) -> tuple[FieldManager, ...]:
    """The managers kustomize-controller takes over, plus ``overrides`` (``--override-manager``)."""
    managers = [
        FieldManager("kubectl", "Apply"),
        FieldManager("kubectl", "Update"),
        FieldManager("before-first-apply", "Update"),
        FieldManager(field_manager, "Update"),
    ]
    for name in overrides:
        managers += [FieldManager(name, "Apply"), FieldManager(name, "Update")]
    return tuple(managers)


def cleanup_patch(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    field_manager: str,
    managers: Sequence[FieldManager],
) -> list[dict[str, Any]]:
    """The JSON patch that hands ``live``'s foreign fields to ``field_manager``; [] when none."""
    if ApplyPolicy.MERGE in (object_policy(desired).apply, object_policy(live).apply):
        return []
    metadata = live.get("metadata") or {}
    patch: list[dict[str, Any]] = []
    for key in CLEANUP_ANNOTATIONS:
        if key in (metadata.get("annotations") or {}):
            patch.append({"op": "remove", "path": f"/metadata/annotations/{_escape(key)}"})
    for key in CLEANUP_LABELS:
        if key in (metadata.get("labels") or {}):
            patch.append({"op": "remove", "path": f"/metadata/labels/{_escape(key)}"})
    entries = taken_over(
        metadata.get("managedFields") or [], field_manager=field_manager, managers=managers
    )
    if entries is not None:
        patch.append({"op": "replace", "path": "/metadata/managedFields", "value": entries})
    return patch


def taken_over(
    entries: Sequence[Mapping[str, Any]],
    *,
    field_manager: str,
    managers: Sequence[FieldManager],
) -> list[dict[str, Any]] | None:
    """``entries`` with the matching managers merged into ``field_manager``'s Apply entry.

    ``None`` when no entry matches (nothing to patch).
    """
    own: dict[str, Any] | None = None
    for entry in entries:
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply":
            own = dict(entry)
    kept: list[dict[str, Any]] = []
    edited = False
    for entry in entries:
        if own is not None and entry == own:
            continue
        if not any(manager.matches(entry) for manager in managers):
            kept.append(dict(entry))
            continue
        edited = True
        if own is None:
            own = {**entry, "manager": field_manager, "operation": "Apply"}
        else:
            own["fieldsV1"] = merge_field_sets(own.get("fieldsV1"), entry.get("fieldsV1"))
    if not edited or own is None:
        return None
    return [*kept, own]


def merge_field_sets(first: object, second: object) -> dict[str, Any]:
    """The union of two ``fieldsV1`` tries."""
    merged: dict[str, Any] = dict(first) if isinstance(first, Mapping) else {}
    if not isinstance(second, Mapping):
        return merged
    for key, value in second.items():
        merged[key] = merge_field_sets(merged.get(key), value) if key in merged else value
    return merged


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
