"""Google Cloud Pub/Sub, as Flux's ``googlepubsub`` provider publishes to it.

The address is the GCP project id, ``spec.channel`` the topic id; the event
JSON is published as one message, with the Secret's ``headers`` as its
attributes, through the documented REST call
``POST https://pubsub.googleapis.com/v1/projects/{project}/topics/{topic}:publish``.

The Secret's ``token`` holds the JSON key of a service account. Google's
client libraries, Flux's among them, authenticate a service account key to
Pub/Sub with a self-signed JWT (RS256 with the key, ``scope`` claim, an hour's
lifetime) sent as the ``Bearer`` token, with no token exchange; fluxd does the
same. Other credential types (user or external accounts) and no ``token``
(workload identity, application default credentials) are refused. Events
that only update a commit status are skipped (``ChatProvider``), as in Flux.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote

from fluxd.lazy import lazy_module
from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.transport import encode_json, exchange

if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")

# A module constant so tests can reach a local stand-in.
PUBSUB_ENDPOINT: Final = "https://pubsub.googleapis.com"
# The Pub/Sub client's default scopes.
PUBSUB_SCOPES: Final = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/pubsub",
)
JWT_LIFETIME_SECONDS: Final = 3600


class GooglePubSubProvider(ChatProvider):
    provider_type: ClassVar[str] = "googlepubsub"

    _key: dict[str, Any] | None = None

    def validate(self) -> None:
        if not self.config.address:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="GCP project ID cannot be empty"
            )
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="GCP Pub/Sub topic ID cannot be empty"
            )
        if not self.config.token:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the Secret has no 'token' (a service account JSON key); "
                "workload identity is not available",
            )
        self._key = _service_account_key(self.config.token, provider_type=self.provider_type)
        self.bearer_token()  # a key that cannot sign is found now, not per event

    def bearer_token(self) -> str:
        """A self-signed JWT of the service account, as Google's client libraries make."""
        key = self._key or {}
        now = int(time.time())
        claims = {
            "iss": key["client_email"],
            "sub": key["client_email"],
            "scope": " ".join(PUBSUB_SCOPES),
            "iat": now,
            "exp": now + JWT_LIFETIME_SECONDS,
        }
        try:
            return jwt.encode(
                claims,
                key["private_key"],
                algorithm="RS256",
                headers={"kid": str(key.get("private_key_id", ""))},
            )
        except (ValueError, TypeError, jwt.PyJWTError):
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the service account key's private_key is not a usable RSA key",
            ) from None

    async def post(self, event: Event) -> None:
        project = quote(self.config.address.strip(), safe="")
        topic = quote(self.config.channel.strip(), safe="")
        message: dict[str, Any] = {
            "data": base64.b64encode(encode_json(event.to_json_dict())).decode("ascii")
        }
        if self.config.headers:
            message["attributes"] = dict(self.config.headers)
        await exchange(
            self.session,
            config=self.config,
            url=f"{PUBSUB_ENDPOINT}/v1/projects/{project}/topics/{topic}:publish",
            payload={"messages": [message]},
            headers={"Authorization": f"Bearer {self.bearer_token()}"},
        )


def _service_account_key(token: str, *, provider_type: str) -> dict[str, Any]:
    try:
        key = json.loads(token)
    except ValueError:
        key = None
    if not isinstance(key, dict):
        raise ProviderConfigError(
            provider_type=provider_type, reason="the Secret's 'token' is not JSON credentials"
        )
    if key.get("type") != "service_account":
        raise ProviderConfigError(
            provider_type=provider_type,
            reason=f"credentials of type {key.get('type')!r} are not available; "
            "use a service account JSON key",
        )
    if not key.get("client_email") or not key.get("private_key"):
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="the service account key has no client_email or private_key",
        )
    return key
