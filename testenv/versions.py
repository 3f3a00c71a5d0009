"""The pinned versions of the control-plane components the test environment builds.

Each component has a Go module of ours under ``testenv/go/<name>`` whose go.mod
and go.sum pin the exact versions; these constants name them for the cache key.
"""

from __future__ import annotations

KUBERNETES = "1.34.2"
ETCD = "3.6.5"
KWOK = "0.7.0"
# Bumped when the way the binaries are built changes (flags, the set of commands),
# so caches are not reused.
BUILD = "b3"


def cache_key() -> str:
    """Name of the cache directory for this set of versions."""
    return f"k8s-{KUBERNETES}_etcd-{ETCD}_kwok-{KWOK}_{BUILD}"
