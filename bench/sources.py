"""GitRepository costs: polling many unchanged repositories, and a requested fetch of a big one.

1. ``--repos`` GitRepositories (default 200) at a 1m interval against a real
   git smart-HTTP server with basic auth; once all are Ready nothing changes,
   and the daemon's CPU is sampled over whole polling rounds.
2. A repository of ``--files`` files (default 1,000): a commit is pushed, then
   ``reconcile.fluxcd.io/requestedAt`` is set, and the time until
   ``status.artifact.revision`` names the new commit is measured.

Run: ``.venv/bin/python -m bench.sources [--repos 200] [--files 1000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

from bench.common import (
    CpuWindow,
    bench_namespace,
    disk_mib,
    machine,
    median,
    rss_mib,
    write_section,
)
from fluxd.settings import Settings
from testenv.api import Api, wait_for
from testenv.cluster import running
from testenv.gitserver import GitServer
from tests.support.crds import install_crds
from tests.support.daemon import Fluxd

USER, TOKEN = "bench", "bench-token"
REPOS = "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/gitrepositories"


def create(api: Api, name: str, url: str, interval: str) -> None:
    api.create(
        REPOS,
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name},
            "spec": {"interval": interval, "url": url, "secretRef": {"name": "auth"}},
        },
    )


def ready_count(api: Api) -> int:
    count = 0
    for item in api.items(REPOS):
        for condition in item.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-"))
    with (
        running() as cluster,
        GitServer(username=USER, password=TOKEN, default_branch="master") as git,
    ):
        api = cluster.api
        install_crds(api)
        bench_namespace(cluster, username=USER, password=TOKEN)
        daemon = Fluxd(cluster, workdir, extra_args=["--log-level=warning"]).start()
        try:
            assert daemon.process is not None
            pid = daemon.process.pid
            for index in range(args.repos):
                repo = f"bench/r{index:03d}.git"
                git.create_repo(repo)
                git.commit(repo, {"app/config.toml": f"index = {index}\n"})
                create(api, f"r{index:03d}", git.url(repo), "1m")
            wait_for(lambda: ready_count(api) >= args.repos, timeout=600, what="all Ready")
            # Let every object settle into its 1m cadence, then sample whole rounds.
            time.sleep(70)
            shares = []
            requests_before = len(git.requests)
            for _ in range(args.runs):
                with CpuWindow(pid) as cpu:
                    time.sleep(60)
                    shares.append(cpu.share())
            polls = (len(git.requests) - requests_before) / args.runs
            poll_rss = rss_mib(pid)

            big = "bench/big.git"
            git.create_repo(big)
            git.commit(
                big, {f"files/{i:04d}.yaml": f"key: value-{i}\n" * 8 for i in range(args.files)}
            )
            create(api, "big", git.url(big), "1h")
            path = f"{REPOS}/big"
            wait_for(lambda: ready_count(api) >= args.repos + 1, timeout=300, what="big Ready")
            latencies = []
            for run in range(args.runs + 2):
                sha = git.commit(big, {"files/0000.yaml": f"run: {run}\n"})
                started = time.monotonic()
                api.merge_patch(
                    path,
                    {
                        "metadata": {
                            "annotations": {
                                "reconcile.fluxcd.io/requestedAt": datetime.datetime.now(
                                    datetime.UTC
                                ).isoformat()
                            }
                        }
                    },
                )

                def published(sha: str = sha) -> bool:
                    revision: str = api.get(path)["status"]["artifact"]["revision"]
                    return revision.endswith(sha)

                wait_for(published, timeout=120, interval=0.02, what="new artifact")
                latencies.append(time.monotonic() - started)
            storage_mib = disk_mib(workdir / "storage")
        finally:
            daemon.stop()

    command = (
        f"`.venv/bin/python -m bench.sources --repos {args.repos} "
        f"--files {args.files} --runs {args.runs}`"
    )
    body = f"""## GitRepository polling and requested fetches

Command: {command}
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}

- {args.repos} GitRepositories, interval 1m, nothing changing: the daemon used
  **{median(shares) * 100:.2f} % of one core** (median of {args.runs} one-minute windows;
  {polls:.0f} HTTP requests per minute reached the git server, i.e. one ref listing
  per repository and no fetch), RSS {poll_rss:.1f} MiB. Goal: at most 1 %.
- `requestedAt` to new artifact for a {args.files}-file repository: median
  **{median(latencies) * 1000:.0f} ms** over {len(latencies)} pushes
  (min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms), measured from the
  annotation patch to the status naming the new commit.
- disk used under `--storage-path` after both ({args.repos + 1} sources, retention
  {Settings().artifact_retention_records} artifacts each): **{storage_mib:.1f} MiB** (what the
  `data` emptyDir's `sizeLimit` in manifests/deployment.yaml is sized from).
"""
    write_section("sources", body)
    print(body)


if __name__ == "__main__":
    main()
