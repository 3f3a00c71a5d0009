"""Google's OIDC ID tokens, for ``gcr`` Receivers fed by a Pub/Sub push subscription.

Flux checks the ``Authorization: Bearer`` token as Google documents for
authenticated push (google.golang.org/api/idtoken): an RS256 signature by one
of Google's published keys, an unexpired token, the expected ``aud``, issuer
``accounts.google.com``, and the service account's ``email`` with
``email_verified``. The checks are PyJWT's; a ``JsonWebKeys`` fetches and
caches Google's key set (its address is a setting, so tests serve their own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from fluxd.lazy import lazy_module

if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")

ISSUERS: Final = frozenset({"accounts.google.com", "https://accounts.google.com"})


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


def token_key_id(authorization: str) -> str | None:
    """The ``kid`` of a bearer token's header (unverified: it only picks a key)."""
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token:
        return None
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return str(key_id) if key_id is not None else None


def _unverified_audience(token: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "<unknown>"
    return str(claims.get("aud") or "<unknown>")
