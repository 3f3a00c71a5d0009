"""Structured logging: JSON for machines, console for humans, secrets never printed.

Every log line about an object carries kind/namespace/name (bound by the
reconciler together with a reconcile id). A last processor masks values of
keys that look secret and strips credentials from URLs, as a safety net behind
the rule that secret values are never passed to the logger at all.

JSON lines have the shape of Flux's controllers (controller-runtime's zap
encoder), so ``flux logs``, and alert rules and dashboards written for Flux,
read them: ``level``, ``ts``, ``logger``, ``msg``, and for an object
``controller``, ``controllerGroup``, ``controllerKind``, ``<Kind>: {name,
namespace}``, ``name``, ``namespace``, ``reconcileID``; failures in ``error``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

from fluxd.api.crds import all_kinds

_SECRET_KEYS = re.compile(r"(password|passwd|token|secret|bearer|private|credential)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def scrub(text: str) -> str:
    """Remove ``user:password@`` from any URL in ``text``."""
    return _URL_USERINFO.sub(r"\g<scheme>", text)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key in ("event", "level", "timestamp", "logger"):
            if isinstance(value, str):
                event[key] = scrub(value)
            continue
        if _SECRET_KEYS.search(key) and value not in (None, "", False):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


class _NamedPrintLogger(structlog.PrintLogger):
    """Prints to stderr and remembers the name it was asked for (Flux's ``logger`` key)."""

    def __init__(self, name: str) -> None:
        super().__init__(sys.stderr)
        self.name = name


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return _NamedPrintLogger(str(args[0]) if args else "")


# zap's level names; Flux's controllers log only debug, info and error.
_FLUX_LEVELS = {"warning": "warn", "critical": "error", "exception": "error"}
_GROUPS = {kind.kind: kind.group for kind in all_kinds()}


def _flux_shape(logger: Any, _: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Rename and order an event's keys as a Flux controller's JSON line has them."""
    level = str(event.pop("level", "info"))
    line: dict[str, Any] = {
        "level": _FLUX_LEVELS.get(level, level),
        # zap's ISO8601TimeEncoder: milliseconds, UTC written as Z.
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }
    name = getattr(logger, "name", "")
    if name:
        line["logger"] = name
    line["msg"] = event.pop("event", "")
    kind = event.pop("kind", None)
    if isinstance(kind, str) and kind:
        if kind in _GROUPS:
            line["controller"] = kind.lower()
            line["controllerGroup"] = _GROUPS[kind]
        line["controllerKind"] = kind
        # What flux CLIs before controller-runtime 0.7's keys read as the kind.
        line["reconciler kind"] = kind
        if "name" in event:
            line[kind] = {"name": event["name"], "namespace": event.get("namespace", "")}
    elif kind is not None:
        line["kind"] = kind
    for key in ("namespace", "name"):
        if key in event:
            line[key] = event.pop(key)
    if "reconcile_id" in event:
        line["reconcileID"] = event.pop("reconcile_id")
    if "exception" in event:
        line["stacktrace"] = event.pop("exception")
    line.update(event)
    return line


def configure(*, level: str = "info", fmt: str = "json") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s", force=True)
    rendering: list[Any] = (
        [_flux_shape, structlog.processors.JSONRenderer(separators=(",", ":"))]
        if fmt == "json"
        else [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            _redact,
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Looked up per logger, so a replaced sys.stderr (tests, daemons) is honoured.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
