"""Checks shared by the bad-input, security and sharding e2e tests.

A bad input must end as a condition, an Event or an HTTP answer a user can act
on, never as a crash, a traceback in the log, or a stalled neighbour. These
helpers express those three promises once.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testenv.api import Api, wait_for
from tests.support.daemon import Fluxd
from tests.support.flux import condition, events_for, request_reconcile

_ERROR_LEVELS = {"error", "critical", "exception", "fatal"}


def tracebacks(daemon: Fluxd, *, since: int = 0) -> list[dict[str, object]]:
    """Log records after the first ``since`` that carry a Python traceback."""
    found = []
    for record in daemon.log_records()[since:]:
        text = str(record)
        if "Traceback (most recent call last)" in text or "stacktrace" in record:
            found.append(record)
    return found


def error_records(daemon: Fluxd, *, since: int = 0) -> list[dict[str, object]]:
    return [
        record
        for record in daemon.log_records()[since:]
        if str(record.get("level", "")).lower() in _ERROR_LEVELS
    ]


def wait_not_ready(
    api: Api,
    path: str,
    *,
    reasons: tuple[str, ...],
    words: tuple[str, ...] = (),
    timeout: float = 90,
) -> dict[str, Any]:
    """Wait for Ready=False with one of ``reasons`` and ``words`` in its message.

    A failure may first show a transient reason (the source not fetched yet);
    the wait ends on the one the user is meant to see. On timeout the error
    names the last Ready condition.
    """
    seen: list[dict[str, Any] | None] = [None]

    def failed() -> dict[str, Any] | None:
        found = condition(api.get(path))
        seen[0] = found
        if not found or found["status"] != "False" or found["reason"] not in reasons:
            return None
        message = str(found.get("message", "")).lower()
        if all(word.lower() in message for word in words):
            return found
        return None

    try:
        result: dict[str, Any] = wait_for(
            failed, timeout=timeout, what=f"Ready=False {reasons} {words} on {path}"
        )
    except TimeoutError as error:
        raise AssertionError(f"{error}; last Ready: {seen[0]}") from None
    return result


def wait_warning(
    api: Api, namespace: str, name: str, *, reasons: tuple[str, ...], timeout: float = 60
) -> dict[str, Any]:
    """Wait for a Warning Event about ``name`` with one of ``reasons``; return it."""

    def warned() -> dict[str, Any] | None:
        for event in events_for(api, namespace, name):
            if event.get("type") == "Warning" and event.get("reason") in reasons:
                return event
        return None

    result: dict[str, Any] = wait_for(
        warned, timeout=timeout, what=f"a Warning Event {reasons} for {namespace}/{name}"
    )
    return result


@dataclass
class Neighbour:
    """A healthy Kustomization that must keep reconciling whatever its neighbours do."""

    api: Api
    path: str

    def still_reconciles(self, timeout: float = 90) -> None:
        token = request_reconcile(self.api, self.path)

        def handled() -> bool:
            obj = self.api.get(self.path)
            ready = condition(obj)
            return (
                obj.get("status", {}).get("lastHandledReconcileAt") == token
                and ready is not None
                and ready["status"] == "True"
            )

        wait_for(handled, timeout=timeout, what=f"{self.path} to reconcile again and be Ready")


class _HtmlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _page(self) -> None:
        body = b"<!doctype html><html><body><h1>Welcome</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._page()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._page()


@contextmanager
def html_server() -> Iterator[str]:
    """A web server that answers every path with an HTML page; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def http(
    url: str, body: bytes = b"", *, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, bytes]:
    """One request; returns (status, body) for error answers too."""
    request = urllib.request.Request(url, data=body or None, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def sample(daemon: Fluxd, metric: str, labels: dict[str, str]) -> float | None:
    """One sample of ``metric`` whose labels include ``labels`` (which may hold ``name``)."""
    _, text = daemon.get("/metrics")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != metric:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None
