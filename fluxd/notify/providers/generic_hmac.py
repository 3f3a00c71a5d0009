"""Generic webhook with HMAC: the generic body, signed with the Secret's token.

``X-Signature: sha256=<hex HMAC-SHA256 of the exact body>``, the header Flux's
``generic-hmac`` provider sends, so receivers can verify origin and integrity.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar, Final

from fluxd.notify.providers.generic import GenericProvider

SIGNATURE_HEADER: Final = "X-Signature"


def body_signature(body: bytes, *, key: str) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


class GenericHmacProvider(GenericProvider):
    provider_type: ClassVar[str] = "generic-hmac"

    def validate(self) -> None:
        super().validate()
        self.require_token("the HMAC key")

    def extra_headers(self, body: bytes) -> dict[str, str]:
        return {SIGNATURE_HEADER: body_signature(body, key=self.config.token)}
