"""List-then-watch caches: the controllers' view of the cluster.

An ``Informer`` lists a kind, then watches from the list's resourceVersion,
with bookmarks; on "410 Gone" it lists again, and when the API server goes
away it reconnects with backoff. Objects pass through a ``transform`` before
they are stored, so each cache keeps only what its reconciler needs (the
restarter keeps digests, not Secret data). Handlers hear every change, and
``synced`` is set once the first list is in.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from fluxd.kube import errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import Resource

log = structlog.get_logger("fluxd.kube.informer")

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""


class Change(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


Handler = Callable[[Change, Object, Object | None], Awaitable[None] | None]
"""Called with (change, new-or-deleted object, previous object if any)."""


def key_of(obj: Object) -> Key:
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata["name"])


@dataclass
class InformerStats:
    relists: int = 0
    reconnects: int = 0
    events: int = 0


class Informer:
    """A cache of one kind (optionally one namespace / label selector), kept current by a watch."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        transform: Callable[[Object], Object] | None = None,
        watch_timeout: int = 300,
        backoff_cap: float = 30.0,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.transform = transform
        self.watch_timeout = watch_timeout
        self.backoff_cap = backoff_cap
        self.store: dict[Key, Object] = {}
        self.synced = asyncio.Event()
        self.stats = InformerStats()
        self._handlers: list[Handler] = []
        self._resource_version = ""

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, namespace: str, name: str) -> Object | None:
        return self.store.get((namespace, name))

    def values(self) -> Iterable[Object]:
        return self.store.values()

    @property
    def name(self) -> str:
        scope = self.namespace or "*"
        return f"{self.resource.plural}.{self.resource.group or 'core'}@{scope}"

    async def run(self) -> None:
        """List and watch until cancelled; never returns otherwise."""
        failures = 0
        needs_list = True
        while True:
            try:
                if needs_list:
                    await self._list()
                    needs_list = False
                await self._watch()
                failures = 0
            except errors.Gone:
                log.info("watch expired, listing again", informer=self.name)
                self.stats.relists += 1
                needs_list = True
            except (errors.Unreachable, errors.ServerError, errors.Throttled) as error:
                failures += 1
                self.stats.reconnects += 1
                delay = min(self.backoff_cap, 0.5 * 2 ** min(failures, 8)) * random.uniform(
                    0.8, 1.2
                )
                log.warning(
                    "watch interrupted, reconnecting",
                    informer=self.name,
                    error=str(error),
                    retry_in=round(delay, 2),
                )
                await asyncio.sleep(delay)
            except errors.ApiError as error:
                # Forbidden or NotFound (CRD missing): keep trying, slowly, and say why.
                failures += 1
                delay = min(self.backoff_cap, 1.0 * 2 ** min(failures, 5))
                log.error(
                    "cannot list or watch",
                    informer=self.name,
                    error=str(error),
                    retry_in=round(delay, 2),
                )
                needs_list = True
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items, version = await self.kube.list_all(
            self.resource, namespace=self.namespace, label_selector=self.label_selector
        )
        fresh: dict[Key, Object] = {}
        for item in items:
            fresh[key_of(item)] = self._slim(item)
        previous = self.store
        self.store = fresh
        self._resource_version = version
        # Tell handlers what changed while we were not watching: new, changed, and gone.
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                await self._notify(Change.ADDED, obj, None)
            elif _version(old) != _version(obj):
                await self._notify(Change.MODIFIED, obj, old)
        for key, old in previous.items():
            if key not in fresh:
                await self._notify(Change.DELETED, old, old)
        self.synced.set()

    async def _watch(self) -> None:
        async for event in self.kube.watch(
            self.resource,
            namespace=self.namespace,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            timeout_seconds=self.watch_timeout,
        ):
            kind = str(event.get("type", ""))
            obj: Object = event.get("object", {})
            version = _version(obj)
            if kind == "BOOKMARK":
                if version:
                    self._resource_version = version
                continue
            self.stats.events += 1
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            slim = self._slim(obj)
            key = key_of(slim)
            old = self.store.get(key)
            if kind == Change.DELETED:
                self.store.pop(key, None)
                await self._notify(Change.DELETED, slim, old)
            else:
                self.store[key] = slim
                await self._notify(Change(kind) if old is None else Change.MODIFIED, slim, old)
            if version:
                self._resource_version = version

    def _slim(self, obj: Object) -> Object:
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


def _version(obj: Object) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


__all__ = ["Change", "Handler", "Informer", "Key", "key_of"]
