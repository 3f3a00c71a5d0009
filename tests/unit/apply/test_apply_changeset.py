"""Change sets worded like Flux's events."""

from __future__ import annotations

from fluxd.apply import Action, ChangeSet

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "realm-config-ix", "namespace": "realm"},
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "realm"}}
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "realm", "namespace": "realm"},
}


def test_event_lists_changed_objects_one_per_line() -> None:
    changes = ChangeSet()
    changes.add(NAMESPACE, Action.CREATED)
    changes.add(SECRET, Action.CONFIGURED)
    changes.add(DEPLOYMENT, Action.UNCHANGED)

    assert (
        changes.event_message()
        == "Namespace/realm created\nSecret/realm/realm-config-ix configured"
    )
    assert changes.has_changes()


def test_nothing_changed_means_no_event() -> None:
    changes = ChangeSet()
    changes.add(SECRET, Action.UNCHANGED)
    changes.add(DEPLOYMENT, Action.SKIPPED)

    assert changes.event_message() == ""
    assert not changes.has_changes()
    assert str(changes) == "Secret/realm/realm-config-ix unchanged\nDeployment/realm/realm skipped"


def test_deletions_are_reported_and_mapped_for_logs() -> None:
    changes = ChangeSet()
    changes.add(SECRET, Action.DELETED)

    assert changes.event_message() == "Secret/realm/realm-config-ix deleted"
    assert changes.to_map() == {"Secret/realm/realm-config-ix": "deleted"}


def test_skipped_objects_can_be_left_out_of_health_checks() -> None:
    changes = ChangeSet()
    changes.add(SECRET, Action.CONFIGURED)
    changes.add(DEPLOYMENT, Action.SKIPPED)

    assert [ref.kind for ref in changes.refs(include_skipped=False)] == ["Secret"]
