"""A GitRepository reconcile does its file work in worker threads, never on the event loop.

The loop serves every controller, the webhooks and /healthz: walking a large
checkout for ``.sourceignore`` files, packing it, writing a CA bundle or
deleting old artifacts on it would stall all of them for as long.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from fluxd.controllers.gitrepository import GitRepositoryReconciler
from fluxd.kube.client import Kube
from fluxd.settings import Settings
from fluxd.source import Storage
from fluxd.source import git as git_module
from fluxd.source import ignore as ignore_module
from testenv.gitserver import GitServer, generate_tls_bundle


class _SecretsOnly:
    """The two reads the reconciler makes: its Secret, and (no) included repositories."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets

    async def get(self, resource: object, name: str, *, namespace: str) -> dict[str, Any]:
        return self.secrets[name]

    async def get_or_none(
        self, resource: object, name: str, *, namespace: str
    ) -> dict[str, Any] | None:
        return None


@pytest.fixture
def https_server() -> Iterator[GitServer]:
    # A CA of its own, so the reconcile has a CA file to write.
    bundle = generate_tls_bundle(ca_name="fluxd test CA of the reconcile I/O test")
    with GitServer(tls_bundle=bundle) as server:
        server.create_repo("apps.git")
        yield server


def _recording(calls: list[tuple[str, int]], what: str, wrapped: Callable[..., Any]) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append((what, threading.get_ident()))
        return wrapped(*args, **kwargs)

    return record


async def test_file_work_of_a_reconcile_runs_off_the_event_loop(
    https_server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        ignore_module,
        "_sourceignore_files",
        _recording(calls, "ignore walk", ignore_module._sourceignore_files),
    )
    monkeypatch.setattr(
        git_module._Libgit2Home,
        "trust_ca",
        _recording(calls, "CA file", git_module._Libgit2Home.trust_ca),
    )
    monkeypatch.setattr(
        Storage,
        "collect_garbage_sync",
        _recording(calls, "retention", Storage.collect_garbage_sync),
    )
    storage = Storage(tmp_path / "storage", base_url="http://fluxd.test", retention=1)
    secret = {"data": {"ca.crt": base64.b64encode(https_server.ca_cert).decode()}}
    reconciler = GitRepositoryReconciler(
        kube=cast(Kube, _SecretsOnly({"https-ca": secret})),
        storage=storage,
        settings=Settings(),
    )
    obj: dict[str, Any] = {
        "metadata": {"namespace": "apps", "name": "podinfo", "generation": 1},
        "spec": {
            "url": https_server.url("apps.git"),
            "secretRef": {"name": "https-ca"},
            "ref": {"branch": "main"},
            "ignore": "*.md\n",
        },
    }
    for content in ("v1", "v2"):
        https_server.commit("apps.git", {"app.yaml": content, "README.md": "docs"})
        done = await reconciler.reconcile(obj)
        obj["status"] = done.status

    artifact = obj["status"]["artifact"]
    assert storage.exists(artifact)
    assert {what for what, _ in calls} == {"ignore walk", "CA file", "retention"}
    loop_thread = threading.get_ident()
    on_the_loop = sorted({what for what, thread in calls if thread == loop_thread})
    assert on_the_loop == []
