"""notification-controller's work inside fluxd: Receivers, Providers, Alerts and alert dispatch.

Receivers are reconciled like every Flux kind (see ``receiver``; the webhook
side is the ``fluxd.receiver`` package). Providers
and Alerts in ``v1beta3`` are static objects in Flux: no finalizer, no status.
fluxd keeps them in memory instead (``NotificationRegistry``): each Provider
is resolved with its Secrets into a ready sender, each Alert is checked
against its ``providerRef``, and problems are reported once, as Warning
Events on the object and in the log, until the object or its Secret changes.

Every Event the daemon records goes through ``AlertDispatcher``: converted
to Flux's event shape, routed through the Alerts, and queued for delivery
without waiting, so a slow chat never holds up a reconcile.

Scope, as for the Flux-kind controllers: Providers and Alerts are watched in
``watch-namespaces`` only and, for sharding, only those matching
``watch-label-selector``. Secrets are watched in the same namespaces as
metadata only (``PartialObjectMetadata``: names and resourceVersions, never
their data); a Provider reads its Secrets with a GET when it is loaded, and
any change to one of them (a rotated token, a Secret created after its
Provider) loads the Provider again at once. A deleted Provider, or one whose
address changed, has its delivery lane stopped and what it held dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiohttp
import anyio
import structlog

from fluxd.aio import Backoff, Result, SystemClock, WorkQueue, supervise
from fluxd.api import notification
from fluxd.api.support import refused_fields
from fluxd.controllers.manager import Components
from fluxd.controllers.receiver import ReceiverReconciler
from fluxd.controllers.runtime import Controller
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.events import EVENT_ANNOTATION_PREFIX, TRACE, EventRecorder, Recorded
from fluxd.kube.informer import Change, Informer, Key, key_of
from fluxd.kube.resources import SECRET, Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.kube.secrets import secret_texts
from fluxd.metrics import NOTIFICATION_DURATION, NOTIFICATIONS, QueueMetrics
from fluxd.notify import (
    COMMIT_STATUS_TYPES,
    DeliveryQueue,
    DeliveryRecord,
    Event,
    ObjectReference,
    Outcome,
    Provider,
    ProviderConfig,
    ProviderConfigError,
    RetryPolicy,
    build_provider,
    route,
)
from fluxd.receiver import (
    RECEIVER,
    JsonWebKeys,
    ReceiverIndex,
    ReceiverWebhook,
    ReconcileRequests,
)
from fluxd.server.events import EventIntake
from fluxd.settings import Settings

log = structlog.get_logger("fluxd.controllers.notification")

PROVIDER = Resource.of(notification.PROVIDER)
ALERT = Resource.of(notification.ALERT)

# Reasons of the Warning Events fluxd records on Providers and Alerts.
INVALID_PROVIDER: Final = "InvalidProvider"
PROVIDER_NOT_READY: Final = "ProviderNotReady"

_SECRET_REFS: Final = ("secretRef", "certSecretRef", "proxySecretRef")

# The controller Flux would have reported an event from, by API group.
_REPORTING_CONTROLLERS: Final[Mapping[str, str]] = {
    "source.toolkit.fluxcd.io": "source-controller",
    "kustomize.toolkit.fluxcd.io": "kustomize-controller",
    "notification.toolkit.fluxcd.io": "notification-controller",
    "helm.toolkit.fluxcd.io": "helm-controller",
    "image.toolkit.fluxcd.io": "image-reflector-controller",
}
# Metadata Flux never forwards to providers.
_HIDDEN_METADATA: Final = frozenset({"checksum", "digest"})


def secret_names(provider: Object) -> list[str]:
    spec = provider.get("spec") or {}
    names = [str((spec.get(ref) or {}).get("name") or "") for ref in _SECRET_REFS]
    return [name for name in names if name]


@dataclass(frozen=True)
class ProviderState:
    """A Provider as loaded: its sender when it works, else what is wrong with it."""

    obj: Object
    sender: Provider | None
    problem: str | None = None


class NotificationRegistry:
    """The Providers and Alerts dispatch routes through, with their problems."""

    def __init__(self, *, kube: Kube, recorder: EventRecorder) -> None:
        self.kube = kube
        self.recorder = recorder
        self.session: aiohttp.ClientSession | None = None
        #: Where the senders' lanes run (the leader's delivery queue), None when not leading.
        self.delivery: DeliveryQueue | None = None
        self.providers: dict[Key, ProviderState] = {}
        self.alerts: dict[Key, Object] = {}
        self._reported: dict[tuple[str, Key], str | None] = {}
        #: Providers that exist but are not loaded yet: their Alerts are judged after the load.
        self.loading: set[Key] = set()

    # -- providers -----------------------------------------------------------

    async def load_provider(self, obj: Object) -> ProviderState:
        """Resolve ``obj`` with its Secrets into a sender; problems are reported once."""
        key = key_of(obj)
        state = await self._resolve(obj)
        previous = self.providers.get(key)
        # Swapped with no await in between, so nothing new joins the lane being retired.
        if _address(previous) not in (None, _address(state)):
            self._retire_lane(previous, reason="the provider's address changed")
        self.providers[key] = state
        self.loading.discard(key)
        await self._report(PROVIDER, obj, INVALID_PROVIDER, state.problem)
        await self.check_alerts()
        return state

    async def _resolve(self, obj: Object) -> ProviderState:
        namespace = str(obj["metadata"].get("namespace", ""))
        spec = obj.get("spec") or {}
        refusals = refused_fields(PROVIDER.kind, obj)
        if refusals:
            # A Provider that sets a refused field sends nothing, rather than send differently.
            return ProviderState(obj, None, "; ".join(refusals))
        secrets: dict[str, dict[str, str] | None] = {}
        for ref in _SECRET_REFS:
            name = str((spec.get(ref) or {}).get("name") or "")
            if not name:
                secrets[ref] = None
                continue
            secret = await self.kube.get_or_none(SECRET, name, namespace=namespace)
            if secret is None:
                return ProviderState(obj, None, f"{ref} '{namespace}/{name}' not found")
            secrets[ref] = secret_texts(secret)
        try:
            config = ProviderConfig.from_objects(
                obj,
                secret=secrets["secretRef"],
                cert_secret=secrets["certSecretRef"],
                proxy_secret=secrets["proxySecretRef"],
            )
            if self.session is None:
                raise ProviderConfigError(
                    provider_type=config.provider_type, reason="not the leader"
                )
            sender = build_provider(config, session=self.session)
        except ProviderConfigError as error:
            return ProviderState(obj, None, str(error))
        return ProviderState(obj, sender)

    def forget_provider(self, key: Key) -> None:
        """The Provider was deleted: drop its state and stop its lane."""
        self._retire_lane(self.providers.pop(key, None), reason="the provider was deleted")
        self.loading.discard(key)
        self._reported.pop((PROVIDER.kind, key), None)

    def _retire_lane(self, previous: ProviderState | None, *, reason: str) -> None:
        if self.delivery is not None and previous is not None and previous.sender is not None:
            self.delivery.retire(previous.sender.config.key, reason=reason)

    def provider_objects(self) -> dict[Key, Object]:
        return {key: state.obj for key, state in self.providers.items()}

    def sender(self, key: Key) -> ProviderState | None:
        return self.providers.get(key)

    # -- alerts -------------------------------------------------------------

    async def set_alert(self, obj: Object) -> None:
        self.alerts[key_of(obj)] = obj
        await self._check_alert(obj)

    def forget_alert(self, key: Key) -> None:
        self.alerts.pop(key, None)
        self._reported.pop((ALERT.kind, key), None)

    async def check_alerts(self) -> None:
        for alert in tuple(self.alerts.values()):
            await self._check_alert(alert)

    async def _check_alert(self, alert: Object) -> None:
        namespace = str(alert["metadata"].get("namespace", ""))
        provider_name = str((alert.get("spec", {}).get("providerRef") or {}).get("name", ""))
        provider_key = (namespace, provider_name)
        if provider_key in self.loading:
            return
        state = self.providers.get(provider_key)
        problem = None
        if state is None:
            problem = f"provider '{namespace}/{provider_name}' not found"
        elif state.problem is not None:
            problem = f"provider '{namespace}/{provider_name}' is not ready: {state.problem}"
        await self._report(ALERT, alert, PROVIDER_NOT_READY, problem)

    # -- reporting -----------------------------------------------------------

    async def _report(
        self, resource: Resource, obj: Object, reason: str, problem: str | None
    ) -> None:
        """A Warning Event and an error log when ``problem`` is new for ``obj``.

        Becoming usable is logged once too, so operators see when an Alert is live.
        """
        mark = (resource.kind, key_of(obj))
        if mark in self._reported and self._reported[mark] == problem:
            return
        if problem is None:
            self._reported[mark] = None
            log.info("notification object is ready", kind=resource.kind, object=_name(obj))
            return
        self._reported[mark] = problem
        log.error(
            "notification object is not usable",
            kind=resource.kind,
            object=_name(obj),
            error=problem,
        )
        await self.recorder.record(
            {"apiVersion": resource.api_version, "kind": resource.kind, **obj},
            type_="Warning",
            reason=reason,
            message=problem,
        )


def _address(state: ProviderState | None) -> str | None:
    """Where a loaded Provider sends, None when it cannot send."""
    if state is None or state.sender is None:
        return None
    return state.sender.config.address


def _name(obj: Object) -> str:
    metadata = obj.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def event_from(recorded: Recorded) -> Event:
    """A recorded Kubernetes Event in Flux's event shape, as Alerts and providers read it."""
    regarding = recorded.regarding
    api_version = str(regarding.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    metadata: dict[str, str] = {}
    for key, value in recorded.metadata.items():
        if key.startswith(EVENT_ANNOTATION_PREFIX):
            continue
        plain = key.removeprefix(f"{group}/") if group else key
        if plain.lower() not in _HIDDEN_METADATA:
            metadata[plain] = str(value)
    # The object's event annotations come last: the controller's own keys win, as in Flux.
    for key, value in recorded.metadata.items():
        if key.startswith(EVENT_ANNOTATION_PREFIX):
            metadata.setdefault(key.removeprefix(EVENT_ANNOTATION_PREFIX), str(value))
    return Event(
        involved_object=ObjectReference(
            kind=str(regarding.get("kind", "")),
            name=str(regarding.get("name", "")),
            namespace=str(regarding.get("namespace", "")),
            uid=str(regarding.get("uid", "")),
            api_version=api_version,
            resource_version=str(regarding.get("resourceVersion", "")),
        ),
        severity="error" if recorded.type == "Warning" else "info",
        message=recorded.message,
        reason=recorded.reason,
        reporting_controller=_REPORTING_CONTROLLERS.get(group, "fluxd"),
        timestamp=datetime.fromtimestamp(recorded.timestamp, UTC),
        metadata=metadata,
        labels=dict(recorded.labels),
    )


def observe_delivery(record: DeliveryRecord) -> None:
    """The delivery queue's observer: ``fluxd_notification_*`` metrics."""
    NOTIFICATIONS.labels(record.provider_type, record.outcome.value).inc()
    if record.outcome is Outcome.DELIVERED:
        NOTIFICATION_DURATION.labels(record.provider_type).observe(record.duration_seconds)


class AlertDispatcher:
    """The EventRecorder sink: route each event through the Alerts and queue the sends."""

    def __init__(self, *, registry: NotificationRegistry, no_cross_namespace_refs: bool) -> None:
        self.registry = registry
        self.no_cross_namespace_refs = no_cross_namespace_refs
        self.delivery: DeliveryQueue | None = None

    def __call__(self, recorded: Recorded) -> None:
        # Trace events stay in the cluster, as Flux's controllers never post them.
        if recorded.type == TRACE:
            return
        if self.delivery is not None and self.registry.alerts:
            self.dispatch(event_from(recorded))

    def dispatch(self, event: Event) -> int | None:
        """Queue ``event`` for every Alert that selects it: how many, ``None`` when not leading.

        Also the sink of the events endpoint, for events of Flux controllers beside fluxd.
        """
        delivery = self.delivery
        if delivery is None:
            return None
        dispatches = route(
            event,
            alerts=tuple(self.registry.alerts.values()),
            providers=self.registry.provider_objects(),
            no_cross_namespace_refs=self.no_cross_namespace_refs,
        )
        for dispatch in dispatches:
            key = key_of(dispatch.provider)
            state = self.registry.sender(key)
            provider_type = str(dispatch.provider.get("spec", {}).get("type", ""))
            if state is None or state.sender is None:
                NOTIFICATIONS.labels(provider_type, "invalid").inc()
                log.error(
                    "alert not sent: the provider is not ready",
                    provider=f"{key[0]}/{key[1]}",
                    error=state.problem if state else "not loaded",
                )
                continue
            if (
                provider_type in COMMIT_STATUS_TYPES
                and not dispatch.notification.is_for_commit_status()
            ):
                continue
            delivery.submit(state.sender, dispatch.notification)
        return len(dispatches)


class ExternalEvents:
    """The events endpoint's sink: events posted by Flux controllers beside fluxd.

    They come without the object's labels; as notification-controller does,
    the object is read for them only when an Alert's source has ``matchLabels``.
    """

    def __init__(self, *, kube: Kube, dispatcher: AlertDispatcher) -> None:
        self.kube = kube
        self.dispatcher = dispatcher

    async def __call__(self, event: Event) -> int | None:
        if self.dispatcher.delivery is None:
            return None
        if event.labels is None and self._labels_matter():
            event = dataclasses.replace(event, labels=await self._labels(event.involved_object))
        return self.dispatcher.dispatch(event)

    def _labels_matter(self) -> bool:
        return any(
            source.get("matchLabels")
            for alert in self.dispatcher.registry.alerts.values()
            for source in (alert.get("spec") or {}).get("eventSources") or ()
        )

    async def _labels(self, involved: ObjectReference) -> dict[str, str]:
        try:
            resource = await self.kube.resource_for(involved.api_version, involved.kind)
            obj = await self.kube.get_or_none(
                resource, involved.name, namespace=involved.namespace or None
            )
        except kube_errors.KubeError as error:
            # Flux logs this and does not match the source; no labels match no matchLabels.
            log.error("cannot read the event's object for matchLabels", error=str(error))
            return {}
        return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


class NotificationService:
    """Leader-only: watches Providers, Alerts and Secrets, and runs alert delivery."""

    def __init__(
        self,
        *,
        kube: Kube,
        settings: Settings,
        registry: NotificationRegistry,
        dispatcher: AlertDispatcher,
        receivers: Controller,
        secrets: SecretCache,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.registry = registry
        self.dispatcher = dispatcher
        self.receivers = receivers
        selector = settings.watch_label_selector or None
        namespaces = settings.watch_namespaces
        self.providers = Informer(kube, PROVIDER, namespaces=namespaces, label_selector=selector)
        self.alerts = Informer(kube, ALERT, namespaces=namespaces, label_selector=selector)
        # Secrets carry no shard label: the selector applies to Flux's objects only. The
        # watch of their metadata is the daemon's one (run by the Secret cache's service).
        self.secrets = secrets.watch
        self.providers.add_handler(self._on_provider)
        self.alerts.add_handler(self._on_alert)
        self.secrets.add_handler(self._on_secret)
        self.queue: WorkQueue[Key] = WorkQueue(
            "provider",
            concurrency=settings.notification_concurrency,
            backoff=Backoff(base=settings.min_retry_delay, cap=settings.max_retry_delay),
            jitter=settings.interval_jitter,
            observer=QueueMetrics(),
        )

    async def run(self) -> None:
        settings = self.settings
        retry = RetryPolicy(max_attempts=settings.notification_max_attempts)
        async with aiohttp.ClientSession() as session:
            delivery = DeliveryQueue(
                retry=retry,
                dedup_window=settings.notification_dedup_window,
                observer=observe_delivery,
            )
            self.registry.session = session
            self.registry.delivery = delivery
            self.dispatcher.delivery = delivery
            try:
                async with anyio.create_task_group() as group:
                    for name, informer in (
                        ("informer Provider", self.providers),
                        ("informer Alert", self.alerts),
                    ):
                        group.start_soon(supervise, name, informer.run, name=name)
                    group.start_soon(
                        supervise, "queue Provider", self._run_queue, name="queue Provider"
                    )
            finally:
                self.dispatcher.delivery = None
                self.registry.delivery = None
                self.registry.session = None
                self.registry.providers.clear()
                self.registry.loading.clear()
                with anyio.CancelScope(shield=True):
                    await delivery.aclose()

    async def _run_queue(self) -> None:
        await self.providers.synced.wait()
        await self.queue.run(self._load)

    async def _load(self, key: Key) -> Result:
        obj = self.providers.get(*key)
        if obj is None:
            self.registry.forget_provider(key)
            await self.registry.check_alerts()
            return Result.stop()
        try:
            await self.registry.load_provider(obj)
        except kube_errors.KubeError as error:
            log.warning("cannot load provider", provider=f"{key[0]}/{key[1]}", error=str(error))
            return Result.retry()
        return Result.stop()

    def _on_provider(self, change: Change, obj: Object, old: Object | None) -> None:
        key = key_of(obj)
        if change == Change.DELETED:
            self.queue.add(key)
            return
        if key not in self.registry.providers:
            self.registry.loading.add(key)
        if old is None or obj.get("metadata", {}).get("generation") != old.get("metadata", {}).get(
            "generation"
        ):
            self.queue.add(key)

    async def _on_alert(self, change: Change, obj: Object, old: Object | None) -> None:
        if change == Change.DELETED:
            self.registry.forget_alert(key_of(obj))
            return
        await self.providers.synced.wait()
        await self.registry.set_alert(obj)

    def _on_secret(self, change: Change, obj: Object, old: Object | None) -> None:
        namespace, name = key_of(obj)
        # The watched Providers, not the loaded ones: a load may be reading this Secret now.
        for provider in tuple(self.providers.values()):
            key = key_of(provider)
            if key[0] == namespace and name in secret_names(provider):
                self.queue.add(key)
        for receiver in tuple(self.receivers.informer.values()):
            metadata = receiver.get("metadata", {})
            secret_ref = (receiver.get("spec", {}).get("secretRef") or {}).get("name")
            if metadata.get("namespace") == namespace and secret_ref == name:
                self.receivers.request(namespace, str(metadata.get("name")))


async def wire(
    *, kube: Kube, recorder: EventRecorder, settings: Settings, components: Components
) -> None:
    """Add the Receiver controller, the webhook handler and alert dispatch to the daemon."""
    index = ReceiverIndex(kube=kube)
    receivers = Controller(
        kube=kube,
        reconciler=ReceiverReconciler(kube=kube, index=index),
        recorder=recorder,
        settings=settings,
    )

    def keep_index_current(change: Change, obj: Object, old: Object | None) -> None:
        if change != Change.DELETED:
            index.observe(obj)

    receivers.informer.add_handler(keep_index_current)
    components.controllers.append(receivers)
    components.webhook = ReceiverWebhook(
        directory=index,
        trigger=ReconcileRequests(
            kube=kube,
            recorder=recorder,
            window=settings.receiver_coalesce_window,
            no_cross_namespace_refs=settings.no_cross_namespace_refs,
        ),
        body_limit=settings.webhook_body_limit,
        observer=components.journal.record_push,
        google_keys=JsonWebKeys(url=settings.receiver_google_certs_url),
    )
    registry = NotificationRegistry(kube=kube, recorder=recorder)
    dispatcher = AlertDispatcher(
        registry=registry, no_cross_namespace_refs=settings.no_cross_namespace_refs
    )
    recorder.add_sink(dispatcher)
    components.events = EventIntake(
        sink=ExternalEvents(kube=kube, dispatcher=dispatcher),
        rate_limit_interval=settings.notification_dedup_window,
        clock=SystemClock(),
    )
    service = NotificationService(
        kube=kube,
        settings=settings,
        registry=registry,
        dispatcher=dispatcher,
        receivers=receivers,
        secrets=components.secret_cache(kube, settings),
    )
    components.services["notification"] = service.run


__all__ = [
    "ALERT",
    "PROVIDER",
    "RECEIVER",
    "AlertDispatcher",
    "ExternalEvents",
    "NotificationRegistry",
    "NotificationService",
    "event_from",
    "wire",
]
