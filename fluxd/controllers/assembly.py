"""Which controllers and services the daemon runs, built from the settings.

Each capability contributes a ``wire`` function that adds its controllers,
leader-only services and HTTP handlers to ``Components``. Order matters:
sources first, so the parts after them can hook into source events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fluxd.controllers import (
    bucket,
    gitrepository,
    helmchart,
    helmrepository,
    kustomization,
    notification,
    ocirepository,
    restarter,
)
from fluxd.controllers.manager import Components
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.settings import Settings

Wiring = Callable[..., Awaitable[None]]


def _parts() -> list[Wiring]:
    parts: list[Wiring] = []
    parts.append(gitrepository.wire)
    parts.append(ocirepository.wire)
    parts.append(helmrepository.wire)
    # After the sources it builds from, so it can hook into their new artifacts.
    parts.append(helmchart.wire)
    parts.append(bucket.wire)
    parts.append(kustomization.wire)
    parts.append(notification.wire)
    parts.append(restarter.wire)
    return parts


async def assemble(kube: Kube, recorder: EventRecorder, settings: Settings) -> Components:
    components = Components()
    for wire in _parts():
        await wire(kube=kube, recorder=recorder, settings=settings, components=components)
    return components
