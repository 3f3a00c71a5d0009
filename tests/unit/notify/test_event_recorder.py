"""Events written by ``EventRecorder``: de-duplicated, and never stuck behind each other."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import anyio

from fluxd.controllers.notification import AlertDispatcher
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import TRACE, EventRecorder, Recorded
from fluxd.kube.resources import Resource


@dataclass
class SlowEventsApi:
    """Answers Event creates and patches; a create about ``blocked`` waits for ``release``."""

    blocked: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    created: list[Object] = field(default_factory=list)
    patched: list[tuple[str, Any]] = field(default_factory=list)

    async def create(self, resource: Resource, body: Object, **_: Any) -> Any:
        if body["regarding"]["name"] == self.blocked:
            self.waiting.set()
            await self.release.wait()
        self.created.append(body)
        return body

    async def patch(self, resource: Resource, name: str, patch: Any, **_: Any) -> Any:
        self.patched.append((name, patch))
        return {}


def repository(name: str) -> Object:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": "apps", "uid": f"uid-{name}"},
    }


def recorder_on(api: SlowEventsApi) -> EventRecorder:
    return EventRecorder(cast(Kube, api), instance="test")


async def test_a_slow_write_for_one_object_does_not_hold_up_events_about_another() -> None:
    api = SlowEventsApi(blocked="slow")
    recorder = recorder_on(api)
    async with anyio.create_task_group() as group:
        group.start_soon(recorder.normal, repository("slow"), "Progressing", "fetching")
        await api.waiting.wait()
        # Without per-object locking this waits for the slow create and the guard fails.
        with anyio.fail_after(5):
            await recorder.normal(repository("fast"), "Succeeded", "stored artifact")
        assert [body["regarding"]["name"] for body in api.created] == ["fast"]
        api.release.set()
    assert [body["regarding"]["name"] for body in api.created] == ["fast", "slow"]


async def test_repeats_of_one_event_during_a_slow_create_become_one_event_with_a_series() -> None:
    api = SlowEventsApi(blocked="slow")
    recorder = recorder_on(api)
    async with anyio.create_task_group() as group:
        group.start_soon(recorder.warning, repository("slow"), "BuildFailed", "bad yaml")
        await api.waiting.wait()
        group.start_soon(recorder.warning, repository("slow"), "BuildFailed", "bad yaml")
        await asyncio.sleep(0)  # let the repeat reach the object's lock
        api.release.set()
    assert len(api.created) == 1
    name = api.created[0]["metadata"]["name"]
    assert [(patched, patch["series"]["count"]) for patched, patch in api.patched] == [(name, 2)]


async def test_no_lock_is_kept_for_objects_once_their_events_are_written() -> None:
    api = SlowEventsApi()
    recorder = recorder_on(api)
    for index in range(50):
        await recorder.normal(repository(f"repo-{index}"), "Succeeded", "stored artifact")
    assert len(api.created) == 50
    assert recorder._locks == {}


async def test_trace_events_are_normal_events_in_the_cluster_written_once_and_never_notified() -> (
    None
):
    api = SlowEventsApi()
    recorder = recorder_on(api)
    handed: list[Recorded] = []
    recorder.add_sink(handed.append)
    notified: list[Any] = []
    dispatcher = AlertDispatcher(registry=cast(Any, None), no_cross_namespace_refs=False)
    dispatcher.dispatch = notified.append  # type: ignore[method-assign,assignment]
    recorder.add_sink(dispatcher)
    for _ in range(3):  # an unchanged source, polled three times
        await recorder.record(
            repository("podinfo"),
            type_=TRACE,
            reason="GitOperationSucceeded",
            message="no changes since last reconciliation",
        )
    assert [body["type"] for body in api.created] == ["Normal"]
    assert api.patched == []
    assert [recorded.severity for recorded in handed] == ["trace"] * 3
    assert notified == []
