"""Build the control-plane binaries from pinned Go modules, once, into a cache.

No package registry ships kube-apiserver, so the test environment compiles it
(and etcd, and kwok) from the Go module proxy. The result is cached outside the
repository, keyed by the pinned versions, and reused while present.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from testenv import versions

GO_DIR = Path(__file__).resolve().parent / "go"
# Go modules that are part of fluxd itself (the kustomize engine), not test peers.
REPOSITORY = GO_DIR.parent.parent


@dataclass(frozen=True)
class Component:
    """One binary: where its Go module lives and which package is the command."""

    binary: str
    module_dir: str
    package: str
    # Extra ``-X`` stamps, as the project's own release build sets them.
    stamps: tuple[str, ...] = ()
    # Files the package's ``//go:embed`` patterns need that its release build
    # generates (paths relative to the package directory, with their content).
    generated: tuple[tuple[str, str], ...] = ()
    # Directories of the module's source the binary reads at run time (a build
    # without embedded assets), copied next to it as ``<binary>-assets/``.
    assets: tuple[str, ...] = ()
    # Where ``module_dir`` is: the test peers' modules, or the repository for fluxd's own.
    root: Path = GO_DIR


COMPONENTS = (
    Component("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
    Component("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver"),
    Component("kube-controller-manager", "kube", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    Component("kube-scheduler", "kube", "k8s.io/kubernetes/cmd/kube-scheduler"),
    # The real node's agents (testenv/node.py): same module, same one ``go build``.
    Component("kubelet", "kube", "k8s.io/kubernetes/cmd/kubelet"),
    Component("kube-proxy", "kube", "k8s.io/kubernetes/cmd/kube-proxy"),
    Component("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
)


@dataclass(frozen=True)
class Group:
    """Binaries built and cached together, under one versioned cache directory.

    The control plane is one group; servers that only some tests need (a Git
    server, a CLI to test against) are groups of their own, so pinning a new
    version of one rebuilds that group alone.
    """

    name: str
    cache_key: str
    components: tuple[Component, ...]


CONTROL_PLANE = Group("control plane", versions.cache_key(), COMPONENTS)
FLUX_VERSION = "2.9.5"
# The real flux CLI, for the tests that prove its commands work against fluxd.
FLUX_CLI = Group(
    "flux CLI",
    f"flux-{FLUX_VERSION}_b1",
    (
        Component(
            "flux",
            "flux",
            "github.com/fluxcd/flux2/v2/cmd/flux",
            stamps=(f"main.VERSION={FLUX_VERSION}",),
            # flux2's Makefile bundles its install manifests here before building;
            # `flux install` and `bootstrap` are not what the tests run.
            generated=(("manifests/placeholder.yaml", "# not embedded in this build\n"),),
        ),
    ),
)
# Flux's own controllers, run before fluxd by the takeover tests (testenv/flux.py).
FLUX_CONTROLLERS_VERSION = "1.9.6"
FLUX_CONTROLLERS = Group(
    "Flux controllers",
    f"flux-controllers-{FLUX_CONTROLLERS_VERSION}_b1",
    (
        Component("source-controller", "fluxcontrollers", "github.com/fluxcd/source-controller"),
        Component(
            "kustomize-controller", "fluxcontrollers", "github.com/fluxcd/kustomize-controller"
        ),
    ),
)
# The real services the notification tests deliver to (tests/unit/notify/test_provider_types.py).
ALERTMANAGER_VERSION = "0.35.0"
NATS_SERVER_VERSION = "2.15.3"
NOTIFY_PEERS = Group(
    "notification peers",
    f"alertmanager-{ALERTMANAGER_VERSION}_nats-{NATS_SERVER_VERSION}_b1",
    (
        Component(
            "alertmanager",
            "notifypeers",
            "github.com/prometheus/alertmanager/cmd/alertmanager",
            # The web UI is built with npm into ui/app/dist; the tests use only the API.
            generated=tuple(
                (f"../../ui/app/dist/{ui}/index.html", "<!-- web UI not built -->\n")
                for ui in ("elm", "mantine")
            ),
        ),
        Component("nats-server", "notifypeers", "github.com/nats-io/nats-server/v2"),
    ),
)
# The CNCF distribution registry, which OCIRepository tests pull from (testenv/registry.py).
REGISTRY_VERSION = "3.1.2"
OCI_REGISTRY = Group(
    "OCI registry",
    f"registry-{REGISTRY_VERSION}_b1",
    (
        Component(
            "registry",
            "registry",
            "github.com/distribution/distribution/v3/cmd/registry",
            stamps=(
                f"github.com/distribution/distribution/v3/version.version=v{REGISTRY_VERSION}",
            ),
        ),
    ),
)
# The real Gitea: the Git server, webhook sender and commit-status API of the
# Gitea tests, the demo and the push benchmark (testenv/giteaserver.py). Its
# SQLite driver is pure Go by default since 1.27, so no build tags and no cgo;
# without the ``bindata`` tag it reads templates and locales from disk.
GITEA_VERSION = "1.27.3"
GITEA = Group(
    "Gitea",
    f"gitea-{GITEA_VERSION}_b1",
    (
        Component(
            "gitea",
            "gitea",
            "gitea.dev",
            stamps=(f"main.Version={GITEA_VERSION}",),
            assets=("options", "templates", "public"),
        ),
    ),
)
# The real helm CLI, for the tests that package, index and render charts: v4, the
# major version whose libraries source-controller (FLUX_CONTROLLERS_VERSION) loads charts with.
HELM_VERSION = "4.2.4"
HELM = Group(
    "helm",
    f"helm-{HELM_VERSION}_b1",
    (
        Component(
            "helm",
            "helm",
            "helm.sh/helm/v4/cmd/helm",
            stamps=(f"helm.sh/helm/v4/internal/version.version=v{HELM_VERSION}",),
        ),
    ),
)
# CoreDNS, the real node's cluster DNS (testenv/node.py runs it as a Pod): a
# main of our own (testenv/go/coredns/main.go) linking only the plugins the
# node's Corefile uses, not the release's every plugin and their cloud SDKs.
COREDNS_VERSION = "1.15.0"
COREDNS = Group(
    "CoreDNS",
    f"coredns-{COREDNS_VERSION}_b2",
    (Component("coredns", "coredns", "fluxd.dev/testenv/coredns"),),
)


# fluxd's long-lived kustomize engine (engine/, installed by the Dockerfile):
# the tests build with it as the daemon does.
def _source_digest(directory: Path) -> str:
    """A short digest of a module's files: our own source changes more often than a pin."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


KUSTOMIZE_ENGINE = Group(
    "kustomize engine",
    f"fluxd-kustomize-{_source_digest(REPOSITORY / 'engine')}",
    (Component("fluxd-kustomize", "engine", "fluxd.dev/engine", root=REPOSITORY),),
)
# Every group ``python -m testenv build`` (``make testenv``) prepares; add new ones here.
GROUPS: tuple[Group, ...] = (
    CONTROL_PLANE,
    FLUX_CLI,
    FLUX_CONTROLLERS,
    NOTIFY_PEERS,
    OCI_REGISTRY,
    GITEA,
    HELM,
    COREDNS,
    KUSTOMIZE_ENGINE,
)


class BuildError(RuntimeError):
    """A binary could not be built (no Go toolchain, a module that does not compile, ...)."""


def cache_root() -> Path:
    root = os.environ.get("FLUXD_TESTENV_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "fluxd-testenv"


def bin_dir(group: Group = CONTROL_PLANE) -> Path:
    """Where a group's binaries are (or will be): the versioned cache.

    ``FLUXD_TESTENV_BIN`` overrides the control plane's directory only.
    """
    override = os.environ.get("FLUXD_TESTENV_BIN")
    if override and group is CONTROL_PLANE:
        return Path(override)
    return cache_root() / group.cache_key / "bin"


def missing(group: Group = CONTROL_PLANE) -> list[Component]:
    directory = bin_dir(group)
    return [c for c in group.components if not (directory / c.binary).is_file()]


def _say(message: str) -> None:
    print(f"[testenv] {message}", file=sys.stderr, flush=True)


def _version_flags(component: Component) -> list[str]:
    """Stamp Kubernetes binaries with their release, as the official build does.

    Without it they report ``v0.0.0-master``, which clients print and some
    version checks read.
    """
    if component.module_dir != "kube":
        return [f"-X {stamp}" for stamp in component.stamps]
    major, minor, _ = versions.KUBERNETES.split(".")
    values = {
        "gitVersion": f"v{versions.KUBERNETES}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]


def _build_module(components: list[Component], directory: Path, go: str) -> float:
    """Build every missing binary of one Go module with one ``go build``.

    One invocation per module lets the compiler share and parallelise the
    packages the commands have in common (most of Kubernetes, for the three
    control-plane commands) instead of walking the module once per binary.
    """
    module_dir = components[0].module_dir
    staging = directory / f".{module_dir}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=readonly")
    ldflags = ["-s", "-w", *_version_flags(components[0])]
    module_source = components[0].root / module_dir
    source_dir = module_source
    source_flags: list[str] = []
    if any(component.generated for component in components):
        source_dir, source_flags = _overlaid_source(components, directory, go, env)
    # With one package, -o names the file; with several, a directory (one binary per command).
    output = staging / components[0].binary if len(components) == 1 else staging
    command = [
        go,
        "build",
        "-trimpath",
        *source_flags,
        f"-ldflags={' '.join(ldflags)}",
        "-o",
        f"{output}{os.sep}" if len(components) > 1 else str(output),
        *(component.package for component in components),
    ]
    names = ", ".join(component.binary for component in components)
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            _say(f"  still building {names} ({time.monotonic() - started:.0f}s)")

    ticker = threading.Thread(target=heartbeat, name=f"build-{module_dir}", daemon=True)
    ticker.start()
    try:
        result = subprocess.run(
            command,
            cwd=source_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        done.set()
        if source_dir != module_source:
            shutil.rmtree(source_dir, ignore_errors=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        shutil.rmtree(staging, ignore_errors=True)
        raise BuildError(
            f"building {names} failed: {' '.join(command)} (in {module_source})\n{tail}"
        )
    for component in components:
        built = staging / component.binary
        if not built.is_file():
            raise BuildError(
                f"go build of {module_dir} produced no {component.binary} in {staging}"
            )
        # Assets first: a binary in place means the component is complete.
        _copy_assets(component, directory, go, env)
        built.replace(directory / component.binary)
    shutil.rmtree(staging, ignore_errors=True)
    return time.monotonic() - started


def assets_dir(component: Component, group: Group) -> Path:
    """Where a component's run-time assets are copied (see ``Component.assets``)."""
    return bin_dir(group) / f"{component.binary}-assets"


def _copy_assets(component: Component, directory: Path, go: str, env: dict[str, str]) -> None:
    if not component.assets:
        return
    located = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", component.package],
        cwd=component.root / component.module_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if located.returncode != 0 or not located.stdout.strip():
        raise BuildError(f"cannot locate the source of {component.package}: {located.stderr}")
    source = Path(located.stdout.strip())
    target = directory / f"{component.binary}-assets"
    shutil.rmtree(target, ignore_errors=True)
    for name in component.assets:
        # Module cache files are read-only; the copies need not be.
        shutil.copytree(source / name, target / name, copy_function=shutil.copyfile)


def _overlaid_source(
    components: list[Component], directory: Path, go: str, env: dict[str, str]
) -> tuple[Path, list[str]]:
    """A build tree where the files a release build generates exist, and the flags to use it.

    ``go build -overlay`` may not add files under the module cache, so the
    pinned modules are first vendored (``go mod vendor``, checked against
    go.sum) into a scratch copy of our module next to the cache; the overlay
    then adds the generated files to the vendored package, whose sources stay
    as the proxy served them.
    """
    module_dir = components[0].module_dir
    source = directory / f".{module_dir}.src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(components[0].root / module_dir, source)
    # -e: the embed pattern has no match until the overlay adds its file.
    vendored = subprocess.run(
        [go, "mod", "vendor", "-e"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if vendored.returncode != 0:
        raise BuildError(f"go mod vendor in {source} failed:\n{vendored.stderr[-3000:]}")
    generated_dir = source / "generated"
    replace: dict[str, str] = {}
    for component in components:
        for index, (relative, content) in enumerate(component.generated):
            stand_in = generated_dir / component.binary / f"{index}-{Path(relative).name}"
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text(content)
            # normpath: a file may belong to another package of the module ("../../ui/...").
            target = os.path.normpath(source / "vendor" / component.package / relative)
            replace[target] = str(stand_in)
    overlay = source / "overlay.json"
    overlay.write_text(json.dumps({"Replace": replace}))
    return source, ["-mod=vendor", f"-overlay={overlay}"]


def ensure_binaries(group: Group = CONTROL_PLANE) -> Path:
    """Return the directory holding a group's binaries, building the missing ones first.

    Concurrent callers (several test sessions) take turns on a lock file, so one
    builds and the others wait and reuse the result.
    """
    directory = bin_dir(group)
    if not missing(group):
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with (directory.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_missing(group, directory)


def _build_missing(group: Group, directory: Path) -> Path:
    todo = missing(group)
    if not todo:
        return directory
    if group is CONTROL_PLANE and os.environ.get("FLUXD_TESTENV_BIN"):
        names = ", ".join(c.binary for c in todo)
        raise BuildError(f"FLUXD_TESTENV_BIN={directory} lacks {names}")
    go = shutil.which("go")
    if go is None:
        names = ", ".join(c.binary for c in todo)
        raise BuildError(
            f"the Go toolchain ('go') is not on PATH: it is needed once to build {names} "
            "for the tests"
        )
    total = time.monotonic()
    _say(f"building {len(todo)} {group.name} binaries into {directory} (cold builds take a while)")
    modules: dict[str, list[Component]] = {}
    for component in todo:
        modules.setdefault(component.module_dir, []).append(component)
    for index, components in enumerate(modules.values(), start=1):
        names = ", ".join(component.binary for component in components)
        where = (components[0].root / components[0].module_dir).relative_to(REPOSITORY)
        _say(f"[{index}/{len(modules)}] {names} from {where.as_posix()}")
        seconds = _build_module(components, directory, go)
        _say(f"[{index}/{len(modules)}] {names} built in {seconds:.0f}s")
    _say(f"{group.name} binaries built in {time.monotonic() - total:.0f}s")
    return directory


def main() -> int:
    for group in GROUPS:
        started = time.monotonic()
        try:
            directory = ensure_binaries(group)
        except BuildError as error:
            _say(str(error))
            return 1
        _say(f"{group.name} binaries ready in {directory} ({time.monotonic() - started:.1f}s)")
    return 0
