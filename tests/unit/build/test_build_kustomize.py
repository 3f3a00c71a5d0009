"""Building real source trees with the real kustomize engine (the wheel's kubectl)."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from fluxd.build import (
    BuildError,
    BuildOptions,
    BuildSettings,
    EngineError,
    ManifestError,
    RemoteBaseRefusedError,
    SourcePathError,
    SymlinkEscapeError,
    build,
)
from testenv.gitserver import GitServer
from tests.unit.build.conftest import Tree

REALM_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
secretGenerator:
  - name: realm-config-ix
    files:
      - realm_ix.toml
generatorOptions:
  disableNameSuffixHash: true
"""
REALM_TOML = '[network]\nlisten = "0.0.0.0:443"\nremote = "example.org:443"\n'

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: realm
  labels:
    app: realm
spec:
  selector:
    matchLabels:
      app: realm
  template:
    metadata:
      labels:
        app: realm
    spec:
      containers:
        - name: realm
          image: ghcr.io/zhboner/realm:v2.6.0
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: realm
spec:
  selector:
    app: realm
  ports:
    - port: 443
"""
APP_KUSTOMIZATION = "resources:\n  - deployment.yaml\n  - service.yaml\n"


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [obj for obj in objects if obj["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {objects}"
    return matches[0]


def app_tree(tree: Tree) -> Path:
    return tree(
        {
            "apps/realm/kustomization.yaml": APP_KUSTOMIZATION,
            "apps/realm/deployment.yaml": DEPLOYMENT,
            "apps/realm/service.yaml": SERVICE,
        }
    )


async def test_seed_secret_generator_builds_a_fixed_name_secret(tree: Tree) -> None:
    root = tree(
        {"realm/ix/kustomization.yaml": REALM_KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML}
    )

    objects = await build(artifact_root=root, path="./realm/ix", options=BuildOptions())

    secret = by_kind(objects, "Secret")
    assert secret["metadata"]["name"] == "realm-config-ix"
    assert base64.b64decode(secret["data"]["realm_ix.toml"]).decode() == REALM_TOML


async def test_target_namespace_sets_every_objects_namespace(tree: Tree) -> None:
    root = tree(
        {"realm/ix/kustomization.yaml": REALM_KUSTOMIZATION, "realm/ix/realm_ix.toml": REALM_TOML}
    )
    options = BuildOptions.from_spec({"targetNamespace": "realm"})

    objects = await build(artifact_root=root, path="realm/ix", options=options)

    assert by_kind(objects, "Secret")["metadata"]["namespace"] == "realm"


async def test_objects_keep_kustomize_output_order(tree: Tree) -> None:
    root = app_tree(tree)

    objects = await build(artifact_root=root, path="apps/realm", options=BuildOptions())

    assert [obj["kind"] for obj in objects] == ["Service", "Deployment"]


async def test_patches_with_target_change_only_matching_objects(tree: Tree) -> None:
    root = app_tree(tree)
    options = BuildOptions.from_spec(
        {
            "patches": [
                {
                    "patch": "- op: add\n  path: /spec/replicas\n  value: 3\n",
                    "target": {"kind": "Deployment", "name": "realm"},
                },
                {
                    "patch": (
                        "apiVersion: v1\nkind: Service\nmetadata:\n  name: any\n"
                        "  annotations:\n    patched: 'yes'\n"
                    ),
                    "target": {"kind": "Service"},
                },
            ]
        }
    )

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    assert by_kind(objects, "Deployment")["spec"]["replicas"] == 3
    assert by_kind(objects, "Service")["metadata"]["annotations"] == {"patched": "yes"}
    assert "annotations" not in by_kind(objects, "Deployment")["metadata"]


async def test_images_override_name_and_tag(tree: Tree) -> None:
    root = app_tree(tree)
    options = BuildOptions.from_spec(
        {
            "images": [
                {
                    "name": "ghcr.io/zhboner/realm",
                    "newName": "registry.lan/realm",
                    "newTag": "v2.7.0",
                }
            ]
        }
    )

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    container = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.lan/realm:v2.7.0"


async def test_spec_image_replaces_the_kustomization_entry_of_the_same_name(tree: Tree) -> None:
    root = app_tree(tree)
    tree(
        {
            "apps/realm/kustomization.yaml": APP_KUSTOMIZATION
            + "images:\n  - name: ghcr.io/zhboner/realm\n    newTag: from-file\n"
        }
    )
    options = BuildOptions.from_spec(
        {"images": [{"name": "ghcr.io/zhboner/realm", "newTag": "from-spec"}]}
    )

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    container = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/zhboner/realm:from-spec"


async def test_name_prefix_and_suffix_rename_objects_and_references(tree: Tree) -> None:
    root = app_tree(tree)
    options = BuildOptions.from_spec({"namePrefix": "edge-", "nameSuffix": "-v1"})

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    assert {obj["metadata"]["name"] for obj in objects} == {"edge-realm-v1"}


async def test_components_are_added_relative_to_the_path(tree: Tree) -> None:
    root = app_tree(tree)
    tree(
        {
            "components/debug/kustomization.yaml": (
                "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "patches:\n  - target:\n      kind: Deployment\n"
                "    patch: |-\n      - op: add\n        path: /metadata/annotations\n"
                "        value: {debug: 'on'}\n"
            )
        }
    )
    options = BuildOptions.from_spec({"components": ["../../components/debug"]})

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    assert by_kind(objects, "Deployment")["metadata"]["annotations"] == {"debug": "on"}


async def test_missing_component_fails_unless_ignored(tree: Tree) -> None:
    root = app_tree(tree)
    spec: dict[str, Any] = {"components": ["../nowhere"]}

    with pytest.raises(EngineError):
        await build(artifact_root=root, path="apps/realm", options=BuildOptions.from_spec(spec))
    spec["ignoreMissingComponents"] = True
    objects = await build(
        artifact_root=root, path="apps/realm", options=BuildOptions.from_spec(spec)
    )
    assert len(objects) == 2


async def test_remote_component_is_refused(tree: Tree) -> None:
    root = app_tree(tree)
    options = BuildOptions.from_spec({"components": ["https://example.org/component"]})

    with pytest.raises(BuildError, match="must be local and relative"):
        await build(artifact_root=root, path="apps/realm", options=options)


async def test_common_metadata_sets_object_metadata_but_not_selectors(tree: Tree) -> None:
    root = app_tree(tree)
    options = BuildOptions.from_spec(
        {
            "commonMetadata": {
                "labels": {"app": "edge", "team": "ops"},
                "annotations": {"owner": "me"},
            }
        }
    )

    objects = await build(artifact_root=root, path="apps/realm", options=options)

    deployment = by_kind(objects, "Deployment")
    assert deployment["metadata"]["labels"] == {"app": "edge", "team": "ops"}
    assert deployment["metadata"]["annotations"] == {"owner": "me"}
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "realm"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "realm"}


async def test_plain_directory_gets_a_generated_kustomization(tree: Tree) -> None:
    root = tree(
        {
            "plain/service.yaml": SERVICE,
            "plain/nested/deployment.yml": DEPLOYMENT,
            "plain/nested/notes.txt": "not a manifest",
            "plain/base/kustomization.yaml": "resources:\n  - cm.yaml\n",
            "plain/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-base\n",
            "plain/base/ignored.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: no\n",
        }
    )
    options = BuildOptions.from_spec({"targetNamespace": "apps"})

    objects = await build(artifact_root=root, path="plain", options=options)

    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert names == {("Service", "realm"), ("Deployment", "realm"), ("ConfigMap", "from-base")}
    assert {obj["metadata"]["namespace"] for obj in objects} == {"apps"}
    assert not (root / "plain" / "kustomization.yaml").exists(), "the artifact must stay untouched"


async def test_generated_kustomization_rejects_yaml_that_is_not_kubernetes(tree: Tree) -> None:
    root = tree({"plain/service.yaml": SERVICE, "plain/values.yaml": "replicas: 2\n"})

    with pytest.raises(ManifestError, match=r"plain/values\.yaml"):
        await build(artifact_root=root, path="plain", options=BuildOptions())


async def test_broken_yaml_names_the_file(tree: Tree) -> None:
    root = tree(
        {
            "apps/kustomization.yaml": "resources:\n  - cm.yaml\n",
            "apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n",
        }
    )

    with pytest.raises(EngineError) as caught:
        await build(artifact_root=root, path="apps", options=BuildOptions())

    message = str(caught.value)
    assert "cm.yaml" in message
    assert "'apps'" in message
    assert "fluxd-build-" not in message, "temporary directories must not leak into messages"


async def test_missing_file_names_the_file_with_a_repo_relative_path(tree: Tree) -> None:
    root = tree({"apps/kustomization.yaml": "resources:\n  - nothere.yaml\n"})

    with pytest.raises(EngineError) as caught:
        await build(artifact_root=root, path="apps", options=BuildOptions())

    message = str(caught.value)
    assert "apps/nothere.yaml" in message
    assert "/tmp" not in message


async def test_missing_path_is_an_artifact_error(tree: Tree) -> None:
    root = app_tree(tree)

    with pytest.raises(SourcePathError, match="kustomization path not found: 'apps/nope'"):
        await build(artifact_root=root, path="./apps/nope", options=BuildOptions())


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("../outside", id="parent"),
        pytest.param("apps/../../outside", id="nested-parent"),
        pytest.param("/etc", id="absolute"),
    ],
)
async def test_path_escaping_the_root_is_refused(tree: Tree, path: str) -> None:
    root = app_tree(tree)

    with pytest.raises(SourcePathError, match=r"outside the source root|relative to the source"):
        await build(artifact_root=root, path=path, options=BuildOptions())


async def test_symlink_to_outside_the_root_is_refused(tree: Tree, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\n")
    root = tree({"apps/kustomization.yaml": "resources:\n  - leak.yaml\n"})
    os.symlink(secret, root / "apps" / "leak.yaml")

    with pytest.raises(SymlinkEscapeError, match=r"apps/leak\.yaml"):
        await build(artifact_root=root, path="apps", options=BuildOptions())


async def test_symlinked_path_to_outside_the_root_is_refused(tree: Tree, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "kustomization.yaml").write_text("resources: []\n")
    root = app_tree(tree)
    os.symlink(outside, root / "linked")

    with pytest.raises(SymlinkEscapeError, match="linked"):
        await build(artifact_root=root, path="linked", options=BuildOptions())


async def test_symlink_inside_the_root_is_followed(tree: Tree) -> None:
    root = app_tree(tree)
    os.symlink("realm", root / "apps" / "current")

    objects = await build(artifact_root=root, path="apps/current", options=BuildOptions())

    assert len(objects) == 2


async def test_remote_bases_are_refused_when_disabled(tree: Tree) -> None:
    root = tree(
        {
            "infra/reloader/kustomization.yaml": ("resources:\n  - ../base\nnamespace: reloader\n"),
            "infra/base/kustomization.yaml": (
                "resources:\n"
                "  - https://github.com/stakater/Reloader/deployments/kubernetes?ref=v1.0.10\n"
            ),
        }
    )

    with pytest.raises(RemoteBaseRefusedError) as caught:
        await build(
            artifact_root=root,
            path="infra/reloader",
            options=BuildOptions(),
            settings=BuildSettings(allow_remote_bases=False),
        )

    assert "infra/base/kustomization.yaml" in str(caught.value)
    assert "stakater/Reloader" in str(caught.value)


async def test_remote_base_pinned_by_ref_is_fetched_over_git_http(tree: Tree) -> None:
    with GitServer() as server:
        server.create_repo("stakater/Reloader.git")
        server.commit(
            "stakater/Reloader.git",
            {
                "deployments/kubernetes/kustomization.yaml": "resources:\n  - reloader.yaml\n",
                "deployments/kubernetes/reloader.yaml": (
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: reloader-v1\n"
                ),
            },
            tags=("v1.0.10",),
        )
        server.commit(
            "stakater/Reloader.git",
            {
                "deployments/kubernetes/reloader.yaml": (
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: reloader-main\n"
                )
            },
        )
        remote = f"git::{server.url('stakater/Reloader.git')}//deployments/kubernetes?ref=v1.0.10"
        root = tree(
            {
                "infra/reloader/kustomization.yaml": (
                    f"resources:\n  - {remote}\nnamespace: reloader\n"
                )
            }
        )

        objects = await build(artifact_root=root, path="infra/reloader", options=BuildOptions())

    assert [(obj["metadata"]["name"], obj["metadata"]["namespace"]) for obj in objects] == [
        ("reloader-v1", "reloader")
    ]


async def test_engine_timeout_is_reported(tree: Tree, tmp_path: Path) -> None:
    slow = tmp_path / "slow-kubectl"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    root = app_tree(tree)

    with pytest.raises(EngineError, match="timed out"):
        await build(
            artifact_root=root,
            path="apps/realm",
            options=BuildOptions(),
            settings=BuildSettings(engine_binary=str(slow), timeout_seconds=0.3),
        )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_engine_timeout_kills_the_engines_children(tree: Tree, tmp_path: Path) -> None:
    # kubectl clones remote bases with git children; a timeout must not leave them running.
    child_pid = tmp_path / "child.pid"
    engine = tmp_path / "forking-kubectl"
    engine.write_text(
        f"#!/bin/sh\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {child_pid}\nwait\n"
    )
    engine.chmod(0o755)
    root = app_tree(tree)

    with pytest.raises(EngineError, match="timed out"):
        await build(
            artifact_root=root,
            path="apps/realm",
            options=BuildOptions(),
            settings=BuildSettings(engine_binary=str(engine), timeout_seconds=0.5),
        )

    pid = int(child_pid.read_text())
    # SIGKILL is delivered at once but the exit is asynchronous: wait for it, bounded.
    for _ in range(200):
        if not _alive(pid):
            break
        await asyncio.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail(f"the engine's child {pid} outlived the timeout")


def _forking_engine(tmp_path: Path) -> tuple[Path, Path]:
    """An engine that starts a child, announces its pid by renaming a file into place, waits."""
    child_pid = tmp_path / "child.pid"
    engine = tmp_path / "forking-kubectl"
    engine.write_text(
        f"#!/bin/sh\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {child_pid}.tmp\n"
        f"mv {child_pid}.tmp {child_pid}\nwait\n"
    )
    engine.chmod(0o755)
    return engine, child_pid


async def _announced(child_pid: Path) -> int:
    # A tiny local file, polled by a test: no need to leave the event loop for it.
    for _ in range(200):
        if child_pid.exists():  # noqa: ASYNC240
            break
        await asyncio.sleep(0.05)
    return int(child_pid.read_text())  # noqa: ASYNC240


async def _gone(pid: int, after: str) -> None:
    # SIGKILL is delivered at once but the exit is asynchronous: wait for it, bounded.
    for _ in range(200):
        if not _alive(pid):
            return
        await asyncio.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail(f"the engine's child {pid} outlived {after}")


def _building(tree: Tree, engine: Path) -> asyncio.Task[object]:
    return asyncio.create_task(
        build(
            artifact_root=app_tree(tree),
            path="apps/realm",
            options=BuildOptions(),
            settings=BuildSettings(engine_binary=str(engine), timeout_seconds=300),
        )
    )


async def test_cancelling_a_build_kills_the_engines_children(tree: Tree, tmp_path: Path) -> None:
    engine, child_pid = _forking_engine(tmp_path)
    building = _building(tree, engine)
    pid = await _announced(child_pid)

    building.cancel()
    with pytest.raises(asyncio.CancelledError):
        await building
    await _gone(pid, "the cancelled build")


async def test_a_build_cancelled_while_its_engine_is_being_set_up_leaves_no_child(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load asyncio can still be connecting the pipes when a cancel arrives; the
    # engine and what it started must go all the same.
    engine, child_pid = _forking_engine(tmp_path)
    spawn = asyncio.create_subprocess_exec
    set_up = asyncio.Event()

    async def slow_set_up(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await spawn(*args, **kwargs)
        await set_up.wait()
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", slow_set_up)
    building = _building(tree, engine)
    pid = await _announced(child_pid)

    building.cancel()
    set_up.set()
    with pytest.raises(asyncio.CancelledError):
        await building
    await _gone(pid, "the build cancelled during set-up")
