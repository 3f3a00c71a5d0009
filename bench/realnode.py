"""fluxd in its real container on a real node: its memory, and push → new app process serving.

The other benchmarks run ``fluxd run`` on the host; here fluxd runs as the
install makes it run, a Pod from manifests/ (the image testenv/images.py
builds from the Dockerfile's recipe) on the real node of testenv/node.py, and
so does the seed's app. Memory is read on the host from the container's
cgroup v1 memory controller (``memory.stat`` ``total_rss``: anonymous memory
of every process in the container, children such as ``kubectl kustomize``
and git included; ``memory.usage_in_bytes`` adds the page cache) and from
``/proc/<pid>/status`` ``VmRSS`` of the container's main process (fluxd
itself), idle after start-up and sampled through the seed flow. Each push is
timed from the commit to the app's new Pod (a new process) serving the
pushed config through its Service, with the steps in between.

Run: ``.venv/bin/python -m bench.realnode [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import machine, median, peak_rss_mib, rss_mib, write_section
from demo.realnode import (
    SeedFlow,
    container_processes,
    install_fluxd,
    just_wait,
    memory_cgroup,
)
from demo.seedflow import REALM_TOML
from fluxd.settings import Settings
from testenv import images
from testenv.cluster import running
from testenv.node import Node
from testenv.versions import KUBERNETES

_MIB = 1 << 20


@dataclass(frozen=True)
class Memory:
    """One reading of fluxd's container, in MiB."""

    fluxd_rss: float
    container_rss: float
    container_usage: float


WINDOW = Settings().restart_coalesce_window


def read_memory(pid: int, cgroup: Path) -> Memory:
    """fluxd's process ``pid`` and its container's memory cgroup ``cgroup``, now."""
    lines = (cgroup / "memory.stat").read_text().splitlines()
    stat = {name: int(value) for name, value in (line.split() for line in lines)}
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    return Memory(rss_mib(pid), stat["total_rss"] / _MIB, usage / _MIB)


@dataclass
class Sampler:
    """Read ``pod``'s memory every ``period`` seconds on a thread, until stopped."""

    pod: dict[str, Any]
    period: float = 0.2
    readings: list[Memory] = field(default_factory=list)
    pid: int = 0
    _cgroup: Path = Path()
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self.pid = container_processes(self.pod)[0]
        self._cgroup = memory_cgroup(self.pid)
        self.readings.append(read_memory(self.pid, self._cgroup))
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.readings.append(read_memory(self.pid, self._cgroup))

    def peak(self) -> Memory:
        return Memory(
            max(r.fluxd_rss for r in self.readings),
            max(r.container_rss for r in self.readings),
            max(r.container_usage for r in self.readings),
        )

    def median(self) -> Memory:
        return Memory(
            median([r.fluxd_rss for r in self.readings]),
            median([r.container_rss for r in self.readings]),
            median([r.container_usage for r in self.readings]),
        )


@dataclass
class StepClock:
    """A ``Wait`` that also records how long each step took, from ``start()``."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    began: float = 0.0

    def start(self) -> None:
        self.steps.clear()
        self.began = time.monotonic()

    def __call__(self, what: str, condition: Callable[[], Any], /, *, timeout: float) -> Any:
        result = just_wait(what, condition, timeout=timeout)
        self.steps.append((what, time.monotonic() - self.began))
        return result


def _row(label: str, memory: Memory) -> str:
    return (
        f"| {label} | {memory.fluxd_rss:.1f} MiB | {memory.container_rss:.1f} MiB "
        f"| {memory.container_usage:.1f} MiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="pushes, each rolling the app")
    parser.add_argument("--idle", type=float, default=20.0, help="idle window in seconds")
    args = parser.parse_args()

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-"))
    built = images.ensure_images()
    with running(nodes=1) as cluster:
        node = Node(cluster=cluster, images=built, workdir=workdir / "node")
        node.start()
        try:
            pod = install_fluxd(cluster, node, just_wait)
            # Start-up (informers listing, the first Lease term) is over by now: measure rest.
            time.sleep(5)
            with Sampler(pod) as idle:
                time.sleep(args.idle)
            clock = StepClock()
            pushes: list[list[tuple[str, float]]] = []
            with Sampler(pod) as flowing, SeedFlow.serving(cluster, node, clock) as flow:
                clock.start()
                flow.start()
                started = list(clock.steps)
                for run in range(args.runs):
                    # Pushes closer than the receiver's coalescing window (2 s) fold into one
                    # fetch; space them as real pushes are (as bench/gitea.py does).
                    time.sleep(2.5)
                    clock.start()
                    flow.push_and_roll(REALM_TOML + f"# push {run}\n", message=f"push {run}")
                    pushes.append(list(clock.steps))
            peak_fluxd = peak_rss_mib(flowing.pid)
            node.check()
        finally:
            node.stop()
    load_after = os.getloadavg()

    quiet, busy = idle.median(), flowing.peak()
    steps = [name for name, _ in pushes[0]]
    per_step = {name: median([dict(p)[name] for p in pushes]) for name in steps}
    totals = [p[-1][1] for p in pushes]
    lines = "\n".join(f"  - {name}: median {seconds:.2f} s" for name, seconds in per_step.items())
    first = "\n".join(f"  - {name}: {seconds:.1f} s" for name, seconds in started)
    body = f"""## Real node: fluxd's container memory, push → new app process serving

Command: `.venv/bin/python -m bench.realnode --runs {args.runs} --idle {args.idle:.0f}`
Machine: {machine()}; load average before the run
{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, after
{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}. The control plane
(Kubernetes {KUBERNETES}), the real node (containerd, runc, kubelet, kube-proxy) and fluxd's
Pod share the machine.
Date: {time.strftime("%Y-%m-%d")}

fluxd runs as installed (`kubectl apply -k tests/e2e/realnode`: manifests/ with the test image)
in its container on the real node; memory is read on the host (cgroup v1).

| fluxd's container | fluxd's VmRSS | container `total_rss` | container `usage_in_bytes` |
| --- | --- | --- | --- |
{_row(f"idle, no objects (median over {args.idle:.0f} s)", quiet)}
{_row(f"seed flow and {args.runs} pushes (peak, sampled every 0.2 s)", busy)}

fluxd's own peak (VmHWM) at the end: {peak_fluxd:.1f} MiB. The Deployment's memory limit is
512 MiB, its request 128 MiB.

- push (commit + Gitea-signed webhook to fluxd's Service) → the app's new Pod Running and
  its Service serving the pushed config: median **{median(totals):.2f} s** over
  {len(totals)} pushes (min {min(totals):.2f} s, max {max(totals):.2f} s); goal ≤ 3 s.
  From the push's start:
{lines}
- The first sync, from applying the seed's objects:
{first}

Reading: fluxd's VmRSS counts the interpreter's and libraries' file pages it maps, which the
cgroup's `total_rss` (anonymous memory only) does not; the container's anonymous memory is
what the limit is charged for on top of its page cache. Of a push's time, the Secret is
written well within a second; fluxd then holds the app's restart until
`restart-coalesce-window` closes ({WINDOW:g} s by default, counted from the change, so that
more changes within it roll the app once), and the rest is the kubelet starting the new Pod
and kube-proxy routing the Service to it.
"""
    write_section("realnode", body)
    print(body)


if __name__ == "__main__":
    main()
