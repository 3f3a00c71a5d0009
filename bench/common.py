"""What every benchmark needs: process readings, the machine, and the results file."""

from __future__ import annotations

import os
import platform
import re
import statistics
import threading
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
    fields = _stat_fields(pid)
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


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: split after the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU of processes and everything below them: user + system time, children included.

    Children that were waited for are in their parent's cutime/cstime; the live
    ones are added from their own counters, so a ``kubectl kustomize`` still
    running when the reading is taken counts too.
    """
    total = 0
    for pid in {p for root in pids for p in (root, *descendants(root))}:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue  # exited between the listing and the reading: now in its parent's cutime
        total += sum(int(fields[index]) for index in (11, 12, 13, 14))
    return total / _TICKS


def tree_rss_mib(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in {p for root in pids for p in (root, *descendants(root))}:
        try:
            total += rss_mib(pid)
        except (OSError, RuntimeError):
            continue  # exited, or a zombie without memory
    return total


class TreePeak:
    """The peak of the summed RSS of some processes and their children, sampled in a thread.

    VmHWM is exact but per process; children (``kubectl kustomize``) come and go,
    so their share is caught by sampling every ``interval`` seconds.
    """

    def __init__(self, pids: Sequence[int], interval: float = 0.1) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-peak", daemon=True)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.peak = max(self.peak, tree_rss_mib(self.pids))

    def __enter__(self) -> TreePeak:
        self.peak = tree_rss_mib(self.pids)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(10)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"load average when written {load_average()} (1/5/15 min)"
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
