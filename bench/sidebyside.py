"""fluxd against Flux's own controllers: the same workload, machine, control plane and Git server.

A claim that fluxd is faster or lighter than Flux means something only when
both are measured in one run with everything else equal, so each comparison
starts one control plane and one Git server and alternates the systems
(fluxd, Flux, fluxd, Flux, ...), each on fresh objects. Flux is the real
source-controller and kustomize-controller (testenv.build.FLUX_CONTROLLERS),
run out of cluster as testenv/flux.py does; both log at their default level.

- ``kustomizations``: bench.kustomizations' workload (N Kustomizations from one
  GitRepository) with fluxd's kustomization-concurrency C against
  kustomize-controller's ``--concurrent=C``: time to all Ready, CPU seconds
  (children included) and peak RSS; then a push re-applying all N.
- ``sources``: bench.sources' polling case (unchanged GitRepositories at 1m)
  against fluxd and source-controller alone: share of one core and requests
  per minute at the Git server.

Run: ``.venv/bin/python -m bench.sidebyside kustomizations --count 100 --concurrency 4 --runs 3``
or ``.venv/bin/python -m bench.sidebyside sources --repos 200 --windows 3``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import kustomizations, sources, systems
from bench.common import (
    bench_namespace,
    machine,
    median,
    tree_cpu_seconds,
    tree_rss_mib,
    write_section,
)
from bench.kustomizations import drop
from testenv.api import wait_for
from testenv.build import FLUX_CONTROLLERS_VERSION
from testenv.cluster import Cluster, running
from testenv.flux import flux_only_crds
from testenv.gitserver import GitServer
from tests.support.crds import install_crds, install_documents

USER, TOKEN = "bench", "bench-token"
NAMES = {"fluxd": "fluxd", "flux": "Flux"}


@contextmanager
def environment() -> Iterator[tuple[Cluster, GitServer]]:
    """One control plane and Git server for both systems, with the CRDs each needs."""
    with (
        running() as cluster,
        GitServer(username=USER, password=TOKEN, default_branch="master") as git,
    ):
        install_crds(cluster.api)
        # Flux's controllers also watch the kinds fluxd does not serve.
        install_documents(cluster.api, flux_only_crds())
        bench_namespace(cluster, username=USER, password=TOKEN)
        yield cluster, git


def row(label: str, figures: dict[str, list[float]], fmt: Callable[[float], str]) -> str:
    fluxd, flux = median(figures["fluxd"]), median(figures["flux"])
    ratio = f"{fluxd / flux:.2f}" if flux else "n/a"
    return f"| {label} | {fmt(fluxd)} | {fmt(flux)} | {ratio} |"


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def mib(value: float) -> str:
    return f"{value:.0f} MiB"


def kustomizations_main(args: argparse.Namespace) -> None:
    results: dict[str, list[dict[str, float]]] = {system: [] for system in systems.SYSTEMS}
    loads: list[str] = []
    with environment() as (cluster, git):
        run = 0
        for _ in range(args.runs):
            for system in systems.SYSTEMS:
                kustomizations.create_namespaces(cluster.api, run=run, count=args.count)
                loads.append(f"{system} {os.getloadavg()[0]:.2f}")
                result = kustomizations.one_run(
                    cluster,
                    git,
                    count=args.count,
                    run=run,
                    concurrency=args.concurrency,
                    system=system,
                    fluxd_args=(),
                    push=True,
                )
                print(f"run {run} ({system}): {result}", flush=True)
                results[system].append(result)
                run += 1

    def figures(key: str) -> dict[str, list[float]]:
        return {system: [r[key] for r in runs] for system, runs in results.items()}

    command = (
        f"`.venv/bin/python -m bench.sidebyside kustomizations --count {args.count} "
        f"--concurrency {args.concurrency} --runs {args.runs}`"
    )
    ready = figures("ready")
    rate = {system: [args.count / value for value in values] for system, values in ready.items()}
    rows = "\n".join(
        (
            row(f"first creation to all {args.count} Ready", ready, seconds),
            row("Kustomizations Ready per second", rate, lambda v: f"{v:.1f}"),
            row("CPU of the controllers (children included)", figures("cpu"), seconds),
            row("peak RSS, controller processes (VmHWM)", figures("peak_rss"), mib),
            row("peak RSS, with children (sampled 10/s)", figures("peak_tree_rss"), mib),
            row(f"push to all {args.count} at the new commit", figures("push"), seconds),
            row("CPU of the controllers during the push", figures("push_cpu"), seconds),
        )
    )
    per_run = "\n".join(
        f"- {NAMES[system]}: ready "
        + ", ".join(f"{r['ready']:.1f}" for r in runs)
        + " s; CPU "
        + ", ".join(f"{r['cpu']:.1f}" for r in runs)
        + " s; push "
        + ", ".join(f"{r['push']:.1f}" for r in runs)
        + " s"
        for system, runs in results.items()
    )
    title = f"{args.count} Kustomizations, fluxd and Flux, concurrency {args.concurrency}"
    body = f"""## Side by side: {title}

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. {args.runs} run(s) per system,
interleaved (fluxd, Flux, ...), each on a fresh GitRepository, fresh Kustomizations and
fresh namespaces; medians below. Load average (1 min) at the start of each run:
{", ".join(loads)}.

Workload as bench.kustomizations: each Kustomization applies a ServiceAccount, Service,
Deployment (replicas 0) and Ingress into its own namespace. fluxd runs with
kustomization-concurrency {args.concurrency}; Flux is source-controller and
kustomize-controller v{FLUX_CONTROLLERS_VERSION} with `--concurrent={args.concurrency}`
(source-controller at its default). CPU is utime+stime of the controllers and their
children (waited-for children via cutime/cstime, live ones added) from the first creation
to all Ready; start-up is not counted. The push commits a change to the Service of every
Kustomization and sets `reconcile.fluxcd.io/requestedAt` on the GitRepository (what
`flux reconcile source git` does), timed until all are Ready at the new commit.

| measure | fluxd | Flux | fluxd/Flux |
| --- | --- | --- | --- |
{rows}

Per run:
{per_run}
"""
    write_section(f"side-kustomizations-{args.count}-c{args.concurrency}", body)
    print(body)


def polling_session(
    cluster: Cluster, git: GitServer, system: str, *, repos: int, windows: int, settle: float
) -> dict[str, float]:
    """One system polling ``repos`` unchanged GitRepositories at 1m: CPU share and requests."""
    api = cluster.api
    workdir = Path(tempfile.mkdtemp(prefix=f"fluxd-bench-poll-{system}-"))
    controllers = systems.start(system, cluster, workdir, lease="bench-poll", kustomize=False)
    try:
        pids = controllers.pids()
        for index in range(repos):
            sources.create(api, f"r{index:03d}", git.url(f"bench/r{index:03d}.git"), "1m")

        def all_ready() -> bool:
            controllers.check_alive()
            return sources.ready_count(api) >= repos

        wait_for(all_ready, timeout=600, what=f"{repos} GitRepositories Ready ({system})")
        # Let every object settle into its 1m cadence, then sample whole rounds.
        time.sleep(settle)
        requests_before = len(git.requests)
        cpu_before = tree_cpu_seconds(pids)
        started = time.monotonic()
        time.sleep(60 * windows)
        wall = time.monotonic() - started
        controllers.check_alive()
        return {
            "share": (tree_cpu_seconds(pids) - cpu_before) / wall,
            "requests": (len(git.requests) - requests_before) / (wall / 60),
            "rss": tree_rss_mib(pids),
        }
    except Exception:
        print(f"--- {system} logs\n{controllers.log_tails()}", flush=True)
        raise
    finally:
        controllers.stop()
        drop(api, sources.REPOS)


def sources_main(args: argparse.Namespace) -> None:
    results: dict[str, list[dict[str, float]]] = {system: [] for system in systems.SYSTEMS}
    loads: list[str] = []
    with environment() as (cluster, git):
        for index in range(args.repos):
            repo = f"bench/r{index:03d}.git"
            git.create_repo(repo)
            git.commit(repo, {"app/config.toml": f"index = {index}\n"})
        for _ in range(args.runs):
            for system in systems.SYSTEMS:
                loads.append(f"{system} {os.getloadavg()[0]:.2f}")
                result = polling_session(
                    cluster,
                    git,
                    system,
                    repos=args.repos,
                    windows=args.windows,
                    settle=args.settle,
                )
                print(f"{system}: {result}", flush=True)
                results[system].append(result)

    def figures(key: str) -> dict[str, list[float]]:
        return {system: [r[key] for r in runs] for system, runs in results.items()}

    command = (
        f"`.venv/bin/python -m bench.sidebyside sources --repos {args.repos} "
        f"--windows {args.windows} --runs {args.runs}`"
    )
    rows = "\n".join(
        (
            row("share of one core", figures("share"), lambda v: f"{v * 100:.2f} %"),
            row("requests per minute at the Git server", figures("requests"), lambda v: f"{v:.0f}"),
            row("RSS at the end (with children)", figures("rss"), mib),
        )
    )
    title = f"{args.repos} unchanged GitRepositories at 1m, fluxd and source-controller"
    body = f"""## Side by side: {title}

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. {args.runs} session(s) per system,
interleaved (fluxd, source-controller, ...); each session starts the system, creates the
{args.repos} GitRepositories (basic auth, the git smart-HTTP server of bench.sources), waits
for all Ready, lets {args.settle:g} s pass so polls spread over their 1m cadence, then measures
one window of {args.windows} min. Medians over sessions. Load average (1 min) at the start of
each session: {", ".join(loads)}.

Flux is source-controller v{FLUX_CONTROLLERS_VERSION} alone (no kustomize-controller); fluxd is
its one process (its Kustomization controller idle). CPU is utime+stime with children.

| measure | fluxd | source-controller | fluxd/Flux |
| --- | --- | --- | --- |
{rows}
"""
    write_section(f"side-sources-{args.repos}", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ks = commands.add_parser("kustomizations", help="N Kustomizations and a push, both systems")
    ks.add_argument("--count", type=int, default=100)
    ks.add_argument("--concurrency", type=int, default=4)
    ks.add_argument("--runs", type=int, default=3, help="runs per system")
    polling = commands.add_parser("sources", help="unchanged GitRepositories polled at 1m")
    polling.add_argument("--repos", type=int, default=200)
    polling.add_argument("--windows", type=int, default=3, help="minutes measured per session")
    polling.add_argument("--settle", type=float, default=70.0, help="seconds before measuring")
    polling.add_argument("--runs", type=int, default=1, help="sessions per system")
    args = parser.parse_args()
    if args.command == "kustomizations":
        kustomizations_main(args)
    else:
        sources_main(args)


if __name__ == "__main__":
    main()
