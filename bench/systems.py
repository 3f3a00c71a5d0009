"""The systems a benchmark can run its workload against: fluxd, or Flux's own controllers.

A side-by-side figure is only worth something when both systems see the same
control plane, Git server and objects; the benchmarks start one or the other
through ``start`` and read them through the same ``Controllers`` surface
(process ids for CPU and memory, a liveness check, stop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testenv.cluster import Cluster
from testenv.flux import FluxControllers
from tests.support.daemon import Fluxd

SYSTEMS = ("fluxd", "flux")


@dataclass
class Controllers:
    """One running system: fluxd's one process, or Flux's source- and kustomize-controller."""

    system: str
    daemon: Fluxd | None = None
    flux: FluxControllers | None = None

    def pids(self) -> list[int]:
        if self.daemon is not None:
            assert self.daemon.process is not None
            return [self.daemon.process.pid]
        assert self.flux is not None
        return self.flux.pids()

    def check_alive(self) -> None:
        if self.daemon is not None:
            self.daemon.check_alive()
        if self.flux is not None:
            for controller in self.flux.controllers:
                controller.check_alive()

    def log_tails(self) -> str:
        if self.daemon is not None:
            return self.daemon.log_tail()
        assert self.flux is not None
        return self.flux.log_tails()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        if self.flux is not None:
            self.flux.stop()


def start(
    system: str,
    cluster: Cluster,
    workdir: Path,
    *,
    lease: str,
    concurrency: int | None = None,
    kustomize: bool = True,
    fluxd_args: tuple[str, ...] = (),
) -> Controllers:
    """Start ``system`` with ``concurrency`` Kustomizations reconciled at once (None: its default).

    ``kustomize=False`` runs Flux's source-controller alone; fluxd is one
    process either way. Both log at their default level, as a user runs them.
    """
    if system == "fluxd":
        # Flux's controllers run with leader election off (testenv/flux.py): so does fluxd.
        args = [f"--lease-name={lease}", "--leader-election=false", *fluxd_args]
        if concurrency is not None:
            args.append(f"--kustomization-concurrency={concurrency}")
        return Controllers(system, daemon=Fluxd(cluster, workdir, extra_args=args).start())
    if system == "flux":
        flux = FluxControllers(
            cluster,
            workdir,
            kustomize=kustomize,
            kustomize_args=[] if concurrency is None else [f"--concurrent={concurrency}"],
        )
        return Controllers(system, flux=flux.start())
    raise ValueError(f"unknown system {system!r}: one of {', '.join(SYSTEMS)}")
