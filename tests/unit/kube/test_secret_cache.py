"""Secrets are read again only when the watch of their metadata says they moved."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import pytest

from fluxd.kube import errors
from fluxd.kube.client import Kube, Object
from fluxd.kube.resources import Resource
from fluxd.kube.secretcache import SecretCache
from fluxd.kube.secrets import secret_bytes


def _secret(name: str, version: str, password: str) -> Object:
    return {
        "metadata": {"name": name, "namespace": "apps", "resourceVersion": version},
        "data": {"password": base64.b64encode(password.encode()).decode()},
    }


class SecretsApi:
    """The API server's Secrets: GETs counted, metadata watched through a queue."""

    def __init__(self) -> None:
        self.secrets: dict[str, Object] = {}
        self.gets: list[str] = []
        self.events: asyncio.Queue[Object] = asyncio.Queue()

    def put(self, secret: Object, change: str = "MODIFIED") -> None:
        name = secret["metadata"]["name"]
        if change == "DELETED":
            self.secrets.pop(name, None)
        else:
            self.secrets[name] = secret
        self.events.put_nowait({"type": change, "object": secret})

    async def list_all(self, resource: Resource, **_: Any) -> tuple[list[Object], str]:
        return list(self.secrets.values()), "1"

    async def watch(self, resource: Resource, **_: Any) -> AsyncIterator[Object]:
        while True:
            yield await self.events.get()

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object:
        self.gets.append(name)
        if name not in self.secrets:
            raise errors.NotFound(f'secrets "{name}" not found', status=404)
        return self.secrets[name]


async def _settled(api: SecretsApi) -> None:
    # The informer handles each queued event before the queue is empty again.
    with anyio.fail_after(5):
        while not api.events.empty():  # noqa: ASYNC110 - waiting for the fake's queue to drain
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)


async def test_an_unchanged_secret_is_read_once_and_a_changed_one_again() -> None:
    api = SecretsApi()
    api.put(_secret("git-auth", "10", "first"), "ADDED")
    cache = SecretCache(cast(Kube, api))
    async with anyio.create_task_group() as group:
        group.start_soon(cache.run)
        await cache.watch.synced.wait()
        for _ in range(3):
            assert secret_bytes(await cache.get("apps", "git-auth")) == {"password": b"first"}
        assert api.gets == ["git-auth"]

        api.put(_secret("git-auth", "11", "second"))
        await _settled(api)
        assert secret_bytes(await cache.get("apps", "git-auth")) == {"password": b"second"}
        assert secret_bytes(await cache.get("apps", "git-auth")) == {"password": b"second"}
        assert api.gets == ["git-auth", "git-auth"]
        group.cancel_scope.cancel()


async def test_a_secret_the_watch_does_not_know_is_asked_of_the_api_server_each_time() -> None:
    api = SecretsApi()
    cache = SecretCache(cast(Kube, api))
    async with anyio.create_task_group() as group:
        group.start_soon(cache.run)
        await cache.watch.synced.wait()
        for _ in range(2):
            with pytest.raises(errors.NotFound):
                await cache.get("apps", "missing")
        assert api.gets == ["missing", "missing"]

        api.put(_secret("missing", "12", "created"), "ADDED")
        await _settled(api)
        assert secret_bytes(await cache.get("apps", "missing")) == {"password": b"created"}
        api.put(_secret("missing", "12", "created"), "DELETED")
        await _settled(api)
        assert len(cache) == 0
        with pytest.raises(errors.NotFound):
            await cache.get("apps", "missing")
        group.cancel_scope.cancel()


async def test_before_the_watch_is_synced_every_read_goes_to_the_api_server() -> None:
    api = SecretsApi()
    api.put(_secret("git-auth", "10", "first"), "ADDED")
    cache = SecretCache(cast(Kube, api))
    await cache.get("apps", "git-auth")
    await cache.get("apps", "git-auth")
    assert api.gets == ["git-auth", "git-auth"]
