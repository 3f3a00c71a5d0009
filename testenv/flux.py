"""Run Flux's own source-controller and kustomize-controller against a test cluster.

A user moving to fluxd already runs Flux: the takeover tests let the real
controllers (built by ``testenv.build.FLUX_CONTROLLERS``) reconcile first,
then stop them and start fluxd on the same objects. They run out of cluster
with the test kubeconfig, as controller-runtime allows; kustomize-controller
downloads artifacts from the address source-controller advertises.

fluxd serves GitRepository and Kustomization from its own CRDs, but Flux's
controllers also watch kinds fluxd does not serve (Bucket, OCIRepository, the
Helm sources, ExternalArtifact) and will not start without them: those CRDs
come from source-controller's module, the version the binaries are built from.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testenv import build
from testenv.api import wait_for
from testenv.cluster import Cluster, die_with_parent, free_port

SOURCE_CONTROLLER_MODULE = "github.com/fluxcd/source-controller"
# Served by fluxd's own CRDs; Flux's are installed for the other kinds only.
FLUXD_SERVES = frozenset({"gitrepositories.source.toolkit.fluxcd.io"})


@dataclass
class FluxController:
    """One of Flux's controllers as a child process, logging to ``<name>.log``."""

    name: str
    cluster: Cluster
    workdir: Path
    args: list[str] = field(default_factory=list)
    health_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> FluxController:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.health_port = self.health_port or free_port()
        binary = build.ensure_binaries(build.FLUX_CONTROLLERS) / self.name
        argv = [
            str(binary),
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{self.health_port}",
            "--enable-leader-election=false",
            "--log-encoding=json",
            *self.args,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)},
            preexec_fn=die_with_parent,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            self.check_alive()
            url = f"http://127.0.0.1:{self.health_port}/readyz"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return bool(response.status == 200)
            except (OSError, urllib.error.HTTPError):
                return False

        wait_for(ready, timeout=timeout, what=f"{self.name} /readyz")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as a Deployment scaled to zero would, and wait for the exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass
class FluxControllers:
    """source-controller and kustomize-controller, started and stopped together."""

    cluster: Cluster
    workdir: Path
    # Flux's --watch-label-selector: the controllers leave every other test's objects alone.
    label_selector: str = ""
    storage_port: int = 0
    # Extra flags per controller (the benchmarks set ``--concurrent``), and
    # whether kustomize-controller runs at all (source-controller alone polls).
    source_args: list[str] = field(default_factory=list)
    kustomize_args: list[str] = field(default_factory=list)
    kustomize: bool = True
    controllers: list[FluxController] = field(default_factory=list)

    def start(self) -> FluxControllers:
        self.storage_port = self.storage_port or free_port()
        # source-controller refuses a storage path that does not exist yet.
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        scope = [f"--watch-label-selector={self.label_selector}"] if self.label_selector else []
        source = FluxController(
            "source-controller",
            self.cluster,
            self.workdir,
            args=[
                f"--storage-path={self.workdir / 'storage'}",
                f"--storage-addr=127.0.0.1:{self.storage_port}",
                f"--storage-adv-addr=127.0.0.1:{self.storage_port}",
                *scope,
                *self.source_args,
            ],
        )
        self.controllers = [source]
        if self.kustomize:
            self.controllers.append(
                FluxController(
                    "kustomize-controller",
                    self.cluster,
                    self.workdir,
                    args=[*scope, *self.kustomize_args],
                )
            )
        for controller in self.controllers:
            controller.start()
        for controller in self.controllers:
            controller.wait_ready()
        return self

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.controllers if c.process is not None]

    def log_tails(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.log_tail()}" for c in self.controllers)


def _module_dir(module: str) -> Path:
    go = shutil.which("go")
    if go is None:
        raise build.BuildError("the Go toolchain ('go') is needed to find Flux's CRDs")
    result = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", module],
        cwd=build.GO_DIR / "fluxcontrollers",
        env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly"),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip())


def flux_only_crds() -> list[dict[str, object]]:
    """Flux's CRDs of the source kinds fluxd does not serve."""
    bases = _module_dir(SOURCE_CONTROLLER_MODULE) / "config" / "crd" / "bases"
    documents: list[dict[str, object]] = []
    for path in sorted(bases.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["metadata"]["name"] not in FLUXD_SERVES:
                documents.append(document)
    return documents
