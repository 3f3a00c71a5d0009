"""Kustomizations at scale: N of them, each applying four objects into its own namespace.

One GitRepository (a real git smart-HTTP server with basic auth) holds
``app/``: a ServiceAccount, a (headless) Service, a Deployment (replicas 0) and an
Ingress. ``--count`` namespaces are created up front (not timed), then
``--count`` Kustomizations with ``targetNamespace`` set to their namespace; the
clock runs from the first creation until every one is Ready with the commit
applied. The daemon's peak RSS is its VmHWM; where the time went comes from
``fluxd_kustomization_phase_duration_seconds`` and the work-queue histograms.
``one_run`` runs the same workload against Flux's own controllers too
(bench.sidebyside compares the two).

Each run is done once per build engine (``--engines``), interleaved (the order
alternates from run to run) so load on the shared machine falls on both: the
long-lived ``fluxd-kustomize`` and one ``kubectl kustomize`` per build. CPU is
counted from the first creation to all Ready, for the daemon and its children;
the process tree's RSS is sampled every 100 ms. ``--builds-only`` times the
build step alone, in this process, without a cluster.

Run: ``.venv/bin/python -m bench.kustomizations [--count 100] [--runs 3] [--concurrency 4]
[--engines fluxd-kustomize,kubectl] [--builds-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import systems
from bench.common import (
    TreePeak,
    bench_namespace,
    machine,
    median,
    peak_rss_mib,
    tree_cpu_seconds,
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
GIT_REPOSITORIES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/gitrepositories"
PHASES = ("source", "build", "apply", "prune", "health")
ENGINES = ("fluxd-kustomize", "kubectl")


def app_files(push: int = 0) -> dict[str, str]:
    """The four objects; ``push`` > 0 marks the Service, so every Kustomization re-applies."""
    labels = {"app": "web"}
    service_metadata: dict[str, Any] = {"name": "web"}
    if push:
        service_metadata["annotations"] = {"bench.fluxd.dev/push": str(push)}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": service_metadata,
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


def create_namespaces(api: Api, *, run: int, count: int) -> None:
    """The run's fresh target namespaces, created before the clock starts."""
    for index in range(count):
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": target(run, index)}},
        )


def request_reconcile(api: Api, path: str) -> None:
    """``reconcile.fluxcd.io/requestedAt``, as ``flux reconcile source git`` sets it."""
    now = datetime.datetime.now(datetime.UTC).isoformat()
    api.merge_patch(path, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}})


def drop(api: Api, collection: str) -> None:
    """Delete every object of ``collection``, finalizers dropped: its controller is gone."""
    for item in api.items(collection):
        path = f"{collection}/{item['metadata']['name']}"
        api.merge_patch(path, {"metadata": {"finalizers": None}})
        api.delete(path)


def one_run(
    cluster: Cluster,
    git: GitServer,
    *,
    count: int,
    run: int,
    concurrency: int,
    system: str = "fluxd",
    fluxd_args: tuple[str, ...] = ("--log-level=warning",),
    push: bool = False,
) -> dict[str, float]:
    """Apply ``count`` Kustomizations with ``system`` (see bench.systems) on fresh namespaces.

    CPU is the controllers' processes and their children from the first
    creation to all Ready (start-up excluded); ``push`` then commits a change
    to every Kustomization's objects, requests a reconcile of the
    GitRepository and times until all are Ready at the new commit.
    """
    api = cluster.api
    repo = f"bench/ks-{run}.git"
    git.create_repo(repo)
    sha = git.commit(repo, app_files())
    revision = f"master@sha1:{sha}"
    workdir = Path(tempfile.mkdtemp(prefix=f"fluxd-bench-ks-{system}-"))
    controllers = systems.start(
        system,
        cluster,
        workdir,
        lease=f"bench-ks-{run}",
        concurrency=concurrency,
        fluxd_args=fluxd_args,
    )
    source_path = f"{GIT_REPOSITORIES}/apps-{run}"
    try:
        pids = controllers.pids()
        api.create(
            GIT_REPOSITORIES,
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
        cpu_before = tree_cpu_seconds(pids)
        started = time.monotonic()
        with TreePeak(pids) as tree:
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

            def all_ready(revision: str) -> bool:
                controllers.check_alive()
                return ready_count(api, revision) >= count

            wait_for(
                lambda: all_ready(revision),
                timeout=60 + count * 2,
                interval=1.0,
                what=f"{count} Kustomizations Ready ({system})",
            )
            elapsed = time.monotonic() - started
            cpu = tree_cpu_seconds(pids) - cpu_before
        result = {
            "created": created,
            "ready": elapsed,
            "cpu": cpu,
            "peak_rss": sum(peak_rss_mib(pid) for pid in pids),
            "peak_tree_rss": tree.peak,
        }
        if push:
            pushed_sha = git.commit(repo, app_files(push=run + 1))
            cpu_before = tree_cpu_seconds(pids)
            pushed = time.monotonic()
            request_reconcile(api, source_path)
            wait_for(
                lambda: all_ready(f"master@sha1:{pushed_sha}"),
                timeout=60 + count,
                interval=0.5,
                what=f"{count} Kustomizations at the pushed commit ({system})",
            )
            result["push"] = time.monotonic() - pushed
            result["push_cpu"] = tree_cpu_seconds(pids) - cpu_before
        if controllers.daemon is not None:
            result.update(phase_figures(controllers.daemon))
        return result
    except Exception:
        print(f"--- {system} logs\n{controllers.log_tails()}", flush=True)
        raise
    finally:
        controllers.stop()
        # The controllers are gone: drop the finalizers so the next run starts from nothing.
        drop(api, KUSTOMIZATIONS)
        drop(api, GIT_REPOSITORIES)


def phase_figures(daemon: Fluxd) -> dict[str, float]:
    """Where fluxd's reconciles spent their time, from its own histograms."""
    result: dict[str, float] = {}
    for phase in PHASES:
        total, n = histogram(daemon, "fluxd_kustomization_phase_duration_seconds", phase=phase)
        result[f"{phase}_total"] = total
        result[f"{phase}_mean"] = total / n if n else 0.0
    waited, n = histogram(daemon, "fluxd_workqueue_queue_duration_seconds", name="kustomization")
    result["queue_mean"] = waited / n if n else 0.0
    return result


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
        with TreePeak([os.getpid()]) as rss:
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
            for engine in engines if run % 2 == 0 else engines[::-1]:
                create_namespaces(api, run=slot, count=args.count)
                loads.append(os.getloadavg()[0])
                result = one_run(
                    cluster,
                    git,
                    count=args.count,
                    run=slot,
                    concurrency=args.concurrency,
                    # The test daemon builds with fluxd-kustomize unless told otherwise.
                    fluxd_args=(
                        "--log-level=warning",
                        *(("--kustomize-engine=kubectl",) if engine == "kubectl" else ()),
                    ),
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
        ("CPU, daemon and children", "cpu", "{:.1f} s"),
        ("daemon peak RSS (VmHWM)", "peak_rss", "{:.1f} MiB"),
        ("process tree peak RSS (sampled)", "peak_tree_rss", "{:.1f} MiB"),
        ("mean wait in the work queue", "queue_mean", "{:.3f} s"),
        *((f"{phase} phase, total", f"{phase}_total", "{:.1f} s") for phase in PHASES),
    ]
    table = "\n".join(
        f"| {label} | " + " | ".join(form.format(mid(e, key)) for e in engines) + " |"
        for label, key, form in rows
    )
    per_ks = " | ".join(f"{mid(e, 'cpu') / args.count * 1000:.0f} ms" for e in engines)
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
