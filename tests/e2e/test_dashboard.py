"""The dashboard in a real headless Chromium, on the seed flow, before and after a push.

The browser is driven over the DevTools protocol (an aiohttp websocket), so
no driver package is needed. What is checked is what a user sees: elements
found by DOM queries, a real screenshot, no console errors or exceptions, and
the open page updating itself (server-sent events) when the push lands.
Every page's HTML is also searched for the Secret's plaintext and the
credentials the seed uses: none may appear.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from demo.seedflow import REALM_TOML, ready, running_pods
from testenv.api import Api, wait_for
from testenv.cluster import Cluster, free_port
from testenv.gitea import gitea_push
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.seedflow import (
    KS_PATH,
    RECEIVER_PATH,
    REPO_PATH,
    WEBHOOK_TOKEN,
    deliver,
    push_and_deliver,
    seeded_flow,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium phones home and this network refuses it.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)
SECRET_PLAINTEXT = ("203.0.113.10:443", "203.0.113.20:443", 'level = "warn"')
CREDENTIALS = ("gitea-personal-access-token", WEBHOOK_TOKEN)


class Page:
    """One Chromium tab over the DevTools protocol; collects console errors as they come."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            if "id" in data:
                self._answers.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Page.loadEventFired":
                self._loaded.set()
            elif method == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                self.errors.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                self.errors.append(str(params["entry"].get("text")))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._answers[number] = answer
        await self.socket.send_json({"id": number, "method": method, "params": params})
        data = await asyncio.wait_for(answer, 30)
        assert "error" not in data, data
        result: dict[str, Any] = data["result"]
        return result

    async def open(self, url: str) -> None:
        self._loaded.clear()
        await self.call("Page.navigate", url=url)
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_until(self, expression: str, *, timeout: float, what: str) -> Any:
        """Poll a DOM query until it is truthy (the page updates itself; nothing reloads it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.write_bytes, png)
        return png

    async def aclose(self) -> None:
        self._reader.cancel()
        await self.socket.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium with a fresh profile; its DevTools port."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    port = free_port()
    with (tmp_path / "chromium.log").open("wb") as log:
        process = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


@asynccontextmanager
async def tab(port: int) -> AsyncIterator[Page]:
    """The browser's first tab, with console errors collected."""
    async with aiohttp.ClientSession() as session:
        targets: list[dict[str, Any]] = []
        for _ in range(120):
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                    targets = [t for t in await answer.json() if t["type"] == "page"]
                if targets:
                    break
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.25)
        assert targets, "Chromium did not start (see chromium.log)"
        socket = await session.ws_connect(
            targets[0]["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024
        )
        page = Page(socket)
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        try:
            yield page
        finally:
            await page.aclose()


def png_is_a_real_picture(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG that decodes to more than a blank canvas."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    offset, idat = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    pixels = zlib.decompress(idat)
    # Text, tables and colours: a blank or single-colour page has a handful of byte values.
    assert len(set(pixels)) > 32, "the screenshot is (nearly) blank"
    return width, height


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def assert_nothing_secret(html: str, where: str) -> None:
    for value in (*SECRET_PLAINTEXT, *CREDENTIALS):
        assert value not in html, f"{value!r} shown on {where}"


@pytest.fixture(scope="module")
def seeded(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitServer, Fluxd, str]]:
    port = free_port()
    with seeded_flow(
        cluster,
        tmp_path_factory.mktemp("dashboard"),
        extra_args=[f"--dashboard-addr=127.0.0.1:{port}"],
    ) as (git, daemon):
        yield git, daemon, f"http://127.0.0.1:{port}/"


ROW_TEXT = "[...document.querySelectorAll({selector!r})].map(e => e.textContent).join('\\n')"


def rows(selector: str) -> str:
    return ROW_TEXT.format(selector=selector)


async def test_the_dashboard_shows_a_push_its_revision_tree_and_restart(
    api: Api, seeded: tuple[GitServer, Fluxd, str], browser: int, tmp_path: Path
) -> None:
    git, daemon, url = seeded
    wait_for(lambda: ready(api, REPO_PATH), timeout=120, what="GitRepository Ready")
    wait_for(lambda: ready(api, KS_PATH), timeout=120, what="Kustomization Ready")
    wait_for(lambda: ready(api, RECEIVER_PATH), timeout=60, what="Receiver Ready")
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    first = api.get(REPO_PATH)["status"]["artifact"]["revision"]
    hook = api.get(RECEIVER_PATH)["status"]["webhookPath"]

    async with tab(browser) as page:
        await page.open(url)
        # Before the push: the first revision, the Secret in realm-ix's tree, no restart yet.
        sources = await page.wait_until(
            rows("#sources tr.source"), timeout=30, what="the source row"
        )
        assert "flux-system/k3s-private-repo" in sources and first in sources
        tree = await page.evaluate(rows("#kustomizations tr.inventory pre.tree"))
        # The seed's Kustomization applies the generated Secret; the Deployment is applied by hand.
        assert tree == "Kustomization/flux-system/realm-ix\n└── Secret/realm/realm-config-ix"
        assert await page.evaluate("document.querySelectorAll('#restarts tr.restart').length") == 0
        width, _ = png_is_a_real_picture(await page.screenshot(tmp_path / "before.png"))
        assert width == 1280

        before = running_pods(api)
        changed = REALM_TOML.replace("203.0.113.10", "203.0.113.20")
        body = gitea_push(repository="k3s/k3s-private", after="0" * 40)
        assert deliver(daemon, hook, body, secret="not-the-token") == 401
        sha = push_and_deliver(git, daemon, hook, {"realm/ix/realm_ix.toml": changed})

        # After: the same open page, never reloaded, shows the push, revision and restart.
        revision = f"master@sha1:{sha}"
        await page.wait_until(
            f"{rows('#sources tr.source')}.includes({revision!r})",
            timeout=60,
            what="the new revision on the page",
        )
        pushes = await page.wait_until(
            f"document.querySelectorAll('#pushes tr.push.accepted').length && "
            f"{rows('#pushes tr.push')}",
            timeout=30,
            what="the accepted push",
        )
        assert "flux-system/gitea" in pushes and "401" in pushes and "200" in pushes
        restart = await page.wait_until(
            f"{rows('#restarts tr.restart')}.includes('Deployment/realm/realm') && "
            f"{rows('#restarts tr.restart')}",
            timeout=90,
            what="the restart on the page",
        )
        assert "Secret/realm/realm-config-ix" in restart
        links = await page.evaluate(
            "[...document.querySelectorAll('#restarts td.origin a')].map(a => a.href)"
        )
        assert any(link.endswith(f"/commit/{sha}") for link in links), links
        assert any(link.endswith(f"/src/commit/{sha}/realm/ix") for link in links), links
        png_is_a_real_picture(await page.screenshot(tmp_path / "after.png"))
        assert_nothing_secret(await page.evaluate("document.documentElement.outerHTML"), url)

        # The Kustomization's own page, reached by its link.
        await page.evaluate(
            "document.querySelector('#kustomizations a[href*=\"realm-ix\"]').click()"
        )
        await page.wait_until(
            "document.querySelector('#tree') !== null", timeout=30, what="the Kustomization page"
        )
        tree = await page.evaluate("document.querySelector('#tree').innerText")
        assert "└── " in tree and "Secret/realm/realm-config-ix" in tree
        assert revision in await page.evaluate("document.querySelector('.revision').innerText")
        png_is_a_real_picture(await page.screenshot(tmp_path / "kustomization.png"))
        assert page.errors == []

    wait_for(
        lambda: (now := running_pods(api)) and not now & before,
        timeout=90,
        what="the Pods replaced",
    )
    for path in ("", "kustomizations/flux-system/realm-ix"):
        assert_nothing_secret(fetch(url + path), url + path)
    # The dashboard is not on the public webhook port, nor on the metrics port.
    for other in (daemon.webhook_url, daemon.metrics_url):
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(f"{other}/")
        refused.value.close()
        assert refused.value.code == 404
