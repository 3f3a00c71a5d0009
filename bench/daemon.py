"""Idle cost of ``fluxd run``: RSS and CPU with no objects, and with 1,000 objects cached.

Starts the test control plane, installs the CRDs, runs the real daemon as a
child process, and samples it over several windows. The 1,000 objects are
suspended GitRepositories: they sit in the informer cache and are reconciled
once, as a user's idle objects would be.

With ``--dashboard`` it compares instead the idle daemon without the
dashboard, with it on and nobody connected, and with one page's live stream
open: each variant is a fresh daemon, the variants alternate run by run so
that drift of the shared machine spreads over all of them.

Run: ``.venv/bin/python -m bench.daemon [--objects 1000] [--window 20] [--runs 3]``
or ``.venv/bin/python -m bench.daemon --dashboard [--window 20] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.common import CpuWindow, machine, median, rss_mib, write_section
from testenv.api import wait_for
from testenv.cluster import Cluster, free_port, running
from tests.support.crds import install_crds
from tests.support.daemon import Fluxd


def sample(pid: int, *, window: float, runs: int) -> tuple[float, float]:
    shares, rss = [], []
    for _ in range(runs):
        with CpuWindow(pid) as cpu:
            time.sleep(window)
            shares.append(cpu.share())
        rss.append(rss_mib(pid))
    return median(rss), median(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--window", type=float, default=20.0, help="seconds per CPU sample")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--dashboard", action="store_true", help="idle cost with the dashboard on, off and open"
    )
    args = parser.parse_args()
    if args.dashboard:
        dashboard_main(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-"))
    with running() as cluster:
        install_crds(cluster.api)
        daemon = Fluxd(cluster, workdir, extra_args=["--log-level=warning"]).start()
        try:
            assert daemon.process is not None
            pid = daemon.process.pid
            wait_for(lambda: daemon.metric("fluxd_leader") == 1, timeout=60, what="leader")
            time.sleep(5)
            idle_rss, idle_cpu = sample(pid, window=args.window, runs=args.runs)

            cluster.create_namespace("bench")
            started = time.monotonic()
            for index in range(args.objects):
                cluster.api.create(
                    "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/gitrepositories",
                    {
                        "apiVersion": "source.toolkit.fluxcd.io/v1",
                        "kind": "GitRepository",
                        "metadata": {"name": f"repo-{index:04d}"},
                        "spec": {
                            "interval": "1m",
                            "url": f"http://127.0.0.1:1/bench/{index}.git",
                            "suspend": True,
                        },
                    },
                )
            created = time.monotonic() - started

            def all_seen() -> bool:
                _, text = daemon.get("/metrics")
                seen = sum(
                    1
                    for line in text.splitlines()
                    if line.startswith("gotk_suspend_status{") and 'namespace="bench"' in line
                )
                return bool(seen >= args.objects)

            wait_for(all_seen, timeout=300, what="every object handled once")
            handled = time.monotonic() - started
            time.sleep(5)
            loaded_rss, loaded_cpu = sample(pid, window=args.window, runs=args.runs)
        finally:
            daemon.stop()

    command = (
        f"`.venv/bin/python -m bench.daemon --objects {args.objects} "
        f"--window {args.window:g} --runs {args.runs}`"
    )
    body = f"""## Daemon idle cost (`fluxd run`)

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}. Median of {args.runs} windows of {args.window:g} s each.

| state | RSS | CPU (share of one core) |
| --- | --- | --- |
| no objects | {idle_rss:.1f} MiB | {idle_cpu * 100:.2f} % |
| {args.objects} suspended GitRepositories | {loaded_rss:.1f} MiB | {loaded_cpu * 100:.2f} % |

Creating the {args.objects} objects took {created:.1f} s; every one had been handled
(listed, queued, read, found suspended) {handled:.1f} s after the first was created.
"""
    write_section("daemon", body)
    print(body)


VARIANTS = ("dashboard off", "dashboard on, nobody connected", "dashboard on, one live page open")


@contextlib.contextmanager
def live_stream(url: str) -> Iterator[None]:
    """Hold the dashboard's live stream open, as an open page does, reading what it sends."""
    response = urllib.request.urlopen(f"{url}live", timeout=60)

    def read() -> None:
        while response.readline():
            pass  # heartbeats; nothing changes while idle

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield
    finally:
        # The daemon has stopped by now, which ended the stream and the reader.
        reader.join(timeout=30)
        response.close()


def idle_run(
    cluster: Cluster, workdir: Path, variant: str, *, window: float
) -> tuple[float, float]:
    port = free_port()
    extra = ["--log-level=warning"]
    if variant != VARIANTS[0]:
        extra.append(f"--dashboard-addr=127.0.0.1:{port}")
    daemon = Fluxd(cluster, workdir, extra_args=extra).start()
    try:
        assert daemon.process is not None
        wait_for(lambda: daemon.metric("fluxd_leader") == 1, timeout=60, what="leader")
        url = f"http://127.0.0.1:{port}/"
        with contextlib.ExitStack() as stack:
            if variant == VARIANTS[2]:
                stack.enter_context(live_stream(url))
            time.sleep(5)
            figures = sample(daemon.process.pid, window=window, runs=1)
            assert daemon.stop() == 0, daemon.log_tail()
        return figures
    finally:
        daemon.stop()


def dashboard_main(args: argparse.Namespace) -> None:
    figures: dict[str, list[tuple[float, float]]] = {variant: [] for variant in VARIANTS}
    with running() as cluster:
        install_crds(cluster.api)
        for run in range(args.runs):
            for variant in VARIANTS:
                workdir = Path(tempfile.mkdtemp(prefix=f"fluxd-bench-{run}-"))
                figures[variant].append(idle_run(cluster, workdir, variant, window=args.window))
    rows = "\n".join(
        f"| {variant} | {median([rss for rss, _ in runs]):.1f} MiB "
        f"| {median([cpu for _, cpu in runs]) * 100:.2f} % |"
        for variant, runs in figures.items()
    )
    options = f"--dashboard --window {args.window:g} --runs {args.runs}"
    command = f"`.venv/bin/python -m bench.daemon {options}`"
    body = f"""## Daemon idle cost with the dashboard (`fluxd run --dashboard-addr`)

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}. No objects; each variant is a fresh daemon, the variants
alternate; median of {args.runs} windows of {args.window:g} s each (one per daemon).

| state | RSS | CPU (share of one core) |
| --- | --- | --- |
{rows}
"""
    write_section("daemon-dashboard", body)
    print(body)


if __name__ == "__main__":
    main()
