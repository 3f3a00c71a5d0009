"""Clients for remote clusters, made from a kubeconfig kept in a Secret.

A Kustomization with ``spec.kubeConfig.secretRef`` is built here but applied,
pruned, health-checked and garbage-collected in the cluster that kubeconfig
names, as kustomize-controller does. The kubeconfig is treated as the
kustomize-controller treats it (fluxcd/pkg ``runtime/client``): only its
current context is used, and it must be self-contained. Credentials that would
run a program (``exec``), call a cloud plugin (``auth-provider``) or read a
file of the daemon's own filesystem (``tokenFile``, ``client-key``, ...) are
refused with a message naming them, never followed: a Kustomization author
must not be able to make the daemon run commands or read its own token.
``insecure-skip-tls-verify`` is not honoured (the server's certificate is
always verified), as kustomize-controller does without its insecure flag.

One client is kept per Kustomization and reused while the Secret's
resourceVersion stays the same; a changed Secret (rotated credentials) gets a
new client and the old one's connections are closed, as they are when the
Kustomization goes away.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import yaml

from fluxd.kube import errors
from fluxd.kube.client import Kube, api_client, k8s_client
from fluxd.kube.informer import Key
from fluxd.kube.resources import SECRET
from fluxd.kube.secrets import InvalidSecretData, secret_value

# The keys read when ``secretRef.key`` is not set, in this order (kustomize-controller's).
DEFAULT_KEYS = ("value", "value.yaml")
# kustomize-controller gives remote requests 30 s; a server that does not even complete the
# connection (TCP and TLS handshake, both under sock_connect) is reported sooner, so a dead
# cluster holds a worker for seconds, not minutes.
REMOTE_TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=10.0)

# Credentials of a kubeconfig user that fluxd refuses, and why.
_REFUSED_USER_FIELDS: Mapping[str, str] = {
    "exec": "exec credential plugins are not run (kustomize-controller runs them only with "
    "--insecure-kubeconfig-exec); use a token or a client certificate",
    "auth-provider": "auth-provider plugins are not supported; use a token or a client certificate",
    "tokenFile": "files of the daemon are not read; put the token in 'token'",
    "client-certificate": "files of the daemon are not read; use 'client-certificate-data'",
    "client-key": "files of the daemon are not read; use 'client-key-data'",
}
_REFUSED_CLUSTER_FIELDS: Mapping[str, str] = {
    "certificate-authority": "files of the daemon are not read; use 'certificate-authority-data'",
}


class KubeConfigError(errors.KubeError):
    """A kubeconfig that cannot be used: missing, malformed or asking for what is refused.

    The message names the Secret and the field, never a credential.
    """


@dataclass(frozen=True)
class RemoteConfig:
    """What a self-contained kubeconfig's current context says about reaching its cluster."""

    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    tls_server_name: str | None = None
    proxy: str | None = None

    @property
    def authorization(self) -> str | None:
        if self.token:
            return f"Bearer {self.token}"
        if self.username is not None and self.password is not None:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {basic}"
        return None


def kubeconfig_from_secret(
    secret: Mapping[str, Any] | None, *, namespace: str, name: str, key: str | None
) -> bytes:
    """The kubeconfig bytes of the Secret, from ``key`` or else ``value`` / ``value.yaml``."""
    reference = f"{namespace}/{name}"
    if secret is None:
        raise KubeConfigError(
            f"unable to read KubeConfig secret '{reference}' error: secrets \"{name}\" not found"
        )
    try:
        if key:
            value = secret_value(secret, key)
            if value is None:
                raise KubeConfigError(
                    f"KubeConfig secret '{reference}' does not contain a '{key}' key "
                    "with a kubeconfig"
                )
            return value
        for candidate in DEFAULT_KEYS:
            value = secret_value(secret, candidate)
            if value is not None:
                return value
    except InvalidSecretData as error:
        raise KubeConfigError(f"KubeConfig secret '{reference}': {error}") from None
    raise KubeConfigError(
        f"KubeConfig secret '{reference}' does not contain a 'value' key with a kubeconfig"
    )


def parse_kubeconfig(data: bytes) -> RemoteConfig:
    """The current context of a kubeconfig; raises ``KubeConfigError`` naming what is wrong."""
    try:
        config = yaml.safe_load(data)
    except yaml.YAMLError as error:
        # The parser's message may quote a line of the kubeconfig (a credential): only where.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KubeConfigError(f"kubeconfig is not valid YAML{where}") from None
    if not isinstance(config, Mapping):
        raise KubeConfigError("kubeconfig is not a YAML mapping")
    context_name = config.get("current-context")
    if not context_name:
        raise KubeConfigError("kubeconfig has no current-context")
    context = _named(config, "contexts", "context", str(context_name))
    cluster_name = str(context.get("cluster") or "")
    cluster = _named(config, "clusters", "cluster", cluster_name)
    user_name = context.get("user")
    user = _named(config, "users", "user", str(user_name)) if user_name else {}
    for field, why in _REFUSED_CLUSTER_FIELDS.items():
        if cluster.get(field):
            raise KubeConfigError(f"kubeconfig cluster '{cluster_name}' sets '{field}': {why}")
    for field, why in _REFUSED_USER_FIELDS.items():
        if user.get(field):
            raise KubeConfigError(f"kubeconfig user '{user_name}' sets '{field}': {why}")
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeConfigError(
            f"kubeconfig cluster '{cluster_name}' has no https:// or http:// server"
        )
    return RemoteConfig(
        server=server,
        ca_pem=_pem(cluster, "certificate-authority-data", f"cluster '{cluster_name}'"),
        cert_pem=_pem(user, "client-certificate-data", f"user '{user_name}'"),
        key_pem=_pem(user, "client-key-data", f"user '{user_name}'"),
        token=_text(user.get("token")),
        username=_text(user.get("username")),
        password=_text(user.get("password")),
        tls_server_name=_text(cluster.get("tls-server-name")),
        proxy=_text(cluster.get("proxy-url")),
    )


def _named(config: Mapping[str, Any], section: str, field: str, name: str) -> Mapping[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(field)
            if isinstance(value, Mapping):
                return value
            break
    raise KubeConfigError(f"kubeconfig has no {field} named '{name}' in '{section}'")


def _pem(section: Mapping[str, Any], field: str, owner: str) -> bytes | None:
    value = section.get(field)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeConfigError(f"kubeconfig {owner} '{field}' is not valid base64") from None


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def connect(remote: RemoteConfig) -> Kube:
    """A client for ``remote``; its certificates never outlive this call on disk.

    The TLS context is built when the client is (kubernetes_asyncio reads the
    PEM files then), so they are written to a private directory that is
    removed before returning. Must be called on the event loop (the client
    opens an aiohttp session).
    """
    configuration = k8s_client.Configuration()
    configuration.host = remote.server
    configuration.verify_ssl = True
    if remote.tls_server_name:
        configuration.tls_server_name = remote.tls_server_name
    if remote.proxy:
        configuration.proxy = remote.proxy
    authorization = remote.authorization
    if authorization:
        configuration.api_key["BearerToken"] = authorization
    with tempfile.TemporaryDirectory(prefix="fluxd-remote-") as private:
        if remote.ca_pem:
            configuration.ssl_ca_cert = _write(Path(private) / "ca.crt", remote.ca_pem)
        if remote.cert_pem and remote.key_pem:
            configuration.cert_file = _write(Path(private) / "tls.crt", remote.cert_pem)
            configuration.key_file = _write(Path(private) / "tls.key", remote.key_pem)
        try:
            api = api_client(configuration)
        except (OSError, ValueError) as error:
            # ssl's messages name the failing step (e.g. a key that does not match), no data.
            raise KubeConfigError(f"kubeconfig TLS material cannot be used: {error}") from None
    return Kube(api, timeout=REMOTE_TIMEOUT)


def _write(path: Path, content: bytes) -> str:
    path.touch(mode=0o600)
    path.write_bytes(content)
    return str(path)


@dataclass
class _Client:
    source: tuple[str, str, str]  # (Secret name, its resourceVersion, key)
    kube: Kube


class RemoteClusters:
    """One remote client per Kustomization, renewed when its kubeconfig Secret changes."""

    def __init__(self, local: Kube) -> None:
        self.local = local
        self._clients: dict[Key, _Client] = {}
        self._retired: list[Kube] = []
        self._retiring = anyio.Event()

    def __len__(self) -> int:
        return len(self._clients)

    async def kube_for(self, owner: Key, *, secret_name: str, key: str | None = None) -> Kube:
        """The client for the cluster of ``owner``'s kubeconfig Secret (in ``owner``'s namespace).

        Raises ``KubeConfigError`` when the Secret or its kubeconfig cannot be
        used, and the local client's errors when the Secret cannot be read.
        """
        await self.close_retired()
        namespace = owner[0]
        secret = await self.local.get_or_none(SECRET, secret_name, namespace=namespace)
        version = str((secret or {}).get("metadata", {}).get("resourceVersion", ""))
        source = (secret_name, version, key or "")
        cached = self._clients.get(owner)
        if cached is not None and cached.source == source:
            return cached.kube
        # Whatever happens next, the client made from an older Secret is not used again.
        self.discard(owner)
        await self.close_retired()
        data = kubeconfig_from_secret(secret, namespace=namespace, name=secret_name, key=key)
        try:
            kube = connect(parse_kubeconfig(data))
        except KubeConfigError as error:
            raise KubeConfigError(
                f"KubeConfig secret '{namespace}/{secret_name}': {error}"
            ) from None
        self._clients[owner] = _Client(source, kube)
        return kube

    def discard(self, owner: Key) -> None:
        """``owner`` is gone: its client is closed (soon, by ``run``, or at the next use)."""
        cached = self._clients.pop(owner, None)
        if cached is not None:
            self._retired.append(cached.kube)
            self._retiring.set()

    async def release(self, owner: Key) -> None:
        """Close ``owner``'s client now."""
        self.discard(owner)
        await self.close_retired()

    async def close_retired(self) -> None:
        while self._retired:
            await self._retired.pop().close()

    async def close(self) -> None:
        """Close every client (the daemon stops or loses leadership)."""
        for owner in list(self._clients):
            self.discard(owner)
        await self.close_retired()

    async def run(self) -> None:
        """Close retired clients as they come; close all of them when cancelled."""
        try:
            while True:
                await self._retiring.wait()
                self._retiring = anyio.Event()
                await self.close_retired()
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()


__all__ = [
    "DEFAULT_KEYS",
    "REMOTE_TIMEOUT",
    "KubeConfigError",
    "RemoteClusters",
    "RemoteConfig",
    "connect",
    "kubeconfig_from_secret",
    "parse_kubeconfig",
]
