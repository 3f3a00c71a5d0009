"""API error responses become our own readable exceptions."""

from __future__ import annotations

import json

import pytest

from fluxd.kube import errors


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}
    ).encode()


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        pytest.param(404, "NotFound", errors.NotFound, id="not-found"),
        pytest.param(409, "Conflict", errors.Conflict, id="conflict"),
        pytest.param(409, "AlreadyExists", errors.AlreadyExists, id="already-exists"),
        pytest.param(403, "Forbidden", errors.Forbidden, id="forbidden"),
        pytest.param(422, "Invalid", errors.Invalid, id="invalid"),
        pytest.param(410, "Expired", errors.Gone, id="gone"),
        pytest.param(429, "TooManyRequests", errors.Throttled, id="throttled"),
        pytest.param(503, "ServiceUnavailable", errors.ServerError, id="server"),
    ],
)
def test_status_codes_map_to_types(code: int, reason: str, kind: type[errors.ApiError]) -> None:
    error = errors.from_response(
        status=code, body=_status(code, reason, "the message"), method="GET", path="/x"
    )
    assert type(error) is kind
    assert str(error) == "the message"
    assert error.reason == reason


def test_invalid_keeps_the_server_message() -> None:
    message = (
        'Deployment.apps "web" is invalid: spec.template.spec.containers[0].image: Required value'
    )
    error = errors.from_response(
        status=422, body=_status(422, "Invalid", message), method="PATCH", path="/apis/apps/v1"
    )
    assert isinstance(error, errors.Invalid)
    assert "spec.template.spec.containers[0].image: Required value" in str(error)


def test_non_json_body_and_retry_after() -> None:
    error = errors.from_response(
        status=429, body=b"slow down", method="GET", path="/x", retry_after="3"
    )
    assert isinstance(error, errors.Throttled)
    assert error.retry_after == 3.0
    assert "slow down" in str(error)
