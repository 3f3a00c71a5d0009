"""Nothing accepted and ignored: every setting of the daemon is read by the code it names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fluxd.settings import SETTINGS, Setting, Settings

ROOT = Path(__file__).resolve().parents[3]
SOURCE = "\n".join(
    path.read_text() for path in (ROOT / "fluxd").rglob("*.py") if path.name != "settings.py"
)


# Settings properties that derive a value (``effective_lease_name``) and the settings they read.
DERIVED = {
    name: inspect.getsource(member.fget)
    for name, member in vars(Settings).items()
    if isinstance(member, property) and member.fget is not None
}


def _read(attr: str) -> bool:
    if re.search(rf"\.{attr}\b", SOURCE):
        return True
    return any(
        re.search(rf"self\.{attr}\b", body) and _read(name) for name, body in DERIVED.items()
    )


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.name) for s in SETTINGS])
def test_every_setting_is_read(setting: Setting) -> None:
    assert _read(setting.attr), (
        f"--{setting.name} is accepted but nothing outside fluxd/settings.py reads "
        f"settings.{setting.attr}: use it, or refuse it"
    )
