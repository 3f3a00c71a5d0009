"""The restarter service end to end against an in-memory API: what it writes, and when.

The fake API serves list and watch from dicts and records every write, so
these tests see exactly the patches, Jobs and Events a cluster would get.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from fluxd.controllers.manager import Components
from fluxd.controllers.restarter import RELOAD_FAILED, RELOADED, Restarter, wire
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder, Recorded
from fluxd.kube.resources import Resource
from fluxd.metrics import REGISTRY
from fluxd.restarter import WorkloadKind, pause
from fluxd.restarter.annotations import profile_workload
from fluxd.settings import Settings
from tests.unit.restarter.restarter_objects import (
    NAMESPACE,
    apply_strategic,
    configmap,
    secret,
    workload,
)

AUTO = {"reloader.stakater.com/auto": "true"}
ENV = "STAKATER_REALM_CONFIG_IX_SECRET"
PAUSE_PERIOD = "deployment.reloader.stakater.com/pause-period"
PAUSED_AT = "deployment.reloader.stakater.com/paused-at"

Object = dict[str, Any]

CSI_PLURALS = {
    "SecretProviderClass": "secretproviderclasses",
    "SecretProviderClassPodStatus": "secretproviderclasspodstatuses",
}


@dataclasses.dataclass
class Write:
    verb: str
    kind: str
    name: str
    body: Object
    namespace: str = NAMESPACE


class FakeApi:
    """list/watch/get/patch/create on in-memory objects; watch events are pushed by the test."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], Object]] = {}
        self.streams: dict[str, list[tuple[str | None, MemoryObjectSendStream[Object]]]] = {}
        self.writes: list[Write] = []
        self.forbidden: set[str] = set()
        # Errors the next patches of a workload fail with, in order.
        self.failing: dict[str, list[kube_errors.KubeError]] = {}
        # Called before a patch of a workload is looked at (a concurrent writer).
        self.before_patch: dict[str, Callable[[], None]] = {}
        self.rejected: list[Write] = []
        # Errors the next creates of an object (by name) fail with, in order.
        self.failing_creates: dict[str, list[kube_errors.KubeError]] = {}
        self.lists: list[tuple[str, str | None]] = []
        self.rollouts = False
        self.csi = False
        self._version = 1

    def put(self, obj: Object) -> None:
        self._version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._version)
        self.objects.setdefault(obj["kind"], {})[_key(obj)] = obj

    async def emit(self, change: str, obj: Object) -> None:
        if change == "DELETED":
            self.objects.get(obj["kind"], {}).pop(_key(obj), None)
        else:
            self.put(obj)
            obj = self.objects[obj["kind"]][_key(obj)]
        for namespace, stream in self.streams.get(obj["kind"], []):
            if namespace in (None, obj["metadata"].get("namespace")):
                await stream.send({"type": change, "object": copy.deepcopy(obj)})

    async def deliver(self, change: str, obj: Object) -> None:
        """Send the stored ``obj`` to watchers as it is (a watch event that arrives late)."""
        stored = self.objects[obj["kind"]][_key(obj)]
        for namespace, stream in self.streams.get(obj["kind"], []):
            if namespace in (None, stored["metadata"].get("namespace")):
                await stream.send({"type": change, "object": copy.deepcopy(stored)})

    async def list_all(
        self, resource: Resource, *, namespace: str | None = None, **_: Any
    ) -> tuple[list[Object], str]:
        self.lists.append((resource.kind, namespace))
        items = [
            copy.deepcopy(o)
            for (object_namespace, _name), o in self.objects.get(resource.kind, {}).items()
            if namespace in (None, object_namespace)
        ]
        return items, str(self._version)

    async def watch(
        self, resource: Resource, *, namespace: str | None = None, **_: Any
    ) -> AsyncIterator[Object]:
        send, receive = anyio.create_memory_object_stream[Object](100)
        self.streams.setdefault(resource.kind, []).append((namespace, send))
        async with receive:
            async for event in receive:
                yield event

    async def get_or_none(self, resource: Resource, name: str, *, namespace: str) -> Object | None:
        found = self.objects.get(resource.kind, {}).get((namespace, name))
        return copy.deepcopy(found) if found else None

    async def patch(
        self, resource: Resource, name: str, body: Object, *, namespace: str, **_: Any
    ) -> Object:
        if name in self.before_patch:
            self.before_patch.pop(name)()
        if name in self.forbidden:
            raise kube_errors.Forbidden(f"{resource.plural} {name!r} is forbidden", status=403)
        current = self.objects[resource.kind][(namespace, name)]
        failures = self.failing.get(name)
        if failures:
            self.rejected.append(Write("patch", resource.kind, name, body))
            raise failures.pop(0)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            self.rejected.append(Write("patch", resource.kind, name, body))
            raise kube_errors.Conflict(f"{name!r} has been modified", status=409)
        self.writes.append(Write("patch", resource.kind, name, body, namespace))
        # Enough of the server's merge for what the restarter sends; watchers see it.
        change = {key: value for key, value in body.items() if key != "metadata"}
        change["metadata"] = {
            key: value
            for key, value in (body.get("metadata") or {}).items()
            if key != "resourceVersion"
        }
        await self.emit("MODIFIED", apply_strategic(current, change))
        return copy.deepcopy(self.objects[resource.kind][(namespace, name)])

    async def create(self, resource: Resource, body: Object, *, namespace: str) -> Object:
        created = copy.deepcopy(body)
        if "name" not in created["metadata"]:
            created["metadata"]["name"] = body["metadata"]["generateName"] + "x1"
        failures = self.failing_creates.get(created["metadata"]["name"])
        if failures:
            self.rejected.append(Write("create", resource.kind, created["metadata"]["name"], body))
            raise failures.pop(0)
        self.writes.append(Write("create", resource.kind, created["metadata"]["name"], body))
        if "name" in body["metadata"]:
            created["metadata"]["uid"] = f"uid-{self._version}"
            await self.emit("ADDED", created)
            created = copy.deepcopy(self.objects[resource.kind][_key(created)])
        return created

    async def delete(self, resource: Resource, name: str, *, namespace: str, **_: Any) -> None:
        found = self.objects.get(resource.kind, {}).get((namespace, name))
        self.writes.append(Write("delete", resource.kind, name, {}, namespace))
        if found is not None:
            await self.emit("DELETED", found)

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        if self.rollouts and kind == "Rollout":
            return Resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")
        if self.csi and kind in CSI_PLURALS:
            return Resource("secrets-store.csi.x-k8s.io", "v1", kind, CSI_PLURALS[kind])
        raise kube_errors.NotFound(f"no kind {kind}", status=404)

    def close(self) -> None:
        for streams in self.streams.values():
            for _namespace, stream in streams:
                stream.close()
        self.streams.clear()

    def patches(self, name: str) -> list[Object]:
        return [w.body for w in self.writes if w.verb == "patch" and w.name == name]


def _key(obj: Object) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def sha1_of(data: dict[str, bytes]) -> str:
    return hashlib.sha1(
        b";".join(sorted(k.encode() + b"=" + v for k, v in data.items()))
    ).hexdigest()


def stamped(name: str, digest: str, **kwargs: Any) -> Object:
    """A Deployment Reloader (or fluxd) already restarted for the Secret's ``digest``."""
    deployment = workload(name, annotations=AUTO, **kwargs)
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": ENV, "value": digest}
    ]
    return deployment


def env_in(patch: Object) -> dict[str, str]:
    containers = patch["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for c in containers for e in c.get("env") or ()}


@dataclasses.dataclass
class Running:
    api: FakeApi
    service: Restarter
    events: list[Recorded]


@asynccontextmanager
async def running(api: FakeApi, **settings: Any) -> AsyncIterator[Running]:
    options = {"restart_coalesce_window": 0.05, **settings}
    events: list[Recorded] = []
    recorder = EventRecorder(None)
    recorder.add_sink(events.append)
    service = Restarter(kube=cast(Kube, api), recorder=recorder, settings=Settings(**options))
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(service.run)
            with anyio.fail_after(5):
                await service.ready.wait()
            yield Running(api, service, events)
            group.cancel_scope.cancel()
    finally:
        api.close()


async def eventually(condition: Callable[[], object], *, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def settle() -> None:
    """Long enough for any coalesced batch to have been written."""
    await anyio.sleep(0.3)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    yield FakeApi()


# -- changes while running -------------------------------------------------------------


async def test_a_data_change_patches_the_deployment_once_and_reports_it(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    async with running(api) as run:
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")
        await settle()
        [patch] = api.patches("realm-ix")
        assert env_in(patch) == {ENV: sha1_of({"realm_ix.toml": b"v2"})}
        [event] = run.events
        assert (event.reason, event.type) == (RELOADED, "Normal")
        assert "'realm-config-ix' of type 'SECRET'" in event.message


async def test_metadata_only_changes_and_unused_objects_restart_nothing(api: FakeApi) -> None:
    api.put(secret())
    api.put(secret("nobody-uses-me"))
    api.put(workload(annotations=AUTO))
    async with running(api):
        relabelled = secret()
        relabelled["metadata"]["labels"] = {"team": "edge"}
        await api.emit("MODIFIED", relabelled)
        await api.emit("MODIFIED", secret("nobody-uses-me", data={"x": b"2"}))
        await settle()
    assert api.writes == []


async def test_changes_within_the_window_make_one_patch(api: FakeApi) -> None:
    api.put(secret())
    api.put(configmap())
    deployment = workload(annotations=AUTO)
    pod = deployment["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "settings", "configMap": {"name": "realm-settings"}})
    pod["containers"][0]["volumeMounts"].append({"name": "settings", "mountPath": "/s"})
    api.put(deployment)
    async with running(api, restart_coalesce_window=0.3):
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await api.emit("MODIFIED", configmap(data={"b": "2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")
        await settle()
    [patch] = api.patches("realm-ix")
    assert set(env_in(patch)) == {ENV, "STAKATER_REALM_SETTINGS_CONFIGMAP"}


@pytest.mark.parametrize(
    ("settings", "namespace_restarts"),
    [
        pytest.param({"namespaces_to_ignore": (NAMESPACE,)}, False, id="ignored-namespace"),
        pytest.param({"resources_to_ignore": ("secrets",)}, False, id="ignored-secrets"),
        pytest.param({"resource_label_selector": "reload=yes"}, False, id="label-mismatch"),
        pytest.param({"resources_to_ignore": ("configMaps",)}, True, id="other-kind-ignored"),
    ],
)
async def test_filters_from_the_settings(
    api: FakeApi, settings: dict[str, Any], namespace_restarts: bool
) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    async with running(api, **settings):
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await settle()
    assert bool(api.patches("realm-ix")) is namespace_restarts


async def test_a_refused_patch_is_reported_and_others_are_still_restarted(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload("locked", annotations=AUTO))
    api.put(workload("open", annotations=AUTO))
    api.forbidden.add("locked")
    async with running(api) as run:
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: len(run.events) == 2, what="two events")
    by_name = {event.regarding["name"]: event for event in run.events}
    assert (by_name["locked"].reason, by_name["locked"].type) == (RELOAD_FAILED, "Warning")
    assert "forbidden" in by_name["locked"].message
    assert by_name["open"].reason == RELOADED
    assert api.patches("open")


async def test_a_cronjob_gets_a_job_and_keeps_its_template(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload("nightly", kind="CronJob", api_version="batch/v1", annotations=AUTO))
    async with running(api):
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: api.writes, what="job")
    [write] = api.writes
    assert (write.verb, write.kind) == ("create", "Job")
    assert write.body["metadata"]["generateName"] == "nightly-"


@pytest.mark.parametrize(
    "written",
    [
        pytest.param("ADDED", id="created-just-before"),
        pytest.param("MODIFIED", id="annotated-just-before"),
    ],
)
async def test_a_workload_event_arriving_after_the_change_still_restarts(
    api: FakeApi, written: str
) -> None:
    api.put(secret())
    if written == "MODIFIED":
        api.put(workload())
    async with running(api):
        # The workload is written before the Secret, but its watch event comes later.
        api.put(workload(annotations=AUTO))
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await settle()
        await api.deliver(written, workload())
        await eventually(lambda: api.patches("realm-ix"), what="patch")
        await settle()
    [patch] = api.patches("realm-ix")
    assert env_in(patch) == {ENV: sha1_of({"a": b"2"})}


async def test_a_late_event_of_a_cronjob_already_handled_starts_no_second_job(
    api: FakeApi,
) -> None:
    api.put(secret())
    nightly = workload("nightly", kind="CronJob", api_version="batch/v1", annotations=AUTO)
    api.put(nightly)
    async with running(api):
        # A status write of the CronJob before the change, whose event comes after it.
        nightly["status"] = {"lastScheduleTime": "2024-05-01T00:00:00Z"}
        api.put(nightly)
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: api.writes, what="job")
        await api.deliver("MODIFIED", nightly)
        await settle()
    assert [(w.verb, w.kind) for w in api.writes] == [("create", "Job")]


async def test_a_workload_written_after_the_change_is_not_restarted(api: FakeApi) -> None:
    api.put(secret())
    async with running(api):
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        # Created after the change: its pods start with the new content already.
        await api.emit("ADDED", workload(annotations=AUTO))
        await settle()
    assert api.writes == []


def plain_job(name: str = "migrate") -> Object:
    job = workload(name, kind="Job", api_version="batch/v1", annotations=AUTO)
    job["spec"] = {
        "backoffLimit": 2,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": f"uid-{name}"}},
        "template": job["spec"]["template"],
    }
    job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] = (
        f"uid-{name}"
    )
    return job


async def test_a_job_is_deleted_and_created_again_with_the_digest(api: FakeApi) -> None:
    api.put(secret())
    api.put(plain_job())
    async with running(api) as run:
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: run.events, what="event")
    assert [(w.verb, w.kind, w.name) for w in api.writes] == [
        ("delete", "Job", "migrate"),
        ("create", "Job", "migrate"),
    ]
    created = api.writes[1].body
    assert env_in(created) == {ENV: sha1_of({"a": b"2"})}
    assert "selector" not in created["spec"] and created["spec"]["backoffLimit"] == 2
    assert run.events[0].reason == RELOADED


async def test_ignored_workload_types_are_never_restarted(api: FakeApi) -> None:
    # Reloader's --ignored-workload-types=jobs: the Job keeps running on the old config.
    api.put(secret())
    api.put(plain_job())
    api.put(workload(annotations=AUTO))
    async with running(api, ignored_workload_types=("jobs",)) as run:
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: run.events, what="the Deployment's event")
    assert [(w.verb, w.kind) for w in api.writes] == [("patch", "Deployment")]
    assert WorkloadKind.JOB not in run.service.workload_informers


async def test_a_job_whose_create_failed_is_created_on_the_retry(api: FakeApi) -> None:
    api.put(secret())
    api.put(plain_job())
    api.failing_creates["migrate"] = [denied("migrate")]
    async with running(api, min_retry_delay=0.01, max_retry_delay=0.02) as run:
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: any(e.reason == RELOADED for e in run.events), what="event")
    assert [(w.verb, w.name) for w in api.writes] == [("delete", "migrate"), ("create", "migrate")]
    assert env_in(api.writes[1].body) == {ENV: sha1_of({"a": b"2"})}
    assert api.objects["Job"][(NAMESPACE, "migrate")]


@pytest.mark.parametrize(
    ("reload_on_create", "restarts"),
    [pytest.param(True, True, id="reload-on-create"), pytest.param(False, False, id="default")],
)
async def test_an_object_created_while_watched(
    api: FakeApi, reload_on_create: bool, restarts: bool
) -> None:
    api.put(workload(annotations=AUTO))
    async with running(api, reload_on_create=reload_on_create):
        await api.emit("ADDED", secret())
        await settle()
    assert bool(api.patches("realm-ix")) is restarts


async def test_reload_on_delete_rolls_users_of_a_deleted_secret(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    async with running(api, reload_on_delete=True):
        await api.emit("DELETED", secret())
        await eventually(lambda: api.patches("realm-ix"), what="patch")
    assert env_in(api.patches("realm-ix")[0]) == {ENV: hashlib.sha1(b"").hexdigest()}


# -- start-up --------------------------------------------------------------------------


async def test_start_up_rolls_only_workloads_whose_record_is_stale(api: FakeApi) -> None:
    content = {"realm_ix.toml": b"current"}
    api.put(secret(data=content))
    api.put(stamped("current", sha1_of(content)))
    api.put(stamped("stale", sha1_of({"realm_ix.toml": b"old"})))
    api.put(workload("never-restarted", annotations=AUTO))
    async with running(api):
        await eventually(lambda: api.patches("stale"), what="stale caught up")
        await settle()
    assert [w.name for w in api.writes] == ["stale"]
    assert env_in(api.patches("stale")[0]) == {ENV: sha1_of(content)}


async def test_a_pause_that_ended_while_down_is_resumed_at_start(api: FakeApi) -> None:
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.put(
        workload(
            "held",
            annotations={
                **AUTO,
                "deployment.reloader.stakater.com/pause-period": "5m",
                "deployment.reloader.stakater.com/paused-at": long_ago,
            },
            spec_extra={"paused": True},
        )
    )
    async with running(api):
        await eventually(lambda: api.patches("held"), what="resume")
    [patch] = api.patches("held")
    assert patch["spec"] == {"paused": False}
    assert patch["metadata"]["annotations"] == {"deployment.reloader.stakater.com/paused-at": None}


async def test_a_pause_period_pauses_in_the_restart_patch(api: FakeApi) -> None:
    api.put(secret())
    api.put(
        workload(
            "held",
            annotations={**AUTO, "deployment.reloader.stakater.com/pause-period": "5m"},
        )
    )
    async with running(api):
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: api.patches("held"), what="patch")
        await settle()
    [patch] = api.patches("held")
    assert patch["spec"]["paused"] is True
    assert "deployment.reloader.stakater.com/paused-at" in patch["metadata"]["annotations"]


async def test_a_deployment_event_looks_at_paused_deployments_only(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many Deployments and none paused, an event costs O(1) pause checks, not O(N)."""
    for number in range(200):
        api.put(workload(f"plain-{number}", annotations=AUTO))
    held = workload("held", annotations={**AUTO, PAUSE_PERIOD: "5m"})
    api.put(held)
    looks: list[str] = []
    real_pause_state = pause.pause_state

    def counting(deployment: Object, **kwargs: Any) -> Any:
        looks.append(deployment["metadata"]["name"])
        return real_pause_state(deployment, **kwargs)

    monkeypatch.setattr(pause, "pause_state", counting)
    async with running(api):
        looks.clear()
        # Paused by a restart before this daemon started, period long over: resume it.
        held["metadata"]["annotations"][PAUSED_AT] = "2020-01-01T00:00:00Z"
        held["spec"]["paused"] = True
        await api.emit("MODIFIED", held)
        await eventually(lambda: api.patches("held"), what="resume")
    assert api.patches("held")[0]["spec"] == {"paused": False}
    assert len(looks) < 10, f"{len(looks)} Deployments looked at for one event"


# -- retries ---------------------------------------------------------------------------

FAST_RETRIES = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}


def skipped(reason: str) -> float:
    """fluxd_restarter_skipped_total{reason} as /metrics shows it."""
    return REGISTRY.get_sample_value("fluxd_restarter_skipped_total", {"reason": reason}) or 0.0


def denied(name: str) -> kube_errors.KubeError:
    return kube_errors.Forbidden(
        f'admission webhook "deny.example.com" denied the request to update {name}', status=403
    )


async def test_a_restart_is_retried_until_the_api_accepts_it(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    api.failing["realm-ix"] = [
        kube_errors.Throttled("too many requests", status=429),
        kube_errors.ServerError("etcd leader changed", status=500),
        kube_errors.Unreachable("connection reset"),
        kube_errors.Invalid("denied by ValidatingAdmissionPolicy", status=422),
        *(denied("realm-ix") for _ in range(6)),
    ]
    async with running(api, **FAST_RETRIES) as run:
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch accepted")
        await settle()
    [patch] = api.patches("realm-ix")
    assert env_in(patch) == {ENV: sha1_of({"realm_ix.toml": b"v2"})}
    assert [event.reason for event in run.events] == [RELOAD_FAILED] * 10 + [RELOADED]


async def test_a_newer_change_supersedes_the_restart_being_retried(api: FakeApi) -> None:
    api.put(secret())
    api.put(workload(annotations=AUTO))
    api.failing["realm-ix"] = [denied("realm-ix") for _ in range(1000)]
    async with running(api, **FAST_RETRIES) as run:
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
        await eventually(lambda: len(api.rejected) >= 3, what="retries")
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v3"}))
        retried = len(api.rejected)
        await eventually(lambda: len(api.rejected) >= retried + 3, what="retries of v3")
        api.failing["realm-ix"].clear()
        await eventually(lambda: api.patches("realm-ix"), what="patch accepted")
        await settle()
    [patch] = api.patches("realm-ix")
    assert env_in(patch) == {ENV: sha1_of({"realm_ix.toml": b"v3"})}
    assert env_in(api.rejected[-1].body) == {ENV: sha1_of({"realm_ix.toml": b"v3"})}
    assert [e.reason for e in run.events if e.reason == RELOADED] == [RELOADED]


async def test_a_change_back_ends_the_retries_with_nothing_written(api: FakeApi) -> None:
    content = {"realm_ix.toml": b"v1"}
    api.put(secret(data=content))
    api.put(stamped("realm-ix", sha1_of(content)))
    api.failing["realm-ix"] = [denied("realm-ix") for _ in range(1000)]
    up_to_date = skipped("up-to-date")
    async with running(api, **FAST_RETRIES):
        await api.emit("MODIFIED", secret(data={"realm_ix.toml": b"v2"}))
        await eventually(lambda: len(api.rejected) >= 2, what="retries")
        await api.emit("MODIFIED", secret(data=content))
        await eventually(lambda: skipped("up-to-date") > up_to_date, what="retries over")
        rejected = len(api.rejected)
        await settle()
    assert len(api.rejected) == rejected
    assert api.writes == []


# -- resync ----------------------------------------------------------------------------


async def test_the_resync_restarts_a_workload_left_with_a_stale_record(api: FakeApi) -> None:
    content = {"realm_ix.toml": b"current"}
    api.put(secret(data=content))
    api.put(stamped("realm-ix", sha1_of(content)))
    async with running(api, restarter_resync_interval=0.05):
        # Re-applied from an old manifest: the template records an old digest again.
        await api.emit("MODIFIED", stamped("realm-ix", sha1_of({"realm_ix.toml": b"old"})))
        await eventually(lambda: api.patches("realm-ix"), what="resync restart")
        await settle()
    [patch] = api.patches("realm-ix")
    assert env_in(patch) == {ENV: sha1_of(content)}


# -- Argo Rollouts ---------------------------------------------------------------------


async def test_a_rollout_patch_cannot_undo_a_concurrent_change(api: FakeApi) -> None:
    api.rollouts = True
    api.put(secret())
    rollout = workload(kind="Rollout", api_version="argoproj.io/v1alpha1", annotations=AUTO)
    api.put(rollout)

    def add_sidecar() -> None:
        current = copy.deepcopy(api.objects["Rollout"][(NAMESPACE, "realm-ix")])
        current["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
        api.put(current)

    api.before_patch["realm-ix"] = add_sidecar
    async with running(api, restart_argo_rollouts=True) as run:
        await api.emit("MODIFIED", secret(data={"a": b"2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")
        await settle()
    # The first write was based on the Rollout before the sidecar; the server refused it.
    [refused] = api.rejected
    [patch] = api.patches("realm-ix")
    assert [c["name"] for c in refused.body["spec"]["template"]["spec"]["containers"]] == ["realm"]
    assert patch["metadata"]["resourceVersion"] != refused.body["metadata"]["resourceVersion"]
    # A merge patch replaces the list whole: the one accepted keeps the sidecar.
    names = [c["name"] for c in patch["spec"]["template"]["spec"]["containers"]]
    assert names == ["realm", "sidecar"]
    assert [event.reason for event in run.events] == [RELOADED]


# -- scope -----------------------------------------------------------------------------


async def test_watch_namespaces_limit_what_is_listed_and_restarted(api: FakeApi) -> None:
    for namespace in (NAMESPACE, "other"):
        config = secret()
        config["metadata"]["namespace"] = namespace
        api.put(config)
        api.put(workload(namespace=namespace, annotations=AUTO))
    async with running(api, watch_namespaces=(NAMESPACE, "apps")):
        for namespace in ("other", NAMESPACE):
            changed = secret(data={"a": b"2"})
            changed["metadata"]["namespace"] = namespace
            await api.emit("MODIFIED", changed)
        await eventually(lambda: api.writes, what="patch")
        await settle()
    assert [(w.namespace, w.name) for w in api.writes] == [(NAMESPACE, "realm-ix")]
    # One list per watched namespace, none cluster-wide (namespaced RBAC is enough).
    assert {namespace for _, namespace in api.lists} == {NAMESPACE, "apps"}


@pytest.mark.parametrize(
    ("settings", "runs"),
    [
        pytest.param({}, True, id="unsharded"),
        pytest.param({"restarter": False}, False, id="switched-off"),
        pytest.param({"watch_label_selector": "sharding.fluxcd.io/key=shard1"}, False, id="shard"),
        pytest.param(
            {"watch_label_selector": "!sharding.fluxcd.io/key", "restarter_in_shard": True},
            True,
            id="shard-chosen-to-run-it",
        ),
        pytest.param(
            {
                "watch_label_selector": "!sharding.fluxcd.io/key",
                "restarter_in_shard": True,
                "restarter": False,
            },
            False,
            id="chosen-shard-switched-off",
        ),
    ],
)
async def test_only_one_shard_runs_the_restarter(
    api: FakeApi, settings: dict[str, Any], runs: bool
) -> None:
    components = Components()
    await wire(
        kube=cast(Kube, api),
        recorder=EventRecorder(None),
        settings=Settings(**settings),
        components=components,
    )
    assert ("restarter" in components.services) is runs


async def test_a_status_write_is_not_profiled_again_and_changes_still_are(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workload event whose slim form only moved its version leaves the index as it was."""
    api.put(secret())
    api.put(secret("other"))
    deployment = workload(annotations=AUTO)
    api.put(deployment)
    profiled: list[str] = []

    def counting(obj: Object, **kwargs: Any) -> Any:
        profiled.append(obj["metadata"]["name"])
        return profile_workload(obj, **kwargs)

    monkeypatch.setattr("fluxd.restarter.index.profile_workload", counting)
    async with running(api):
        profiled.clear()
        deployment["status"] = {"observedGeneration": 1, "replicas": 0}
        await api.emit("MODIFIED", deployment)
        await settle()
        assert profiled == []
        # A spec change is looked at: the Deployment now mounts "other" too.
        pod = deployment["spec"]["template"]["spec"]
        pod["volumes"].append({"name": "other", "secret": {"secretName": "other"}})
        pod["containers"][0]["volumeMounts"].append({"name": "other", "mountPath": "/etc/other"})
        await api.emit("MODIFIED", deployment)
        await eventually(lambda: profiled, what="profile")
        await api.emit("MODIFIED", secret("other", data={"x": b"2"}))
        await eventually(lambda: api.patches("realm-ix"), what="patch")
