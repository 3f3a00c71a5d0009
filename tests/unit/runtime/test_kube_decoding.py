"""Large API answers are decoded off the event loop, small ones on it."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from fluxd.kube.client import Kube
from fluxd.kube.codec import decode_json
from fluxd.kube.resources import SECRET


class _Response:
    status = 200
    headers: dict[str, str] = {}

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        pass


class _ApiClient:
    """Answers every call with one canned body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def call_api(self, *args: Any, **kwargs: Any) -> _Response:
        return _Response(self.body)


def _secret_list(count: int) -> bytes:
    items = [
        {"metadata": {"namespace": "apps", "name": f"s{i}"}, "data": {"key": "x" * 200}}
        for i in range(count)
    ]
    return json.dumps({"metadata": {"resourceVersion": "7"}, "items": items}).encode()


@pytest.mark.parametrize(
    ("count", "off_loop"),
    [
        pytest.param(3, False, id="small-page-on-loop"),
        pytest.param(20_000, True, id="multi-megabyte-page-in-a-thread"),
    ],
)
async def test_list_page_decoding_thread(
    monkeypatch: pytest.MonkeyPatch, count: int, off_loop: bool
) -> None:
    decoded_on: list[int] = []

    def recording_decode(payload: Any) -> Any:
        decoded_on.append(threading.get_ident())
        return decode_json(payload)

    monkeypatch.setattr("fluxd.kube.client.decode_json", recording_decode)
    kube = Kube(_ApiClient(_secret_list(count)), headers={})

    page = await kube.list_page(SECRET, namespace="apps")

    assert len(page["items"]) == count
    assert (decoded_on != [threading.get_ident()]) is off_loop


async def test_an_empty_metadata_only_list_is_an_empty_list() -> None:
    # The API server answers a PartialObjectMetadataList with nothing in it as "items": null.
    body = json.dumps({"metadata": {"resourceVersion": "9"}, "items": None}).encode()
    kube = Kube(_ApiClient(body), headers={})

    items, version = await kube.list_all(SECRET, metadata_only=True)

    assert (items, version) == ([], "9")
