"""A tiny synchronous REST client for the test cluster, independent of fluxd.

Tests set up and check the cluster through this client so that what fluxd
does is verified by something other than fluxd's own Kubernetes layer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]


class ApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        try:
            self.details: JSON = json.loads(body)
            message = str(self.details.get("message", body))
        except ValueError:
            self.details = {}
            message = body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    ca_cert: Path
    client_cert: Path
    client_key: Path


class Api:
    """get/list/create/apply/patch/delete/watch on plain dicts over HTTPS with a client cert."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self.timeout = timeout
        context = ssl.create_default_context(cafile=str(credentials.ca_cert))
        context.load_cert_chain(str(credentials.client_cert), str(credentials.client_key))
        self._context = context

    def _connection(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.credentials.host,
            self.credentials.port,
            context=self._context,
            timeout=timeout if timeout is not None else self.timeout,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> JSON:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = content_type
        connection = self._connection()
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status >= 400:
            raise ApiError(response.status, method, path, text)
        result: JSON = json.loads(text) if text else {}
        return result

    def get(self, path: str) -> JSON:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def apply(self, path: str, body: JSON, *, manager: str = "testenv", force: bool = True) -> JSON:
        """Server-side apply ``body`` to the object at ``path`` (the object's own URL)."""
        query = {"fieldManager": manager}
        if force:
            query["force"] = "true"
        return self.request(
            "PATCH", path, body, content_type="application/apply-patch+yaml", query=query
        )

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str, *, missing_ok: bool = True) -> None:
        try:
            self.request("DELETE", path)
        except ApiError as error:
            if not (missing_ok and error.status == 404):
                raise

    def items(self, path: str, **query: str) -> list[JSON]:
        items: list[JSON] = self.request("GET", path, query=query or None).get("items", [])
        return items

    def watch(self, path: str, *, resource_version: str, timeout: float = 30.0) -> Iterator[JSON]:
        """Yield watch events (``{"type": ..., "object": ...}``) until ``timeout``."""
        query = urllib.parse.urlencode(
            {
                "watch": "true",
                "resourceVersion": resource_version,
                "timeoutSeconds": str(int(timeout)),
            }
        )
        connection = self._connection(timeout=timeout + 5)
        try:
            connection.request("GET", f"{path}?{query}", headers={"Accept": "application/json"})
            response = connection.getresponse()
            if response.status >= 400:
                raise ApiError(response.status, "GET", path, response.read().decode())
            while True:
                line = response.readline()
                if not line:
                    return
                yield json.loads(line)
        finally:
            connection.close()


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; a timeout reports its last result."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
            if last:
                return last
        except Exception as error:  # the condition may race object creation
            last = error
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
