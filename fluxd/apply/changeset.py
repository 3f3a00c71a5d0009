"""What one apply (or prune) did to each object, worded like Flux's events.

Flux reports an apply as one line per changed object, e.g.
``Secret/realm/realm-config-ix configured``; unchanged and skipped objects are
left out of the event (nobody needs to hear that nothing happened), but kept in
the change set so health checks and the inventory still see them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fluxd.apply.inventory import ObjectRef


class Action(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"

    @property
    def changed(self) -> bool:
        """Whether the action is worth an event."""
        return self in (Action.CREATED, Action.CONFIGURED, Action.DELETED)


@dataclass(frozen=True)
class ChangeSetEntry:
    ref: ObjectRef
    action: Action

    @property
    def subject(self) -> str:
        return self.ref.subject

    def __str__(self) -> str:
        return f"{self.subject} {self.action.value}"


@dataclass
class ChangeSet:
    entries: list[ChangeSetEntry] = field(default_factory=list)

    def add(self, obj: Mapping[str, Any] | ObjectRef, action: Action) -> ChangeSetEntry:
        ref = obj if isinstance(obj, ObjectRef) else ObjectRef.from_object(obj)
        entry = ChangeSetEntry(ref=ref, action=action)
        self.entries.append(entry)
        return entry

    def extend(self, entries: Iterable[ChangeSetEntry]) -> None:
        self.entries.extend(entries)

    def __iter__(self) -> Iterator[ChangeSetEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def changed(self) -> list[ChangeSetEntry]:
        return [entry for entry in self.entries if entry.action.changed]

    def has_changes(self) -> bool:
        return any(entry.action.changed for entry in self.entries)

    def event_message(self) -> str:
        """One line per changed object, or ``""`` when nothing changed."""
        return "\n".join(str(entry) for entry in self.changed)

    def __str__(self) -> str:
        return "\n".join(str(entry) for entry in self.entries)

    def to_map(self) -> dict[str, str]:
        """``{subject: action}`` for structured logs."""
        return {entry.subject: entry.action.value for entry in self.entries}

    def refs(self, *, include_skipped: bool = True) -> list[ObjectRef]:
        return [
            entry.ref
            for entry in self.entries
            if include_skipped or entry.action is not Action.SKIPPED
        ]
