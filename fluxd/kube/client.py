"""The one door to the Kubernetes API: plain-dict requests over kubernetes_asyncio.

Objects travel as JSON dicts, never as generated model classes (they are slow
to build and heavy to keep). kubernetes_asyncio supplies configuration
(kubeconfig or in-cluster service account, token refresh) and its aiohttp
session; every response is decoded here and every failure mapped to
``fluxd.kube.errors``. Large bodies (list pages of thousands of objects run to
megabytes) are decoded in a thread so the event loop keeps serving watches,
webhooks and probes meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from enum import StrEnum
from typing import Any

import aiohttp

from fluxd.kube import _lean, errors
from fluxd.kube.codec import decode_json
from fluxd.kube.resources import BUILT_IN, Resource, split_api_version

k8s_client, k8s_config = _lean.load()
from kubernetes_asyncio.config.config_exception import ConfigException  # noqa: E402

Object = dict[str, Any]

_DEFAULT_TIMEOUT = 30.0
# Bodies above this size are decoded off the event loop: the decoder runs at a
# few hundred MB/s, so 256 KiB costs about a millisecond on the loop while a
# thread hand-off costs about a tenth of that; a 10 MB page would take 20 ms+.
_OFF_LOOP_BYTES = 256 * 1024

# Metadata-only reads: the API server sends names, labels and versions, never the data.
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA_ACCEPT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class PatchType(StrEnum):
    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


async def _decode_body(payload: bytes) -> Object:
    """A JSON response body as a dict; large ones decoded in a thread."""
    if len(payload) > _OFF_LOOP_BYTES:
        decoded: Object = await asyncio.to_thread(decode_json, payload)
    else:
        decoded = decode_json(payload)
    return decoded


class ConfigError(errors.KubeError):
    """No usable kubeconfig or in-cluster service account."""


async def load_configuration(*, kubeconfig: str | None = None, context: str | None = None) -> Any:
    """Client configuration from ``kubeconfig``, else in-cluster, else the default kubeconfig."""
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig:
            await k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                await k8s_config.load_kube_config(
                    context=context, client_configuration=configuration
                )
    except (ConfigException, OSError, ValueError, TypeError) as error:
        where = kubeconfig or "in-cluster service account or default kubeconfig"
        raise ConfigError(f"cannot load Kubernetes configuration from {where}: {error}") from error
    return configuration


def environment_proxy(host: str) -> str | None:
    """The proxy the environment names for the API server (HTTPS_PROXY, NO_PROXY, ...)."""
    url = urllib.parse.urlsplit(host)
    proxies = urllib.request.getproxies_environment()
    if not url.hostname or urllib.request.proxy_bypass(url.hostname):
        return None
    return proxies.get(url.scheme or "https")


def api_client(configuration: Any) -> Any:
    """An ApiClient whose requests do not consult the environment each time.

    kubernetes_asyncio's session trusts the environment, so aiohttp looks up
    the proxy variables and ~/.netrc in a worker thread on every request. The
    proxy is decided once here instead, from the same variables (a kubeconfig's
    ``proxy-url`` wins); netrc was never a Kubernetes client's business.
    """
    if not configuration.proxy:
        configuration.proxy = environment_proxy(str(configuration.host))
    api = k8s_client.ApiClient(configuration=configuration)
    rest = api.rest_client
    trusting: aiohttp.ClientSession = rest.pool_manager
    connector = trusting.connector
    trusting.detach()
    rest.pool_manager = aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        # As the library's own session: watch events of large objects exceed the default.
        read_bufsize=2**21,
    )
    return api


class Kube:
    """get/list/watch/create/delete/patch/apply on plain dicts."""

    def __init__(
        self,
        api_client: Any,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | float = _DEFAULT_TIMEOUT,
    ) -> None:
        self._api = api_client
        self._headers = dict(headers or {})
        # Per-request timeout unless a call gives its own (remote clusters connect sooner).
        self._timeout = timeout
        self._resources: dict[tuple[str, str], Resource] = {
            (r.api_version, r.kind): r for r in BUILT_IN
        }
        self._owned = headers is None

    @classmethod
    async def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        configuration = await load_configuration(kubeconfig=kubeconfig, context=context)
        return cls(api_client(configuration))

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def impersonating(self, user: str) -> Kube:
        """The same connection acting as ``user`` (e.g. a Kustomization's ServiceAccount)."""
        clone = Kube(self._api, headers={"Impersonate-User": user}, timeout=self._timeout)
        clone._resources = self._resources
        return clone

    async def close(self) -> None:
        if self._owned:
            await self._api.close()

    # -- raw requests ---------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": accept, "Content-Type": content_type, **self._headers}
        try:
            response: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self._timeout if timeout is None else timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise errors.Unreachable(
                f"{method} {path}: cannot reach the API server at {self.host}: "
                f"{str(error) or type(error).__name__}"
            ) from error
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | float | None = None,
        accept: str = "application/json",
    ) -> Object:
        response = await self._send(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout=timeout,
            accept=accept,
        )
        try:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise errors.Unreachable(f"{method} {path}: {error}") from error
            if response.status >= 400:
                raise errors.from_response(
                    status=response.status,
                    body=payload,
                    method=method,
                    path=path,
                    retry_after=response.headers.get("Retry-After"),
                )
        finally:
            response.release()
        if not payload:
            return {}
        return await _decode_body(payload)

    # -- typed verbs --------------------------------------------------------------

    async def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Object:
        return await self.request("GET", resource.path(namespace=namespace, name=name))

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> Object | None:
        try:
            return await self.get(resource, name, namespace=namespace)
        except errors.NotFound:
            return None

    async def list_page(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        metadata_only: bool = False,
    ) -> Object:
        """One page of a list; ``metadata_only`` asks for ``PartialObjectMetadata`` items."""
        query: dict[str, str] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        if limit:
            query["limit"] = str(limit)
        if continue_token:
            query["continue"] = continue_token
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        accept = METADATA_LIST_ACCEPT if metadata_only else "application/json"
        return await self.request(
            "GET", resource.path(namespace=namespace), query=query, accept=accept
        )

    async def list_all(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
        metadata_only: bool = False,
    ) -> tuple[list[Object], str]:
        """Every object (paged), and the list's resourceVersion to watch from."""
        items: list[Object] = []
        token: str | None = None
        while True:
            page = await self.list_page(
                resource,
                namespace=namespace,
                label_selector=label_selector,
                limit=page_size,
                continue_token=token,
                metadata_only=metadata_only,
            )
            kind = resource.kind
            # A metadata-only list with nothing in it says "items": null.
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            metadata = page.get("metadata", {})
            token = metadata.get("continue")
            if not token:
                return items, str(metadata.get("resourceVersion", ""))

    async def create(
        self,
        resource: Resource,
        body: Object,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        query = {"dryRun": "All"} if dry_run else None
        ns = namespace or body.get("metadata", {}).get("namespace")
        return await self.request("POST", resource.path(namespace=ns), query=query, body=body)

    async def replace(self, resource: Resource, body: Object) -> Object:
        metadata = body["metadata"]
        path = resource.path(namespace=metadata.get("namespace"), name=metadata["name"])
        return await self.request("PUT", path, body=body)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
        missing_ok: bool = True,
    ) -> Object | None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            return await self.request(
                "DELETE", resource.path(namespace=namespace, name=name), body=body
            )
        except errors.NotFound:
            if missing_ok:
                return None
            raise

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        query = {"dryRun": "All"} if dry_run else None
        path = resource.path(namespace=namespace, name=name, subresource=subresource)
        return await self.request("PATCH", path, query=query, body=patch, content_type=patch_type)

    async def apply(
        self,
        resource: Resource,
        body: Object,
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> Object:
        """Server-side apply ``body`` (a full object with apiVersion/kind/metadata.name)."""
        metadata = body["metadata"]
        query = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        path = resource.path(
            namespace=metadata.get("namespace"), name=metadata["name"], subresource=subresource
        )
        return await self.request(
            "PATCH", path, query=query, body=body, content_type=PatchType.APPLY
        )

    async def patch_status(
        self, resource: Resource, name: str, status: Object, *, namespace: str | None = None
    ) -> Object:
        """Merge-patch the status subresource (the one status write per reconcile)."""
        return await self.patch(
            resource, name, {"status": status}, namespace=namespace, subresource="status"
        )

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        metadata_only: bool = False,
    ) -> AsyncIterator[Object]:
        """Stream watch events (``{"type", "object"}``, bookmarks too) until the server ends it.

        A 410 answer (or an ``ERROR`` event carrying status 410) raises ``Gone``.
        With ``metadata_only`` each object is a ``PartialObjectMetadata``.
        """
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        path = resource.path(namespace=namespace)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30)
        accept = METADATA_ACCEPT if metadata_only else "application/json"
        response = await self._send("GET", path, query=query, timeout=timeout, accept=accept)
        try:
            if response.status >= 400:
                raise errors.from_response(
                    status=response.status, body=await response.read(), method="WATCH", path=path
                )
            try:
                async for line in response.content:
                    if not line.strip():
                        continue
                    event: Object = decode_json(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        raise errors.from_response(
                            status=int(status.get("code", 500)),
                            body=json.dumps(status).encode(),
                            method="WATCH",
                            path=path,
                        )
                    yield event
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise errors.Unreachable(f"watch {path} interrupted: {error}") from error
        finally:
            response.release()

    # -- discovery ----------------------------------------------------------------

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        """The Resource for an apiVersion/kind, via the discovery API when not yet known."""
        key = (api_version, kind)
        found = self._resources.get(key)
        if found is not None:
            return found
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = await self.request("GET", path)
        except errors.NotFound as error:
            raise errors.NotFound(
                f"no API {api_version} on the server (is its CRD installed?)",
                status=404,
                path=path,
            ) from error
        for entry in listing.get("resources", []):
            if "/" in entry.get("name", ""):
                continue
            resource = Resource(
                group, version, entry["kind"], entry["name"], bool(entry.get("namespaced"))
            )
            self._resources[(api_version, entry["kind"])] = resource
        found = self._resources.get(key)
        if found is None:
            raise errors.NotFound(
                f"no kind {kind} in {api_version} on the server (is its CRD installed?)",
                status=404,
                path=path,
            )
        return found

    def forget_discovery(self, api_version: str | None = None) -> None:
        """Drop discovered kinds (after CRDs change) so the next lookup asks the server."""
        built_in = {(r.api_version, r.kind) for r in BUILT_IN}
        for key in list(self._resources):
            if key not in built_in and (api_version is None or key[0] == api_version):
                del self._resources[key]

    async def server_version(self) -> Object:
        return await self.request("GET", "/version")
