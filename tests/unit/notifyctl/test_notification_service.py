"""The notification service on a scripted API: what it watches, and how Providers follow changes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio

from fluxd.controllers.notification import (
    PROVIDER,
    AlertDispatcher,
    NotificationRegistry,
    NotificationService,
)
from fluxd.controllers.receiver import ReceiverReconciler
from fluxd.controllers.runtime import Controller
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import SECRET, Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.notify import DeliveryQueue
from fluxd.receiver import ReceiverIndex
from fluxd.settings import Settings
from tests.unit.notify.notify_services import make_event
from tests.unit.notifyctl.notifyctl_fakes import RecordedEvents

NS = "apps"
# Nothing listens there: every send fails and the lane keeps retrying.
DEAD_ADDRESS = "http://127.0.0.1:9/hook"

Stream = tuple[str, str | None]


@dataclass
class WatchedApi:
    """Lists and watches from memory; a test pushes watch events per (plural, namespace)."""

    objects: dict[tuple[str, str, str], Object] = field(default_factory=dict)
    lists: list[tuple[str, str | None, str | None, bool]] = field(default_factory=list)
    watches: list[tuple[str, str | None, str | None, bool]] = field(default_factory=list)
    streams: dict[Stream, asyncio.Queue[Object]] = field(default_factory=dict)
    # Called with (namespace, name) while a Secret GET is in flight, before it answers.
    on_secret_get: Callable[[str, str], Any] | None = None

    def stream(self, plural: str, namespace: str | None) -> asyncio.Queue[Object]:
        return self.streams.setdefault((plural, namespace), asyncio.Queue())

    def put(self, resource: Resource, obj: Object, *, event: str | None = None) -> None:
        metadata = obj["metadata"]
        key = (resource.plural, metadata["namespace"], metadata["name"])
        change = event or ("MODIFIED" if key in self.objects else "ADDED")
        if change == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        for namespace in (metadata["namespace"], None):
            self.stream(resource.plural, namespace).put_nowait({"type": change, "object": obj})

    async def list_all(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
    ) -> tuple[list[Object], str]:
        self.lists.append((resource.plural, namespace, label_selector, metadata_only))
        items = [
            obj
            for (plural, ns, _), obj in self.objects.items()
            if plural == resource.plural and namespace in (None, ns)
        ]
        return items, "1"

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        metadata_only: bool = False,
        **_: Any,
    ) -> AsyncIterator[Object]:
        self.watches.append((resource.plural, namespace, label_selector, metadata_only))
        stream = self.stream(resource.plural, namespace)
        while True:
            yield await stream.get()

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> Object | None:
        # Answer with what existed when the request was served, like the API server.
        found = self.objects.get((resource.plural, namespace or "", name))
        if resource == SECRET and self.on_secret_get is not None:
            await self.on_secret_get(namespace or "", name)
        return found


def provider(name: str, *, address: str = "", generation: int = 1) -> Object:
    spec: dict[str, Any] = {"type": "generic", "secretRef": {"name": f"{name}-token"}}
    if address:
        spec["address"] = address
    return {
        "apiVersion": PROVIDER.api_version,
        "kind": "Provider",
        "metadata": {
            "name": name,
            "namespace": NS,
            "generation": generation,
            "resourceVersion": str(generation),
        },
        "spec": spec,
    }


def token_secret(name: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-token", "namespace": NS, "resourceVersion": "7"},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }


@dataclass
class Running:
    api: WatchedApi
    service: NotificationService
    registry: NotificationRegistry

    @property
    def delivery(self) -> DeliveryQueue:
        assert self.service.dispatcher.delivery is not None
        return self.service.dispatcher.delivery

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait for the service to get there; the guard only ends a test that never would."""
        with anyio.fail_after(5):
            while not condition():  # noqa: ASYNC110 - polling plain service state
                await asyncio.sleep(0.01)


@asynccontextmanager
async def running(
    api: WatchedApi, recorded: RecordedEvents, **options: Any
) -> AsyncIterator[Running]:
    settings = Settings(notification_max_attempts=50, **options)
    kube = cast(Kube, api)
    registry = NotificationRegistry(kube=kube, recorder=recorded.recorder)
    dispatcher = AlertDispatcher(registry=registry, no_cross_namespace_refs=False)
    receivers = Controller(
        kube=kube,
        reconciler=ReceiverReconciler(kube=kube, index=ReceiverIndex(kube=kube)),
        recorder=recorded.recorder,
        settings=settings,
    )
    secrets = SecretCache(kube, namespaces=settings.watch_namespaces)
    service = NotificationService(
        kube=kube,
        settings=settings,
        registry=registry,
        dispatcher=dispatcher,
        receivers=receivers,
        secrets=secrets,
    )
    async with anyio.create_task_group() as group:
        group.start_soon(secrets.run)
        group.start_soon(service.run)
        for informer in (service.providers, service.alerts, service.secrets):
            await informer.synced.wait()
        yield Running(api, service, registry)
        group.cancel_scope.cancel()


def ready(run: Running, name: str) -> Callable[[], bool]:
    def check() -> bool:
        state = run.registry.providers.get((NS, name))
        return state is not None and state.sender is not None

    return check


async def test_watches_only_the_configured_namespaces_and_secrets_as_metadata(
    recorded: RecordedEvents,
) -> None:
    api = WatchedApi()
    async with running(
        api, recorded, watch_namespaces=("apps", "edge"), watch_label_selector="shard=one"
    ) as run:
        await run.until(lambda: len(api.watches) == 6)

    reads = set(api.lists) | set(api.watches)
    assert reads == {
        (plural, namespace, selector, metadata_only)
        for namespace in ("apps", "edge")
        for plural, selector, metadata_only in (
            ("providers", "shard=one", False),
            ("alerts", "shard=one", False),
            ("secrets", None, True),
        )
    }


async def test_a_provider_becomes_ready_when_its_missing_secret_is_created(
    recorded: RecordedEvents,
) -> None:
    api = WatchedApi()
    api.put(PROVIDER, provider("chat", address=DEAD_ADDRESS))
    async with running(api, recorded, watch_namespaces=(NS,)) as run:
        await run.until(lambda: (NS, "chat") in run.registry.providers)
        assert not ready(run, "chat")()
        assert "not found" in recorded.of("Provider", "chat")[0].message

        api.put(SECRET, token_secret("chat"))

        await run.until(ready(run, "chat"))


async def test_a_secret_created_while_its_provider_loads_is_not_missed(
    recorded: RecordedEvents,
) -> None:
    api = WatchedApi()
    api.put(PROVIDER, provider("chat", address=DEAD_ADDRESS))
    created = asyncio.Event()

    async def create_the_secret_meanwhile(namespace: str, name: str) -> None:
        # The GET has been answered "not found"; the Secret's watch event arrives first.
        if not created.is_set():
            created.set()
            api.put(SECRET, token_secret("chat"))
            stream = api.stream(SECRET.plural, NS)
            # Empty once the informer has taken the event, which runs its handlers at once.
            while not stream.empty():  # noqa: ASYNC110 - polling a plain queue
                await asyncio.sleep(0)

    api.on_secret_get = create_the_secret_meanwhile
    async with running(api, recorded, watch_namespaces=(NS,)) as run:
        await run.until(ready(run, "chat"))


async def test_a_deleted_provider_has_its_lane_stopped_and_its_backlog_dropped(
    recorded: RecordedEvents,
) -> None:
    api = WatchedApi()
    api.put(SECRET, token_secret("chat"))
    api.put(PROVIDER, provider("chat", address=DEAD_ADDRESS))
    async with running(api, recorded) as run:
        await run.until(ready(run, "chat"))
        sender = run.registry.providers[(NS, "chat")].sender
        assert sender is not None
        for index in range(3):
            run.delivery.submit(sender, make_event(message=f"m{index}"))
        assert run.delivery.lanes == 1

        api.put(PROVIDER, provider("chat", address=DEAD_ADDRESS), event="DELETED")

        await run.until(lambda: run.delivery.lanes == 0)
        await run.delivery.join()


async def test_a_provider_whose_address_changed_stops_its_old_lane(
    recorded: RecordedEvents,
) -> None:
    api = WatchedApi()
    api.put(SECRET, token_secret("chat"))
    api.put(PROVIDER, provider("chat", address=DEAD_ADDRESS))
    async with running(api, recorded) as run:
        await run.until(ready(run, "chat"))
        old = run.registry.providers[(NS, "chat")].sender
        assert old is not None
        run.delivery.submit(old, make_event())
        assert run.delivery.lanes == 1

        api.put(PROVIDER, provider("chat", address="http://127.0.0.1:9/moved", generation=2))

        await run.until(lambda: run.delivery.lanes == 0)
        new = run.registry.providers[(NS, "chat")].sender
        assert new is not None and new.config.address.endswith("/moved")
