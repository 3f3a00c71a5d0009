"""Run the ``fluxd`` command line as a child process, as a user runs it, for the e2e tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from testenv.cluster import Cluster


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.splitlines()


def fluxd(
    cluster: Cluster, *args: str, kubeconfig: Path | None = None, timeout: float = 180
) -> Result:
    argv = [
        sys.executable,
        "-m",
        "fluxd.cli",
        *args,
        f"--kubeconfig={kubeconfig or cluster.kubeconfig}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def table(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("\t")] for line in text.splitlines() if line]
