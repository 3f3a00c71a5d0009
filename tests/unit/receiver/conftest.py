"""Fixtures for the receiver tests: the notification tests' fake API, clock and recorded events."""

from __future__ import annotations

from tests.unit.notifyctl.conftest import clock, kube, recorded

__all__ = ["clock", "kube", "recorded"]
