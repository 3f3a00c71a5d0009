"""The real services notification tests deliver to: Alertmanager and a NATS server.

Both come from testenv/build.py's ``NOTIFY_PEERS`` group and run as child
processes on free loopback ports, each in its own scratch directory, for as
long as the ``async with`` block that started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fluxd.notify.providers.base import basic_authorization
from testenv import build
from testenv.cluster import die_with_parent, free_port, log_tail

_READY_SECONDS = 30.0

# Alertmanager's web config wants bcrypt hashes: this one is of ALERTMANAGER_PASSWORD
# (cost 4, computed once), so the tests need no bcrypt library.
ALERTMANAGER_USER = "fluxd"
ALERTMANAGER_PASSWORD = "alertmanager-pass"
_ALERTMANAGER_WEB_CONFIG = f"""\
basic_auth_users:
  {ALERTMANAGER_USER}: $2b$04$kCU4aG51iAN.l.IA.1uFoODklsv2JDtFQIF67dr3bEMfg343qPaE.
"""
ALERTMANAGER_HEADERS = {
    "Authorization": basic_authorization(ALERTMANAGER_USER, ALERTMANAGER_PASSWORD)
}

ALERTMANAGER_CONFIG = """\
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


@dataclass(frozen=True)
class Peer:
    """A running service: where it listens."""

    url: str


@contextlib.asynccontextmanager
async def _process(argv: Sequence[str], log_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - a short, non-blocking fork
            list(argv), stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def _wait_ready(
    process: subprocess.Popen[bytes],
    probe: str,
    log_path: Path,
    *,
    http: bool,
    headers: dict[str, str] | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_SECONDS
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{probe} exited early:\n{log_tail(log_path)}")
            with contextlib.suppress(OSError, aiohttp.ClientError):
                if http:
                    async with session.get(probe, headers=headers) as response:
                        if response.status == 200:
                            return
                else:
                    host, _, port = probe.rpartition(":")
                    _, writer = await asyncio.open_connection(host, int(port))
                    writer.close()
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{probe} not ready in {_READY_SECONDS:g}s:\n{log_tail(log_path)}")


def _scratch(workdir: Path, name: str = "", content: str = "") -> Path:
    """``workdir``, created, with file ``name`` written in it when given."""
    workdir.mkdir(parents=True, exist_ok=True)
    if name:
        (workdir / name).write_text(content)
    return workdir / name


@contextlib.asynccontextmanager
async def alertmanager(workdir: Path) -> AsyncIterator[Peer]:
    """A real Alertmanager (API v2) with one blackhole receiver, no clustering.

    Every request must authenticate as ``ALERTMANAGER_USER`` (basic auth).
    """
    binary = build.ensure_binaries(build.NOTIFY_PEERS) / "alertmanager"
    config = _scratch(workdir, "alertmanager.yml", ALERTMANAGER_CONFIG)
    web_config = _scratch(workdir, "web.yml", _ALERTMANAGER_WEB_CONFIG)
    port = free_port()
    log_path = workdir / "alertmanager.log"
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web_config}",
        "--cluster.listen-address=",  # a single instance: no gossip port
    ]
    url = f"http://127.0.0.1:{port}"
    async with _process(argv, log_path) as process:
        await _wait_ready(
            process, f"{url}/-/ready", log_path, http=True, headers=ALERTMANAGER_HEADERS
        )
        yield Peer(url=url)


@contextlib.asynccontextmanager
async def nats_server(workdir: Path, *, user: str, password: str) -> AsyncIterator[Peer]:
    """A real NATS server that accepts only ``user``/``password``."""
    binary = build.ensure_binaries(build.NOTIFY_PEERS) / "nats-server"
    _scratch(workdir)
    port = free_port()
    log_path = workdir / "nats-server.log"
    argv = [str(binary), "-a", "127.0.0.1", "-p", str(port), "--user", user, "--pass", password]
    async with _process(argv, log_path) as process:
        await _wait_ready(process, f"127.0.0.1:{port}", log_path, http=False)
        yield Peer(url=f"nats://127.0.0.1:{port}")
