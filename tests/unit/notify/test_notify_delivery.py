"""The delivery queue: never blocks the publisher, retries, gives up, dedups, paces robots."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from fluxd.notify import (
    DeliveryQueue,
    DeliveryRecord,
    Outcome,
    ProviderConfig,
    RateLimit,
    RetryPolicy,
    build_provider,
)
from fluxd.notify.providers import Provider
from tests.unit.notify.notify_services import StartService, make_event

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05)


def generic(
    session: aiohttp.ClientSession, url: str, *, name: str = "hook", timeout: str = "2s"
) -> Provider:
    provider = {
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"type": "generic", "timeout": timeout},
    }
    config = ProviderConfig.from_objects(provider, secret={"address": url, "token": "tok-secret"})
    return build_provider(config, session=session)


def outcomes(records: list[DeliveryRecord]) -> list[tuple[Outcome, int]]:
    return [(record.outcome, record.attempts) for record in records]


async def test_failing_service_is_retried_then_given_up_and_counted(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def broken(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=500)

    service = await start_service(broken)
    records: list[DeliveryRecord] = []
    async with DeliveryQueue(retry=FAST_RETRY, observer=records.append) as queue:
        assert queue.submit(generic(session, service.url("/")), make_event())
        await queue.join()

    assert len(service.received) == 3
    assert outcomes(records) == [
        (Outcome.RETRIED, 1),
        (Outcome.RETRIED, 2),
        (Outcome.FAILED, 3),
    ]
    assert records[-1].provider == "flux-system/hook"
    assert records[-1].provider_type == "generic"


async def test_service_that_recovers_gets_the_notification(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    answers = iter([503, 502, 200])

    async def flaky(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=next(answers))

    service = await start_service(flaky)
    records: list[DeliveryRecord] = []
    async with DeliveryQueue(retry=FAST_RETRY, observer=records.append) as queue:
        queue.submit(generic(session, service.url("/")), make_event())
        await queue.join()

    assert outcomes(records)[-1] == (Outcome.DELIVERED, 3)
    assert len(service.received) == 3


async def test_rejected_notification_is_not_retried(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def strict(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=400)

    service = await start_service(strict)
    records: list[DeliveryRecord] = []
    async with DeliveryQueue(retry=FAST_RETRY, observer=records.append) as queue:
        queue.submit(generic(session, service.url("/")), make_event())
        await queue.join()

    assert len(service.received) == 1
    assert outcomes(records) == [(Outcome.FAILED, 1)]


async def test_unreachable_service_is_given_up_without_logging_the_token(
    session: aiohttp.ClientSession,
) -> None:
    # Port 9 (discard) on loopback: nothing listens there, the connection is refused.
    provider = generic(session, "http://127.0.0.1:9/hook?token=tok-secret")
    records: list[DeliveryRecord] = []
    with structlog.testing.capture_logs() as logs:
        async with DeliveryQueue(retry=FAST_RETRY, observer=records.append) as queue:
            queue.submit(provider, make_event())
            await queue.join()

    assert outcomes(records)[-1] == (Outcome.FAILED, 3)
    assert any(entry["event"] == "notification not delivered; giving up" for entry in logs)
    assert "tok-secret" not in repr(logs)
    assert "tok-secret" not in repr(records)


async def test_slow_service_never_blocks_the_publisher_or_other_providers(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def slow(request: web.Request, body: bytes) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response(status=200)

    fast_served = asyncio.Event()

    async def fast(request: web.Request, body: bytes) -> web.StreamResponse:
        fast_served.set()
        return web.Response(status=200)

    slow_service = await start_service(slow)
    fast_service = await start_service(fast)
    records: list[DeliveryRecord] = []
    slow_reported = asyncio.Event()

    def observe(record: DeliveryRecord) -> None:
        records.append(record)
        if record.provider == "flux-system/slow":
            slow_reported.set()

    async with DeliveryQueue(
        retry=RetryPolicy(max_attempts=2, initial_delay=0.01), observer=observe
    ) as queue:
        slow_hook = generic(session, slow_service.url("/"), name="slow", timeout="150ms")
        fast_hook = generic(session, fast_service.url("/"), name="fast")
        # submit() is a plain call: it queues and returns, whatever the services do.
        accepted = [
            queue.submit(slow_hook, make_event(message=f"event {index}")) for index in range(50)
        ]
        accepted.append(queue.submit(fast_hook, make_event()))
        assert all(accepted) and records == []

        # Behind the slow lane, the fast event would wait for 50 x 2 timed-out attempts (15 s).
        async with asyncio.timeout(5):
            await fast_served.wait()
            await slow_reported.wait()  # the first slow attempt times out meanwhile
        assert len(fast_service.received) == 1

    slow_failures = [r for r in records if r.provider == "flux-system/slow"]
    assert slow_failures[0].outcome is Outcome.RETRIED
    assert "150ms" not in slow_failures[0].reason and "0.15s" in slow_failures[0].reason


async def test_same_event_to_same_provider_is_sent_once_per_window(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    async def ok(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=200)

    service = await start_service(ok)
    now = [1000.0]
    records: list[DeliveryRecord] = []
    queue = DeliveryQueue(dedup_window=300, observer=records.append, clock=lambda: now[0])
    hook = generic(session, service.url("/"), name="a")
    other_hook = generic(session, service.url("/"), name="b")
    async with queue:
        assert queue.submit(hook, make_event(message="applied"))
        # Only the timestamp differs: still the same event.
        assert not queue.submit(hook, make_event(message="applied"))
        assert queue.submit(other_hook, make_event(message="applied"))
        assert queue.submit(hook, make_event(message="applied", metadata={"revision": "b"}))
        assert queue.submit(hook, make_event(message="pruned"))
        now[0] += 301
        assert queue.submit(hook, make_event(message="applied"))
        await queue.join()

    assert len(service.received) == 5
    assert [r.outcome for r in records].count(Outcome.DEDUPLICATED) == 1


async def test_robot_is_paced_to_its_rate_limit(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    arrivals: list[float] = []

    async def robot(request: web.Request, body: bytes) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    service = await start_service(robot)
    config = ProviderConfig.from_objects(
        {"metadata": {"name": "ding", "namespace": "ops"}, "spec": {"type": "dingtalk"}},
        secret={"address": service.url("/robot/send?access_token=t")},
    )
    robot_provider = build_provider(config, session=session)
    assert robot_provider.rate_limits == (RateLimit(20, 60.0),)
    records: list[DeliveryRecord] = []
    limits = {"dingtalk": (RateLimit(2, 0.3),)}
    async with DeliveryQueue(rate_limits=limits, observer=records.append) as queue:
        for index in range(5):
            assert queue.submit(robot_provider, make_event(message=f"restart {index}"))
        await queue.join()

    assert len(arrivals) == 5
    for first, third in zip(arrivals, arrivals[2:], strict=False):
        assert third - first >= 0.29
    assert Outcome.THROTTLED in {record.outcome for record in records}
    assert [r.outcome for r in records].count(Outcome.DELIVERED) == 5


async def test_full_lane_drops_instead_of_blocking(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def stuck(request: web.Request, body: bytes) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    service = await start_service(stuck)
    records: list[DeliveryRecord] = []
    async with DeliveryQueue(lane_capacity=2, observer=records.append) as queue:
        hook = generic(session, service.url("/"))
        accepted = [queue.submit(hook, make_event(message=f"m{index}")) for index in range(5)]
        release.set()
        await queue.join()

    # submit never waits: the lane worker has not run yet, so two fit and three are dropped.
    assert accepted == [True, True, False, False, False]
    assert [r.outcome for r in records].count(Outcome.DROPPED) == accepted.count(False)


async def test_crashing_provider_does_not_stop_the_lane(session: aiohttp.ClientSession) -> None:
    class Exploding:
        config = ProviderConfig(provider_type="generic", name="x", namespace="y")
        rate_limits: tuple[RateLimit, ...] = ()
        calls = 0

        async def send(self, event: Any) -> None:
            type(self).calls += 1
            if type(self).calls == 1:
                raise KeyError("bug")

    records: list[DeliveryRecord] = []
    with structlog.testing.capture_logs():
        async with DeliveryQueue(observer=records.append) as queue:
            queue.submit(Exploding(), make_event(message="one"))
            queue.submit(Exploding(), make_event(message="two"))
            await queue.join()

    assert [r.outcome for r in records] == [Outcome.FAILED, Outcome.DELIVERED]


async def test_closed_queue_refuses_work(session: aiohttp.ClientSession) -> None:
    queue = DeliveryQueue()
    await queue.aclose()
    with pytest.raises(RuntimeError):
        queue.submit(generic(session, "http://127.0.0.1:9/"), make_event())


async def test_retired_lane_stops_and_drops_what_it_held(
    start_service: StartService, session: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()
    calls = 0

    async def stuck(request: web.Request, body: bytes) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        arrived.set()
        await asyncio.Event().wait()
        return web.Response(status=200)

    service = await start_service(stuck)
    records: list[DeliveryRecord] = []
    async with DeliveryQueue(observer=records.append) as queue:
        hook = generic(session, service.url("/"), timeout="30s")
        for index in range(3):
            queue.submit(hook, make_event(message=f"m{index}"))
        await arrived.wait()

        with structlog.testing.capture_logs():
            dropped = queue.retire(hook.config.key, reason="the provider was deleted")

        assert dropped == 3
        assert queue.lanes == 0
        await queue.join()
    assert [r.outcome for r in records] == [Outcome.DROPPED] * 3
    assert calls == 1
