"""Google's OIDC ID tokens, for ``gcr`` Receivers fed by a Pub/Sub push subscription.

Flux checks the ``Authorization: Bearer`` token as Google documents for
authenticated push (google.golang.org/api/idtoken): an RS256 signature by one
of Google's published keys, an unexpired token, the expected ``aud``, issuer
``accounts.google.com``, and the service account's ``email`` with
``email_verified``. The checks are PyJWT's; ``GoogleKeys`` fetches and caches
the key set (its address is a setting, so tests serve their own).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import aiohttp
import jwt
import structlog

log = structlog.get_logger("fluxd.receiver.google")

ISSUERS: Final = frozenset({"accounts.google.com", "https://accounts.google.com"})
_MAX_AGE: Final = re.compile(r"max-age=(\d+)")
# Used when Google's answer carries no max-age, and as the floor after a failed fetch.
_DEFAULT_MAX_AGE: Final = 3600.0
_RETRY_AFTER: Final = 30.0
_FETCH_TIMEOUT: Final = 10.0


class GoogleKeys:
    """Google's signing keys, fetched on first use and again when their max-age ends."""

    def __init__(self, *, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._clock = clock
        self._keys: jwt.PyJWKSet | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def key_set(self) -> jwt.PyJWKSet | None:
        """The current key set; None when none could ever be fetched."""
        async with self._lock:
            if self._keys is None or self._clock() >= self._fresh_until:
                await self._fetch()
            return self._keys

    async def _fetch(self) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url) as response,
            ):
                response.raise_for_status()
                document = await response.json(content_type=None)
                cache_control = response.headers.get("Cache-Control", "")
            keys = jwt.PyJWKSet.from_dict(document)
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as error:
            # Keep the keys we had: Google rotates slowly, and a blip must not refuse pushes.
            log.warning("cannot fetch Google's signing keys", url=self.url, error=str(error))
            self._fresh_until = self._clock() + _RETRY_AFTER
            return
        found = _MAX_AGE.search(cache_control)
        self._keys = keys
        self._fresh_until = self._clock() + (float(found[1]) if found else _DEFAULT_MAX_AGE)


def id_token_problem(
    authorization: str,
    *,
    keys: jwt.PyJWKSet | None,
    email: str,
    audience: str,
) -> str:
    """Why the bearer token is not Google's ID token for ``email`` and ``audience``.

    "" when it is.
    """
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token:
        return "the Authorization header is missing or malformed"
    if keys is None:
        return "Google's signing keys are not available"
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
        key = next((key for key in keys.keys if key.key_id == key_id), None)
        if key is None:
            return f"no Google signing key has the token's key id {key_id!r}"
        claims: Mapping[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            audience=audience,
            options={"require": ["exp", "iat", "aud", "iss"]},
        )
    except jwt.InvalidAudienceError:
        return f"invalid ID token: audience is '{_unverified_audience(token)}', want '{audience}'"
    except jwt.PyJWTError as error:
        return f"invalid ID token: {error}"
    issuer = claims.get("iss")
    if issuer not in ISSUERS:
        return f"token issuer is '{issuer}', want 'accounts.google.com' or 'https://accounts.google.com'"
    if claims.get("email") != email:
        return f"token email is '{claims.get('email')}', want '{email}'"
    if claims.get("email_verified") is not True:
        return f"token email '{email}' is not verified"
    return ""


def _unverified_audience(token: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "<unknown>"
    return str(claims.get("aud") or "<unknown>")
