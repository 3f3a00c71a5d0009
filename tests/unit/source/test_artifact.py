"""The artifact tarball: deterministic digest, Flux's header normalisation, no escaping links."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from fluxd.source import IgnoreRules, StorageOperationFailed, apply_include, pack


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def _pack(root: Path, spec_ignore: str | None = None) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    packed = pack(root, buffer, rules=IgnoreRules.load(root, spec_ignore=spec_ignore))
    assert packed.size == len(buffer.getvalue())
    return packed.digest, buffer.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {member.name: member for member in archive.getmembers()}


FILES = {"realm/ix/kustomization.yaml": "kind: Kustomization\n", "realm/ix/realm_ix.toml": "a=1\n"}


def test_same_tree_gives_same_digest(tmp_path: Path) -> None:
    first = _tree(tmp_path / "one", FILES)
    second = _tree(tmp_path / "two", dict(reversed(FILES.items())))
    os.utime(second / "realm/ix/realm_ix.toml", (1, 1))
    (second / "realm/ix/realm_ix.toml").chmod(0o664)
    digest_one, _ = _pack(first)
    digest_two, _ = _pack(second)
    assert digest_one == digest_two
    assert digest_one.startswith("sha256:") and len(digest_one) == 7 + 64


def test_changed_content_changes_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path, FILES)
    before, _ = _pack(root)
    (root / "realm/ix/realm_ix.toml").write_text("a=2\n")
    after, _ = _pack(root)
    assert before != after


def test_headers_are_normalised_like_flux(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**FILES, "bin/run.sh": "#!/bin/sh\n"})
    (root / "bin/run.sh").chmod(0o755)
    _, data = _pack(root)
    members = _members(data)
    assert list(members) == sorted(members)
    assert members["realm"].isdir() and members["realm"].mode == 0o750
    assert members["realm/ix/realm_ix.toml"].mode == 0o600
    assert members["bin/run.sh"].mode == 0o700
    for member in members.values():
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0,
            0,
            0,
            "",
            "",
        )


def test_excluded_files_are_left_out(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**FILES, ".git/config": "x", "logo.png": "x", ".github/ci.yml": "x"})
    _, data = _pack(root)
    assert set(_members(data)) == {"realm", "realm/ix", *FILES}


def test_symlinks_never_bring_outside_content_in(tmp_path: Path) -> None:
    secret = _tree(tmp_path / "outside", {"secret.txt": "host secret"})
    root = _tree(tmp_path / "repo", FILES)
    (root / "escape-file").symlink_to(secret / "secret.txt")
    (root / "escape-dir").symlink_to(secret)
    (root / "relative-escape").symlink_to("../outside/secret.txt")
    (root / "inside-link").symlink_to("realm/ix/realm_ix.toml")
    _, data = _pack(root)
    members = _members(data)
    assert set(members) == {"realm", "realm/ix", *FILES}
    assert all(member.isfile() or member.isdir() for member in members.values())


class TestInclude:
    def _artifact(self, tmp_path: Path) -> Path:
        other = _tree(tmp_path / "other", {"deploy/kubernetes/app.yaml": "app", "README.md": "r"})
        target = tmp_path / "other.tar.gz"
        with target.open("wb") as handle:
            pack(other, handle, rules=IgnoreRules.load(other))
        return target

    def test_from_path_is_copied_to_to_path(self, tmp_path: Path) -> None:
        artifact = self._artifact(tmp_path)
        checkout = _tree(tmp_path / "checkout", FILES)
        apply_include(
            artifact_file=artifact,
            from_path="deploy/kubernetes",
            checkout_dir=checkout,
            to_path="base/app",
        )
        assert (checkout / "base/app/app.yaml").read_text() == "app"
        assert not (checkout / "base/app/README.md").exists()

    @pytest.mark.parametrize(
        ("from_path", "to_path", "message"),
        [
            pytest.param("../..", "x", "outside the artifact", id="from-escapes"),
            pytest.param("deploy", "../../x", "outside the artifact", id="to-escapes"),
            pytest.param("missing", "x", "does not exist", id="from-missing"),
            pytest.param("deploy", "link/x", "through a symlink", id="to-through-symlink"),
        ],
    )
    def test_paths_stay_inside(
        self, tmp_path: Path, from_path: str, to_path: str, message: str
    ) -> None:
        artifact = self._artifact(tmp_path)
        checkout = _tree(tmp_path / "checkout", FILES)
        (checkout / "link").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(StorageOperationFailed, match=message):
            apply_include(
                artifact_file=artifact, from_path=from_path, checkout_dir=checkout, to_path=to_path
            )
        assert not (tmp_path / "x").exists()
        assert not (tmp_path / "elsewhere").exists()
