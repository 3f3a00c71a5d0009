"""OCI artifacts from a registry, for OCIRepository: resolve a tag, pull one layer.

A poll costs one ``HEAD`` of the manifest (the tag's digest); the manifest
and the selected layer are downloaded only when that digest differs from the
published artifact's. The registry is spoken to through the Distribution
HTTP API v2 with aiohttp, on the event loop: the Python OCI clients (oras-py)
are synchronous (requests), which would need a thread per poll, and the
three calls needed here (tags, manifests, blobs) are small. Authentication
follows the registry's challenge, Basic or Bearer token, as
go-containerregistry does, and the scheme found is reused for later calls.

No Kubernetes I/O happens here: the OCIRepository controller reads the
object and its Secrets and passes plain values in. Errors are
:class:`~fluxd.source.errors.SourceError` with Flux's reasons::

    SourceError
    ├── OCIPullFailed             reason OCIArtifactPullFailed: digest, manifest or blob
    ├── OCILayerOperationFailed   reason OCIArtifactLayerOperationFailed: no such layer, bad tarball
    ├── TagSelectionFailed        reason ReadOperationFailed: listing tags, semver without match
    ├── AuthenticationFailed      credentials or TLS material unusable
    └── InvalidSource             STALLED, URLInvalid: not oci://<host>/<repo>, or with a tag
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import ssl
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from fluxd.source.errors import AuthenticationFailed, InvalidSource, SourceError
from fluxd.source.semver_range import SemverRange, highest_match

__all__ = [
    "HELM_CHART_LAYER",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCIAddress",
    "OCILayerOperationFailed",
    "OCIPullFailed",
    "RegistryClient",
    "RegistryConnections",
    "RegistryCredentials",
    "TagSelectionFailed",
    "oci_revision",
    "platform_manifest",
    "registry_tls",
    "select_layer",
    "tag_by_semver",
]

OCI_PREFIX = "oci://"
DOCKER_HUB = "index.docker.io"
# What go-containerregistry accepts for an image manifest.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# An index (multi-platform): its digest is the revision, its linux/amd64 manifest is
# pulled, as go-containerregistry's remote.Image does with its default platform.
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
DEFAULT_PLATFORM = ("linux", "amd64")
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_CHUNK = 1 << 16
_MANIFEST_LIMIT = 4 << 20


class OCIPullFailed(SourceError):
    """The registry did not give the tag's digest, the manifest or a blob."""

    reason: str = "OCIArtifactPullFailed"


class OCILayerOperationFailed(SourceError):
    """The manifest has no usable layer, or the layer could not be extracted or copied."""

    reason: str = "OCIArtifactLayerOperationFailed"


class TagSelectionFailed(SourceError):
    """The tags could not be listed, or none matches ``spec.ref.semver``."""

    reason: str = "ReadOperationFailed"


@dataclass(frozen=True)
class OCIAddress:
    """``oci://<registry>/<repository>``, split as go-containerregistry's ``name`` does."""

    registry: str
    repository: str

    @classmethod
    def parse(cls, url: str) -> OCIAddress:
        """Parse ``spec.url``; raise InvalidSource (URLInvalid) when it is not one."""
        if not url.startswith(OCI_PREFIX):
            raise InvalidSource("URL must be in format 'oci://<domain>/<org>/<repo>'", url=url)
        rest = url.removeprefix(OCI_PREFIX)
        first, _, path = rest.partition("/")
        if not first or not path:
            raise InvalidSource("URL must be in format 'oci://<domain>/<org>/<repo>'", url=url)
        registry = first
        if "." not in first and ":" not in first and first != "localhost":
            # A bare name is a Docker Hub repository, as in `docker pull org/repo`.
            registry, path = DOCKER_HUB, rest
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if ":" in path:
            raise InvalidSource(f"URL must not contain a tag; remove ':{path.split(':')[1]}'")
        if "@" in path or not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", path):
            raise InvalidSource(f"repository can only contain the characters `a-z0-9_.-/`: {path}")
        return cls(registry, path)

    def base_url(self, *, insecure: bool) -> str:
        return f"{'http' if insecure else 'https'}://{self.registry}"

    def reference(self, tag_or_digest: str) -> str:
        """``host/repo:tag`` or ``host/repo@sha256:...``, as Flux prints references."""
        separator = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"{self.registry}/{self.repository}{separator}{tag_or_digest}"


@dataclass(frozen=True)
class RegistryCredentials:
    """A username and password for one registry, from a dockerconfigjson Secret."""

    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.username and not self.password

    @classmethod
    def from_docker_config(
        cls, data: Mapping[str, bytes], *, registry: str, secret_name: str
    ) -> RegistryCredentials:
        """The entry of ``.dockerconfigjson`` for ``registry`` (anonymous when none names it)."""
        raw = data.get(".dockerconfigjson")
        if raw is None:
            raise AuthenticationFailed(
                f"secret '{secret_name}' has no '.dockerconfigjson' key: "
                "use a Secret of type kubernetes.io/dockerconfigjson"
            )
        try:
            config = json.loads(raw)
            auths = config.get("auths") or {}
        except (ValueError, AttributeError):
            raise AuthenticationFailed(
                f"secret '{secret_name}': '.dockerconfigjson' is not a Docker config JSON"
            ) from None
        for key, entry in auths.items():
            if _config_host(str(key)) != registry or not isinstance(entry, Mapping):
                continue
            username = str(entry.get("username") or "")
            password = str(entry.get("password") or "")
            encoded = entry.get("auth")
            if encoded and not (username or password):
                try:
                    username, _, password = base64.b64decode(str(encoded)).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise AuthenticationFailed(
                        f"secret '{secret_name}': the 'auth' of '{key}' is not base64"
                    ) from None
            return cls(username, password)
        return cls()


def _config_host(key: str) -> str:
    """The registry a Docker config ``auths`` key names (``https://host/v1/`` → ``host``)."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if host in ("docker.io", "registry-1.docker.io") else host


def registry_tls(data: Mapping[str, bytes] | None, *, secret_name: str = "") -> ssl.SSLContext:
    """A TLS context trusting ``ca.crt`` and presenting ``tls.crt``/``tls.key``, if given."""
    context = ssl.create_default_context()
    if not data:
        return context
    ca = data.get("ca.crt") or data.get("caFile")
    if ca:
        try:
            context.load_verify_locations(cadata=ca.decode())
        except (ssl.SSLError, UnicodeDecodeError, ValueError) as error:
            raise AuthenticationFailed(
                f"secret '{secret_name}': 'ca.crt' is not a PEM certificate: {error}"
            ) from None
    cert, key = data.get("tls.crt"), data.get("tls.key")
    if (cert is None) != (key is None):
        missing = "tls.key" if key is None else "tls.crt"
        raise AuthenticationFailed(
            f"secret '{secret_name}': found one of tls.crt and tls.key, '{missing}' is missing"
        )
    if cert is not None and key is not None:
        # The ssl module loads a client certificate from files only.
        with tempfile.TemporaryDirectory(prefix="fluxd-tls-") as scratch:
            cert_file, key_file = Path(scratch, "tls.crt"), Path(scratch, "tls.key")
            cert_file.write_bytes(cert)
            key_file.touch(mode=0o600)
            key_file.write_bytes(key)
            try:
                context.load_cert_chain(cert_file, key_file)
            except ssl.SSLError as error:
                raise AuthenticationFailed(
                    f"secret '{secret_name}': tls.crt/tls.key are not a key pair: {error}"
                ) from None
    return context


def oci_revision(tag: str | None, digest: str) -> str:
    """Flux's revision: ``<tag>@sha256:<hex>`` for a tag, ``sha256:<hex>`` for a digest ref."""
    if not _DIGEST.match(digest):
        # go-containerregistry's words for a digest it cannot parse.
        raise OCIPullFailed(f"failed to determine artifact digest: invalid digest '{digest}'")
    return f"{tag}@{digest}" if tag else digest


def tag_by_semver(
    tags: Iterable[str], expression: str, tag_filter: str = "", *, media_type: str = ""
) -> str:
    """The highest tag in the range, after ``semverFilter``; TagSelectionFailed if none.

    Helm writes a chart version's ``+`` as ``_`` in OCI tags (``+`` is not allowed
    there); for the chart layer media type the tags are read back as versions.
    """
    if media_type == HELM_CHART_LAYER:
        by_version = {tag.replace("_", "+"): tag for tag in tags}
        return by_version[tag_by_semver(by_version, expression, tag_filter)]
    candidates = list(tags)
    if tag_filter:
        try:
            pattern = re.compile(tag_filter)
        except re.error as error:
            raise TagSelectionFailed(f"error parsing regexp: {error}: `{tag_filter}`") from None
        candidates = [tag for tag in candidates if pattern.search(tag)]
    try:
        rng = SemverRange.parse(expression)
    except ValueError as error:
        raise TagSelectionFailed(f"semver '{expression}' parse error: {error}") from None
    found = highest_match(rng, candidates)
    if found is None:
        raise TagSelectionFailed(f"no match found for semver: {expression}")
    return found


def select_layer(manifest: Mapping[str, Any], media_type: str = "") -> Mapping[str, Any]:
    """The layer to use: the first with ``media_type`` when given, else the first one."""
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise OCILayerOperationFailed("no layers found in artifact")
    if not media_type:
        return dict(layers[0])
    for layer in layers:
        if isinstance(layer, Mapping) and layer.get("mediaType") == media_type:
            return layer
    raise OCILayerOperationFailed(
        f"failed to find layer with media type '{media_type}' in artifact"
    )


def platform_manifest(index: Mapping[str, Any], digest: str) -> str:
    """The digest of the index's manifest for the default platform (linux/amd64)."""
    os_name, architecture = DEFAULT_PLATFORM
    for entry in index.get("manifests") or []:
        platform = (entry or {}).get("platform") or {}
        if platform.get("os") == os_name and platform.get("architecture") == architecture:
            return str(entry.get("digest", ""))
    # go-containerregistry's words when an index has no image for the platform.
    raise OCIPullFailed(f"no child with platform {os_name}/{architecture} in index {digest}")


class RegistryClient:
    """Distribution API v2 calls for one repository; one instance per reconcile.

    ``session`` is shared by every OCIRepository (its connection pool), and
    ``tokens`` is the shared cache of authorisation headers by registry,
    repository and credentials, so a steady poll makes one request.
    """

    def __init__(
        self,
        address: OCIAddress,
        *,
        session: aiohttp.ClientSession,
        credentials: RegistryCredentials,
        tls: ssl.SSLContext,
        insecure: bool,
        tokens: dict[tuple[str, ...], tuple[str, float]],
    ) -> None:
        self.address = address
        self.session = session
        self.credentials = credentials
        self.tls = tls
        self.base = address.base_url(insecure=insecure)
        self.insecure = insecure
        self.tokens = tokens
        self._token_key = (
            address.registry,
            address.repository,
            credentials.username,
            hashlib.sha256(credentials.password.encode()).hexdigest(),
        )

    # -- the three reads ------------------------------------------------

    async def list_tags(self) -> list[str]:
        tags: list[str] = []
        url: str | None = f"{self.base}/v2/{self.address.repository}/tags/list?n=1000"
        while url is not None:
            async with self._request("GET", url) as response:
                await _raise_for(response, "GET")
                body = await response.json(content_type=None)
                tags += [str(tag) for tag in (body or {}).get("tags") or []]
                url = _next_link(response, self.base)
        return tags

    async def resolve(self, reference: str) -> str:
        """The manifest digest of a tag: a HEAD, or a GET when the registry will not say."""
        url = f"{self.base}/v2/{self.address.repository}/manifests/{reference}"
        headers = {"Accept": ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))}
        with contextlib.suppress(OCIPullFailed):
            async with self._request("HEAD", url, headers=headers) as response:
                await _raise_for(response, "HEAD")
                found = str(response.headers.get("Docker-Content-Digest", ""))
                if _DIGEST.match(found):
                    return found
        _, digest = await self._get_manifest(reference)
        return digest

    async def manifest(self, digest: str) -> dict[str, Any]:
        """The image manifest of ``digest``; for an index, that of its linux/amd64 image."""
        manifest = await self._manifest_document(digest)
        media = manifest.get("mediaType")
        if media in INDEX_MEDIA_TYPES or (media is None and "manifests" in manifest):
            manifest = await self._manifest_document(platform_manifest(manifest, digest))
            media = manifest.get("mediaType")
        if media is not None and media not in MANIFEST_MEDIA_TYPES:
            raise OCIPullFailed(f"unsupported manifest media type '{media}': not an artifact")
        return manifest

    async def _manifest_document(self, digest: str) -> dict[str, Any]:
        body, actual = await self._get_manifest(digest)
        if actual != digest:
            raise OCIPullFailed(f"manifest digest mismatch: got {actual}, want {digest}")
        try:
            manifest = json.loads(body)
        except ValueError as error:
            raise OCILayerOperationFailed(f"failed to parse artifact manifest: {error}") from None
        if not isinstance(manifest, dict):
            raise OCILayerOperationFailed("failed to parse artifact manifest: not an object")
        return manifest

    async def blob(self, digest: str, target: Path) -> None:
        """Download a blob into ``target``, checking its digest."""
        url = f"{self.base}/v2/{self.address.repository}/blobs/{digest}"
        hashed = hashlib.sha256()
        async with self._request("GET", url) as response:
            await _raise_for(response, "GET")
            with target.open("wb") as out:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    hashed.update(chunk)
                    out.write(chunk)
        if f"sha256:{hashed.hexdigest()}" != digest:
            raise OCIPullFailed(f"blob {digest} does not match its digest")

    # -- plumbing ---------------------------------------------------------

    async def _get_manifest(self, reference: str) -> tuple[bytes, str]:
        url = f"{self.base}/v2/{self.address.repository}/manifests/{reference}"
        headers = {"Accept": ", ".join((*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES))}
        async with self._request("GET", url, headers=headers) as response:
            await _raise_for(response, "GET")
            body = await response.content.read(_MANIFEST_LIMIT + 1)
        if len(body) > _MANIFEST_LIMIT:
            raise OCIPullFailed(f"manifest of {reference} is larger than {_MANIFEST_LIMIT} bytes")
        return body, f"sha256:{hashlib.sha256(body).hexdigest()}"

    @contextlib.asynccontextmanager
    async def _request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None
    ) -> Any:
        sent = dict(headers or {})
        authorization = self._cached_authorization()
        if authorization:
            sent["Authorization"] = authorization
        response = await self._send(method, url, sent)
        if response.status == 401 and "WWW-Authenticate" in response.headers:
            challenge = response.headers["WWW-Authenticate"]
            response.release()
            sent["Authorization"] = await self._authorize(challenge)
            response = await self._send(method, url, sent)
        try:
            yield response
        finally:
            response.release()

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        try:
            return await self.session.request(method, url, headers=headers, ssl=self._ssl())
        except aiohttp.ClientError as error:
            raise OCIPullFailed(f"{method} {url}: {error}") from None

    def _basic(self) -> str:
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    def _ssl(self) -> ssl.SSLContext | bool:
        return False if self.insecure else self.tls

    def _cached_authorization(self) -> str | None:
        cached = self.tokens.get(self._token_key)
        if cached is None or cached[1] < time.monotonic():
            return None
        return cached[0]

    async def _authorize(self, challenge: str) -> str:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.credentials.anonymous:
                raise OCIPullFailed("UNAUTHORIZED: authentication required")
            header = self._basic()
            self.tokens[self._token_key] = (header, time.monotonic() + 3600)
            return header
        if scheme.lower() != "bearer":
            raise OCIPullFailed(f"unsupported authentication challenge '{scheme}'")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm", "")
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", "")}
        if not query["scope"]:
            query["scope"] = f"repository:{self.address.repository}:pull"
        token_url = f"{realm}?{urllib.parse.urlencode(query)}"
        headers = {} if self.credentials.anonymous else {"Authorization": self._basic()}
        try:
            async with self.session.get(token_url, headers=headers, ssl=self._ssl()) as response:
                await _raise_for(response, "GET")
                body = await response.json(content_type=None)
        except aiohttp.ClientError as error:
            raise OCIPullFailed(f"GET {token_url}: {error}") from None
        token = str((body or {}).get("token") or (body or {}).get("access_token") or "")
        lifetime = float((body or {}).get("expires_in") or 60)
        header = f"Bearer {token}"
        # Renew a little early so a token never expires between two calls of one poll.
        self.tokens[self._token_key] = (header, time.monotonic() + max(lifetime - 10, 1))
        return header


class RegistryConnections:
    """What every registry client of one controller shares for a term.

    One HTTP session (its connection pool), the authorisation headers by
    registry, repository and credentials (so a steady poll makes one request)
    and TLS contexts by certSecretRef content (building one reads the system
    CA store). :meth:`run` holds the session and closes it when cancelled.
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._tls: dict[str, ssl.SSLContext] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit_per_host=8),
                auto_decompress=False,
            )
        return self._session

    def tls(self, data: Mapping[str, bytes] | None, secret_name: str) -> ssl.SSLContext:
        hashed = hashlib.sha256()
        for key in sorted(data or {}):
            hashed.update(key.encode() + b"\0" + (data or {})[key] + b"\0")
        fingerprint = hashed.hexdigest()
        if fingerprint not in self._tls:
            self._tls[fingerprint] = registry_tls(data, secret_name=secret_name)
        return self._tls[fingerprint]

    def client(
        self,
        address: OCIAddress,
        *,
        credentials: RegistryCredentials,
        tls_data: Mapping[str, bytes] | None,
        tls_secret_name: str,
        insecure: bool,
    ) -> RegistryClient:
        return RegistryClient(
            address,
            session=self.session(),
            credentials=credentials,
            tls=self.tls(tls_data, tls_secret_name),
            insecure=insecure,
            tokens=self.tokens,
        )

    async def run(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if self._session is not None:
                with anyio.CancelScope(shield=True):
                    await self._session.close()


async def _raise_for(response: aiohttp.ClientResponse, method: str) -> None:
    """Raise OCIPullFailed with the registry's own error words, as go-containerregistry does."""
    if response.status < 400:
        return
    url = str(response.url)
    if method == "HEAD":
        raise OCIPullFailed(f"HEAD {url}: unexpected status code {response.status}")
    text = ""
    with contextlib.suppress(aiohttp.ClientError, UnicodeDecodeError):
        text = (await response.content.read(_CHUNK)).decode()
    detail = f"unexpected status code {response.status} {response.reason or ''}".strip()
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        errors = json.loads(text).get("errors") or []
        if errors:
            detail = "; ".join(
                f"{error.get('code', '')}: {error.get('message', '')}" for error in errors
            )
    raise OCIPullFailed(f"{method} {url}: {detail}")


def _next_link(response: aiohttp.ClientResponse, base: str) -> str | None:
    link = response.headers.get("Link", "")
    match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
    return urllib.parse.urljoin(base, match[1]) if match else None
