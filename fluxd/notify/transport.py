"""One HTTP exchange with a notification service, failures sorted into retryable or not.

Every provider ends in the same request: proxy and CA from the Provider,
Flux's timeout, JSON body. Keeping it here means one place decides which
failures deserve another attempt (connection errors, timeouts, 408/429/5xx)
and one place keeps tokens out of error messages (URLs are reduced to their
host; response snippets are redacted).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from fluxd.notify.config import ProviderConfig
from fluxd.notify.errors import DeliveryError

_RETRYABLE_STATUSES: Final = frozenset({408, 425, 429})
_SNIPPET_LENGTH: Final = 200
USER_AGENT: Final = "fluxd-notification"


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful (2xx) answer."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON; non-ASCII stays readable for the Chinese robots."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``: the only part of a webhook URL safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


async def exchange(
    session: aiohttp.ClientSession,
    *,
    config: ProviderConfig,
    url: str,
    method: str = "POST",
    payload: Any = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request; return the 2xx reply or raise ``DeliveryError``."""
    request_headers = {"User-Agent": USER_AGENT}
    if payload is not None:
        body = encode_json(payload)
    if body is not None:
        request_headers["Content-Type"] = "application/json"
    request_headers.update(headers or {})
    host = host_of(url)
    ssl_context = config.ssl_context()
    try:
        async with session.request(
            method,
            url,
            data=body,
            headers=request_headers,
            proxy=config.proxy,
            ssl=ssl_context if ssl_context is not None else True,
            timeout=aiohttp.ClientTimeout(total=config.timeout),
        ) as response:
            content = await response.read()
            status = response.status
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except TimeoutError:
        raise DeliveryError(
            provider_type=config.provider_type,
            reason=f"no answer from {host} within {config.timeout:g}s",
            retryable=True,
        ) from None
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as error:
        raise DeliveryError(
            provider_type=config.provider_type,
            reason=f"cannot reach {host}: {type(error).__name__}",
            retryable=True,
        ) from None
    if 200 <= status < 300:
        return Reply(status=status, body=content)
    snippet = config.redact(content[:_SNIPPET_LENGTH].decode("utf-8", errors="replace")).strip()
    raise DeliveryError(
        provider_type=config.provider_type,
        reason=f"{host} answered HTTP {status}" + (f": {snippet}" if snippet else ""),
        retryable=status >= 500 or status in _RETRYABLE_STATUSES,
        status=status,
        retry_after=retry_after,
    )


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None
