"""The dashboard over real HTTP: read-only routes, the live stream, its own optional listener."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from fluxd.dashboard import Dashboard, Journal
from fluxd.server.app import Health, HttpServer
from fluxd.settings import Settings, SettingsError, load
from tests.unit.dashboard.dashboard_objects import seed_state

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
async def client(journal: Journal) -> AsyncIterator[Client]:
    dashboard = Dashboard(state=lambda: seed_state(journal), heartbeat=30, min_interval=0)
    async with TestClient(TestServer(dashboard.app(), host="127.0.0.1")) as client:
        yield client


async def test_pages_are_served_and_nothing_can_be_written(client: Client) -> None:
    async with client.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert 'id="kustomizations"' in await response.text()
    async with client.get("/kustomizations/flux-system/realm-ix") as response:
        page = await response.text()
        assert response.status == 200
        assert "└── Deployment/realm/realm" in page
        # Relative links only, so a proxy's path prefix is kept.
        assert 'href="../../"' in page
        assert 'EventSource("../../live")' in page
    async with client.get("/kustomizations/flux-system/nope") as response:
        assert response.status == 404
    async with client.post("/", data=b"x") as response:
        assert response.status == 405


async def test_the_live_stream_says_when_something_changed(
    client: Client, journal: Journal
) -> None:
    async with client.get("/live") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert await response.content.readuntil(b"\n\n") == b"retry: 3000\n\n"
        journal.record_push(receiver="flux-system/gitea", status=200, outcome="accepted")
        with anyio.fail_after(5):
            message = await response.content.readuntil(b"\n\n")
        assert message == f"event: changed\ndata: {journal.version}\n\n".encode()


@pytest.mark.parametrize(
    ("address", "served"),
    [pytest.param("", False, id="off-by-default"), pytest.param("127.0.0.1:0", True, id="on")],
)
async def test_the_dashboard_has_its_own_listener_only_when_set(address: str, served: bool) -> None:
    settings = Settings(
        metrics_addr="127.0.0.1:0",
        webhook_addr="127.0.0.1:0",
        storage_addr="127.0.0.1:0",
        dashboard_addr=address,
    )
    dashboard = Dashboard(state=lambda: seed_state()).app()
    server = HttpServer(settings=settings, health=Health(), dashboard=dashboard)
    async with anyio.create_task_group() as group:
        await group.start(server.run)
        assert ("dashboard" in server.bound) is served
        for name, (host, port) in server.bound.items():
            async with (
                ClientSession() as session,
                session.get(f"http://{host}:{port}/") as response,
            ):
                # The overview is on the dashboard listener and nowhere else.
                assert (response.status == 200) is (name == "dashboard"), name
        group.cancel_scope.cancel()


async def test_the_live_stream_follows_a_new_leadership_term() -> None:
    journals = [Journal()]
    dashboard = Dashboard(state=lambda: seed_state(journals[-1]), heartbeat=30, min_interval=0)
    async with (
        TestClient(TestServer(dashboard.app(), host="127.0.0.1")) as client,
        client.get("/live") as response,
    ):
        await response.content.readuntil(b"\n\n")
        # A new term: a fresh journal that starts from the old one's records.
        fresh = Journal()
        fresh.carry_over(journals[0])
        journals.append(fresh)
        with anyio.fail_after(5):
            assert (await response.content.readuntil(b"\n\n")).startswith(b"event: changed")
        fresh.record_push(receiver="flux-system/gitea", status=200, outcome="accepted")
        with anyio.fail_after(5):
            message = await response.content.readuntil(b"\n\n")
        assert message == f"event: changed\ndata: {fresh.version}\n\n".encode()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, "", id="off-by-default"),
        pytest.param({"FLUXD_DASHBOARD_ADDR": ""}, "", id="empty-is-off"),
        pytest.param({"FLUXD_DASHBOARD_ADDR": "127.0.0.1:9333"}, "127.0.0.1:9333", id="on"),
    ],
)
def test_the_dashboard_setting(environ: dict[str, str], expected: str) -> None:
    assert load(environ=environ).dashboard_addr == expected


def test_an_empty_address_still_switches_off_nothing_else() -> None:
    with pytest.raises(SettingsError, match="metrics-addr"):
        load(environ={"FLUXD_METRICS_ADDR": ""})
    with pytest.raises(SettingsError, match="dashboard-addr"):
        load(environ={"FLUXD_DASHBOARD_ADDR": "9333"})


async def test_an_open_page_does_not_hold_up_the_daemon_stopping() -> None:
    settings = Settings(
        metrics_addr="127.0.0.1:0",
        webhook_addr="127.0.0.1:0",
        storage_addr="127.0.0.1:0",
        dashboard_addr="127.0.0.1:0",
    )
    dashboard = Dashboard(state=lambda: seed_state(), heartbeat=30).app()
    server = HttpServer(settings=settings, health=Health(), dashboard=dashboard)
    async with ClientSession() as session:
        # aiohttp would otherwise wait for the open stream for its 60 s shutdown grace.
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                await group.start(server.run)
                host, port = server.bound["dashboard"]
                live = await session.get(f"http://{host}:{port}/live")
                assert await live.content.readuntil(b"\n\n") == b"retry: 3000\n\n"
                group.cancel_scope.cancel()
        live.close()
