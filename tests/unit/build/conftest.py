"""Fixtures for build tests: a source tree on disk and a way to fill it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

Tree = Callable[[Mapping[str, str]], Path]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """An extracted artifact root (empty until written)."""
    root = tmp_path / "artifact"
    root.mkdir()
    return root


@pytest.fixture
def tree(source: Path) -> Tree:
    """Write ``{relative path: content}`` into the artifact root and return the root."""

    def write(files: Mapping[str, str]) -> Path:
        for relative, content in files.items():
            target = source / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        return source

    return write
