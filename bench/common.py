"""What every benchmark needs: process readings, the machine, and the results file."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from testenv.cluster import Cluster

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def disk_mib(path: Path) -> float:
    """Bytes in the files below ``path`` (what an emptyDir's sizeLimit counts), in MiB."""
    total = sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
    return total / (1 << 20)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class CpuWindow:
    """CPU used by one process over a stretch of wall time, as a share of one core."""

    pid: int
    started_cpu: float = 0.0
    started_wall: float = 0.0

    def __enter__(self) -> CpuWindow:
        self.started_cpu = cpu_seconds(self.pid)
        self.started_wall = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def share(self) -> float:
        return (cpu_seconds(self.pid) - self.started_cpu) / (time.monotonic() - self.started_wall)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    one, five, fifteen = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average when written {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def bench_namespace(cluster: Cluster, *, username: str, password: str) -> None:
    """The ``bench`` namespace, with the git credentials Secret ``auth`` its sources use."""
    cluster.create_namespace("bench")
    cluster.api.create(
        "/api/v1/namespaces/bench/secrets",
        {"metadata": {"name": "auth"}, "stringData": {"username": username, "password": password}},
    )


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``name`` of bench/RESULTS.md."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    RESULTS.write_text(text)
