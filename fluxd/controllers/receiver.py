"""Receivers: publishing each webhook path, finding it again, and acting on a genuine push.

- ``ReceiverReconciler`` reads the token from the Receiver's Secret and writes
  Flux's ``status.webhookPath`` (``/hook/`` + sha256(token + name + namespace)).
- ``ReceiverIndex`` maps those paths back to Receivers for the HTTP handler.
  The reconciler keeps it current on the leader; any replica (the webhook port
  is served by all of them) also refreshes it from the API, at most once per
  ``refresh_interval`` on a miss and once per ``max_age`` on a hit, so a flood
  of unknown paths costs no API calls.
- ``ReconcileRequests`` sets ``reconcile.fluxcd.io/requestedAt`` on every
  object a Receiver lists. A burst of pushes to one target is coalesced (the
  shared ``Coalescer`` in leading mode): the first push patches at once,
  later ones within ``window`` collapse into one trailing patch, so the last
  push is always fetched and a burst costs two fetches at most. Trailing
  patches are written by one supervised task that runs only while some are
  pending, so nothing lingers between bursts; ``aclose`` cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from fluxd.aio import Clock, Coalescer, supervise
from fluxd.api import meta, notification
from fluxd.api.duration import format_duration
from fluxd.controllers.outcomes import EventNote, Reconciled, Transient
from fluxd.controllers.runtime import Reconciler, spec_interval
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object, PatchType
from fluxd.kube.events import EventRecorder
from fluxd.kube.informer import Key, key_of
from fluxd.kube.resources import SECRET, Resource
from fluxd.kube.secrets import secret_text
from fluxd.notify import webhook_path
from fluxd.server.receivers import ReceiverEntry

log = structlog.get_logger("fluxd.controllers.receiver")

RECEIVER = Resource.of(notification.RECEIVER)

TOKEN_NOT_FOUND: Final = "TokenNotFound"
REQUEST_FAILED: Final = "ReconcileRequestFailed"

# The name of the task that writes the trailing patches of coalesced pushes.
TRAILING_REQUESTS: Final = "receiver trailing reconcile requests"

# API versions Flux assumes when a Receiver's resource names only a kind.
DEFAULT_API_VERSIONS: Final[Mapping[str, str]] = {
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1beta2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1beta2",
}


class TokenError(Exception):
    """The Receiver's Secret or its ``token`` key is missing; the message names which."""


async def read_token(kube: Kube, receiver: Object) -> str:
    metadata = receiver["metadata"]
    namespace = str(metadata.get("namespace", ""))
    secret_name = str((receiver.get("spec", {}).get("secretRef") or {}).get("name", ""))
    where = f"{namespace}/{secret_name}"
    try:
        secret = await kube.get(SECRET, secret_name, namespace=namespace)
    except kube_errors.NotFound:
        raise TokenError(f"unable to read token from secret '{where}': not found") from None
    token = secret_text(secret, "token")
    if token is None:
        raise TokenError(f"invalid '{where}' secret data: required field 'token'")
    return token


class ReceiverIndex:
    """Webhook path → Receiver, for the HTTP handler (a ``ReceiverDirectory``)."""

    def __init__(
        self,
        *,
        kube: Kube,
        refresh_interval: float = 5.0,
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self._clock = clock
        self._by_path: dict[str, ReceiverEntry] = {}
        self._path_of: dict[Key, str] = {}
        self._put_at: dict[Key, float] = {}
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    def put(self, path: str, entry: ReceiverEntry) -> None:
        key = (entry.namespace, entry.name)
        self.drop(key)
        self._by_path[path] = entry
        self._path_of[key] = path
        self._put_at[key] = self._clock()

    def drop(self, key: Key) -> None:
        path = self._path_of.pop(key, None)
        self._put_at.pop(key, None)
        if path is not None:
            self._by_path.pop(path, None)

    def observe(self, receiver: Object) -> None:
        """A newer copy of an indexed Receiver (suspend toggled, resources edited)."""
        key = key_of(receiver)
        path = self._path_of.get(key)
        if path is None:
            return
        entry = self._by_path[path]
        self._by_path[path] = ReceiverEntry(receiver=receiver, token=entry.token, ready=entry.ready)

    def __len__(self) -> int:
        return len(self._by_path)

    async def find(self, path: str) -> ReceiverEntry | None:
        now = self._clock()
        entry = self._by_path.get(path)
        age = None if self._refreshed_at is None else now - self._refreshed_at
        stale = age is None or age >= (self.max_age if entry is not None else self.refresh_interval)
        if stale:
            await self._refresh_once(started=now)
        return self._by_path.get(path)

    async def _refresh_once(self, *, started: float) -> None:
        async with self._lock:
            if self._refreshed_at is not None and self._refreshed_at >= started:
                return  # another request refreshed while this one waited
            try:
                await self.refresh()
            except kube_errors.KubeError as error:
                log.warning("cannot refresh the receiver index", error=str(error))
            self._refreshed_at = self._clock()

    async def refresh(self) -> None:
        """Rebuild from the API: every Receiver with a ``status.webhookPath``.

        The API decides which Receivers exist; for a Receiver the reconciler put
        in the last ``max_age`` seconds, the reconciler's entry wins, since its
        status write may not be visible in the list yet.
        """
        started = self._clock()
        receivers, _ = await self.kube.list_all(RECEIVER)
        existing = {key_of(receiver) for receiver in receivers}
        by_path: dict[str, ReceiverEntry] = {}
        for receiver in receivers:
            path = str(receiver.get("status", {}).get("webhookPath") or "")
            if not path:
                continue
            metadata = receiver["metadata"]
            try:
                token = await read_token(self.kube, receiver)
            except TokenError:
                by_path[path] = ReceiverEntry(receiver=receiver, token="", ready=False)
                continue
            expected = webhook_path(
                token=token, name=metadata["name"], namespace=metadata.get("namespace", "")
            )
            if expected != path:
                continue  # the token changed since the path was published
            by_path[path] = ReceiverEntry(
                receiver=receiver, token=token, ready=meta.object_is_ready(receiver)
            )
        path_of = {(entry.namespace, entry.name): path for path, entry in by_path.items()}
        for key, put_at in self._put_at.items():
            if started - put_at >= self.max_age or key not in existing:
                continue
            stale = path_of.pop(key, None)
            if stale is not None:
                by_path.pop(stale, None)
            path = self._path_of[key]
            by_path[path] = self._by_path[path]
            path_of[key] = path
        self._by_path = by_path
        self._path_of = path_of
        self._put_at = {key: at for key, at in self._put_at.items() if key in path_of}


class ReceiverReconciler(Reconciler):
    """Publishes the webhook path of each Receiver, as notification-controller does."""

    resource = RECEIVER

    def __init__(self, *, kube: Kube, index: ReceiverIndex) -> None:
        self.kube = kube
        self.index = index

    async def reconcile(self, obj: Object) -> Reconciled:
        metadata = obj["metadata"]
        try:
            token = await read_token(self.kube, obj)
        except TokenError as error:
            self.index.drop(key_of(obj))
            # Flux clears the path and retries with backoff; a Secret change retries at once.
            raise Transient(TOKEN_NOT_FOUND, str(error), status={"webhookPath": None}) from None
        path = webhook_path(
            token=token, name=metadata["name"], namespace=metadata.get("namespace", "")
        )
        self.index.put(path, ReceiverEntry(receiver=obj, token=token, ready=True))
        interval = format_duration(self.interval(obj))
        return Reconciled(
            meta.Reason.SUCCEEDED,
            f"Receiver initialized for path: {path}",
            status={"webhookPath": path},
            events=[
                EventNote(
                    "Normal",
                    meta.Reason.SUCCEEDED,
                    f"Reconciliation finished, next run in {interval}",
                )
            ],
        )

    def interval(self, obj: Object) -> float:
        return spec_interval(obj, default=600.0)

    def forget(self, key: Key) -> None:
        self.index.drop(key)


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str
    name: str

    def describe(self) -> str:
        return f"{self.resource.kind}/{self.namespace}/{self.name}"


class ReconcileRequests:
    """Sets ``reconcile.fluxcd.io/requestedAt`` on a Receiver's resources.

    An instance is the HTTP handler's ``ReconcileTrigger``.
    """

    def __init__(
        self,
        *,
        kube: Kube,
        recorder: EventRecorder,
        window: float,
        no_cross_namespace_refs: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.kube = kube
        self.recorder = recorder
        self.no_cross_namespace_refs = no_cross_namespace_refs
        # The Receiver of the latest push to each target, kept for its trailing patch.
        self.coalescer: Coalescer[Target, Object] = Coalescer(
            window=window, leading=True, clock=clock
        )
        self._trailing: asyncio.Task[None] | None = None

    async def __call__(self, entry: ReceiverEntry) -> bool:
        receiver = {
            "apiVersion": RECEIVER.api_version,
            "kind": RECEIVER.kind,
            **entry.receiver,
        }
        healthy = True
        for reference in entry.spec.get("resources") or []:
            try:
                targets = await self._resolve(reference, default_namespace=entry.namespace)
            except _TargetProblem as problem:
                await self._report(receiver, problem.message)
                continue
            except kube_errors.KubeError as error:
                await self._report(receiver, f"cannot list {reference.get('kind')}: {error}")
                healthy = False
                continue
            for target in targets:
                healthy = await self._request(receiver, target) and healthy
        return healthy

    async def _resolve(
        self, reference: Mapping[str, Any], *, default_namespace: str
    ) -> list[Target]:
        kind = str(reference.get("kind", ""))
        api_version = str(reference.get("apiVersion") or DEFAULT_API_VERSIONS.get(kind, ""))
        if not api_version:
            raise _TargetProblem(f"apiVersion must be specified for kind '{kind}'")
        try:
            resource = await self.kube.resource_for(api_version, kind)
        except kube_errors.NotFound:
            raise _TargetProblem(f"the API server does not serve {kind} ({api_version})") from None
        namespace = str(reference.get("namespace") or default_namespace)
        if self.no_cross_namespace_refs and namespace != default_namespace:
            raise _TargetProblem(
                f"cannot reconcile {kind} in namespace '{namespace}': "
                "cross-namespace references are not allowed"
            )
        name = str(reference.get("name", ""))
        if name != "*":
            return [Target(resource, namespace, name)]
        match_labels = reference.get("matchLabels")
        if not match_labels:
            raise _TargetProblem("matchLabels field not set when using wildcard '*' as name")
        selector = ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))
        items, _ = await self.kube.list_all(resource, namespace=namespace, label_selector=selector)
        if not items:
            raise _TargetProblem(
                f"no '{kind}' resources found with matching labels '{selector}' "
                f"in '{namespace}' namespace"
            )
        return [Target(resource, namespace, str(item["metadata"]["name"])) for item in items]

    async def _request(self, receiver: Object, target: Target) -> bool:
        if self.coalescer.add(target, receiver, item_key=target):
            return await self._annotate(receiver, target)
        log.debug("reconcile request coalesced", target=target.describe())
        if self._trailing is None or self._trailing.done():
            # The request handler cannot own it: the patch is due after the answer is sent.
            self._trailing = asyncio.get_running_loop().create_task(
                supervise(TRAILING_REQUESTS, self._write_trailing), name=TRAILING_REQUESTS
            )
        return True

    async def _write_trailing(self) -> None:
        """Write each trailing patch when its window closes; return once none is pending."""
        while len(self.coalescer):
            for batch in await self.coalescer.wait_due():
                (receiver,) = batch.items
                await self._annotate(receiver, batch.key)

    async def _annotate(self, receiver: Object, target: Target) -> bool:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        patch = {"metadata": {"annotations": {meta.RECONCILE_REQUEST_ANNOTATION: now}}}
        try:
            await self.kube.patch(
                target.resource,
                target.name,
                patch,
                namespace=target.namespace,
                patch_type=PatchType.MERGE,
            )
        except kube_errors.NotFound:
            await self._report(receiver, f"{target.describe()} not found")
            return True
        except kube_errors.KubeError as error:
            await self._report(receiver, f"cannot annotate {target.describe()}: {error}")
            return False
        log.info(
            "reconcile requested",
            receiver=f"{receiver['metadata'].get('namespace')}/{receiver['metadata'].get('name')}",
            target=target.describe(),
        )
        return True

    async def _report(self, receiver: Object, message: str) -> None:
        metadata = receiver.get("metadata", {})
        log.warning(
            "cannot request a reconcile",
            receiver=f"{metadata.get('namespace')}/{metadata.get('name')}",
            error=message,
        )
        await self.recorder.record(
            receiver, type_="Warning", reason=REQUEST_FAILED, message=message
        )

    async def aclose(self) -> None:
        """Stop writing trailing patches (the daemon is stopping)."""
        task, self._trailing = self._trailing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _TargetProblem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
