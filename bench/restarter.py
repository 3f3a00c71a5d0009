"""Benchmark of the restarter: memory of its caches, and Secret-update-to-patch latency.

Fills a namespace of the test control plane (or any cluster given with
``--kubeconfig``) with Secrets, ConfigMaps and Deployments annotated
``reloader.stakater.com/auto`` (0 replicas: the patch is what is measured, not
the pods), runs the restarter service in this process, and reports:

* the resident memory the service adds once it has listed everything (its
  informer caches, digest cache and workload index), and how long start-up took;
* the time from a Secret update (request sent) to the Deployment's pod
  template carrying the new digest (seen on a watch), for updates one at a time
  and for a burst of simultaneous updates.

Run: ``.venv/bin/python -m bench.restarter`` (``--help`` for sizes). Not a test.

``--reloader-binary PATH`` also runs stakater Reloader (a binary built from its
source; the module proxy does not serve it, see bench/RESULTS.md) on the same
workload, each system on a fresh cluster, interleaved, and writes the
side-by-side section: Reloader writes the same ``STAKATER_<NAME>_SECRET``
digest as fluxd's env-vars strategy, so one watch measures both.

``--churn`` (with ``--reloader-binary``) measures instead what Deployments that
change without any config change cost each system: ``kubectl`` (its own
process) creates as many new annotated Deployments again, the
controller-manager settles their status, and ``kubectl annotate`` touches every
one of them once; the CPU each system spends from the first creation until the
cluster is quiet is compared, next to what it spends idle in the ``--idle``
seconds after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anyio
import anyio.abc
import structlog

from bench.common import cpu_seconds, machine, median, percentile, rss_mib, write_section
from fluxd.controllers.restarter import Restarter
from fluxd.kube import errors as kube_errors
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.kube.resources import CONFIG_MAP, DEPLOYMENT, NAMESPACE, SECRET
from fluxd.settings import Settings
from testenv.cluster import running

NAMESPACE_NAME = "bench-restarter"
_T = TypeVar("_T")
AUTO = {"reloader.stakater.com/auto": "true"}


def secret_payload(index: int, version: int, size: int) -> bytes:
    seed = f"secret {index} version {version} ".encode()
    return (seed * (size // len(seed) + 1))[:size]


def digest_of(key: str, value: bytes) -> str:
    return hashlib.sha1(key.encode() + b"=" + value).hexdigest()


def deployment(index: int, *, secrets: int, config_maps: int) -> dict[str, Any]:
    labels = {"app": f"w-{index}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"w-{index}", "namespace": NAMESPACE_NAME, "annotations": AUTO},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example.invalid/app:1",
                            "volumeMounts": [
                                {"name": "secret", "mountPath": "/etc/secret"},
                                {"name": "config", "mountPath": "/etc/config"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "secret", "secret": {"secretName": f"s-{index % secrets}"}},
                        {"name": "config", "configMap": {"name": f"c-{index % config_maps}"}},
                    ],
                },
            },
        },
    }


async def bounded(coroutines: list[Any], *, limit: int = 32) -> None:
    limiter = anyio.CapacityLimiter(limit)

    async def one(coroutine: Any) -> None:
        async with limiter:
            await coroutine

    async with anyio.create_task_group() as group:
        for coroutine in coroutines:
            group.start_soon(one, coroutine)


async def populate(kube: Kube, *, objects: int, workloads: int, secret_size: int) -> None:
    with suppress(kube_errors.AlreadyExists):
        await kube.create(
            NAMESPACE,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE_NAME}},
        )
    secrets = objects // 2
    config_maps = objects - secrets
    creations = [
        kube.create(
            SECRET,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"s-{i}", "namespace": NAMESPACE_NAME},
                "data": {"config": base64.b64encode(secret_payload(i, 0, secret_size)).decode()},
            },
            namespace=NAMESPACE_NAME,
        )
        for i in range(secrets)
    ]
    creations += [
        kube.create(
            CONFIG_MAP,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"c-{i}", "namespace": NAMESPACE_NAME},
                "data": {"settings.toml": f"instance = {i}\n" * 16},
            },
            namespace=NAMESPACE_NAME,
        )
        for i in range(config_maps)
    ]
    creations += [
        kube.create(
            DEPLOYMENT,
            deployment(i, secrets=secrets, config_maps=config_maps),
            namespace=NAMESPACE_NAME,
        )
        for i in range(workloads)
    ]
    await bounded(creations)


class PatchWatch:
    """Watches the Deployments and notes when each carries the digest a sample waits for."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.waiting: dict[str, tuple[str, float, anyio.Event]] = {}
        self.latencies: list[float] = []

    def expect(self, name: str, digest: str) -> anyio.Event:
        done = anyio.Event()
        self.waiting[name] = (digest, time.perf_counter(), done)
        return done

    async def run(self) -> None:
        _, version = await self.kube.list_all(DEPLOYMENT, namespace=NAMESPACE_NAME)
        async for event in self.kube.watch(
            DEPLOYMENT, namespace=NAMESPACE_NAME, resource_version=version, timeout_seconds=3600
        ):
            obj = event.get("object", {})
            name = obj.get("metadata", {}).get("name", "")
            expected = self.waiting.get(name)
            if expected is None:
                continue
            containers = obj["spec"]["template"]["spec"]["containers"]
            values = {e.get("value") for c in containers for e in c.get("env") or ()}
            if expected[0] in values:
                self.latencies.append(time.perf_counter() - expected[1])
                del self.waiting[name]
                expected[2].set()


async def update_secret(kube: Kube, index: int, *, version: int, size: int) -> str:
    value = secret_payload(index, version, size)
    await kube.patch(
        SECRET,
        f"s-{index}",
        {"data": {"config": base64.b64encode(value).decode()}},
        namespace=NAMESPACE_NAME,
    )
    return digest_of("config", value)


async def sequential(kube: Kube, watch: PatchWatch, *, samples: int, size: int) -> list[float]:
    watch.latencies = []
    for index in range(samples):
        value = secret_payload(index, 1, size)
        done = watch.expect(f"w-{index}", digest_of("config", value))
        await update_secret(kube, index, version=1, size=size)
        with anyio.fail_after(60):
            await done.wait()
    return list(watch.latencies)


async def burst(kube: Kube, watch: PatchWatch, *, samples: int, size: int) -> list[float]:
    watch.latencies = []
    events = []
    for index in range(samples):
        value = secret_payload(index, 2, size)
        events.append(watch.expect(f"w-{index}", digest_of("config", value)))
    await bounded(
        [update_secret(kube, index, version=2, size=size) for index in range(samples)], limit=64
    )
    with anyio.fail_after(300):
        for done in events:
            await done.wait()
    return list(watch.latencies)


CHURN_LABEL = {"bench.fluxd.io/churn": "true"}


def churn_manifest(args: argparse.Namespace) -> str:
    """New annotated Deployments, each mounting an existing Secret and ConfigMap, as a List."""
    secrets = args.objects // 2
    items = []
    for index in range(args.workloads):
        item = deployment(index, secrets=secrets, config_maps=args.objects - secrets)
        item["metadata"]["name"] = f"churn-{index}"
        item["metadata"]["labels"] = CHURN_LABEL
        items.append(item)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


async def kubectl(kubeconfig: Path, *arguments: str, stdin: bytes | None = None) -> None:
    kubectl = Path(sys.executable).with_name("kubectl")
    await anyio.run_process(
        [str(kubectl), f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE_NAME}", *arguments],
        input=stdin,
        stdout=subprocess.DEVNULL,
    )


async def churn(kubeconfig: Path, pid: int, args: argparse.Namespace) -> tuple[float, float, float]:
    """CPU seconds ``pid`` spends through a Deployment churn without config changes, then idle.

    Everything that makes the churn runs in kubectl processes, so that when ``pid``
    is this process (fluxd's restarter in-process) only the restarter's own work
    is counted. Returns (churn CPU, churn wall seconds, CPU over ``args.idle``
    seconds afterwards).
    """
    manifest = churn_manifest(args).encode()
    started, wall = cpu_seconds(pid), time.monotonic()
    await kubectl(kubeconfig, "create", "-f", "-", stdin=manifest)
    selector = "--selector=bench.fluxd.io/churn=true"
    await settled(kubeconfig, selector)
    await kubectl(kubeconfig, "annotate", "deployment", selector, "bench.fluxd.io/touched=1")
    await anyio.sleep(args.quiet)
    spent, took = cpu_seconds(pid) - started, time.monotonic() - wall
    idle_started = cpu_seconds(pid)
    await anyio.sleep(args.idle)
    return spent, took, cpu_seconds(pid) - idle_started


async def settled(kubeconfig: Path, selector: str) -> None:
    """Wait until the controller-manager has made every selected Deployment Available.

    With 0 replicas that is once it has created the ReplicaSet and written the status.
    """
    await kubectl(
        kubeconfig, "wait", "deployment", selector, "--for=condition=Available", "--timeout=900s"
    )


def heading(title: str) -> list[str]:
    """A section's title, the command that wrote it and the machine."""
    command = " ".join([".venv/bin/python -m bench.restarter", *sys.argv[1:]])
    return [f"## {title}", "", f"Command: `{command}`", f"Machine: {machine()}"]


def summary(latencies: list[float]) -> str:
    return (
        f"n={len(latencies)}, median {median(latencies) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


RELOADER_METRICS = "http://127.0.0.1:9090/metrics"


async def _reloader_started(process: anyio.abc.Process) -> None:
    """Wait until Reloader serves its metrics, i.e. its controllers are set up."""
    async with aiohttp.ClientSession() as session:
        with anyio.fail_after(120):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"reloader exited with {process.returncode}")
                try:
                    async with session.get(RELOADER_METRICS, timeout=aiohttp.ClientTimeout(1)):
                        return
                except (aiohttp.ClientError, TimeoutError):
                    await anyio.sleep(0.2)


@asynccontextmanager
async def reloader_running(kubeconfig: Path, binary: Path) -> AsyncIterator[anyio.abc.Process]:
    """Reloader started on ``kubeconfig``'s cluster, its informers listed; stopped on exit."""
    process = await anyio.open_process(
        [str(binary), "--log-level=error"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _reloader_started(process)
        # Its informers list before they handle updates; metrics come up first.
        await anyio.sleep(5)
        yield process
    finally:
        process.terminate()
        with anyio.fail_after(30):
            await process.wait()


async def measure_reloader(
    kubeconfig: Path, args: argparse.Namespace
) -> tuple[list[float], list[float], float]:
    """One-at-a-time and burst latencies with Reloader doing the restarts, and its RSS."""
    kube = await Kube.connect(kubeconfig=str(kubeconfig))
    try:
        await populate(
            kube, objects=args.objects, workloads=args.workloads, secret_size=args.secret_size
        )
        async with reloader_running(kubeconfig, args.reloader_binary) as process:
            watch = PatchWatch(kube)
            async with anyio.create_task_group() as group:
                group.start_soon(watch.run)
                await anyio.sleep(1)
                one = await sequential(kube, watch, samples=args.samples, size=args.secret_size)
                many = await burst(kube, watch, samples=args.samples, size=args.secret_size)
                group.cancel_scope.cancel()
            rss = rss_mib(process.pid)
    finally:
        await kube.close()
    return one, many, rss


async def churn_one(system: str, kubeconfig: Path, args: argparse.Namespace) -> tuple[float, ...]:
    """Populate a fresh cluster, start ``system`` and measure a churn on it."""
    kube = await Kube.connect(kubeconfig=str(kubeconfig))
    try:
        await populate(
            kube, objects=args.objects, workloads=args.workloads, secret_size=args.secret_size
        )
        await settled(kubeconfig, "--all")
        if system == "Reloader":
            async with reloader_running(kubeconfig, args.reloader_binary) as process:
                return await churn(kubeconfig, process.pid, args)
        settings = Settings(
            restart_coalesce_window=args.window, restart_concurrency=args.concurrency
        )
        service = Restarter(kube=kube, recorder=EventRecorder(kube), settings=settings)
        async with anyio.create_task_group() as group:
            group.start_soon(service.run)
            await service.ready.wait()
            result = await churn(kubeconfig, os.getpid(), args)
            group.cancel_scope.cancel()
        return result
    finally:
        await kube.close()


async def measure(kubeconfig: Path, args: argparse.Namespace) -> list[str]:
    kube = await Kube.connect(kubeconfig=str(kubeconfig))
    lines: list[str] = []
    try:
        started = time.perf_counter()
        await populate(
            kube, objects=args.objects, workloads=args.workloads, secret_size=args.secret_size
        )
        lines.append(f"populate: {time.perf_counter() - started:.1f} s")
        settings = Settings(
            restart_coalesce_window=args.window, restart_concurrency=args.concurrency
        )
        service = Restarter(kube=kube, recorder=EventRecorder(kube), settings=settings)
        watch = PatchWatch(kube)
        async with anyio.create_task_group() as group:
            gc.collect()
            before = rss_mib(os.getpid())
            started = time.perf_counter()
            group.start_soon(service.run)
            await service.ready.wait()
            ready_after = time.perf_counter() - started
            gc.collect()
            cache = rss_mib(os.getpid()) - before
            lines.append(
                f"cache: {len(service.digests)} config digests, {len(service.index)} workloads "
                f"indexed; RSS +{cache:.1f} MiB; start-up list and catch-up "
                f"{ready_after:.1f} s"
            )
            group.start_soon(watch.run)
            await anyio.sleep(1)
            one = await sequential(kube, watch, samples=args.samples, size=args.secret_size)
            lines.append(f"latency, one update at a time: {summary(one)}")
            many = await burst(kube, watch, samples=args.samples, size=args.secret_size)
            lines.append(f"latency, {args.samples} updates at once: {summary(many)}")
            args.latencies = (one, many)
            gc.collect()
            lines.append(f"RSS after the runs: +{rss_mib(os.getpid()) - before:.1f} MiB")
            group.cancel_scope.cancel()
    finally:
        await kube.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000, help="Secrets + ConfigMaps")
    parser.add_argument("--workloads", type=int, default=1000, help="annotated Deployments")
    parser.add_argument("--samples", type=int, default=200, help="Secret updates per run")
    parser.add_argument("--secret-size", type=int, default=1024, help="bytes per Secret")
    parser.add_argument("--window", type=float, default=0.0, help="restart-coalesce-window")
    parser.add_argument("--concurrency", type=int, default=4, help="restart-concurrency")
    parser.add_argument("--kubeconfig", type=Path, help="an existing cluster instead of testenv")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    parser.add_argument("--reloader-binary", type=Path, help="also run this Reloader, side by side")
    parser.add_argument("--rounds", type=int, default=2, help="side-by-side rounds per system")
    parser.add_argument(
        "--churn", action="store_true", help="side by side: Deployment churn, no config change"
    )
    parser.add_argument("--quiet", type=float, default=10.0, help="churn: seconds after the last")
    parser.add_argument("--idle", type=float, default=30.0, help="churn: idle seconds measured")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.churn and not args.reloader_binary:
        parser.error("--churn compares with Reloader: give --reloader-binary")
    if args.churn:
        return churn_side_by_side(args)
    if args.reloader_binary:
        return side_by_side(args)
    with ExitStack() as stack:
        kubeconfig = args.kubeconfig
        if kubeconfig is None:
            cluster = stack.enter_context(running(nodes=1))
            kubeconfig = cluster.kubeconfig
        lines = asyncio.run(measure(kubeconfig, args))
    body = "\n".join(
        [
            *heading("Restarter: cache memory and Secret-to-patch latency"),
            f"Date: {time.strftime('%Y-%m-%d')}. {args.objects} Secrets/ConfigMaps "
            f"({args.secret_size} B Secrets), {args.workloads} Deployments with "
            f"`reloader.stakater.com/auto`, restart-coalesce-window {args.window:g} s, "
            f"restart-concurrency {args.concurrency}; the control plane runs on the same machine.",
            "",
            *(f"- {line}" for line in lines),
        ]
    )
    print(body)
    if args.write:
        write_section("restarter", body)
    return 0


def interleaved(
    rounds: int, run: Callable[[str, Path], _T]
) -> tuple[dict[str, list[_T]], list[str]]:
    """``run(system, kubeconfig)`` for fluxd and Reloader in turn, each on a fresh cluster.

    The first system alternates from round to round. Returns the results per
    system and the 1-minute load average at each start.
    """
    runs: dict[str, list[_T]] = {"fluxd": [], "Reloader": []}
    loads: list[str] = []
    for round_ in range(rounds):
        order = ("fluxd", "Reloader") if round_ % 2 == 0 else ("Reloader", "fluxd")
        for system in order:
            with running(nodes=1) as cluster:
                loads.append(f"{system}: {os.getloadavg()[0]:.2f}")
                runs[system].append(run(system, cluster.kubeconfig))
    return runs, loads


def side_by_side(args: argparse.Namespace) -> int:
    """fluxd's restarter and Reloader on the same workload, interleaved, each on a fresh cluster."""

    def run(system: str, kubeconfig: Path) -> tuple[list[float], list[float]]:
        if system == "fluxd":
            asyncio.run(measure(kubeconfig, args))
            one, many = args.latencies
        else:
            one, many, _ = asyncio.run(measure_reloader(kubeconfig, args))
        print(system, summary(one), "|", summary(many), flush=True)
        return one, many

    runs, loads = interleaved(args.rounds, run)

    def figures(system: str) -> tuple[float, float, float]:
        ones = [percentile(one, 0.99) for one, _ in runs[system]]
        medians = [median(one) for one, _ in runs[system]]
        bursts = [max(many) for _, many in runs[system]]
        return median(medians) * 1000, median(ones) * 1000, median(bursts)

    fluxd, reloader = figures("fluxd"), figures("Reloader")
    body = "\n".join(
        [
            *heading("Restarts side by side with Reloader"),
            f"Date: {time.strftime('%Y-%m-%d')}. {args.objects} Secrets/ConfigMaps, "
            f"{args.workloads} Deployments with `reloader.stakater.com/auto`, "
            f"{args.samples} updates per phase; fluxd's restarter with "
            f"restart-coalesce-window {args.window:g} s and restart-concurrency "
            f"{args.concurrency}, Reloader with its defaults (env-vars); each system on a fresh "
            f"cluster, interleaved, {args.rounds} runs each (medians of the runs). "
            f"Load average (1 min) at each start: {', '.join(loads)}.",
            "",
            "| | fluxd | Reloader | fluxd / Reloader |",
            "| --- | --- | --- | --- |",
            f"| one update at a time, median | {fluxd[0]:.0f} ms | {reloader[0]:.0f} ms "
            f"| {fluxd[0] / reloader[0]:.2f} |",
            f"| one update at a time, p99 | {fluxd[1]:.0f} ms | {reloader[1]:.0f} ms "
            f"| {fluxd[1] / reloader[1]:.2f} |",
            f"| {args.samples} updates at once, all patched | {fluxd[2]:.1f} s | "
            f"{reloader[2]:.1f} s | {fluxd[2] / reloader[2]:.2f} |",
        ]
    )
    print(body)
    if args.write:
        write_section("restarter-reloader", body)
    return 0


def churn_side_by_side(args: argparse.Namespace) -> int:
    """The Deployment churn on fluxd's restarter and on Reloader, interleaved, fresh clusters."""

    def run(system: str, kubeconfig: Path) -> tuple[float, ...]:
        spent, took, idle = asyncio.run(churn_one(system, kubeconfig, args))
        print(f"{system}: churn {spent:.2f} s CPU in {took:.1f} s, idle {idle:.2f} s", flush=True)
        return spent, took, idle

    runs, loads = interleaved(args.rounds, run)

    def figure(system: str, column: int) -> float:
        return median([run[column] for run in runs[system]])

    def row(label: str, column: int, unit: str = "s") -> str:
        fluxd, reloader = figure("fluxd", column), figure("Reloader", column)
        ratio = f"{fluxd / reloader:.2f}" if reloader else "n/a"
        return f"| {label} | {fluxd:.2f} {unit} | {reloader:.2f} {unit} | {ratio} |"

    body = "\n".join(
        [
            *heading("Deployment churn side by side with Reloader"),
            f"Date: {time.strftime('%Y-%m-%d')}. {args.objects} Secrets/ConfigMaps and "
            f"{args.workloads} Deployments with `reloader.stakater.com/auto` in place; then "
            f"`kubectl create` adds {args.workloads} more such Deployments, `kubectl wait` "
            f"waits until the controller-manager has made each Available, `kubectl annotate` "
            f"touches each once, and {args.quiet:g} s pass: no Secret or ConfigMap changes. "
            f"CPU is utime+stime of the system's process over that stretch (fluxd's restarter "
            f"runs in the benchmark's process, which does nothing else meanwhile), and idle is "
            f"the same process over the {args.idle:g} s after it. The system starts once the "
            f"first Deployments have settled. Each system on a fresh cluster, "
            f"interleaved, {args.rounds} runs each (medians). Load average (1 min) at each "
            f"start: {', '.join(loads)}.",
            "",
            "| | fluxd | Reloader | fluxd / Reloader |",
            "| --- | --- | --- | --- |",
            row("CPU through the churn", 0),
            row(f"CPU idle, {args.idle:g} s", 2),
            row("length of the churn", 1),
        ]
    )
    print(body)
    if args.write:
        write_section("restarter-churn", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
