"""The one reader of a Secret's payload: ``data`` (base64) folded with ``stringData``.

Every part of fluxd that reads a Secret (git credentials, webhook tokens,
provider addresses, substitution variables, the restarter's digests) decodes
it here, so they agree on what a Secret holds: ``stringData`` wins over
``data`` for the same key, as the API server folds it on write (objects that
have not been through the API server yet, such as a rendered manifest, read
as they will once stored), and a value that is not valid base64 is an error
that names the key and never quotes the value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


class InvalidSecretData(ValueError):
    """A ``data`` value of a Secret is not valid base64; the message names the key only."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"Secret data key '{key}' is not valid base64")


def _decode(key: str, value: object) -> bytes:
    try:
        return base64.b64decode(str(value or ""), validate=True)
    except (binascii.Error, ValueError):
        # "from None": the decoder's own message could quote the value.
        raise InvalidSecretData(key) from None


def secret_bytes(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """Every key of the Secret with its decoded value; raises ``InvalidSecretData``."""
    values = {str(key): _decode(str(key), value) for key, value in _data(secret).items()}
    for key, value in _string_data(secret).items():
        values[str(key)] = str(value).encode()
    return values


def secret_value(secret: Mapping[str, Any], key: str) -> bytes | None:
    """The decoded value of one key, or None when the Secret lacks it."""
    string_data = _string_data(secret)
    if key in string_data:
        return str(string_data[key]).encode()
    data = _data(secret)
    if key not in data:
        return None
    return _decode(key, data[key])


def secret_text(secret: Mapping[str, Any], key: str) -> str | None:
    """One key as UTF-8 text; None when it is absent, not base64, or not UTF-8."""
    try:
        value = secret_value(secret, key)
        return None if value is None else value.decode("utf-8")
    except (InvalidSecretData, UnicodeDecodeError):
        return None


def secret_texts(secret: Mapping[str, Any]) -> dict[str, str]:
    """Every key that holds UTF-8 text (undecodable values are left out)."""
    keys = set(_data(secret)) | set(_string_data(secret))
    texts = {str(key): secret_text(secret, str(key)) for key in keys}
    return {key: text for key, text in texts.items() if text is not None}


def _data(secret: Mapping[str, Any]) -> Mapping[str, Any]:
    data = secret.get("data")
    return data if isinstance(data, Mapping) else {}


def _string_data(secret: Mapping[str, Any]) -> Mapping[str, Any]:
    data = secret.get("stringData")
    return data if isinstance(data, Mapping) else {}
