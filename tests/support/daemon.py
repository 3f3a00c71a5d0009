"""Run ``fluxd run`` as a real child process (the runner lives in testenv, shared with the demo)."""

from __future__ import annotations

from testenv.fluxd import Fluxd, stop_all

__all__ = ["Fluxd", "stop_all"]
