"""The reconcile skeleton every kind shares: suspend, finalizers, stop.

A fake API server holds one object; a scripted reconciler records what it was
asked to do. The skeleton is driven either one key at a time (``run_one``) or
through its real work queue.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import anyio
import pytest
import structlog

from fluxd import logs
from fluxd.aio import Outcome
from fluxd.api import meta
from fluxd.controllers.outcomes import Deferred, Reconciled
from fluxd.controllers.runtime import Controller, Reconciler
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.events import EventRecorder
from fluxd.kube.resources import Resource
from fluxd.settings import Settings

WIDGET = Resource("example.fluxd.io", "v1", "Widget", "widgets", namespaced=True)
KEY = ("apps", "w")


class FakeApi:
    """One namespace's Widgets, with the verbs the skeleton uses."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Object] = {}
        self.status_patches: list[Object] = []
        #: Metadata another client writes right after the skeleton's next read.
        self.concurrent_write: dict[str, Any] | None = None

    def put(self, obj: Object) -> None:
        metadata = obj["metadata"]
        metadata.setdefault("resourceVersion", "1")
        metadata.setdefault("generation", 1)
        self.objects[(metadata["namespace"], metadata["name"])] = obj

    def stored(self) -> Object:
        return self.objects[KEY]

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object:
        found = self.objects.get((namespace or "", name))
        if found is None:
            raise kube_errors.NotFound(f"{name} not found", status=404)
        read = copy.deepcopy(found)
        if self.concurrent_write is not None:
            found["metadata"].update(self.concurrent_write)
            found["metadata"]["resourceVersion"] = str(
                int(found["metadata"]["resourceVersion"]) + 1
            )
            self.concurrent_write = None
        return read

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object:
        obj = self.objects[(namespace or "", name)]
        metadata = obj["metadata"]
        if patch_type is PatchType.JSON:
            for operation in patch:
                if operation["op"] == "test":
                    if metadata["resourceVersion"] != operation["value"]:
                        # What the API server answers when a JSON patch's test fails.
                        raise kube_errors.Invalid("the test operation failed", status=422)
                elif operation["path"] == "/metadata/finalizers":
                    metadata["finalizers"] = list(operation["value"])
        else:
            wanted = patch.get("metadata", {}).get("resourceVersion")
            if wanted is not None and wanted != metadata["resourceVersion"]:
                raise kube_errors.Conflict("the object has been modified", status=409)
            metadata.update(
                {k: v for k, v in patch.get("metadata", {}).items() if k != "resourceVersion"}
            )
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            del self.objects[(namespace or "", name)]
        metadata["resourceVersion"] = str(int(metadata["resourceVersion"]) + 1)
        return copy.deepcopy(obj)

    async def patch_status(
        self, resource: Resource, name: str, status: Object, *, namespace: str | None = None
    ) -> Object:
        self.status_patches.append(copy.deepcopy(status))
        obj = self.objects[(namespace or "", name)]
        obj["status"] = {**obj.get("status", {}), **status}
        return copy.deepcopy(obj)


class QuietRecorder(EventRecorder):
    def __init__(self) -> None:
        super().__init__(None)
        self.reasons: list[str] = []

    async def record(self, obj: Object, *, type_: str, reason: str, **_: Any) -> None:
        self.reasons.append(reason)


class ScriptedReconciler(Reconciler):
    resource = WIDGET

    def __init__(self) -> None:
        self.reconciled: list[Object] = []
        self.finalized: list[Object] = []
        self.started = anyio.Event()
        self.release: anyio.Event | None = None

    async def reconcile(self, obj: Object) -> Reconciled:
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        self.reconciled.append(obj)
        return Reconciled(meta.Reason.SUCCEEDED, "done", status={"seen": True})

    async def finalize(self, obj: Object) -> None:
        self.finalized.append(obj)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def reconciler() -> ScriptedReconciler:
    return ScriptedReconciler()


@pytest.fixture
def controller(api: FakeApi, reconciler: ScriptedReconciler) -> Controller:
    return Controller(
        kube=cast(Kube, api),
        reconciler=reconciler,
        recorder=QuietRecorder(),
        settings=Settings(),
    )


def widget(*, suspend: bool = False, **metadata: Any) -> Object:
    return {
        "apiVersion": WIDGET.api_version,
        "kind": "Widget",
        "metadata": {"namespace": KEY[0], "name": KEY[1], **metadata},
        "spec": {"suspend": suspend, "interval": "5m"},
    }


READY = {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "before"}


async def test_a_suspended_object_is_not_reconciled_and_keeps_its_status(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    obj = widget(suspend=True, finalizers=[meta.FINALIZER])
    obj["status"] = {"conditions": [READY], "observedGeneration": 1}
    api.put(obj)

    await controller.run_one(KEY)

    assert reconciler.reconciled == []
    assert api.status_patches == []
    assert api.stored()["status"] == {"conditions": [READY], "observedGeneration": 1}


async def test_resuming_reconciles_again(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(widget(suspend=True, finalizers=[meta.FINALIZER]))
    await controller.run_one(KEY)
    api.stored()["spec"]["suspend"] = False

    await controller.run_one(KEY)

    assert len(reconciler.reconciled) == 1
    assert api.stored()["status"]["seen"] is True


async def test_the_finalizer_is_added_before_the_first_reconcile(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(widget())
    finalizers_when_reconciled: list[list[str]] = []

    async def reconcile(obj: Object) -> Reconciled:
        finalizers_when_reconciled.append(list(api.stored()["metadata"].get("finalizers", [])))
        return Reconciled(meta.Reason.SUCCEEDED, "done")

    reconciler.reconcile = reconcile  # type: ignore[method-assign]
    await controller.run_one(KEY)

    assert finalizers_when_reconciled == [[meta.FINALIZER]]
    assert api.stored()["metadata"]["finalizers"] == [meta.FINALIZER]


async def test_a_suspended_object_still_gets_its_finalizer(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    # Flux adds the finalizer before looking at suspend, so deleting it later still cleans up.
    api.put(widget(suspend=True))

    await controller.run_one(KEY)

    assert api.stored()["metadata"]["finalizers"] == [meta.FINALIZER]
    assert reconciler.reconciled == []


async def test_deleting_finalizes_then_removes_the_finalizer(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(
        widget(
            finalizers=["other.example/keep", meta.FINALIZER],
            deletionTimestamp="2026-01-01T00:00:00Z",
        )
    )

    await controller.run_one(KEY)

    assert [obj["metadata"]["name"] for obj in reconciler.finalized] == ["w"]
    assert reconciler.reconciled == []
    assert api.stored()["metadata"]["finalizers"] == ["other.example/keep"]


async def test_deleting_without_other_finalizers_lets_the_object_go(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(widget(finalizers=[meta.FINALIZER], deletionTimestamp="2026-01-01T00:00:00Z"))

    await controller.run_one(KEY)

    assert KEY not in api.objects
    assert len(reconciler.finalized) == 1


async def test_stopping_lets_the_reconcile_in_flight_finish(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(widget(finalizers=[meta.FINALIZER]))
    api.put({**widget(finalizers=[meta.FINALIZER]), "metadata": {"namespace": "apps", "name": "x"}})
    reconciler.release = anyio.Event()
    controller.queue.add(KEY)

    async with anyio.create_task_group() as group:
        group.start_soon(controller.queue.run, controller.run_one)
        await reconciler.started.wait()
        stopping = anyio.Event()

        async def stop() -> None:
            await controller.queue.shutdown(grace=60)
            stopping.set()

        group.start_soon(stop)
        # Work queued after the stop began must not start.
        await anyio.wait_all_tasks_blocked()
        controller.queue.add(("apps", "x"))
        assert not stopping.is_set(), "shutdown returned while a reconcile was in flight"
        reconciler.release.set()
        await stopping.wait()

    assert [obj["metadata"]["name"] for obj in reconciler.reconciled] == ["w"]
    assert api.stored()["status"]["seen"] is True, "the in-flight reconcile's status was lost"


async def test_adding_the_finalizer_never_drops_one_another_client_just_added(
    api: FakeApi, controller: Controller
) -> None:
    api.put(widget())
    api.concurrent_write = {"finalizers": ["other.example/keep"]}

    first = await controller.run_one(KEY)
    await controller.run_one(KEY)

    assert first.outcome is not Outcome.DONE  # the stale write was refused, not applied
    assert sorted(api.stored()["metadata"]["finalizers"]) == sorted(
        ["other.example/keep", meta.FINALIZER]
    )


async def test_a_finalizer_removal_that_loses_a_race_is_retried_not_raised(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    api.put(widget(finalizers=[meta.FINALIZER], deletionTimestamp="2026-01-01T00:00:00Z"))
    api.concurrent_write = {"labels": {"touched": "yes"}}

    first = await controller.run_one(KEY)
    assert first.outcome is Outcome.RETRY
    await controller.run_one(KEY)

    assert KEY not in api.objects


class ScriptedKustomizations(ScriptedReconciler):
    resource = Resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations")


async def test_an_object_with_a_refused_field_is_stalled_and_never_acted_on(
    api: FakeApi,
) -> None:
    reconciler = ScriptedKustomizations()
    controller = Controller(
        kube=cast(Kube, api), reconciler=reconciler, recorder=QuietRecorder(), settings=Settings()
    )
    obj = widget(finalizers=[meta.FINALIZER])
    obj["spec"]["buildMetadata"] = ["originAnnotations"]
    api.put(obj)

    result = await controller.run_one(KEY)

    assert reconciler.reconciled == []
    assert result.outcome is Outcome.STOP
    ready = meta.condition_of(api.stored(), "Ready")
    assert ready is not None and ready["status"] == "False"
    assert ready["reason"] == "UnsupportedField"
    assert "spec.buildMetadata is not supported by fluxd" in ready["message"]
    assert meta.condition_of(api.stored(), "Stalled") is not None
    assert cast(QuietRecorder, controller.recorder).reasons == ["UnsupportedField"]


async def test_a_deferred_reconcile_leaves_the_status_as_it_was(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    obj = widget(finalizers=[meta.FINALIZER])
    obj["status"] = {"conditions": [READY], "observedGeneration": 1}
    api.put(obj)

    async def reconcile(obj: Object) -> Reconciled:
        raise Deferred("ArtifactFailed", "artifact is being stored again", requeue_after=1.0)

    reconciler.reconcile = reconcile  # type: ignore[method-assign]
    result = await controller.run_one(KEY)

    assert api.status_patches == []
    assert api.stored()["status"] == {"conditions": [READY], "observedGeneration": 1}
    assert result.outcome is Outcome.DONE and result.requeue_after == 1.0
    assert cast(QuietRecorder, controller.recorder).reasons == []


def _cache(controller: Controller, obj: Object) -> None:
    """What the informer holds once it has listed (or watched) ``obj``."""
    controller.informer.store[KEY] = copy.deepcopy(obj)
    controller.informer.synced.set()


async def test_a_reconcile_reads_the_synced_cache_not_the_api_server(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    obj = widget(finalizers=[meta.FINALIZER])
    api.put(obj)
    _cache(controller, obj)
    reads: list[str] = []
    live_get = api.get

    async def counting_get(
        resource: Resource, name: str, *, namespace: str | None = None
    ) -> Object:
        reads.append(name)
        return await live_get(resource, name, namespace=namespace)

    api.get = counting_get  # type: ignore[method-assign]

    await controller.run_one(KEY)

    assert reads == []
    assert len(reconciler.reconciled) == 1
    # The reconciler got a copy: what it changes never leaks into the cache.
    reconciler.reconciled[0]["spec"]["interval"] = "1h"
    assert controller.informer.store[KEY]["spec"]["interval"] == "5m"


async def test_after_its_own_status_write_a_reconcile_never_starts_from_the_older_cache(
    api: FakeApi, reconciler: ScriptedReconciler, controller: Controller
) -> None:
    obj = widget(finalizers=[meta.FINALIZER])
    api.put(obj)
    _cache(controller, obj)
    await controller.run_one(KEY)
    assert api.stored()["status"]["seen"] is True
    # The watch has not brought the status write yet: the cache still has the old object.

    await controller.run_one(KEY)

    assert reconciler.reconciled[1].get("status", {}).get("seen") is True


class LoggingReconciler(ScriptedReconciler):
    async def reconcile(self, obj: Object) -> Reconciled:
        structlog.get_logger("fluxd.controllers.widget").info("applied", objects=3)
        return await super().reconcile(obj)


async def test_the_reconcilers_own_lines_name_the_object(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.put(widget(finalizers=[meta.FINALIZER]))
    controller = Controller(
        kube=cast(Kube, api),
        reconciler=LoggingReconciler(),
        recorder=QuietRecorder(),
        settings=Settings(),
    )
    logs.configure(level="info", fmt="json")
    try:
        await controller.run_one(KEY)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    [applied] = [line for line in lines if line["msg"] == "applied"]
    # `flux logs --kind=Widget --name=w --namespace=apps` finds it.
    assert (applied["controllerKind"], applied["name"], applied["namespace"]) == (
        "Widget",
        "w",
        "apps",
    )
    assert (
        applied["reconcileID"]
        == next(line for line in lines if line["msg"] == "reconciled")["reconcileID"]
    )
