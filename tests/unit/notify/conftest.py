"""Fixtures for notification tests: a factory of local HTTP services and a client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.unit.notify.notify_services import Handler, Service, StartService, start


@pytest.fixture
async def start_service() -> AsyncIterator[StartService]:
    started: list[Service] = []

    async def start_one(handler: Handler) -> Service:
        service = await start(handler)
        started.append(service)
        return service

    yield start_one
    for service in started:
        await service.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
