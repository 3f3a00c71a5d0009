"""``make bench``: every benchmark in turn, each rewriting its section of bench/RESULTS.md.

Each one starts its own control plane and takes minutes; run a single one with
``.venv/bin/python -m bench.<name> --help`` to see its options.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    ["bench.daemon"],
    ["bench.sources"],
    ["bench.oci"],
    ["bench.receivers"],
    ["bench.gitea"],
    ["bench.restarter", "--write"],
    ["bench.kustomizations", "--count", "100"],
    ["bench.sidebyside", "kustomizations", "--count", "100"],
    ["bench.sidebyside", "sources"],
    ["bench.realnode", "--runs", "5"],
)


def main() -> int:
    for module, *args in BENCHMARKS:
        print(f"== {module} {' '.join(args)}", flush=True)
        result = subprocess.run([sys.executable, "-m", module, *args], check=False)
        if result.returncode != 0:
            print(f"{module} failed with exit code {result.returncode}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
