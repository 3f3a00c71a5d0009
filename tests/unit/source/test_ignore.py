"""Flux's exclusion rules: defaults, .sourceignore files and spec.ignore."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxd.source import IgnoreRules


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        pytest.param(".git/config", True, id="git-dir"),
        pytest.param(".gitignore", True, id="gitignore"),
        pytest.param("sub/.gitattributes", True, id="nested-gitattributes"),
        pytest.param("docs/logo.png", True, id="image"),
        pytest.param("release.tar.gz", True, id="archive"),
        pytest.param(".github/workflows/ci.yml", True, id="ci-dir"),
        pytest.param(".gitlab-ci.yml", True, id="ci-file"),
        pytest.param("apps/.sops.yaml", True, id="sops-config"),
        pytest.param("realm/ix/kustomization.yaml", False, id="manifest"),
        pytest.param("realm/ix/realm_ix.toml", False, id="config-file"),
        pytest.param(".sourceignore", False, id="sourceignore-itself"),
    ],
)
def test_default_exclusions(tmp_path: Path, path: str, excluded: bool) -> None:
    assert IgnoreRules.load(tmp_path).excluded(path) is excluded


def test_sourceignore_in_a_subdirectory_is_scoped_to_it(tmp_path: Path) -> None:
    _tree(tmp_path, {"apps/.sourceignore": "*.md\n/local/\n"})
    rules = IgnoreRules.load(tmp_path)
    assert rules.excluded("apps/README.md")
    assert rules.excluded("apps/local/x.yaml")
    assert not rules.excluded("README.md")
    assert not rules.excluded("local/x.yaml")


def test_sourceignore_replaces_defaults_but_not_vcs(tmp_path: Path) -> None:
    _tree(tmp_path, {".sourceignore": "# comment\n\n*.txt\n"})
    rules = IgnoreRules.load(tmp_path)
    assert rules.excluded("notes.txt")
    assert not rules.excluded("logo.png")  # a user pattern replaces the default list, as in Flux
    assert rules.excluded(".git/HEAD")


def test_spec_ignore_replaces_defaults_and_overrules_sourceignore(tmp_path: Path) -> None:
    _tree(tmp_path, {".sourceignore": "deploy/keep.yaml\n"})
    spec_ignore = (
        "# exclude all\n/*\n# include deploy dir\n!/deploy\n/deploy/**/*.md\n!deploy/keep.yaml\n"
    )
    rules = IgnoreRules.load(tmp_path, spec_ignore=spec_ignore)
    assert rules.excluded("README.md")
    assert rules.excluded("other/app.yaml")
    assert not rules.excluded("deploy", is_dir=True)
    assert not rules.excluded("deploy/app.yaml")
    assert rules.excluded("deploy/docs/guide.md")
    assert not rules.excluded("deploy/keep.yaml")
    assert not rules.excluded("deploy/logo.png")
    assert rules.excluded(".git/HEAD")


def test_empty_spec_ignore_keeps_defaults(tmp_path: Path) -> None:
    rules = IgnoreRules.load(tmp_path, spec_ignore="\n# nothing\n")
    assert rules.excluded("logo.png")
