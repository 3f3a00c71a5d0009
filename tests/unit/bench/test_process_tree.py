"""The benchmarks' CPU and memory readings count a process's children, live or finished.

fluxd runs ``kubectl kustomize`` as child processes and Flux's controllers run
none, so a comparison that read the parent alone would flatter fluxd.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.common import cpu_seconds, descendants, tree_cpu_seconds, tree_rss_mib

BURN = "x = 0\nfor i in range(4_000_000):\n    x += i\n"
# The parent runs a busy child to its end, says so, then waits for stdin to close.
FINISHED_CHILD = (
    "import subprocess, sys\n"
    f"subprocess.run([sys.executable, '-c', {BURN!r}], check=True)\n"
    "print('done', flush=True)\n"
    "sys.stdin.read()\n"
)
# The parent starts a child that sleeps until killed, prints its pid, then waits.
LIVE_CHILD = (
    "import subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "sys.stdin.read()\n"
    "child.kill()\n"
    "child.wait()\n"
)


@pytest.fixture
def parent(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", request.param],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    process.wait(30)
    process.stdout.close()


@pytest.mark.parametrize("parent", [FINISHED_CHILD], indirect=True)
def test_cpu_of_a_finished_child_counts_for_its_parent(parent: subprocess.Popen[str]) -> None:
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == "done"
    own = cpu_seconds(parent.pid)
    assert tree_cpu_seconds([parent.pid]) > own + 0.1


@pytest.mark.parametrize("parent", [LIVE_CHILD], indirect=True)
def test_a_live_child_is_part_of_the_tree(parent: subprocess.Popen[str]) -> None:
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert descendants(parent.pid) == [child]
    alone = tree_rss_mib([child])
    assert alone > 0
    assert tree_rss_mib([parent.pid]) > alone
