"""Git credentials and proxy settings, read from Secrets with Flux's key names.

A GitRepository's ``secretRef`` Secret holds ``username``/``password`` or
``bearerToken`` for HTTPS, ``ca.crt`` for a private CA, ``tls.crt``/``tls.key``
for client certificates, and ``identity`` (+ ``password`` for an encrypted key)
with ``known_hosts`` for SSH; ``proxySecretRef`` holds ``address``, ``username``
and ``password``. This module turns the already-decoded Secret data into typed
values and rejects an unusable Secret up front with a message naming the
missing key, so the user sees what to fix. Secret values never appear in
messages or in ``repr()``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fluxd.lazy import lazy_module
from fluxd.source.errors import InvalidSource, redact_url

if TYPE_CHECKING:
    from cryptography import exceptions, x509
    from cryptography.hazmat.primitives import serialization
else:
    # Only Secrets with certificates or SSH keys need them.
    exceptions = lazy_module("cryptography.exceptions")
    x509 = lazy_module("cryptography.x509")
    serialization = lazy_module("cryptography.hazmat.primitives.serialization")

__all__ = ["GitAuth", "ProxySettings", "url_scheme"]

_SCHEMES = ("http", "https", "ssh")


def url_scheme(url: str) -> str:
    """The scheme of a GitRepository URL; refuse anything but http, https and ssh."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise InvalidSource(
            f"URL must be http://, https:// or ssh:// with a host (scp-like 'git@host:path' "
            f"is not supported): '{redact_url(url)}'",
            url=url,
        )
    return parts.scheme


def _text(data: Mapping[str, bytes], key: str, secret: str) -> str:
    try:
        # Used as written, like Flux: a trailing newline in a password is the user's.
        return data[key].decode()
    except UnicodeDecodeError:
        raise InvalidSource(
            f"secret '{secret}' key '{key}' is not valid UTF-8", reason="AuthenticationFailed"
        ) from None


@dataclass(frozen=True)
class GitAuth:
    """How to authenticate to one Git repository and verify the server.

    Build it with :meth:`from_secret` (or :meth:`anonymous`). Secret fields are
    excluded from ``repr()``.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    #: PEM bundle of CAs to trust for HTTPS, in addition to the system's.
    ca_cert: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = field(default=None, repr=False)
    #: SSH private key (PEM or OpenSSH format) and its passphrase, if encrypted.
    identity: str | None = field(default=None, repr=False)
    identity_passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None

    @classmethod
    def anonymous(cls) -> GitAuth:
        return cls()

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], *, url: str, secret_name: str) -> GitAuth:
        """Read the keys that matter for ``url``'s scheme; raise InvalidSource if unusable."""
        scheme = url_scheme(url)
        if scheme == "ssh":
            return cls._ssh(data, secret_name)
        return cls._http(data, secret_name, tls=scheme == "https")

    @classmethod
    def _ssh(cls, data: Mapping[str, bytes], secret: str) -> GitAuth:
        for key in ("identity", "known_hosts"):
            if key not in data or not data[key].strip():
                raise InvalidSource(
                    f"secret '{secret}' has no '{key}' key, required for ssh",
                    reason="AuthenticationFailed",
                )
        identity = _text(data, "identity", secret)
        passphrase = _text(data, "password", secret) if "password" in data else None
        _check_private_key(identity.encode(), passphrase, secret)
        known_hosts = _text(data, "known_hosts", secret)
        if not any(
            line.strip() and not line.lstrip().startswith("#") for line in known_hosts.splitlines()
        ):
            raise InvalidSource(
                f"secret '{secret}' key 'known_hosts' has no host key entries",
                reason="AuthenticationFailed",
            )
        return cls(
            username=_text(data, "username", secret) if "username" in data else None,
            identity=identity,
            identity_passphrase=passphrase,
            known_hosts=known_hosts + "\n",
        )

    @classmethod
    def _http(cls, data: Mapping[str, bytes], secret: str, *, tls: bool) -> GitAuth:
        username = _text(data, "username", secret) if "username" in data else None
        password = _text(data, "password", secret) if "password" in data else None
        bearer = _text(data, "bearerToken", secret) if "bearerToken" in data else None
        if username is not None and password is None:
            raise InvalidSource(
                f"secret '{secret}' has 'username' but no 'password' key, required for basic auth",
                reason="AuthenticationFailed",
            )
        if password is not None and username is None:
            raise InvalidSource(
                f"secret '{secret}' has 'password' but no 'username' key, required for basic auth",
                reason="AuthenticationFailed",
            )
        if bearer is not None and username is not None:
            raise InvalidSource(
                f"secret '{secret}' has both 'bearerToken' and 'username'/'password': use one",
                reason="AuthenticationFailed",
            )
        # Flux: 'ca.crt' wins over the older 'caFile' key.
        ca_key = "ca.crt" if "ca.crt" in data else "caFile"
        ca = data.get(ca_key)
        if ca is not None and tls:
            _check_certificates(ca, secret, ca_key)
        tls_cert, tls_key = data.get("tls.crt"), data.get("tls.key")
        if (tls_cert is None) != (tls_key is None):
            missing = "tls.key" if tls_key is None else "tls.crt"
            raise InvalidSource(
                f"secret '{secret}' has no '{missing}' key, required with "
                f"'{'tls.crt' if missing == 'tls.key' else 'tls.key'}' for client certificates",
                reason="AuthenticationFailed",
            )
        return cls(
            username=username,
            password=password,
            bearer_token=bearer,
            ca_cert=ca if tls else None,
            tls_cert=tls_cert if tls else None,
            tls_key=tls_key if tls else None,
        )


def _check_certificates(pem: bytes, secret: str, key: str) -> None:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        raise InvalidSource(
            f"secret '{secret}' key '{key}' holds no PEM certificate",
            reason="AuthenticationFailed",
        )


def _check_private_key(pem: bytes, passphrase: str | None, secret: str) -> None:
    """Refuse a key that cannot be read, before any network round trip."""
    password = passphrase.encode() if passphrase else None
    loaders = (
        (serialization.load_ssh_private_key, b"OPENSSH PRIVATE KEY"),
        (serialization.load_pem_private_key, b"PRIVATE KEY"),
    )
    for loader, marker in loaders:
        if marker not in pem:
            continue
        try:
            loader(pem, password)
            return
        except TypeError:
            raise InvalidSource(
                f"secret '{secret}' key 'identity' is encrypted and needs the 'password' key"
                if password is None
                else f"secret '{secret}' key 'identity' is not encrypted but 'password' is set",
                reason="AuthenticationFailed",
            ) from None
        except ValueError:
            raise InvalidSource(
                f"secret '{secret}' key 'identity' cannot be decrypted or parsed "
                "(wrong 'password' or malformed key)",
                reason="AuthenticationFailed",
            ) from None
        except exceptions.UnsupportedAlgorithm:
            # e.g. a bcrypt-encrypted OpenSSH key without the bcrypt module: libssh2 judges it.
            return
    raise InvalidSource(
        f"secret '{secret}' key 'identity' is not a PEM or OpenSSH private key",
        reason="AuthenticationFailed",
    )


@dataclass(frozen=True)
class ProxySettings:
    """An HTTP(S) proxy for Git operations, from a ``proxySecretRef`` Secret."""

    address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], *, secret_name: str) -> ProxySettings:
        if "address" not in data or not data["address"].strip():
            raise InvalidSource(
                f"secret '{secret_name}' has no 'address' key, required for a proxy",
                reason="InvalidProxySecret",
            )
        address = _text(data, "address", secret_name).strip()
        parts = urllib.parse.urlsplit(address)
        if parts.scheme not in ("http", "https", "socks5") or not parts.hostname:
            raise InvalidSource(
                f"secret '{secret_name}' key 'address' must be an http://, https:// or "
                "socks5:// URL with a host",
                reason="InvalidProxySecret",
            )
        username = _text(data, "username", secret_name) if "username" in data else None
        password = _text(data, "password", secret_name) if "password" in data else None
        return cls(address=address, username=username, password=password)

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self.address).scheme

    def transport_url(self) -> str:
        """The proxy URL with credentials embedded, as libgit2 expects. Never log it."""
        parts = urllib.parse.urlsplit(self.address)
        if self.username is None:
            return self.address
        userinfo = urllib.parse.quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + urllib.parse.quote(self.password, safe="")
        netloc = f"{userinfo}@{parts.netloc.rpartition('@')[2]}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
