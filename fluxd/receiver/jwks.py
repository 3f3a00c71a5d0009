"""Signing keys (JWKS) published by token issuers, fetched over HTTP and cached.

Google's certs for ``gcr`` Receivers and each OIDC issuer's ``jwks_uri`` for
``generic-oidc`` ones: fetched on first use, again when the ``max-age`` the
issuer sends has passed; a failed refresh keeps the keys already held.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import aiohttp
import structlog

from fluxd.lazy import lazy_module

if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")

log = structlog.get_logger("fluxd.receiver.jwks")

_MAX_AGE: Final = re.compile(r"max-age=(\d+)")
# Used when the answer carries no max-age.
_DEFAULT_MAX_AGE: Final = 3600.0
# How soon a failed fetch is tried again.
_RETRY_AFTER: Final = 30.0
FETCH_TIMEOUT: Final = 10.0


class JsonWebKeys:
    """A key set published at ``url``, fetched on first use and again when its max-age ends."""

    def __init__(self, *, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._keys: jwt.PyJWKSet | None = None
        self._fresh_until: float | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_set(self, *, key_id: str | None = None) -> jwt.PyJWKSet | None:
        """The current key set; None when none could ever be fetched.

        A ``key_id`` the set does not have fetches it again before its max-age
        (the issuer rotated its keys), at most once per retry delay.
        """
        async with self._lock:
            now = self._clock()
            # A failed fetch waits its retry delay too: a flood of requests is no flood of fetches.
            stale = self._fresh_until is None or now >= self._fresh_until
            rotated = (
                key_id is not None
                and self._keys is not None
                and all(key.key_id != key_id for key in self._keys.keys)
                and (self._fetched_at is None or now - self._fetched_at >= _RETRY_AFTER)
            )
            if stale or rotated:
                await self._fetch()
            return self._keys

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
                cache_control = response.headers.get("Cache-Control", "")
            keys = jwt.PyJWKSet.from_dict(document)
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as error:
            # Keep the keys we had: issuers rotate slowly, and a blip must not refuse pushes.
            log.warning("cannot fetch signing keys", url=self.url, error=str(error))
            self._fresh_until = self._clock() + _RETRY_AFTER
            return
        found = _MAX_AGE.search(cache_control)
        self._keys = keys
        self._fresh_until = self._clock() + (float(found[1]) if found else _DEFAULT_MAX_AGE)
