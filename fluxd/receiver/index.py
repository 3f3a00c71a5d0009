"""Webhook path → Receiver: how the handler finds the Receiver a request is for.

The reconciler keeps ``ReceiverIndex`` current on the leader; any replica (the
webhook port is served by all of them) also refreshes it from the API, at
most once per ``refresh_interval`` on a miss and once per ``max_age`` on a
hit, so a flood of unknown paths costs no API calls. ``read_secret`` reads the
Receiver's Secret, for the index and for the reconciler alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import structlog

from fluxd.api import meta, notification
from fluxd.api.notification import receiver_webhook_path as webhook_path
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.informer import Key, key_of
from fluxd.kube.resources import SECRET, Resource
from fluxd.kube.secrets import secret_texts
from fluxd.receiver.handler import ReceiverEntry

log = structlog.get_logger("fluxd.receiver.index")

RECEIVER = Resource.of(notification.RECEIVER)


class TokenError(Exception):
    """The Receiver's Secret or its ``token`` key is missing; the message names which."""


async def read_secret(kube: Kube, receiver: Object) -> dict[str, str]:
    """The Receiver's Secret as text, with its ``token`` (gcr reads more keys).

    A Receiver without ``secretRef`` (``generic-oidc``) has an empty token, as
    in Flux: its webhook path is derived from its name and namespace alone.
    """
    if not (receiver.get("spec", {}).get("secretRef") or {}).get("name"):
        return {"token": ""}
    metadata = receiver["metadata"]
    namespace = str(metadata.get("namespace", ""))
    secret_name = str((receiver.get("spec", {}).get("secretRef") or {}).get("name", ""))
    where = f"{namespace}/{secret_name}"
    try:
        secret = await kube.get(SECRET, secret_name, namespace=namespace)
    except kube_errors.NotFound:
        raise TokenError(f"unable to read token from secret '{where}': not found") from None
    texts = secret_texts(secret)
    if "token" not in texts:
        raise TokenError(f"invalid '{where}' secret data: required field 'token'")
    return texts


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
        self._by_path[path] = dataclasses.replace(entry, receiver=receiver)

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
                secret = await read_secret(self.kube, receiver)
            except TokenError:
                by_path[path] = ReceiverEntry(receiver=receiver, token="", ready=False)
                continue
            token = secret["token"]
            expected = webhook_path(
                token=token, name=metadata["name"], namespace=metadata.get("namespace", "")
            )
            if expected != path:
                continue  # the token changed since the path was published
            by_path[path] = ReceiverEntry(
                receiver=receiver,
                token=token,
                ready=meta.object_is_ready(receiver),
                secret=secret,
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
