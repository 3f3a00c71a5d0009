"""A deleted object leaves nothing behind: no metric series, no backoff record."""

from __future__ import annotations

from typing import cast

from fluxd.controllers.outcomes import Reconciled
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Change
from fluxd.kube.resources import Resource
from fluxd.metrics import RECONCILE_CONDITION, RECONCILE_DURATION, REGISTRY, SUSPEND_STATUS
from fluxd.settings import Settings

WIDGET = Resource("example.fluxd.dev", "v1", "Widget", "widgets")


class Widgets(Reconciler):
    resource = WIDGET

    def __init__(self) -> None:
        self.forgotten: list[tuple[str, str]] = []

    async def reconcile(self, obj: Object) -> Reconciled:
        raise AssertionError("not reconciled in this test")

    def forget(self, key: tuple[str, str]) -> None:
        self.forgotten.append(key)


def _series(name: str) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels.values())
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name.startswith(name) and sample.labels.get("name") == "gone"
    }


def test_deleting_an_object_removes_its_series_and_its_backoff() -> None:
    reconciler = Widgets()
    controller = Controller(
        kube=cast(Kube, object()),
        reconciler=reconciler,
        recorder=EventRecorder(None),
        settings=Settings(),
    )
    key = ("ns", "gone")
    RECONCILE_DURATION.labels("Widget", "gone", "ns").observe(0.5)
    RECONCILE_CONDITION.labels("Widget", "gone", "ns", "Ready", "False").set(1)
    SUSPEND_STATUS.labels("Widget", "gone", "ns").set(0)
    controller.queue.add_rate_limited(key)
    controller.queue.add_rate_limited(key)
    assert controller.queue.failures(key) == 2
    assert _series("gotk_reconcile_duration_seconds")

    obj: Object = {"metadata": {"namespace": "ns", "name": "gone"}}
    controller._on_change(Change.DELETED, obj, None)

    assert _series("gotk_reconcile_duration_seconds") == set()
    assert _series("gotk_reconcile_condition") == set()
    assert _series("gotk_suspend_status") == set()
    assert controller.queue.failures(key) == 0
    assert reconciler.forgotten == [key]
