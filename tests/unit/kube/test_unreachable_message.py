"""An API server that cannot be reached is named in the error, with what went wrong."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.kube import errors
from fluxd.kube.client import Kube
from fluxd.kube.resources import CONFIG_MAP


class _Configuration:
    host = "https://10.0.0.9:6443"


class TimingOut:
    """An ApiClient whose requests run out of time (asyncio's TimeoutError has no text)."""

    configuration = _Configuration()

    async def call_api(self, *args: Any, **kwargs: Any) -> Any:
        raise TimeoutError()


async def test_a_request_that_times_out_says_so() -> None:
    kube = Kube(TimingOut())
    with pytest.raises(errors.Unreachable) as raised:
        await kube.get(CONFIG_MAP, "settings", namespace="apps")
    assert str(raised.value).endswith(
        "cannot reach the API server at https://10.0.0.9:6443: TimeoutError"
    )
