"""List-then-watch caches: the controllers' view of the cluster.

An ``Informer`` lists a kind, then watches from the list's resourceVersion,
with bookmarks; on "410 Gone" it lists again, and when the API server goes
away it reconnects with backoff. With a set of namespaces it keeps one
list/watch stream per namespace, all feeding one store. Objects pass through a
``transform`` before they are stored, so each cache keeps only what its
reconciler needs (the restarter keeps digests, not Secret data); with
``metadata_only`` the API server sends only each object's metadata
(``PartialObjectMetadata``), so data never crosses the wire. Handlers hear
every change, and ``synced`` is set once every stream has listed. No cache
keeps ``metadata.managedFields``. A list of thousands of objects is transformed
and announced in slices, giving the event loop back between them so webhooks,
probes and other watches are not starved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
import structlog

from fluxd.aio import Backoff
from fluxd.kube import errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import Resource

log = structlog.get_logger("fluxd.kube.informer")

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

# Objects handled between two yields to the loop while a list is processed.
_LIST_SLICE = 200


class Change(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


Handler = Callable[[Change, Object, Object | None], Awaitable[None] | None]
"""Called with (change, new-or-deleted object, previous object if any)."""


def key_of(obj: Mapping[str, Any]) -> Key:
    """(namespace, name) of an object; cluster-scoped objects have an empty namespace."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return "", ""
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


@dataclass
class InformerStats:
    relists: int = 0
    reconnects: int = 0
    events: int = 0


class Informer:
    """A cache of one kind (all namespaces, one, or a set), kept current by watches."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        namespaces: Sequence[str] = (),
        label_selector: str | None = None,
        transform: Callable[[Object], Object] | None = None,
        watch_timeout: int = 300,
        backoff_cap: float = 30.0,
        metadata_only: bool = False,
    ) -> None:
        self.kube = kube
        self.resource = resource
        scopes: list[str | None] = list(namespaces) or [namespace]
        self.namespaces: tuple[str | None, ...] = tuple(dict.fromkeys(scopes))
        if not resource.namespaced:
            self.namespaces = (None,)
        self.label_selector = label_selector
        self.transform = transform
        self.metadata_only = metadata_only
        self.watch_timeout = watch_timeout
        self.backoff_cap = backoff_cap
        self.store: dict[Key, Object] = {}
        self.synced = asyncio.Event()
        self.stats = InformerStats()
        self._handlers: list[Handler] = []
        self._listed: set[str | None] = set()
        # Last resourceVersion seen per stream; None means "list first".
        self._versions: dict[str | None, str | None] = {}
        # Versions our own writes produced that the watch has not brought yet.
        self._awaited: dict[Key, str] = {}

    @property
    def namespace(self) -> str | None:
        return self.namespaces[0] if len(self.namespaces) == 1 else None

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, namespace: str, name: str) -> Object | None:
        return self.store.get((namespace, name))

    def values(self) -> Iterable[Object]:
        return self.store.values()

    def expect_version(self, written: Object) -> None:
        """Our own write made ``written``: the cache is behind for it until the watch brings it."""
        version = _version(written)
        if version:
            self._awaited[key_of(written)] = version

    def current(self, namespace: str, name: str) -> Object | None:
        """A private copy of the cached object, when the cache is known to hold its latest version.

        ``None`` when the cache cannot say (not synced yet, one of our own
        writes not seen yet, or the object is not cached): the caller reads
        the API server instead. Reconciling from the cache, as Flux's
        controllers do, spares one GET per reconcile; waiting for our own
        writes keeps a reconcile from starting on a status older than the one
        it wrote itself (an inventory to prune from, a progress condition).
        """
        key = (namespace, name)
        if not self.synced.is_set() or key in self._awaited:
            return None
        cached = self.store.get(key)
        return json_copy(cached) if cached is not None else None

    async def read(self, namespace: str, name: str) -> Object | None:
        """The object as :meth:`current` has it, or else as the API server does (``None``: gone).

        Only a full cache can stand in for the server: a transformed or
        metadata-only one is always read through.
        """
        if self.transform is None and not self.metadata_only:
            cached = self.current(namespace, name)
            if cached is not None:
                return cached
        try:
            live = await self.kube.get(self.resource, name, namespace=namespace or None)
        except errors.NotFound:
            return None
        self.settle(live)
        return live

    def settle(self, live: Object) -> None:
        """A live read agrees with the cache: stop waiting for an older write of ours."""
        key = key_of(live)
        cached = self.store.get(key)
        if cached is not None and _version(cached) == _version(live):
            self._awaited.pop(key, None)

    def _seen(self, key: Key, version: str) -> None:
        if self._awaited.get(key) == version:
            del self._awaited[key]

    @property
    def name(self) -> str:
        scope = ",".join(ns or "*" for ns in self.namespaces)
        return f"{self.resource.plural}.{self.resource.group or 'core'}@{scope}"

    async def run(self) -> None:
        """List and watch until cancelled; never returns otherwise."""
        if len(self.namespaces) == 1:
            await self._stream(self.namespaces[0])
            return
        async with anyio.create_task_group() as group:
            for namespace in self.namespaces:
                group.start_soon(self._stream, namespace)

    async def _stream(self, namespace: str | None) -> None:
        backoff = Backoff(base=min(1.0, self.backoff_cap), cap=self.backoff_cap, jitter=0.2)
        self._versions[namespace] = None
        while True:
            try:
                version = self._versions[namespace]
                if version is None:
                    self._versions[namespace] = await self._list(namespace)
                await self._watch(namespace)
                backoff.reset(namespace)
            except errors.Gone:
                log.info("watch expired, listing again", informer=self.name, namespace=namespace)
                self.stats.relists += 1
                self._versions[namespace] = None
            except (errors.Unreachable, errors.ServerError, errors.Throttled) as error:
                self.stats.reconnects += 1
                delay = backoff.next(namespace)
                log.warning(
                    "watch interrupted, reconnecting",
                    informer=self.name,
                    error=str(error),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)
            except errors.ApiError as error:
                # Forbidden or NotFound (CRD missing): keep trying, slowly, and say why.
                delay = backoff.next(namespace)
                log.error(
                    "cannot list or watch",
                    informer=self.name,
                    error=str(error),
                    retry_in=round(delay, 2),
                )
                self._versions[namespace] = None
                await asyncio.sleep(delay)

    def _in_scope(self, key: Key, namespace: str | None) -> bool:
        return namespace is None or key[0] == namespace

    async def _list(self, namespace: str | None) -> str:
        items, version = await self.kube.list_all(
            self.resource,
            namespace=namespace,
            label_selector=self.label_selector,
            **self._read_options(),
        )
        fresh: dict[Key, Object] = {}
        for index, item in enumerate(items, 1):
            fresh[key_of(item)] = self._slim(item)
            if index % _LIST_SLICE == 0:
                await asyncio.sleep(0)
        # The store changes in one step, after every transform is done.
        previous = {k: v for k, v in self.store.items() if self._in_scope(k, namespace)}
        for key in previous:
            del self.store[key]
        self.store.update(fresh)
        for key, obj in fresh.items():
            self._seen(key, _version(obj))
        for key in previous.keys() - fresh.keys():
            self._awaited.pop(key, None)
        # Tell handlers what changed while we were not watching: new, changed, and gone.
        for index, (key, obj) in enumerate(fresh.items(), 1):
            old = previous.get(key)
            if old is None:
                await self._notify(Change.ADDED, obj, None)
            elif _version(old) != _version(obj):
                await self._notify(Change.MODIFIED, obj, old)
            if index % _LIST_SLICE == 0:
                await asyncio.sleep(0)
        for key, old in previous.items():
            if key not in fresh:
                await self._notify(Change.DELETED, old, old)
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces):
            self.synced.set()
        return version

    async def _watch(self, namespace: str | None) -> None:
        """Follow one watch until it ends, recording each resourceVersion seen as it goes."""
        async for event in self.kube.watch(
            self.resource,
            namespace=namespace,
            resource_version=self._versions[namespace] or "",
            label_selector=self.label_selector,
            timeout_seconds=self.watch_timeout,
            **self._read_options(),
        ):
            kind = str(event.get("type", ""))
            obj: Object = event.get("object", {})
            seen = _version(obj)
            if kind == "BOOKMARK":
                if seen:
                    self._versions[namespace] = seen
                continue
            self.stats.events += 1
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            slim = self._slim(obj)
            key = key_of(slim)
            old = self.store.get(key)
            if kind == Change.DELETED:
                self.store.pop(key, None)
                self._awaited.pop(key, None)
                await self._notify(Change.DELETED, slim, old)
            else:
                self.store[key] = slim
                self._seen(key, seen)
                await self._notify(Change.ADDED if old is None else Change.MODIFIED, slim, old)
            if seen:
                self._versions[namespace] = seen

    def _read_options(self) -> dict[str, bool]:
        # Only metadata-only informers add the option; every other list and watch is unchanged.
        return {"metadata_only": True} if self.metadata_only else {}

    def _slim(self, obj: Object) -> Object:
        # Who wrote which field is never read from a cache, and is often half an object.
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("managedFields", None)
        return self.transform(obj) if self.transform else obj

    async def _notify(self, change: Change, obj: Object, old: Object | None) -> None:
        for handler in self._handlers:
            try:
                result = handler(change, obj, old)
                if result is not None:
                    await result
            except Exception:
                log.exception(
                    "informer handler failed",
                    informer=self.name,
                    namespace=obj.get("metadata", {}).get("namespace"),
                    name=obj.get("metadata", {}).get("name"),
                )


def json_copy(value: Any) -> Any:
    """A deep copy of a decoded JSON tree (dicts, lists, scalars), several times faster
    than ``copy.deepcopy``, which reconciling from the cache pays on every reconcile."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def _version(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


__all__ = ["Change", "Handler", "Informer", "Key", "key_of"]
