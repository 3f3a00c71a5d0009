"""``generic-oidc`` Receivers: requests authenticated by an OIDC ID token, as Flux does.

The ``Authorization: Bearer`` token's (unverified) ``iss`` picks one of
``spec.oidcProviders``; the issuer's discovery document
(``<issuerURL>/.well-known/openid-configuration``) names its ``jwks_uri``;
the token must be signed by one of those keys, unexpired, issued by that
issuer and for the provider's ``audience`` (default
``notification-controller``). Then the provider's CEL ``variables`` are
evaluated in order (``vars.<name>``) and every ``validations`` expression
over ``claims`` and ``vars`` must be true; the verified claims are what
resource filters read as ``claims``.

``oidc_spec_problem`` holds the Receiver-level rules the reconciler stalls on
(Flux's CRD rules and its ``ValidateOIDCProvidersSpec``/``CompileOIDCProviders``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from fluxd.api.notification import DEFAULT_OIDC_AUDIENCE
from fluxd.apply.cel import EvaluationError, Expression, ExpressionError
from fluxd.lazy import lazy_module
from fluxd.receiver.jwks import FETCH_TIMEOUT, JsonWebKeys

if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")

GENERIC_OIDC: Final = "generic-oidc"
VALIDATION_FAILED: Final = "ValidationFailed"
CLAIM_VARIABLES: Final = frozenset({"claims", "vars"})
_ISSUER_URL: Final = re.compile(r"^https?://")
# What go-oidc accepts when discovery lists no id_token_signing_alg_values_supported.
_DEFAULT_ALGORITHMS: Final = ("RS256",)


class OIDCSpecError(Exception):
    """A Receiver's OIDC settings are wrong; ``reason`` is the Stalled reason Flux gives."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def oidc_spec_problem(spec: Mapping[str, Any]) -> None:
    """Raise ``OIDCSpecError`` when ``secretRef``/``oidcProviders`` do not fit the type."""
    is_oidc = spec.get("type") == GENERIC_OIDC
    providers = list(spec.get("oidcProviders") or [])
    if is_oidc and not providers:
        _fail("generic-oidc receiver requires at least one oidcProvider")
    if not is_oidc and providers:
        _fail("oidcProviders can only be set when type is generic-oidc")
    if is_oidc and spec.get("secretRef"):
        _fail("secretRef cannot be set when type is generic-oidc")
    if not is_oidc and not spec.get("secretRef"):
        _fail("secretRef is required when type is not generic-oidc")
    seen: set[str] = set()
    for index, provider in enumerate(providers):
        issuer = str(provider.get("issuerURL") or "")
        where = f"oidcProviders[{index}] (issuerURL={json.dumps(issuer)})"
        if not issuer:
            _fail(f"oidcProviders[{index}]: issuerURL is required")
        if not _ISSUER_URL.match(issuer):
            _fail(
                f"oidcProviders[{index}]: issuerURL {json.dumps(issuer)} "
                "must start with http:// or https://"
            )
        if issuer in seen:
            _fail(f"oidcProviders[{index}]: duplicate issuerURL {json.dumps(issuer)}")
        seen.add(issuer)
        if not provider.get("validations"):
            _fail(
                f"{where}: at least one validation is required; without validations any caller "
                "able to obtain a token from this issuer can trigger the Receiver"
            )
        for number, variable in enumerate(provider.get("variables") or []):
            if not variable.get("name"):
                _fail(f"{where}: variables[{number}]: name is required")
            if not variable.get("expression"):
                _fail(
                    f"{where}: variables[{number}] (name={json.dumps(variable['name'])}): "
                    "expression is required"
                )
        for number, validation in enumerate(provider.get("validations") or []):
            if not validation.get("expression"):
                _fail(f"{where}: validations[{number}]: expression is required")
            if not validation.get("message"):
                _fail(f"{where}: validations[{number}]: message is required")
    for index, provider in enumerate(providers):
        try:
            ClaimRules.of(provider)
        except ExpressionError as error:
            raise OIDCSpecError(
                "InvalidCELExpression",
                f"oidcProviders[{index}] (issuerURL={json.dumps(provider['issuerURL'])}): {error}",
            ) from None


def _fail(message: str) -> None:
    raise OIDCSpecError(VALIDATION_FAILED, message)


@dataclass(frozen=True)
class ClaimRules:
    """One provider's compiled ``variables`` and ``validations``."""

    variables: Sequence[tuple[str, Expression]]
    validations: Sequence[tuple[Expression, str]]

    @classmethod
    def of(cls, provider: Mapping[str, Any]) -> ClaimRules:
        variables = []
        for variable in provider.get("variables") or []:
            name = str(variable.get("name", ""))
            try:
                expression = Expression.parse(
                    str(variable["expression"]), variables=CLAIM_VARIABLES
                )
            except ExpressionError as error:
                raise ExpressionError(
                    f"invalid expression for variable {json.dumps(name)}: {error}"
                ) from None
            variables.append((name, expression))
        validations = []
        for validation in provider.get("validations") or []:
            message = str(validation.get("message", ""))
            try:
                expression = Expression.parse(
                    str(validation["expression"]), variables=CLAIM_VARIABLES
                )
            except ExpressionError as error:
                raise ExpressionError(
                    f"invalid expression for validation {json.dumps(message)}: {error}"
                ) from None
            validations.append((expression, message))
        return cls(variables, validations)

    def problem(self, claims: Mapping[str, Any]) -> str:
        """Why the claims are refused ("" when every validation is true)."""
        variables: dict[str, Any] = {}
        activation = {"claims": claims, "vars": variables}
        for name, expression in self.variables:
            try:
                variables[name] = expression.evaluate(activation)
            except EvaluationError as error:
                return f"failed to evaluate variable {json.dumps(name)}: {error}"
        failures = []
        for expression, message in self.validations:
            try:
                if not expression.evaluate_bool(activation):
                    failures.append(message)
            except EvaluationError as error:
                return f"failed to evaluate validation: {error}"
        return f"token validation failed: {'; '.join(failures)}" if failures else ""


@dataclass
class _Issuer:
    keys: JsonWebKeys
    algorithms: Sequence[str]


@dataclass
class OIDCIssuers:
    """Discovery and keys of the issuers ``generic-oidc`` Receivers name, cached per issuer."""

    _issuers: dict[str, _Issuer] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def verify(
        self, spec: Mapping[str, Any], authorization: str
    ) -> tuple[dict[str, Any] | None, str]:
        """The verified claims of the request's token, or None and why not."""
        scheme, _, rest = authorization.partition(" ")
        if scheme != "Bearer":
            return None, "the Authorization header is missing or malformed"
        raw = rest.strip()
        if not raw:
            return None, "the Authorization header is missing a bearer token"
        try:
            issuer = str(jwt.decode(raw, options={"verify_signature": False}).get("iss") or "")
        except jwt.PyJWTError as error:
            return None, f"failed to parse bearer token: {error}"
        if not issuer:
            return None, "failed to parse bearer token: token is missing the 'iss' claim"
        provider = next(
            (p for p in spec.get("oidcProviders") or [] if p.get("issuerURL") == issuer), None
        )
        if provider is None:
            return None, f"no oidcProvider configured for issuer {json.dumps(issuer)}"
        try:
            known = await self._issuer(issuer)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as error:
            return None, (
                f"failed to initialize OIDC provider for issuer {json.dumps(issuer)}: {error}"
            )
        try:
            key_id = jwt.get_unverified_header(raw).get("kid")
        except jwt.PyJWTError as error:
            return None, f"failed to verify OIDC token: {error}"
        keys = await known.keys.key_set(key_id=None if key_id is None else str(key_id))
        if keys is None:
            return None, f"failed to verify OIDC token: no signing keys for {issuer}"
        audience = str(provider.get("audience") or DEFAULT_OIDC_AUDIENCE)
        try:
            candidates = [key for key in keys.keys if key_id is None or key.key_id == key_id]
            if not candidates:
                return None, "failed to verify OIDC token: no key matches the token's key id"
            claims = _decode(raw, candidates, known.algorithms, audience, issuer)
        except jwt.PyJWTError as error:
            return None, f"failed to verify OIDC token: {error}"
        try:
            rules = ClaimRules.of(provider)
        except ExpressionError as error:
            return None, f"invalid oidcProvider configuration for issuer {issuer!r}: {error}"
        problem = rules.problem(claims)
        return (None, problem) if problem else (claims, "")

    async def _issuer(self, issuer: str) -> _Issuer:
        async with self._lock:
            known = self._issuers.get(issuer)
            if known is None:
                known = await _discover(issuer)
                self._issuers[issuer] = known
            return known


def _decode(
    raw: str,
    candidates: Sequence[jwt.PyJWK],
    algorithms: Sequence[str],
    audience: str,
    issuer: str,
) -> dict[str, Any]:
    failure: jwt.PyJWTError | None = None
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                raw,
                key=key,
                algorithms=list(algorithms),
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
            return claims
        except jwt.InvalidSignatureError as error:
            failure = error  # the next key may be the one (a key without an id)
    raise failure or jwt.InvalidSignatureError("no key verifies the token")


async def _discover(issuer: str) -> _Issuer:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        response.raise_for_status()
        document = await response.json(content_type=None)
    if document.get("issuer") != issuer:
        raise ValueError(
            f"oidc: issuer did not match the issuer returned by provider, "
            f"expected {issuer!r} got {document.get('issuer')!r}"
        )
    algorithms = document.get("id_token_signing_alg_values_supported") or _DEFAULT_ALGORITHMS
    return _Issuer(
        keys=JsonWebKeys(url=str(document["jwks_uri"])),
        algorithms=[str(a) for a in algorithms if str(a) != "none"],
    )
