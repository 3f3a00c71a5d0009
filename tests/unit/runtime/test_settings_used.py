"""Nothing accepted and ignored: every setting of the daemon is read by the code it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fluxd.settings import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[3]
SOURCE = "\n".join(
    path.read_text() for path in (ROOT / "fluxd").rglob("*.py") if path.name != "settings.py"
)


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.name) for s in SETTINGS])
def test_every_setting_is_read(setting: Setting) -> None:
    assert re.search(rf"\.{setting.attr}\b", SOURCE), (
        f"--{setting.name} is accepted but nothing outside fluxd/settings.py reads "
        f"settings.{setting.attr}: use it, or refuse it"
    )
