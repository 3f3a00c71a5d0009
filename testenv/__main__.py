"""Command line for humans: ``python -m testenv build|up|down``.

``up`` starts a cluster and stays in the foreground until Ctrl-C or SIGTERM
(``down`` sends that to the running one), so ``make demo`` and developers use
the same control plane as the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from testenv import build
from testenv.cluster import Cluster, ClusterError


def _state_file() -> Path:
    return build.cache_root() / "running.json"


def _up(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fluxd-testenv-"))
    cluster = Cluster(workdir=workdir, nodes=args.nodes)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        cluster.start()
    except (ClusterError, build.BuildError) as error:
        print(f"testenv: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    state = {"pid": os.getpid(), "kubeconfig": str(cluster.kubeconfig), "server": cluster.server}
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps(state))
    print(
        f"testenv: cluster up in {cluster.started_in:.1f}s at {cluster.server}\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n"
        f"  logs: {cluster.logs_dir}\n"
        "  stop with Ctrl-C or `python -m testenv down`",
        flush=True,
    )
    if args.kubeconfig_out:
        Path(args.kubeconfig_out).write_text(cluster.kubeconfig.read_text())
    try:
        while True:
            cluster.check()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except ClusterError as error:
        print(f"testenv: {error}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        _state_file().unlink(missing_ok=True)


def _down(_: argparse.Namespace) -> int:
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        print("testenv: no running cluster recorded", file=sys.stderr)
        return 1
    try:
        os.kill(int(state["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        _state_file().unlink(missing_ok=True)
        print("testenv: the recorded cluster was not running", file=sys.stderr)
        return 1
    print(f"testenv: stopping the cluster (pid {state['pid']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build (or reuse) the control-plane binaries")
    up = commands.add_parser("up", help="start a cluster and keep it up until Ctrl-C")
    up.add_argument("--nodes", type=int, default=1, help="fake kwok nodes to create")
    up.add_argument("--kubeconfig-out", help="also copy the kubeconfig to this path")
    commands.add_parser("down", help="stop the cluster started by `up`")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build.main()
    if args.command == "up":
        return _up(args)
    return _down(args)


if __name__ == "__main__":
    sys.exit(main())
