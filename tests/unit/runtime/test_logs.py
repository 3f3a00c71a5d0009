"""Log lines are structured, and secret values never reach them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from fluxd import logs


@pytest.fixture
def json_logs() -> Iterator[None]:
    logs.configure(level="debug", fmt="json")
    yield
    structlog.reset_defaults()


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_object_context_is_kept(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    log = structlog.get_logger("t").bind(kind="GitRepository", namespace="flux-system", name="r")
    log.info("reconciled", revision="master@sha1:abc")
    [line] = _lines(capsys.readouterr().err)
    assert line["kind"] == "GitRepository"
    assert line["namespace"] == "flux-system"
    assert line["name"] == "r"
    assert line["level"] == "info"
    assert line["event"] == "reconciled"


def test_secret_values_are_masked(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    log = structlog.get_logger("t")
    log.warning(
        "fetch failed",
        url="https://k3s:s3cr3t-t0ken@gitea.example/k3s/private.git",
        password="s3cr3t-t0ken",
        bearer_token="another-s3cret",
        error="clone of https://user:s3cr3t-t0ken@host/repo.git failed",
    )
    output = capsys.readouterr().err
    assert "s3cr3t-t0ken" not in output
    assert "another-s3cret" not in output
    [line] = _lines(output)
    assert line["url"] == "https://gitea.example/k3s/private.git"
    assert line["password"] == "***"


def test_console_format_for_humans(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(level="info", fmt="console")
    try:
        structlog.get_logger("t").info("hello", name="x")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "hello" in err
    assert "name=x" in err
    assert not err.lstrip().startswith("{")


def test_level_filters(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(level="warning", fmt="json")
    log = structlog.get_logger("t")
    log.info("quiet")
    log.error("loud")
    assert [line["event"] for line in _lines(capsys.readouterr().err)] == ["loud"]
