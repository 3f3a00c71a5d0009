"""Every part of the daemon that reads Secrets shares the one cache and its one watch."""

from __future__ import annotations

from typing import cast

from fluxd.controllers.assembly import assemble
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.settings import Settings


async def test_the_sources_and_notifications_share_one_secret_cache() -> None:
    kube = cast(Kube, object())
    components = await assemble(kube, cast(EventRecorder, _Recorder()), Settings())
    cache = components.secrets
    assert cache is not None
    watch = cache.run
    readers = {
        controller.kind: getattr(controller.reconciler, "secrets", None)
        for controller in components.controllers
    }
    for kind in ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart"):
        assert readers[kind] is cache, kind
    # One unfiltered watch of Secret metadata (the Kustomizations' own watch is of labelled ones).
    assert components.services["informer Secret metadata"] == watch


class _Recorder:
    def add_sink(self, sink: object) -> None:
        pass
