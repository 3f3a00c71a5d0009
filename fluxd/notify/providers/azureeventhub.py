"""Azure Event Hubs, the two credentials Flux's ``azureeventhub`` provider takes.

Flux sends the event JSON as one event over AMQP. fluxd sends the same body
through the Event Hubs REST API, ``POST https://{namespace}/{hub}/messages``,
which the same credentials authorise:

- a SAS connection string as the address (``Endpoint=sb://{namespace}/;
  SharedAccessKeyName=…;SharedAccessKey=…;EntityPath={hub}``): a
  ``SharedAccessSignature`` token is computed from it for each send, valid
  for an hour;
- a JWT as the Secret's ``token``, the hub name as the address and the
  namespace as ``spec.channel`` (``.servicebus.windows.net`` appended unless
  it is already fully qualified), sent as a ``Bearer`` token. Flux calls this
  form deprecated.

Managed identity (neither) and ``spec.serviceAccountName`` are refused. Events
that only update a commit status are skipped (``ChatProvider``), as in Flux.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import ClassVar, Final
from urllib.parse import quote, urlsplit

from fluxd.notify.errors import ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.transport import encode_json, exchange

SERVICE_BUS_SUFFIX: Final = ".servicebus.windows.net"
# The REST API speaks HTTPS; a module constant so tests can reach a local stand-in.
SCHEME: Final = "https"
SAS_LIFETIME_SECONDS: Final = 3600
_CONTENT_TYPE: Final = "application/atom+xml;type=entry;charset=utf-8"


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """The parts of a SAS connection string a send needs."""

    namespace: str
    key_name: str
    key: str
    hub: str


def is_sas_address(address: str) -> bool:
    """Flux's test: a connection string names a ``SharedAccessKey``."""
    return "SharedAccessKey" in address


def parse_connection_string(text: str, *, provider_type: str) -> ConnectionString:
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        name, equals, value = part.partition("=")
        if equals:
            fields[name.strip().lower()] = value.strip()
    namespace = urlsplit(fields.get("endpoint", "")).netloc
    connection = ConnectionString(
        namespace=namespace,
        key_name=fields.get("sharedaccesskeyname", ""),
        key=fields.get("sharedaccesskey", ""),
        hub=fields.get("entitypath", ""),
    )
    if not (connection.namespace and connection.key_name and connection.key):
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="the connection string needs Endpoint, SharedAccessKeyName and SharedAccessKey",
        )
    if not connection.hub:
        raise ProviderConfigError(
            provider_type=provider_type,
            reason="the connection string names no event hub (EntityPath)",
        )
    return connection


def sas_token(resource: str, *, key_name: str, key: str, expiry: int) -> str:
    """A ``SharedAccessSignature`` for ``resource``, as Azure documents its computation."""
    encoded = quote(resource, safe="")
    signature = hmac.new(
        key.encode("utf-8"), f"{encoded}\n{expiry}".encode(), hashlib.sha256
    ).digest()
    signed = quote(base64.b64encode(signature).decode("ascii"), safe="")
    return f"SharedAccessSignature sr={encoded}&sig={signed}&se={expiry}&skn={key_name}"


def fully_qualified(namespace: str) -> str:
    return namespace if ".servicebus." in namespace else namespace + SERVICE_BUS_SUFFIX


class AzureEventHubProvider(ChatProvider):
    provider_type: ClassVar[str] = "azureeventhub"

    def validate(self) -> None:
        address = self.config.address
        if not address:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="endpoint URL cannot be empty"
            )
        if is_sas_address(address):
            if self.config.token:
                raise ProviderConfigError(
                    provider_type=self.provider_type,
                    reason="jwt token and SAS authentication cannot be set at the same time",
                )
            parse_connection_string(address, provider_type=self.provider_type)
            return
        if not self.config.token:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the address is no SAS connection string and the Secret has no 'token' "
                "(JWT); managed identity is not available",
            )
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="spec.channel must name the Event Hubs namespace for JWT authentication",
            )

    def _target(self) -> tuple[str, str]:
        """The messages URL and the ``Authorization`` header for one send."""
        address = self.config.address
        if is_sas_address(address):
            connection = parse_connection_string(address, provider_type=self.provider_type)
            resource = f"{SCHEME}://{connection.namespace}/{connection.hub}"
            expiry = int(time.time()) + SAS_LIFETIME_SECONDS
            token = sas_token(
                resource, key_name=connection.key_name, key=connection.key, expiry=expiry
            )
            return f"{resource}/messages", token
        namespace = fully_qualified(self.config.channel)
        hub = quote(address.strip(), safe="")
        return f"{SCHEME}://{namespace}/{hub}/messages", f"Bearer {self.config.token}"

    async def post(self, event: Event) -> None:
        url, authorization = self._target()
        await exchange(
            self.session,
            config=self.config,
            url=f"{url}?timeout=60&api-version=2014-01",
            body=encode_json(event.to_json_dict()),
            headers={"Authorization": authorization, "Content-Type": _CONTENT_TYPE},
        )
