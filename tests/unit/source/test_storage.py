"""Artifact storage: Flux's layout and URLs, atomic writes, retention, safe path lookup."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fluxd.source import ArtifactPathRefused, Storage, resolve_safe

COMMIT = "132f4e719209eb10b9485302f8593fc0e680f4fc"


def _checkout(root: Path, content: str) -> Path:
    (root / "realm").mkdir(parents=True, exist_ok=True)
    (root / "realm" / "realm_ix.toml").write_text(content)
    return root


async def _store(storage: Storage, source: Path, commit: str) -> dict[str, object]:
    artifact = await storage.store(
        namespace="flux-system",
        name="k3s-private-repo",
        revision=f"master@sha1:{commit}",
        commit=commit,
        source_dir=source,
    )
    return dict(artifact)


async def test_artifact_status_matches_flux(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "store", base_url="http://fluxd.flux-system.svc.cluster.local.")
    artifact = await _store(storage, _checkout(tmp_path / "co", "a=1"), COMMIT)
    path = f"gitrepository/flux-system/k3s-private-repo/{COMMIT}.tar.gz"
    assert artifact["path"] == path
    assert artifact["url"] == f"http://fluxd.flux-system.svc.cluster.local./{path}"
    assert artifact["revision"] == f"master@sha1:{COMMIT}"
    stored = tmp_path / "store" / path
    assert artifact["digest"] == f"sha256:{hashlib.sha256(stored.read_bytes()).hexdigest()}"
    assert artifact["size"] == stored.stat().st_size
    assert str(artifact["lastUpdateTime"]).endswith("Z")
    # Written through a temporary file that does not stay behind.
    assert [entry.name for entry in stored.parent.iterdir()] == [f"{COMMIT}.tar.gz"]


async def test_retention_keeps_the_newest_and_the_current(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "store", base_url="http://h:9090", retention=2)
    commits = [f"{n:040x}" for n in range(1, 5)]
    for age, commit in enumerate(commits):
        artifact = await _store(storage, _checkout(tmp_path / "co", commit), commit)
        stored = tmp_path / "store" / str(artifact["path"])
        os.utime(stored, (1000 + age, 1000 + age))
    directory = tmp_path / "store/gitrepository/flux-system/k3s-private-repo"
    assert sorted(entry.name for entry in directory.iterdir()) == [
        f"{commits[2]}.tar.gz",
        f"{commits[3]}.tar.gz",
    ]
    # The current artifact survives even when older by mtime than the others.
    deleted = await storage.collect_garbage(
        current=f"gitrepository/flux-system/k3s-private-repo/{commits[2]}.tar.gz"
    )
    assert deleted == []
    await _store(storage, _checkout(tmp_path / "co", "x"), commits[0])
    remaining = sorted(entry.name for entry in directory.iterdir())
    assert f"{commits[0]}.tar.gz" in remaining and len(remaining) == 2


async def test_remove_all(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "store", base_url="http://h")
    await _store(storage, _checkout(tmp_path / "co", "a"), COMMIT)
    assert await storage.remove_all(namespace="flux-system", name="k3s-private-repo")
    assert not (tmp_path / "store/gitrepository/flux-system/k3s-private-repo").exists()
    assert not await storage.remove_all(namespace="flux-system", name="k3s-private-repo")


async def test_checking_a_known_artifact_again_resolves_no_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage(tmp_path / "store", base_url="http://h")
    artifact = await _store(storage, _checkout(tmp_path / "co", "a"), COMMIT)
    assert storage.exists(artifact)  # type: ignore[arg-type]
    resolved: list[str] = []
    real = os.path.realpath

    def counting_realpath(path: str, **options: bool) -> str:
        resolved.append(str(path))
        return real(path, **options)

    monkeypatch.setattr(os.path, "realpath", counting_realpath)

    for _ in range(3):
        assert storage.exists(artifact)  # type: ignore[arg-type]
    assert resolved == []

    # Gone from the disk is gone, cached or not.
    assert await storage.remove_all(namespace="flux-system", name="k3s-private-repo")
    assert not storage.exists(artifact)  # type: ignore[arg-type]


class TestResolveSafe:
    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        root = tmp_path / "store"
        (root / "gitrepository/ns/name").mkdir(parents=True)
        (root / "gitrepository/ns/name/a.tar.gz").write_bytes(b"x")
        (tmp_path / "secret").write_text("no")
        (root / "gitrepository/ns/name/escape.tar.gz").symlink_to(tmp_path / "secret")
        return root

    def test_artifact_inside_is_found(self, root: Path) -> None:
        found = resolve_safe(root, "gitrepository/ns/name/a.tar.gz")
        assert found.read_bytes() == b"x"

    @pytest.mark.parametrize(
        "relpath",
        [
            pytest.param("../secret", id="parent"),
            pytest.param("gitrepository/../../secret", id="nested-parent"),
            pytest.param("/etc/passwd", id="absolute"),
            pytest.param("gitrepository/ns/name/escape.tar.gz", id="symlink-out"),
            pytest.param("gitrepository\\..\\..\\secret", id="backslashes"),
            pytest.param("a\x00b", id="nul"),
            pytest.param("", id="root-itself"),
        ],
    )
    def test_paths_outside_are_refused(self, root: Path, relpath: str) -> None:
        with pytest.raises(ArtifactPathRefused):
            resolve_safe(root, relpath)


async def test_a_copied_oci_layer_is_stored_as_it_is_and_collected_like_any_artifact(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path / "storage", base_url="http://fluxd", retention=2)
    paths = []
    for index in range(3):
        layer = tmp_path / f"layer{index}.tgz"
        layer.write_bytes(f"not unpacked {index}".encode() * 100)
        digest = f"sha256:{str(index) * 64}"
        artifact = await storage.store_file(
            kind="OCIRepository",
            namespace="ns",
            name="app",
            revision=f"v1@{digest}",
            commit=digest,
            source_file=layer,
        )
        stored = storage.local_path(artifact["path"])
        assert stored.read_bytes() == layer.read_bytes()
        assert artifact["digest"] == f"sha256:{hashlib.sha256(layer.read_bytes()).hexdigest()}"
        assert artifact["size"] == layer.stat().st_size
        assert artifact["path"] == f"ocirepository/ns/app/{digest}.tar.gz"
        paths.append(stored)
        os.utime(stored, ns=(index * 10**9, index * 10**9))
    assert [path.exists() for path in paths] == [False, True, True]
