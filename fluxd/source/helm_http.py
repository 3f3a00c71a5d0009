"""HTTP(S) downloads from a Helm chart repository: index files and chart packages.

A Helm HTTP repository is a static file server, so this is one GET with the
credentials the HelmRepository names: basic auth from ``secretRef``, a
client certificate and/or CA from ``certSecretRef`` (or, deprecated, the
``certFile``/``keyFile``/``caFile`` keys of ``secretRef``), bounded by
``spec.timeout``. Credentials go only to the repository's own host unless
``passCredentials`` says otherwise, as Helm's getter does.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from fluxd.source.errors import AuthenticationFailed, InvalidSource, SourceError, redact_url
from fluxd.source.helm import same_host

__all__ = ["HelmCredentials", "download"]


@dataclass(frozen=True)
class HelmCredentials:
    """What a HelmRepository's Secrets say about connecting to it."""

    username: str | None = None
    password: str | None = None
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    pass_credentials: bool = False

    @classmethod
    def from_secrets(
        cls,
        *,
        auth: Mapping[str, bytes] | None,
        tls: Mapping[str, bytes] | None,
        auth_name: str = "",
        pass_credentials: bool = False,
    ) -> HelmCredentials:
        """Read ``secretRef`` (``auth``) and ``certSecretRef`` (``tls``, which takes precedence)."""
        username = password = None
        ca = cert = key = None
        if auth is not None:
            raw_user, raw_password = auth.get("username"), auth.get("password")
            if (raw_user is None) != (raw_password is None):
                raise InvalidSource(
                    f"invalid '{auth_name}' secret data: required fields 'username' and 'password'",
                    reason="AuthenticationFailed",
                )
            if raw_user is not None and raw_password is not None:
                username, password = raw_user.decode(), raw_password.decode()
            ca, cert, key = auth.get("caFile"), auth.get("certFile"), auth.get("keyFile")
        if tls is not None:
            ca = tls.get("ca.crt", ca)
            cert, key = tls.get("tls.crt", cert), tls.get("tls.key", key)
        if (cert is None) != (key is None):
            raise InvalidSource(
                "invalid TLS secret: a client certificate needs both 'tls.crt' and 'tls.key'",
                reason="AuthenticationFailed",
            )
        return cls(username, password, ca, cert, key, pass_credentials)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca is None and self.cert is None:
            return None
        try:
            context = ssl.create_default_context(
                cadata=self.ca.decode() if self.ca is not None else None
            )
            if self.cert is not None and self.key is not None:
                with tempfile.TemporaryDirectory(prefix="fluxd-helm-tls-") as scratch:
                    cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
                    cert_file.write_bytes(self.cert)
                    key_file.write_bytes(self.key)
                    context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, ValueError) as error:
            raise InvalidSource(
                f"failed to construct Helm client's TLS config: {error}",
                reason="AuthenticationFailed",
            ) from None
        return context


async def download(
    url: str,
    *,
    repository_url: str,
    credentials: HelmCredentials,
    timeout: float,
    max_size: int,
) -> bytes:
    """GET ``url``; the basic auth goes along when it is the repository's host (or allowed)."""
    headers: dict[str, str] = {}
    if credentials.username is not None and (
        credentials.pass_credentials or same_host(url, repository_url)
    ):
        pair = f"{credentials.username}:{credentials.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    context = credentials.ssl_context()
    shown = redact_url(url)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(
                url, headers=headers, ssl=context if context is not None else True
            ) as response,
        ):
            if response.status in (401, 403):
                raise AuthenticationFailed(
                    f"failed to fetch {shown} : {response.status} {response.reason}", url=url
                )
            if response.status != 200:
                raise SourceError(
                    f"failed to fetch {shown} : {response.status} {response.reason}", url=url
                )
            data = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                data += chunk
                if len(data) > max_size:
                    raise SourceError(f"{shown} exceeds the maximum size of {max_size} bytes")
            return bytes(data)
    except TimeoutError:
        raise SourceError(f"failed to fetch {shown} : timeout after {timeout:g}s") from None
    except aiohttp.ClientSSLError as error:
        raise AuthenticationFailed(f"failed to fetch {shown} : tls: {error}", url=url) from None
    except aiohttp.ClientError as error:
        raise SourceError(f"failed to fetch {shown} : {error}", url=url) from None
