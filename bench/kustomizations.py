"""Kustomizations at scale: N of them, each applying four objects into its own namespace.

One GitRepository (a real git smart-HTTP server with basic auth) holds
``app/``: a ServiceAccount, a (headless) Service, a Deployment (replicas 0) and an
Ingress. ``--count`` namespaces are created up front (not timed), then
``--count`` Kustomizations with ``targetNamespace`` set to their namespace; the
clock runs from the first creation until every one is Ready with the commit
applied. The daemon's peak RSS is its VmHWM; where the time went comes from
``fluxd_kustomization_phase_duration_seconds`` and the work-queue histograms.

Each run is done once per build engine (``--engines``), interleaved (the order
alternates from run to run) so load on the shared machine falls on both: the
long-lived ``fluxd-kustomize`` and one ``kubectl kustomize`` per build. CPU is
counted from the first creation to all Ready, for the daemon and for its
children (reaped ones from the daemon's cutime/cstime, the running engine from
its own /proc entry); the process tree's RSS is sampled every 100 ms.

Run: ``.venv/bin/python -m bench.kustomizations [--count 100] [--runs 3] [--concurrency 4]
[--engines fluxd-kustomize,kubectl]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    bench_namespace,
    cpu_seconds,
    machine,
    median,
    peak_rss_mib,
    rss_mib,
    write_section,
)
from fluxd.build import BuildOptions, BuildSettings, EngineKind, build, close_engines
from testenv import build as testenv_build
from testenv.api import Api, wait_for
from testenv.cluster import Cluster, running
from testenv.gitserver import GitServer
from tests.support.crds import install_crds
from tests.support.daemon import Fluxd

USER, TOKEN = "bench", "bench-token"
KUSTOMIZATIONS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/bench/kustomizations"
PHASES = ("source", "build", "apply", "prune", "health")
ENGINES = ("fluxd-kustomize", "kubectl")
_TICKS = os.sysconf("SC_CLK_TCK")


def app_files() -> dict[str, str]:
    labels = {"app": "web"}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            # Headless: the test cluster's service CIDR holds a few hundred IPs only.
            "spec": {
                "clusterIP": "None",
                "selector": labels,
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "web",
                        "containers": [{"name": "web", "image": "nginx:1.27"}],
                    },
                },
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                "rules": [
                    {
                        "host": "web.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
    ]
    return {f"app/{obj['kind'].lower()}.yaml": yaml.safe_dump(obj) for obj in objects}


def target(run: int, index: int) -> str:
    return f"r{run}-app-{index:04d}"


def ready_count(api: Api, revision: str) -> int:
    count = 0
    for item in api.items(KUSTOMIZATIONS):
        status = item.get("status", {})
        if status.get("lastAppliedRevision") != revision:
            continue
        for condition in status.get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                count += 1
    return count


def histogram(daemon: Fluxd, metric_name: str, **labels: str) -> tuple[float, float]:
    """(sum, count) of one histogram series, summed over series matching ``labels``."""
    _, text = daemon.get("/metrics")
    total, count = 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric = series.split("{")[0]
        if not all(f'{k}="{v}"' in series for k, v in labels.items()):
            continue
        if metric == f"{metric_name}_sum":
            total += float(value)
        elif metric == f"{metric_name}_count":
            count += float(value)
    return total, count


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(child) for child in (task / "children").read_text().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def descendants(pid: int) -> list[int]:
    pending, found = children(pid), []
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children(child))
    return found


def children_cpu_seconds(pid: int) -> float:
    """CPU of ``pid``'s children: the reaped ones (its cutime+cstime) and the running ones."""
    fields = _stat(pid)
    total = (int(fields[13]) + int(fields[14])) / _TICKS
    for child in children(pid):
        try:
            child_fields = _stat(child)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited between the listing and the read: counted once reaped
        total += sum(int(child_fields[i]) for i in (11, 12, 13, 14)) / _TICKS
    return total


class TreeRss:
    """The largest sum of RSS over a process and its descendants, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-rss", daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            total = 0.0
            for pid in [self.pid, *descendants(self.pid)]:
                try:
                    total += rss_mib(pid)
                except (FileNotFoundError, ProcessLookupError, RuntimeError):
                    continue  # gone, or a zombie without memory
            self.peak = max(self.peak, total)


def one_run(
    cluster: Cluster,
    git: GitServer,
    *,
    count: int,
    run: int,
    concurrency: int,
    engine: str,
) -> dict[str, float]:
    api = cluster.api
    repo = f"bench/ks-{run}.git"
    git.create_repo(repo)
    sha = git.commit(repo, app_files())
    revision = f"master@sha1:{sha}"
    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-ks-"))
    daemon = Fluxd(
        cluster,
        workdir,
        extra_args=[
            "--log-level=warning",
            f"--lease-name=bench-ks-{run}",
            f"--kustomization-concurrency={concurrency}",
        ],
        kustomize_engine="kubectl" if engine == "kubectl" else None,
    ).start()
    try:
        assert daemon.process is not None
        api.create(
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/gitrepositories",
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": f"apps-{run}"},
                "spec": {
                    "interval": "10m",
                    "url": git.url(repo),
                    "ref": {"branch": "master"},
                    "secretRef": {"name": "auth"},
                },
            },
        )
        pid = daemon.process.pid
        daemon_cpu, children_cpu = cpu_seconds(pid), children_cpu_seconds(pid)
        started = time.monotonic()
        with TreeRss(pid) as rss:
            for index in range(count):
                api.create(
                    KUSTOMIZATIONS,
                    {
                        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                        "kind": "Kustomization",
                        "metadata": {"name": f"app-{run}-{index:04d}"},
                        "spec": {
                            "interval": "10m",
                            "path": "./app",
                            "prune": True,
                            "targetNamespace": target(run, index),
                            "sourceRef": {"kind": "GitRepository", "name": f"apps-{run}"},
                        },
                    },
                )
            created = time.monotonic() - started
            wait_for(
                lambda: ready_count(api, revision) >= count,
                timeout=60 + count * 2,
                interval=1.0,
                what=f"{count} Kustomizations Ready",
            )
        elapsed = time.monotonic() - started
        result = {
            "created": created,
            "ready": elapsed,
            "daemon_cpu": cpu_seconds(pid) - daemon_cpu,
            "children_cpu": children_cpu_seconds(pid) - children_cpu,
            "peak_rss": peak_rss_mib(pid),
            "tree_rss": rss.peak,
        }
        for phase in PHASES:
            total, n = histogram(daemon, "fluxd_kustomization_phase_duration_seconds", phase=phase)
            result[f"{phase}_total"] = total
            result[f"{phase}_mean"] = total / n if n else 0.0
        waited, n = histogram(
            daemon, "fluxd_workqueue_queue_duration_seconds", name="kustomization"
        )
        result["queue_mean"] = waited / n if n else 0.0
        return result
    finally:
        daemon.stop()
        # The daemon is gone: drop the finalizers so the next run starts from nothing.
        for item in api.items(KUSTOMIZATIONS):
            path = f"{KUSTOMIZATIONS}/{item['metadata']['name']}"
            api.merge_patch(path, {"metadata": {"finalizers": None}})
            api.delete(path)


def builds_only(*, count: int, concurrency: int, engine: str, workdir: Path) -> dict[str, float]:
    """``count`` builds of ``app/`` (one targetNamespace each) in this process, no cluster."""
    root = workdir / "artifact"
    for relative, content in app_files().items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    binary = testenv_build.ensure_binaries(testenv_build.KUSTOMIZE_ENGINE) / "fluxd-kustomize"
    settings = (
        BuildSettings()
        if engine == "kubectl"
        else BuildSettings(engine=EngineKind.LONG_LIVED, engine_binary=str(binary))
    )

    async def run_builds() -> tuple[float, float, float, float]:
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with limit:
                options = BuildOptions.from_spec({"targetNamespace": target(0, index)})
                await build(artifact_root=root, path="app", options=options, settings=settings)

        before = os.times()
        started = time.monotonic()
        with TreeRss(os.getpid()) as rss:
            await asyncio.gather(*(one(index) for index in range(count)))
        elapsed = time.monotonic() - started
        own = sum(os.times()[:2]) - sum(before[:2])
        # Stopping the engine reaps it, so its CPU joins kubectl's in the children's times.
        await close_engines()
        reaped = sum(os.times()[2:4]) - sum(before[2:4])
        return elapsed, own, reaped, rss.peak

    elapsed, own, reaped, peak = asyncio.run(run_builds())
    return {"wall": elapsed, "python_cpu": own, "engine_cpu": reaped, "tree_rss": peak}


def compare_builds(*, count: int, runs: int, concurrency: int, engines: list[str]) -> None:
    results: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    loads: list[float] = []
    for run in range(runs):
        for engine in engines if run % 2 == 0 else engines[::-1]:
            loads.append(os.getloadavg()[0])
            with tempfile.TemporaryDirectory(prefix="fluxd-bench-builds-") as scratch:
                result = builds_only(
                    count=count, concurrency=concurrency, engine=engine, workdir=Path(scratch)
                )
            print(f"run {run} {engine}: {result}", flush=True)
            results[engine].append(result)

    def mid(engine: str, key: str) -> float:
        return median([result[key] for result in results[engine]])

    rows = "\n".join(
        f"| {engine} | {mid(engine, 'wall'):.2f} s | {mid(engine, 'python_cpu'):.2f} s "
        f"| {mid(engine, 'engine_cpu'):.2f} s "
        f"| {(mid(engine, 'python_cpu') + mid(engine, 'engine_cpu')) / count * 1000:.1f} ms "
        f"| {mid(engine, 'tree_rss'):.0f} MiB |"
        for engine in engines
    )
    body = f"""## Kustomize builds alone: {count} builds of the Kustomizations benchmark's app

Command: `.venv/bin/python -m bench.kustomizations --builds-only --count {count} --runs {runs}
--concurrency {concurrency} --engines {",".join(engines)}`
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}. Median of {runs} runs per engine, interleaved (1-minute
load average at the start of each: {", ".join(f"{load:.2f}" for load in loads)}).
fluxd's build step (`fluxd.build.build`, no cache) in one process, {concurrency} at a time,
each build with its own `targetNamespace` as in the Kustomizations benchmark; no cluster.
Python CPU is the build step's own (workspace copy, generated kustomization, YAML parsing);
engine CPU is every kubectl process, or the one long-lived engine from its start to its stop;
the peak RSS sums this process and its children, sampled every 100 ms.

| engine | wall | Python CPU | engine CPU | CPU per build | peak RSS, process tree |
| --- | --- | --- | --- | --- | --- |
{rows}
"""
    write_section(f"kustomize-builds-{count}", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"build engines to compare, comma-separated (of {', '.join(ENGINES)})",
    )
    parser.add_argument(
        "--builds-only",
        action="store_true",
        help="only the build step, in this process: no cluster, no daemon",
    )
    args = parser.parse_args()
    engines = [engine for engine in args.engines.split(",") if engine]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    if args.builds_only:
        compare_builds(
            count=args.count, runs=args.runs, concurrency=args.concurrency, engines=engines
        )
        return

    runs: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    loads: list[float] = []
    with (
        running() as cluster,
        GitServer(username=USER, password=TOKEN, default_branch="master") as git,
    ):
        api = cluster.api
        install_crds(api)
        bench_namespace(cluster, username=USER, password=TOKEN)
        slot = 0
        for run in range(args.runs):
            # Interleaved, the first engine alternating, so drifting load falls on both.
            order = engines if run % 2 == 0 else engines[::-1]
            for engine in order:
                for index in range(args.count):
                    api.create(
                        "/api/v1/namespaces",
                        {
                            "apiVersion": "v1",
                            "kind": "Namespace",
                            "metadata": {"name": target(slot, index)},
                        },
                    )
                loads.append(os.getloadavg()[0])
                result = one_run(
                    cluster,
                    git,
                    count=args.count,
                    run=slot,
                    concurrency=args.concurrency,
                    engine=engine,
                )
                slot += 1
                print(f"run {run} {engine}: {result}", flush=True)
                runs[engine].append(result)

    def mid(engine: str, key: str) -> float:
        return median([run[key] for run in runs[engine]])

    command = (
        f"`.venv/bin/python -m bench.kustomizations --count {args.count} --runs {args.runs} "
        f"--concurrency {args.concurrency} --engines {','.join(engines)}`"
    )
    header = " | ".join(engines)
    rows = [
        ("creating the Kustomizations", "created", "{:.1f} s"),
        ("first creation to all Ready", "ready", "{:.1f} s"),
        ("daemon CPU (Python)", "daemon_cpu", "{:.1f} s"),
        ("children's CPU (kustomize)", "children_cpu", "{:.1f} s"),
        ("daemon peak RSS (VmHWM)", "peak_rss", "{:.1f} MiB"),
        ("process tree peak RSS (sampled)", "tree_rss", "{:.1f} MiB"),
        ("mean wait in the work queue", "queue_mean", "{:.3f} s"),
        *((f"{phase} phase, total", f"{phase}_total", "{:.1f} s") for phase in PHASES),
    ]
    table = "\n".join(
        f"| {label} | " + " | ".join(form.format(mid(e, key)) for e in engines) + " |"
        for label, key, form in rows
    )
    per_ks = " | ".join(
        f"{(mid(e, 'daemon_cpu') + mid(e, 'children_cpu')) / args.count * 1000:.0f} ms"
        for e in engines
    )
    body = f"""## Kustomizations: {args.count} applied from one GitRepository

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}. Median of {args.runs} runs per engine, each with a fresh
daemon (kustomization-concurrency {args.concurrency}), the engines interleaved in one
cluster; the control plane runs on the same machine (1-minute load average at the start
of each run: {", ".join(f"{load:.2f}" for load in loads)}).
Each Kustomization applies a ServiceAccount, Service, Deployment (replicas 0) and Ingress
into its own (pre-created) namespace; every run uses fresh namespaces. CPU is counted
from the first creation to all Ready.

| | {header} |
| --- | {" | ".join("---" for _ in engines)} |
{table}
| CPU per Kustomization (daemon + children) | {per_ks} |
"""
    write_section(f"kustomizations-{args.count}", body)
    print(body)


if __name__ == "__main__":
    main()
