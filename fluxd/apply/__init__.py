"""Pure building blocks of Flux-style server-side apply.

The apply loop (in the kube layer) asks this package in which order to apply
and delete objects, what the inventory looks like and which objects are stale,
how each object's labels/annotations change its treatment, whether an object is
ready (kstatus rules), and how to word the change set for an event. Nothing
here talks to the cluster.
"""

from __future__ import annotations

from fluxd.apply.changeset import Action, ChangeSet, ChangeSetEntry
from fluxd.apply.health import Health, Status, health
from fluxd.apply.inventory import (
    OWNER_NAME_LABEL,
    OWNER_NAMESPACE_LABEL,
    ApplyPolicy,
    InventoryEntry,
    InventoryError,
    ObjectPolicy,
    ObjectRef,
    format_inventory,
    inventory_from_objects,
    is_owned_by,
    object_policy,
    owner_labels,
    parse_inventory,
    stale_objects,
    stamp_owner,
)
from fluxd.apply.order import ApplyStage, apply_order, apply_stage, delete_order, sort_key

__all__ = [
    "OWNER_NAMESPACE_LABEL",
    "OWNER_NAME_LABEL",
    "Action",
    "ApplyPolicy",
    "ApplyStage",
    "ChangeSet",
    "ChangeSetEntry",
    "Health",
    "InventoryEntry",
    "InventoryError",
    "ObjectPolicy",
    "ObjectRef",
    "Status",
    "apply_order",
    "apply_stage",
    "delete_order",
    "format_inventory",
    "health",
    "inventory_from_objects",
    "is_owned_by",
    "object_policy",
    "owner_labels",
    "parse_inventory",
    "sort_key",
    "stale_objects",
    "stamp_owner",
]
