"""Fixtures for the notification controller tests: a fake API, a hand-driven clock, events."""

from __future__ import annotations

import pytest

from fluxd.kube.events import EventRecorder, Recorded
from tests.unit.notifyctl.notifyctl_fakes import FakeClock, FakeKube, RecordedEvents


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorded() -> RecordedEvents:
    recorder = EventRecorder(None, controller="fluxd", instance="test")
    events: list[Recorded] = []
    recorder.add_sink(events.append)
    return RecordedEvents(recorder=recorder, events=events)
