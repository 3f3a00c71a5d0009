"""Log lines are structured, and secret values never reach them."""

from __future__ import annotations

import json
import re
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


def test_object_lines_have_the_shape_of_a_flux_controllers(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = structlog.get_logger("fluxd.controllers").bind(
        kind="GitRepository", namespace="flux-system", name="r", reconcile_id="4f1c"
    )
    log.info("reconciled", revision="master@sha1:abc")
    [line] = _lines(capsys.readouterr().err)
    assert line == {
        "level": "info",
        "ts": line["ts"],
        "logger": "fluxd.controllers",
        "msg": "reconciled",
        "controller": "gitrepository",
        "controllerGroup": "source.toolkit.fluxcd.io",
        "controllerKind": "GitRepository",
        "reconciler kind": "GitRepository",
        "GitRepository": {"name": "r", "namespace": "flux-system"},
        "namespace": "flux-system",
        "name": "r",
        "reconcileID": "4f1c",
        "revision": "master@sha1:abc",
    }
    # zap's ISO8601TimeEncoder, as Flux's controllers write it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["ts"]))


def test_lines_are_compact_json_as_zap_writes_them(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    structlog.get_logger("t").error("failed", error="boom")
    raw = capsys.readouterr().err.strip()
    # Log queries written for Flux match on the raw text, e.g. '"level":"error"'.
    assert raw.startswith('{"level":"error","ts":"')
    assert raw.endswith('"logger":"t","msg":"failed","error":"boom"}')


# What `flux logs` decodes from each line (flux2 cmd/flux/logs.go, ControllerLogEntry's
# json tags) and prints as "{ts} {level} {reconciler kind or controllerKind}/{name}.{namespace}
# - {msg} {error}", filtering on level (debug|info|error), kind, name and namespace.
FLUX_LOGS_FIELDS = {
    "ts",
    "level",
    "msg",
    "error",
    "logger",
    "reconciler kind",
    "controllerKind",
    "name",
    "namespace",
}


def _flux_logs_line(entry: dict[str, object]) -> str:
    decoded = {key: str(entry.get(key, "")) for key in FLUX_LOGS_FIELDS}
    kind = decoded["reconciler kind"] or decoded["controllerKind"]
    where = f"/{decoded['name']}.{decoded['namespace']}" if decoded["name"] else ""
    return f"{decoded['ts']} {decoded['level']} {kind}{where} - {decoded['msg']} {decoded['error']}"


def test_flux_logs_reads_kind_name_namespace_and_error(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = structlog.get_logger("fluxd.controllers").bind(
        kind="Kustomization", namespace="apps", name="podinfo"
    )
    log.error("reconcile failed", error="kustomize build failed")
    [line] = _lines(capsys.readouterr().err)
    assert _flux_logs_line(line) == (
        f"{line['ts']} error Kustomization/podinfo.apps - reconcile failed kustomize build failed"
    )


def test_levels_are_the_ones_flux_logs_filters_on(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log = structlog.get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    levels = [line["level"] for line in _lines(capsys.readouterr().err)]
    # zap's names; warn is zap's too (Flux's controllers never use it).
    assert levels == ["debug", "info", "warn", "error", "error"]


def test_a_traceback_goes_to_stacktrace(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        structlog.get_logger("t").exception("crashed")
    [line] = _lines(capsys.readouterr().err)
    assert line["level"] == "error"
    assert "ValueError: bad input" in str(line["stacktrace"])


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
    assert [line["msg"] for line in _lines(capsys.readouterr().err)] == ["loud"]
