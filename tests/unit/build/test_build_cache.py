"""Build caching: unchanged inputs do not run kustomize again."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from fluxd.build import BuildCache, BuildOptions, BuildSettings, EngineError, build
from fluxd.build.engine import locate_engine
from testenv.gitserver import GitServer
from tests.unit.build.conftest import Tree

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: '${v:=one}'\n"


@pytest.fixture
def counting_engine(tmp_path: Path) -> tuple[BuildSettings, Path]:
    """The real kubectl behind a wrapper that records each run."""
    runs = tmp_path / "runs.log"
    wrapper = tmp_path / "kubectl-counting"
    real = locate_engine(BuildSettings())
    wrapper.write_text(
        f'#!/bin/sh\necho run >> {shlex.quote(str(runs))}\nexec {shlex.quote(str(real))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return BuildSettings(engine_binary=str(wrapper)), runs


def engine_runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_unchanged_input_is_served_from_the_cache(
    tree: Tree, counting_engine: tuple[BuildSettings, Path]
) -> None:
    settings, runs = counting_engine
    root = tree({"app/cm.yaml": CONFIGMAP})
    cache = BuildCache()
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"v": "two"}}})

    first = await build(
        artifact_root=root, path="app", options=options, settings=settings, cache=cache
    )
    first[0]["data"]["v"] = "mutated by a caller"
    second = await build(
        artifact_root=root, path="app", options=options, settings=settings, cache=cache
    )

    assert engine_runs(runs) == 1
    assert second[0]["data"]["v"] == "two", "callers must not be able to corrupt the cache"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("content", id="artifact-content"),
        pytest.param("options", id="spec-options"),
        pytest.param("variables", id="variables"),
    ],
)
async def test_changed_input_is_rebuilt(
    tree: Tree, counting_engine: tuple[BuildSettings, Path], change: str
) -> None:
    settings, runs = counting_engine
    root = tree({"app/cm.yaml": CONFIGMAP})
    cache = BuildCache()
    options = BuildOptions.from_spec({"postBuild": {"substitute": {"v": "two"}}})
    await build(artifact_root=root, path="app", options=options, settings=settings, cache=cache)

    variables = None
    if change == "content":
        tree({"app/cm.yaml": CONFIGMAP.replace("name: app", "name: renamed")})
    elif change == "options":
        options = BuildOptions.from_spec(
            {"targetNamespace": "apps", "postBuild": {"substitute": {"v": "two"}}}
        )
    else:
        variables = {"v": "three"}
    await build(
        artifact_root=root,
        path="app",
        options=options,
        variables=variables,
        settings=settings,
        cache=cache,
    )

    assert engine_runs(runs) == 2


async def test_artifact_digest_is_trusted_as_the_content_key(
    tree: Tree, counting_engine: tuple[BuildSettings, Path]
) -> None:
    settings, runs = counting_engine
    root = tree({"app/cm.yaml": CONFIGMAP})
    cache = BuildCache()
    for _ in range(2):
        await build(
            artifact_root=root,
            path="app",
            options=BuildOptions(),
            settings=settings,
            cache=cache,
            artifact_digest="sha256:abc",
        )

    assert engine_runs(runs) == 1


async def test_concurrent_builds_of_one_input_share_one_engine_run(
    tree: Tree, counting_engine: tuple[BuildSettings, Path]
) -> None:
    settings, runs = counting_engine
    root = tree({"app/cm.yaml": CONFIGMAP})
    cache = BuildCache()

    results = await asyncio.gather(
        *(
            build(
                artifact_root=root,
                path="app",
                options=BuildOptions(),
                settings=settings,
                cache=cache,
            )
            for _ in range(3)
        )
    )

    assert engine_runs(runs) == 1
    assert all(result == results[0] for result in results)


async def test_failures_are_not_cached(
    tree: Tree, counting_engine: tuple[BuildSettings, Path]
) -> None:
    settings, runs = counting_engine
    root = tree({"app/kustomization.yaml": "resources:\n  - missing.yaml\n"})
    cache = BuildCache()

    for _ in range(2):
        with pytest.raises(EngineError):
            await build(
                artifact_root=root,
                path="app",
                options=BuildOptions(),
                settings=settings,
                cache=cache,
            )

    assert engine_runs(runs) == 2


def _remote_configmap(value: str) -> dict[str, str]:
    return {
        "base/kustomization.yaml": "resources:\n  - cm.yaml\n",
        "base/cm.yaml": CONFIGMAP.replace("${v:=one}", value),
    }


@pytest.mark.parametrize(
    "ref",
    [pytest.param("?ref=main", id="branch-ref"), pytest.param("", id="no-ref")],
)
@pytest.mark.parametrize(
    "layout",
    [
        pytest.param("direct", id="build-path"),
        pytest.param("included", id="included-kustomization"),
    ],
)
async def test_remote_base_on_a_moving_ref_is_rebuilt(
    tree: Tree, counting_engine: tuple[BuildSettings, Path], ref: str, layout: str
) -> None:
    # The artifact (and so the cache key) stays the same while the remote branch moves.
    settings, runs = counting_engine
    with GitServer() as server:
        server.create_repo("team/base.git")
        server.commit("team/base.git", _remote_configmap("first"))
        remote = f"git::{server.url('team/base.git')}//base{ref}"
        if layout == "direct":
            root = tree({"app/kustomization.yaml": f"resources:\n  - {remote}\n"})
        else:
            root = tree(
                {
                    "app/kustomization.yaml": "resources:\n  - ../shared\n",
                    "shared/kustomization.yaml": f"resources:\n  - {remote}\n",
                }
            )
        cache = BuildCache()

        async def build_app() -> str:
            objects = await build(
                artifact_root=root,
                path="app",
                options=BuildOptions(),
                settings=settings,
                cache=cache,
                artifact_digest="sha256:unchanged",
            )
            return str(objects[0]["data"]["v"])

        assert await build_app() == "first"
        server.commit("team/base.git", _remote_configmap("second"))
        assert await build_app() == "second"

    assert engine_runs(runs) == 2


def test_least_recently_used_entry_is_evicted() -> None:
    cache = BuildCache(max_entries=2)
    cache.put("a", [{"kind": "A"}])
    cache.put("b", [{"kind": "B"}])
    assert cache.get("a") is not None
    cache.put("c", [{"kind": "C"}])

    assert cache.get("b") is None
    assert cache.get("a") == [{"kind": "A"}]
    assert len(cache) == 2
