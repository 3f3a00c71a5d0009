"""The daemon loads the JWT and X.509 libraries only when a feature needs them (about 8 MiB)."""

from __future__ import annotations

import subprocess
import sys

_HEAVY = ("cryptography.hazmat.bindings._rust", "jwt.algorithms")

_PROBE = """
import sys
import fluxd.cli, fluxd.controllers.assembly
print(",".join(name for name in {heavy!r} if name in sys.modules))
"""


def _loaded_after(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


def test_starting_the_daemon_loads_neither_jwt_nor_the_x509_bindings() -> None:
    assert _loaded_after(_PROBE.format(heavy=_HEAVY)) == ""


def test_a_feature_that_uses_them_still_gets_them() -> None:
    code = _PROBE.format(heavy=_HEAVY).replace(
        "print(", "from fluxd.receiver import google; google.jwt.get_unverified_header; print("
    )
    assert _loaded_after(code) == ",".join(_HEAVY)
