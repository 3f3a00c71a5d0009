"""Check objects against the CRD schemas before they reach the apiserver.

The CLI and tests use this to reject a bad GitRepository or Kustomization with
the same kind of message ``kubectl apply`` would print, without a cluster.  It
covers what fluxd's schemas use: types, required fields, enums, patterns,
lengths, minimums, item counts, date-time formats and unknown fields (the
apiserver's strict field validation, ``kubectl``'s default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fluxd.api.crds import custom_resource
from fluxd.api.duration import DURATION_PATTERN, SHORT_DURATION_PATTERN
from fluxd.api.errors import InvalidObject, Violation
from fluxd.api.schema import SchemaDict

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_PATTERN_HINTS = {
    DURATION_PATTERN: "a duration such as 30s, 5m or 1h30m",
    SHORT_DURATION_PATTERN: "a duration such as 500ms, 30s or 5m (no hours)",
}
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def validate_object(obj: Mapping[str, Any]) -> list[Violation]:
    """Every way ``obj`` breaks the schema of its kind; empty when it is valid.

    Raises UnknownKind when fluxd does not serve the object's apiVersion/kind.
    """
    resource = custom_resource(
        api_version=str(obj.get("apiVersion", "")), kind=str(obj.get("kind", ""))
    )
    return schema_violations(obj, resource.openapi_schema())


def ensure_valid(obj: Mapping[str, Any]) -> None:
    """Raise InvalidObject listing every violation when ``obj`` breaks its kind's schema."""
    violations = validate_object(obj)
    if violations:
        metadata = obj.get("metadata")
        name = str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""
        raise InvalidObject(kind=str(obj.get("kind", "")), name=name, violations=violations)


def schema_violations(value: object, schema: SchemaDict, *, path: str = "") -> list[Violation]:
    """Every way ``value`` breaks an OpenAPI v3 structural ``schema``, at ``path``."""
    violations: list[Violation] = []
    _check(value, schema, path, violations)
    return violations


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_matches(value: object, expected: str) -> bool:
    if isinstance(value, bool) and expected not in ("boolean",):
        return False
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


def _check(value: object, schema: SchemaDict, path: str, out: list[Violation]) -> None:
    expected = schema.get("type")
    if expected is None:
        # Only free-form nodes (x-kubernetes-preserve-unknown-fields) carry no type.
        return
    if not _type_matches(value, expected):
        out.append(Violation(path, f"Invalid value: {_show(value)}: must be of type {expected}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(choice) for choice in schema["enum"])
        out.append(
            Violation(path, f"Unsupported value: {_show(value)}: supported values: {supported}")
        )
    if isinstance(value, str):
        _check_string(value, schema, path, out)
    elif isinstance(value, int | float) and "minimum" in schema and value < schema["minimum"]:
        out.append(
            Violation(
                path,
                f"Invalid value: {_show(value)}: should be greater than or equal to "
                f"{schema['minimum']}",
            )
        )
    elif isinstance(value, list):
        _check_array(value, schema, path, out)
    elif isinstance(value, dict):
        _check_object(value, schema, path, out)


def _check_string(value: str, schema: SchemaDict, path: str, out: list[Violation]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(
            Violation(
                path,
                f"Invalid value: {_show(value)}: should be at least {schema['minLength']} "
                "chars long",
            )
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(
            Violation(
                path,
                f"Too long: may not be longer than {schema['maxLength']} chars",
            )
        )
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        hint = _PATTERN_HINTS.get(pattern)
        wanted = f"{hint}, matching '{pattern}'" if hint else f"should match '{pattern}'"
        out.append(Violation(path, f"Invalid value: {_show(value)}: {wanted}"))
    if schema.get("format") == "date-time" and not _is_date_time(value):
        out.append(Violation(path, f"Invalid value: {_show(value)}: must be an RFC 3339 date-time"))


def _is_date_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value.upper()


def _check_array(value: list[Any], schema: SchemaDict, path: str, out: list[Violation]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(Violation(path, f"Invalid value: must have at least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        out.append(Violation(path, f"Too many: must have at most {schema['maxItems']} items"))
    items = schema.get("items")
    if items is not None:
        for index, item in enumerate(value):
            _check(item, items, f"{path}[{index}]", out)


def _check_object(
    value: dict[str, Any], schema: SchemaDict, path: str, out: list[Violation]
) -> None:
    properties: dict[str, SchemaDict] = schema.get("properties", {})
    additional: SchemaDict | None = schema.get("additionalProperties")
    prefix = f"{path}." if path else ""
    for name in schema.get("required", []):
        # The apiserver drops nulls of non-nullable fields, so null counts as absent.
        if value.get(name) is None:
            out.append(Violation(f"{prefix}{name}", "Required value"))
    free_form = schema.get(_PRESERVE, False) or (not properties and additional is None)
    for name, item in value.items():
        if item is None:
            continue
        if name in properties:
            _check(item, properties[name], f"{prefix}{name}", out)
        elif additional is not None:
            _check(item, additional, f"{prefix}{name}", out)
        elif not free_form:
            out.append(Violation(f"{prefix}{name}", "unknown field"))
