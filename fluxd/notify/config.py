"""A Provider object plus its Secrets, resolved into what a sender needs.

Flux spreads a provider's settings over the Provider spec and up to three
Secrets (``secretRef``: address/token/username/password/headers/proxy,
``certSecretRef``: ``ca.crt``, ``proxySecretRef``: address/username/password),
with Secret values overriding spec fields. ``ProviderConfig.from_objects``
applies those precedence rules once; everything after it reads one object.
Secret values arrive already decoded (bytes or str), never base64.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from fluxd.notify.errors import ProviderConfigError

SecretData = Mapping[str, bytes | str]

# Flux's Provider.GetTimeout default.
DEFAULT_TIMEOUT_SECONDS: Final = 15.0

_REDACTED: Final = "*****"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Everything needed to send to one Provider; secrets are kept out of ``repr``."""

    provider_type: str
    name: str = ""
    namespace: str = ""
    uid: str = ""
    address: str = field(default="", repr=False)
    channel: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    proxy: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    suspended: bool = False
    commit_status_expr: str = ""
    #: The Provider object itself: what ``spec.commitStatusExpr`` reads as ``provider``.
    provider_object: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Every key of the ``secretRef`` Secret, so a type can refuse keys it does not read.
    secret_keys: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """Identity of the provider for queues and dedup: ``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting the extra CA from ``certSecretRef``, if there is one."""
        if not self.ca_pem:
            return None
        context = ssl.create_default_context()
        try:
            context.load_verify_locations(cadata=self.ca_pem)
        except ssl.SSLError as error:
            raise ProviderConfigError(
                provider_type=self.provider_type, reason=f"ca.crt is not a valid PEM: {error}"
            ) from None
        return context

    def redact(self, text: str) -> str:
        """``text`` with every secret of this provider masked, as Flux masks tokens."""
        for secret in (self.token, self.password, self.address, self.proxy or ""):
            if len(secret) >= 4:
                text = text.replace(secret, _REDACTED)
        return text

    @classmethod
    def from_objects(
        cls,
        provider: Mapping[str, Any],
        *,
        secret: SecretData | None = None,
        cert_secret: SecretData | None = None,
        proxy_secret: SecretData | None = None,
    ) -> ProviderConfig:
        """Resolve a Provider object and the data of the Secrets it refers to."""
        spec: Mapping[str, Any] = provider.get("spec") or {}
        metadata: Mapping[str, Any] = provider.get("metadata") or {}
        provider_type = str(spec.get("type", ""))
        values = {key: _text(value) for key, value in (secret or {}).items()}

        headers: dict[str, str] = {}
        if "headers" in values:
            headers = _parse_headers(values["headers"], provider_type=provider_type)

        proxy = str(spec.get("proxy") or "") or None
        if "proxy" in values:
            proxy = values["proxy"] or None
        if proxy_secret:
            proxy = _proxy_from_secret(proxy_secret, provider_type=provider_type)

        ca_pem: str | None = None
        if cert_secret:
            raw_ca = cert_secret.get("ca.crt", cert_secret.get("caFile"))
            if raw_ca is None:
                raise ProviderConfigError(
                    provider_type=provider_type, reason="certSecretRef has no 'ca.crt' key"
                )
            ca_pem = _text(raw_ca)

        return cls(
            provider_type=provider_type,
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            uid=str(metadata.get("uid", "")),
            address=values.get("address") or str(spec.get("address") or ""),
            channel=str(spec.get("channel") or ""),
            username=values.get("username") or str(spec.get("username") or ""),
            password=values.get("password", ""),
            token=values.get("token", ""),
            headers=headers,
            proxy=proxy,
            ca_pem=ca_pem,
            timeout=_timeout(spec.get("timeout"), provider_type=provider_type),
            suspended=bool(spec.get("suspend", False)),
            commit_status_expr=str(spec.get("commitStatusExpr") or ""),
            provider_object=provider,
            secret_keys=frozenset(values),
        )


def _timeout(raw: object, *, provider_type: str) -> float:
    try:
        return parse_duration(raw, default=DEFAULT_TIMEOUT_SECONDS)
    except ValueError as error:
        raise ProviderConfigError(provider_type=provider_type, reason=str(error)) from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _parse_headers(raw: str, *, provider_type: str) -> dict[str, str]:
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError:
        # The message stays generic: header values are often credentials.
        raise ProviderConfigError(
            provider_type=provider_type, reason="secret key 'headers' is not a YAML map"
        ) from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise ProviderConfigError(
            provider_type=provider_type, reason="secret key 'headers' is not a YAML map"
        )
    return {str(key): str(value) for key, value in parsed.items()}


def _proxy_from_secret(data: SecretData, *, provider_type: str) -> str:
    values = {key: _text(value) for key, value in data.items()}
    address = values.get("address", "")
    if not address:
        raise ProviderConfigError(
            provider_type=provider_type, reason="proxySecretRef has no 'address' key"
        )
    username, password = values.get("username", ""), values.get("password", "")
    if not username:
        return address
    parts = urlsplit(address)
    credentials = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{credentials}@{parts.netloc}"))


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(raw: object, *, default: float) -> float:
    """Seconds in a Go duration string (``"1m30s"``, ``"500ms"``); ``default`` when unset."""
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total
