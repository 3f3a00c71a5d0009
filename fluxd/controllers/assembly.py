"""Which controllers and services the daemon runs, built from the settings."""

from __future__ import annotations

from fluxd.controllers.manager import Components
from fluxd.kube.client import Kube
from fluxd.kube.events import EventRecorder
from fluxd.settings import Settings


async def assemble(kube: Kube, recorder: EventRecorder, settings: Settings) -> Components:
    components = Components()
    return components
