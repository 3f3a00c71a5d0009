"""The API body decoder: fast for what the API server sends, lossless for the rest."""

from __future__ import annotations

import json
import math

import pytest

from fluxd.kube.codec import decode_json


def test_an_object_decodes_as_the_standard_library_does() -> None:
    body = json.dumps(
        {
            "kind": "Deployment",
            "metadata": {"name": "realm-ix", "generation": 2**63 - 1, "labels": {"é": "ü"}},
            "spec": {"replicas": 0, "paused": False, "ratio": 0.25, "none": None},
        }
    ).encode()
    assert decode_json(body) == json.loads(body)
    assert decode_json(body.decode()) == json.loads(body)


def test_what_the_fast_decoder_refuses_still_decodes() -> None:
    decoded = decode_json(b'{"a": NaN, "b": "\\ud800"}')
    assert math.isnan(decoded["a"])
    assert decoded["b"] == "\ud800"


def test_a_broken_body_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_json(b'{"kind": ')
