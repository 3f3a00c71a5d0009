"""One reading of a Secret's payload for every part of fluxd."""

from __future__ import annotations

import base64

import pytest

from fluxd.kube.secrets import (
    InvalidSecretData,
    secret_bytes,
    secret_text,
    secret_texts,
    secret_value,
)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


SECRET = {
    "data": {"username": _b64(b"k3s"), "password": _b64(b"old"), "blob": _b64(b"\xff\xfe")},
    "stringData": {"password": "new"},
}


def test_string_data_wins_over_data_as_the_api_server_folds_it() -> None:
    assert secret_bytes(SECRET) == {"username": b"k3s", "password": b"new", "blob": b"\xff\xfe"}
    assert secret_value(SECRET, "password") == b"new"
    assert secret_text(SECRET, "username") == "k3s"


def test_absent_and_binary_values_are_not_text() -> None:
    assert secret_value(SECRET, "missing") is None
    assert secret_text(SECRET, "missing") is None
    assert secret_text(SECRET, "blob") is None
    assert secret_texts(SECRET) == {"username": "k3s", "password": "new"}
    assert secret_bytes({}) == {} and secret_texts({"data": None}) == {}


def test_bad_base64_names_the_key_never_the_value() -> None:
    broken = {"data": {"token": "not*base64*s3cr3t"}}
    with pytest.raises(InvalidSecretData) as raised:
        secret_bytes(broken)
    assert raised.value.key == "token"
    assert "s3cr3t" not in str(raised.value) and raised.value.__cause__ is None
    assert secret_text(broken, "token") is None
