"""Errors raised while turning events into notifications.

Delivery code needs one question answered about every failure: is it worth
trying again? The tree keeps that answer on the exception itself, and keeps
secrets out of every message (webhook URLs carry tokens in their query or path,
so messages name the provider and host only).

    NotifyError
    ├── ProviderConfigError     the Provider/Secret cannot make a working provider
    │                           (unknown type, missing token/channel, bad address)
    └── DeliveryError           one send attempt failed; ``retryable`` says whether
                                another attempt may succeed (5xx, 429, timeouts,
                                connection errors, robot "too fast" codes) or not
                                (4xx, rejected payload, robot errcode)
"""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every notification error; ``str()`` is safe to log and show."""


class ProviderConfigError(NotifyError):
    """A Provider spec (with its Secrets) does not describe a usable provider."""

    def __init__(self, *, provider_type: str, reason: str) -> None:
        self.provider_type = provider_type
        self.reason = reason
        super().__init__(f"invalid {provider_type or 'unknown'} provider: {reason}")


class DeliveryError(NotifyError):
    """One attempt to send a notification failed.

    ``status`` is the HTTP status when the service answered, ``retry_after`` the
    delay in seconds the service asked for (HTTP 429 ``Retry-After``), if any.
    """

    def __init__(
        self,
        *,
        provider_type: str,
        reason: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider_type = provider_type
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        kind = "retryable" if retryable else "permanent"
        super().__init__(f"{provider_type} delivery failed ({kind}): {reason}")
