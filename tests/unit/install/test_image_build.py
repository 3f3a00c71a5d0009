"""The test image (testenv/images.py) is the Dockerfile's image, built without a container engine.

The real node runs an image built from Debian's packages and PyPI by the test
environment, so the tests in-cluster are only worth something while that
recipe says what the Dockerfile says: same base release and Python, same
system packages, same user, entrypoint, environment and ports. The OCI
archive it writes must also be one ``ctr images import`` reads: an index
naming the image, and digests that match their blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

from testenv import build, images
from tests.unit.install.test_image import _instructions


def _of(name: str) -> list[str]:
    return [arguments for instruction, arguments in _instructions() if instruction == name]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in _of("ENV"):
        for pair in arguments.split():
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def test_the_base_is_debian_bookworm_with_python_311_as_the_dockerfiles() -> None:
    final_stage = _of("FROM")[-1]
    match = re.fullmatch(r"python:(\d+\.\d+)-slim-(\w+)", final_stage)
    assert match is not None, final_stage
    python, release = match.groups()
    assert release == images.SUITE
    # Debian bookworm's python3 is 3.11: the release fixes the interpreter.
    assert (release, python) == ("bookworm", "3.11")
    assert "python3" in images.BASE_PACKAGES and "python3-venv" in images.BASE_PACKAGES


def test_the_system_packages_are_the_ones_the_dockerfile_installs() -> None:
    (install,) = [run for run in _of("RUN") if "apt-get install" in run]
    listed = install.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
    assert tuple(listed) == images.DOCKERFILE_PACKAGES


def test_user_entrypoint_workdir_and_ports_are_the_dockerfiles() -> None:
    (user,) = _of("USER")
    assert images.FLUXD_CONFIG.user == user
    (entrypoint,) = _of("ENTRYPOINT")
    assert list(images.FLUXD_CONFIG.entrypoint) == json.loads(entrypoint)
    assert images.FLUXD_CONFIG.workdir == _of("WORKDIR")[-1]
    (exposed,) = _of("EXPOSE")
    assert images.FLUXD_CONFIG.exposed_ports == tuple(int(port) for port in exposed.split())


def test_the_environment_is_the_dockerfiles() -> None:
    dockerfile = _dockerfile_env()
    recipe = dict(entry.partition("=")[::2] for entry in images.FLUXD_CONFIG.env)
    assert recipe.keys() == dockerfile.keys()
    for key, value in dockerfile.items():
        if key == "PATH":
            # The Dockerfile prepends the venv to the base image's PATH.
            assert value == f"{images.VENV}/bin:$PATH"
            assert recipe[key].startswith(f"{images.VENV}/bin:")
        else:
            assert recipe[key] == value, key


def test_the_kustomize_engine_is_where_the_dockerfile_puts_it_built_by_its_go() -> None:
    (copy,) = [arguments for arguments in _of("COPY") if arguments.startswith("--from=engine ")]
    assert copy.split()[-1] == images.ENGINE_PATH
    # On the image's PATH, where `kustomize-engine: auto` looks.
    path = dict(entry.partition("=")[::2] for entry in images.FLUXD_CONFIG.env)["PATH"]
    assert str(Path(images.ENGINE_PATH).parent) in path.split(":")
    (stage,) = [stage for stage in _of("FROM") if stage.startswith("golang:")]
    match = re.fullmatch(r"golang:(\d+\.\d+)\.\d+-(\w+) AS engine", stage)
    assert match is not None, stage
    go_mod = (images.ROOT / "engine" / "go.mod").read_text()
    assert f"\ngo {match.group(1)}." in go_mod
    assert match.group(2) == images.SUITE
    # The test image's engine is the test environment's build of the same module.
    (component,) = build.KUSTOMIZE_ENGINE.components
    assert (component.root / component.module_dir) == images.ROOT / "engine"
    assert build.KUSTOMIZE_ENGINE in build.GROUPS


def test_the_venv_is_where_the_dockerfile_makes_it() -> None:
    (venv,) = [run for run in _of("RUN") if "python -m venv" in run]
    assert f"python -m venv {images.VENV} " in venv


# -- the OCI archive -------------------------------------------------------------------


def _read_archive(archive: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with tarfile.open(archive) as tar:
        files = {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }
    return json.loads(files["index.json"]), files


def _blob(files: dict[str, bytes], digest: str) -> bytes:
    content = files[f"blobs/sha256/{digest.removeprefix('sha256:')}"]
    assert "sha256:" + hashlib.sha256(content).hexdigest() == digest
    return content


def test_the_archive_is_an_oci_layout_naming_the_image_with_matching_digests(
    tmp_path: Path,
) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    (rootfs / "bin" / "hello").chmod(0o755)
    (rootfs / "bin" / "hi").symlink_to("hello")
    archive = tmp_path / "image.tar"
    config = images.ImageConfig(user="65532:65532", entrypoint=("/bin/hello",), env=("A=1",))

    images.write_oci_archive(rootfs, config, "example.test/hello:1", archive)

    index, files = _read_archive(archive)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "example.test/hello:1"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "1"
    manifest = json.loads(_blob(files, entry["digest"]))
    assert entry["size"] == len(_blob(files, entry["digest"]))
    image_config = json.loads(_blob(files, manifest["config"]["digest"]))
    assert image_config["config"]["User"] == "65532:65532"
    assert image_config["config"]["Entrypoint"] == ["/bin/hello"]
    assert image_config["config"]["Env"] == ["A=1"]
    (layer_entry,) = manifest["layers"]
    layer_gz = _blob(files, layer_entry["digest"])
    assert layer_entry["size"] == len(layer_gz)
    layer = gzip.decompress(layer_gz)
    assert image_config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert members["bin/hello"].mode & 0o777 == 0o755
    assert members["bin/hi"].issym() and members["bin/hi"].linkname == "hello"
