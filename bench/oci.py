"""OCIRepository cost: polling many unchanged tags on a real OCI registry.

``--repos`` OCIRepositories (default 200), one registry repository each,
pushed once with ``flux push artifact``, at a 1m interval against the CNCF
distribution registry over TLS with htpasswd basic auth. Once all are Ready
nothing changes, and the daemon's CPU is sampled over whole polling rounds;
the registry's access log counts what the polls cost (a HEAD of the manifest
each, no download). The GitRepository figure next to it is bench.sources'.

Run: ``.venv/bin/python -m bench.oci [--repos 200] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import base64
import re
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, CpuWindow, machine, median, rss_mib, write_section
from testenv.api import Api, wait_for
from testenv.cluster import running
from testenv.registry import Registry
from tests.support.crds import install_crds
from tests.support.daemon import Fluxd

PASSWORD = "bench-registry-password"
REPOS = "/apis/source.toolkit.fluxcd.io/v1/namespaces/bench/ocirepositories"


def _secrets(api: Api, registry: Registry) -> None:
    for name, kind, data in (
        ("pull", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": registry.docker_config()}),
        ("registry-ca", "Opaque", {"ca.crt": registry.ca_cert}),
    ):
        api.create(
            "/api/v1/namespaces/bench/secrets",
            {
                "metadata": {"name": name},
                "type": kind,
                "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
            },
        )


def create(api: Api, name: str, url: str) -> None:
    api.create(
        REPOS,
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": name},
            "spec": {
                "interval": "1m",
                "url": url,
                "ref": {"tag": "production"},
                "secretRef": {"name": "pull"},
                "certSecretRef": {"name": "registry-ca"},
            },
        },
    )


def ready_count(api: Api) -> int:
    count = 0
    for item in api.items(REPOS):
        for condition in item.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                count += 1
    return count


def _git_figure() -> str:
    """The GitRepository polling share bench.sources last wrote, for comparison."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    found = re.search(r"<!-- bench:sources -->.*?\*\*([0-9.]+ % of one core)\*\*", text, re.S)
    return found[1] if found else "not measured"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fluxd-bench-oci-"))
    content = workdir / "manifests"
    content.mkdir()
    with (
        running() as cluster,
        Registry(workdir / "registry", password=PASSWORD, access_log=True) as registry,
    ):
        api = cluster.api
        install_crds(api)
        cluster.create_namespace("bench")
        _secrets(api, registry)
        daemon = Fluxd(cluster, workdir / "fluxd", extra_args=["--log-level=warning"]).start()
        try:
            assert daemon.process is not None
            pid = daemon.process.pid
            for index in range(args.repos):
                (content / "configmap.yaml").write_text(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\n"
                    f"data:\n  index: '{index}'\n"
                )
                registry.push(f"bench/r{index:03d}", "production", content)
                create(api, f"r{index:03d}", registry.url(f"bench/r{index:03d}"))
            wait_for(lambda: ready_count(api) >= args.repos, timeout=600, what="all Ready")
            # Let every object settle into its 1m cadence, then sample whole rounds.
            time.sleep(70)
            shares = []
            heads, gets = registry.requests("HEAD"), registry.requests("GET")
            for _ in range(args.runs):
                with CpuWindow(pid) as cpu:
                    time.sleep(60)
                    shares.append(cpu.share())
            head_rate = (registry.requests("HEAD") - heads) / args.runs
            get_rate = (registry.requests("GET") - gets) / args.runs
            poll_rss = rss_mib(pid)
        finally:
            daemon.stop()

    body = f"""## OCIRepository polling

Command: `.venv/bin/python -m bench.oci --repos {args.repos} --runs {args.runs}`
Machine: {machine()}
Date: {time.strftime("%Y-%m-%d")}

- {args.repos} OCIRepositories (one registry repository each, pushed with `flux push
  artifact`), interval 1m, nothing changing, on the CNCF distribution registry over TLS with
  htpasswd basic auth: the daemon used **{median(shares) * 100:.2f} % of one core** (median of
  {args.runs} one-minute windows), RSS {poll_rss:.1f} MiB. Per minute the registry served
  {head_rate:.0f} manifest HEADs and {get_rate:.0f} GETs, i.e. one digest lookup per
  repository and no download.
- GitRepository polling for comparison (bench.sources, 200 repositories at 1m):
  {_git_figure()}.
"""
    write_section("oci", body)
    print(body)


if __name__ == "__main__":
    main()
