"""Errors from the Kubernetes API, decoded into our own types.

Nothing outside ``fluxd.kube`` sees the client library's exceptions; callers
catch these and decide what happens next from the type::

    KubeError
    ├── Unreachable          connection refused/reset, TLS failure, timeout
    └── ApiError             the server answered with a Status
        ├── BadRequest       400
        ├── Unauthorized     401
        ├── Forbidden        403
        ├── NotFound         404
        ├── MethodNotAllowed 405
        ├── Conflict         409 (also AlreadyExists)
        │   └── AlreadyExists
        ├── Gone             410 (watch resourceVersion expired)
        ├── Invalid          422 (the server's field messages are kept)
        ├── Throttled        429 (retry_after from the server)
        └── ServerError      5xx
"""

from __future__ import annotations

from typing import Any

from fluxd.kube.codec import decode_json


class KubeError(Exception):
    """Anything that went wrong talking to the API server."""


class Unreachable(KubeError):
    """The API server could not be reached or did not answer in time."""


class ApiError(KubeError):
    """The API server answered with an error Status."""

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str = "",
        method: str = "",
        path: str = "",
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.method = method
        self.path = path
        self.details = details or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class MethodNotAllowed(ApiError):
    pass


class Conflict(ApiError):
    pass


class AlreadyExists(Conflict):
    pass


class Gone(ApiError):
    pass


class Invalid(ApiError):
    pass


class Throttled(ApiError):
    pass


class ServerError(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: Throttled,
}


def from_response(
    *,
    status: int,
    body: bytes,
    method: str,
    path: str,
    retry_after: str | None = None,
) -> ApiError:
    """Decode an error response (normally a ``Status`` object) into an ``ApiError``."""
    try:
        decoded = decode_json(body) if body else {}
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    message = str(decoded.get("message") or body[:300].decode(errors="replace") or f"HTTP {status}")
    reason = str(decoded.get("reason") or "")
    details = decoded.get("details") if isinstance(decoded.get("details"), dict) else {}
    if status == 409 and reason == "AlreadyExists":
        kind: type[ApiError] = AlreadyExists
    elif status >= 500:
        kind = ServerError
    else:
        kind = _BY_STATUS.get(status, ApiError)
    delay: float | None = None
    if retry_after:
        try:
            delay = float(retry_after)
        except ValueError:
            delay = None
    return kind(
        message,
        status=status,
        reason=reason,
        method=method,
        path=path,
        details=details,
        retry_after=delay,
    )
