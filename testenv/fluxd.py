"""Run ``fluxd run`` as a real child process against a test cluster (tests, demo, benchmarks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testenv import build
from testenv.api import wait_for
from testenv.cluster import Cluster, die_with_parent, free_port


@dataclass
class Fluxd:
    cluster: Cluster
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    name: str = "fluxd"
    # ``--kustomize-engine``: None is the long-lived fluxd-kustomize that the
    # image installs (built by testenv/build.py), so the suite builds as a
    # deployed daemon does; "kubectl" runs one kubectl kustomize per build.
    kustomize_engine: str | None = None
    metrics_port: int = 0
    webhook_port: int = 0
    storage_port: int = 0
    events_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.events_port}/"

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.storage_port}"

    def start(self, *, wait_ready: bool = True) -> Fluxd:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.metrics_port = self.metrics_port or free_port()
        self.webhook_port = self.webhook_port or free_port()
        self.storage_port = self.storage_port or free_port()
        self.events_port = self.events_port or free_port()
        argv = [
            sys.executable,
            "-m",
            "fluxd.cli",
            "run",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--webhook-addr=127.0.0.1:{self.webhook_port}",
            f"--storage-path={self.workdir / 'storage'}",
            f"--storage-addr=127.0.0.1:{self.storage_port}",
            f"--events-addr=127.0.0.1:{self.events_port}",
            "--lease-namespace=default",
            "--shutdown-grace=10s",
            f"--kustomize-engine={self.kustomize_engine or _long_lived_engine()}",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            # Like the control plane, the daemon dies with whoever started it.
            preexec_fn=die_with_parent,
        )
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def get(self, path: str, *, server: str = "metrics") -> tuple[int, str]:
        """GET ``path`` from the metrics server (or ``server="storage"``, the artifact server)."""
        base = self.storage_url if server == "storage" else self.metrics_url
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            self.check_alive()
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=timeout, what=f"{self.name} /readyz")

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on /metrics, or None when absent."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            if series.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                return float(value)
        return None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_records(self) -> list[dict[str, object]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"msg": line, "level": "raw"})
        return records

    def stop(self, *, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"{self.name} did not stop within {timeout}s") from None
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _long_lived_engine() -> Path:
    return build.ensure_binaries(build.KUSTOMIZE_ENGINE) / "fluxd-kustomize"


def stop_all(*daemons: Fluxd) -> None:
    for daemon in daemons:
        try:
            daemon.stop()
        except AssertionError:
            daemon.kill()
