"""NATS: Flux's event JSON published to the subject in ``channel``.

Each send connects, publishes, flushes and closes, as Flux does: a Provider
sends rarely, and a held connection would need its own supervision. The
address is the server URL (``nats://host:4222``); the Secret's ``username``
and ``password``, when both are set, authenticate the connection. Flux's
other methods (``creds``, ``nkey`` keys) are refused, not ignored.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar, Final
from urllib.parse import urlsplit

import nats.errors
from nats.aio.client import Client as NATS

from fluxd.notify.errors import DeliveryError, ProviderConfigError
from fluxd.notify.event import Event
from fluxd.notify.providers.base import ChatProvider
from fluxd.notify.providers.generic import event_body
from fluxd.notify.transport import host_of

CLIENT_NAME: Final = "NATS Provider Publisher"
_SCHEMES: Final = frozenset({"nats", "tls", "ws", "wss"})
# Flux also authenticates with a JWT credentials file or an NKey seed from these keys.
_UNSUPPORTED_SECRET_KEYS: Final = frozenset({"creds", "nkey"})


class NatsProvider(ChatProvider):
    provider_type: ClassVar[str] = "nats"

    def validate(self) -> None:
        if not self.config.address:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="no address (the NATS server URL)"
            )
        if urlsplit(self.server_url()).scheme not in _SCHEMES:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason="the address is not a NATS URL (nats://host:port)",
            )
        if not self.config.channel:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason="spec.channel (the subject) is empty"
            )
        unread = sorted(self.config.secret_keys & _UNSUPPORTED_SECRET_KEYS)
        if unread:
            raise ProviderConfigError(
                provider_type=self.provider_type,
                reason=f"Secret key(s) {', '.join(unread)} (NATS JWT/NKey auth) are not "
                "supported; use username and password",
            )

    def server_url(self) -> str:
        """The address, ``nats://`` assumed when it names no scheme, as NATS clients do."""
        address = self.config.address
        return address if "://" in address else f"nats://{address}"

    async def post(self, event: Event) -> None:
        host = host_of(self.server_url())
        # Flux authenticates only when both are set.
        authenticated = bool(self.config.username and self.config.password)
        client = NATS()
        try:
            await client.connect(
                servers=[self.server_url()],
                name=CLIENT_NAME,
                allow_reconnect=False,
                connect_timeout=max(1, round(self.config.timeout)),
                error_cb=_ignore,
                user=self.config.username if authenticated else None,
                password=self.config.password if authenticated else None,
            )
        except nats.errors.Error as error:
            await _discard(client)
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=f"cannot connect to {host}: {self.config.redact(str(error))}",
                retryable=not _is_auth_error(error),
            ) from None
        except (OSError, TimeoutError) as error:
            await _discard(client)
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=f"cannot reach {host}: {type(error).__name__}",
                retryable=True,
            ) from None
        try:
            await client.publish(self.config.channel, event_body(event))
            await client.flush(timeout=max(1, round(self.config.timeout)))
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise DeliveryError(
                provider_type=self.provider_type,
                reason=f"publishing to {host} failed: {type(error).__name__}",
                retryable=True,
            ) from None
        finally:
            await client.close()


async def _discard(client: NATS) -> None:
    """Close what a failed connect left open: the client keeps its socket otherwise."""
    with contextlib.suppress(nats.errors.Error, OSError):
        await client.close()


def _is_auth_error(error: BaseException) -> bool:
    return "authorization" in str(error).lower()


async def _ignore(error: Exception) -> None:
    """Connection errors are raised to ``post``; the client need not log them too."""
