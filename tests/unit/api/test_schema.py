"""The schema DSL: annotated TypedDicts become OpenAPI v3 structural schemas."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

import pytest

from fluxd.api.schema import (
    Default,
    Doc,
    ItemCount,
    Length,
    Pattern,
    Schema,
    UnstructuredObject,
    openapi_schema,
)


class Target(TypedDict, total=False):
    """Where a thing goes."""

    name: str
    labels: dict[str, str]


class Thing(TypedDict):
    """A thing."""

    name: Annotated[str, Doc("Name of the thing."), Length(1, 63), Pattern(r"^[a-z]+$")]
    mode: NotRequired[Annotated[Literal["fast", "slow"], Default("slow")]]
    count: NotRequired[int]
    ratio: NotRequired[float]
    enabled: bool
    targets: NotRequired[Annotated[list[Target], ItemCount(min=1)]]
    extra: NotRequired[UnstructuredObject]
    opaque: NotRequired[Annotated[Target, Schema({"type": "object"})]]


def test_typed_dict_becomes_an_object_with_required_keys() -> None:
    schema = openapi_schema(Thing)
    assert schema["type"] == "object"
    assert schema["description"] == "A thing."
    assert schema["required"] == ["enabled", "name"]
    assert "required" not in schema["properties"]["targets"]["items"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        pytest.param(
            "name",
            {
                "type": "string",
                "description": "Name of the thing.",
                "minLength": 1,
                "maxLength": 63,
                "pattern": "^[a-z]+$",
            },
            id="markers",
        ),
        pytest.param(
            "mode", {"type": "string", "enum": ["fast", "slow"], "default": "slow"}, id="enum"
        ),
        pytest.param("count", {"type": "integer", "format": "int64"}, id="integer"),
        pytest.param("ratio", {"type": "number"}, id="number"),
        pytest.param("enabled", {"type": "boolean"}, id="boolean"),
        pytest.param(
            "extra", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, id="free"
        ),
        pytest.param("opaque", {"type": "object"}, id="override"),
    ],
)
def test_field_schemas(field: str, expected: dict[str, object]) -> None:
    assert openapi_schema(Thing)["properties"][field] == expected


def test_lists_and_maps() -> None:
    targets = openapi_schema(Thing)["properties"]["targets"]
    assert targets["type"] == "array" and targets["minItems"] == 1
    assert targets["items"]["properties"]["labels"] == {
        "type": "object",
        "additionalProperties": {"type": "string"},
    }


def test_unsupported_types_are_refused() -> None:
    with pytest.raises(TypeError, match="no OpenAPI mapping"):
        openapi_schema(bytes)
    with pytest.raises(TypeError, match="map keys must be str"):
        openapi_schema(dict[int, str])
