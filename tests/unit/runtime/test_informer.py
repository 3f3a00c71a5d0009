"""The informer's cache stays true through expired watches, reconnects and several namespaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from fluxd.kube import errors
from fluxd.kube.client import Object
from fluxd.kube.informer import Change, Informer
from fluxd.kube.resources import SECRET, Resource


def _obj(namespace: str, name: str, version: str) -> Object:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": version}}


class ScriptedKube:
    """Answers list/watch from scripts; every watch ends the way the script says."""

    def __init__(self) -> None:
        self.lists: dict[str | None, list[tuple[list[Object], str]]] = {}
        self.watches: dict[str | None, list[list[Any] | None]] = {}
        self.watched_from: list[tuple[str | None, str]] = []

    async def list_all(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Object], str]:
        return self.lists[namespace].pop(0)

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Object]:
        self.watched_from.append((namespace, resource_version))
        script = self.watches[namespace].pop(0) if self.watches[namespace] else None
        if script is None:
            await anyio.sleep_forever()
            return
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step


async def _run_until(informer: Informer, condition: Any) -> list[tuple[Change, str]]:
    seen: list[tuple[Change, str]] = []
    informer.add_handler(lambda change, obj, old: seen.append((change, obj["metadata"]["name"])))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            while not condition(seen):  # noqa: ASYNC110 - polling a plain list
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()
    return seen


async def test_expired_watch_relists_and_reports_what_changed_meanwhile() -> None:
    kube = ScriptedKube()
    kube.lists[None] = [
        ([_obj("a", "kept", "1"), _obj("a", "changed", "2"), _obj("a", "removed", "3")], "10"),
        ([_obj("a", "kept", "1"), _obj("a", "changed", "7"), _obj("a", "new", "8")], "20"),
    ]
    kube.watches[None] = [[errors.Gone("too old", status=410)], None]
    informer = Informer(kube, SECRET)  # type: ignore[arg-type]
    seen = await _run_until(informer, lambda s: len(s) >= 6)
    assert seen[:3] == [
        (Change.ADDED, "kept"),
        (Change.ADDED, "changed"),
        (Change.ADDED, "removed"),
    ]
    assert sorted(seen[3:]) == sorted(
        [(Change.MODIFIED, "changed"), (Change.ADDED, "new"), (Change.DELETED, "removed")]
    )
    assert set(informer.store) == {("a", "kept"), ("a", "changed"), ("a", "new")}
    assert informer.stats.relists == 1
    assert kube.watched_from == [(None, "10"), (None, "20")]


async def test_reconnect_resumes_from_the_last_version_seen() -> None:
    kube = ScriptedKube()
    kube.lists[None] = [([], "5")]
    kube.watches[None] = [
        [
            {"type": "ADDED", "object": _obj("a", "s1", "6")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
            errors.Unreachable("connection reset"),
        ],
        [{"type": "MODIFIED", "object": _obj("a", "s1", "11")}],
        None,
    ]
    informer = Informer(kube, SECRET, backoff_cap=0.01)  # type: ignore[arg-type]
    seen = await _run_until(informer, lambda s: len(s) >= 2)
    assert seen == [(Change.ADDED, "s1"), (Change.MODIFIED, "s1")]
    # No second list: the watch picked up at the bookmark's version.
    assert kube.watched_from[:2] == [(None, "5"), (None, "9")]
    assert informer.stats.reconnects == 1


async def test_namespaces_each_have_a_stream_into_one_store() -> None:
    kube = ScriptedKube()
    kube.lists["a"] = [([_obj("a", "one", "1")], "1"), ([], "3")]
    kube.lists["b"] = [([_obj("b", "two", "2")], "2")]
    kube.watches["a"] = [[errors.Gone("expired", status=410)], None]
    kube.watches["b"] = [None]
    informer = Informer(kube, SECRET, namespaces=("a", "b"))  # type: ignore[arg-type]
    seen = await _run_until(informer, lambda s: (Change.DELETED, "one") in s)
    assert informer.synced.is_set()
    # Relisting namespace "a" must not forget objects of namespace "b".
    assert set(informer.store) == {("b", "two")}
    assert (Change.DELETED, "two") not in seen


@pytest.mark.parametrize("transform_keeps", ["name-only"])
async def test_transform_limits_what_is_cached(transform_keeps: str) -> None:
    kube = ScriptedKube()
    secret = _obj("a", "s", "1") | {"data": {"password": "c2VjcmV0"}}
    kube.lists[None] = [([secret], "1")]
    kube.watches[None] = [None]
    informer = Informer(
        kube,  # type: ignore[arg-type]
        SECRET,
        transform=lambda obj: {"metadata": obj["metadata"]},
    )
    await _run_until(informer, lambda s: len(s) >= 1)
    assert informer.get("a", "s") == {"metadata": secret["metadata"]}


async def test_a_large_list_gives_the_loop_back_while_it_is_processed() -> None:
    kube = ScriptedKube()
    kube.lists[None] = [([_obj("a", f"s{i}", str(i)) for i in range(2000)], "2001")]
    kube.watches[None] = [None]
    other_task_ran = anyio.Event()
    seen_while_listing: list[bool] = []

    def transform(obj: Object) -> Object:
        seen_while_listing.append(other_task_ran.is_set())
        return obj

    informer = Informer(kube, SECRET, transform=transform)  # type: ignore[arg-type]

    async def other_task() -> None:
        other_task_ran.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(informer.run)
            group.start_soon(other_task)
            await informer.synced.wait()
            group.cancel_scope.cancel()

    assert len(informer.store) == 2000
    # Some objects were transformed after the other task had its turn, not all before it.
    assert seen_while_listing[-1], "the whole list was processed without yielding to the loop"


async def test_the_cache_answers_for_an_object_only_once_the_watch_brought_our_own_write() -> None:
    kube = ScriptedKube()
    kube.lists[None] = [([_obj("a", "w", "1")], "10")]
    kube.watches[None] = [None]
    informer = Informer(kube, SECRET)  # type: ignore[arg-type]
    assert informer.current("a", "w") is None  # not synced: nobody can say
    await _run_until(informer, lambda s: len(s) >= 1)
    assert informer.current("a", "w") == _obj("a", "w", "1")
    assert informer.current("a", "gone") is None

    informer.expect_version(_obj("a", "w", "2"))
    assert informer.current("a", "w") is None  # our write is newer than the cache
    informer.settle(_obj("a", "w", "2"))  # a live read newer than the cache settles nothing
    assert informer.current("a", "w") is None

    kube.lists[None] = [([_obj("a", "w", "2")], "11")]
    kube.watches[None] = [None]
    await _run_until(informer, lambda s: len(s) >= 1)
    assert informer.current("a", "w") == _obj("a", "w", "2")


async def test_the_cache_keeps_no_managed_fields() -> None:
    listed = _obj("a", "listed", "1")
    watched = _obj("a", "watched", "2")
    for obj in (listed, watched):
        obj["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]
        obj["data"] = {"k": "v"}
    kube = ScriptedKube()
    kube.lists[None] = [([listed], "1")]
    kube.watches[None] = [[{"type": "ADDED", "object": watched}], None]
    informer = Informer(kube, SECRET)  # type: ignore[arg-type]
    await _run_until(informer, lambda s: len(s) >= 2)
    for key in (("a", "listed"), ("a", "watched")):
        cached = informer.store[key]
        assert "managedFields" not in cached["metadata"]
        assert cached["data"] == {"k": "v"}
