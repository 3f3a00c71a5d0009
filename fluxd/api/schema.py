"""A small schema DSL: annotated TypedDicts in, OpenAPI v3 structural schemas out.

The TypedDicts that controllers use to read objects as plain dicts are also the
single source of truth for the CRDs.  Field types map to OpenAPI types
(``str``, ``bool``, ``int``, ``float``, ``list[...]``, ``dict[str, ...]``,
``Literal[...]`` for enums, nested TypedDicts for objects, ``object`` for
free-form JSON); ``NotRequired[...]`` marks optional fields; validation and
documentation ride along as ``Annotated[...]`` markers::

    class GitRepositoryRef(TypedDict, total=False):
        branch: Annotated[str, Doc("Branch to check out.")]

    interval: Annotated[str, Pattern(DURATION_PATTERN), Default("60s")]
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

if TYPE_CHECKING:
    from fluxd.api.meta import ResourceKind

SchemaDict = dict[str, Any]


@dataclass(frozen=True)
class Doc:
    """Field description, shown by ``kubectl explain``."""

    text: str

    def apply(self, schema: SchemaDict) -> None:
        schema["description"] = self.text


@dataclass(frozen=True)
class Pattern:
    """Regular expression a string must match (the apiserver searches, so anchor it)."""

    regex: str

    def apply(self, schema: SchemaDict) -> None:
        schema["pattern"] = self.regex


@dataclass(frozen=True)
class Default:
    """Value the apiserver fills in when the field is absent."""

    value: object

    def apply(self, schema: SchemaDict) -> None:
        schema["default"] = copy.deepcopy(self.value)


@dataclass(frozen=True)
class Length:
    """Bounds on a string's length."""

    min: int | None = None
    max: int | None = None

    def apply(self, schema: SchemaDict) -> None:
        if self.min is not None:
            schema["minLength"] = self.min
        if self.max is not None:
            schema["maxLength"] = self.max


@dataclass(frozen=True)
class ItemCount:
    """Bounds on a list's length."""

    min: int | None = None
    max: int | None = None

    def apply(self, schema: SchemaDict) -> None:
        if self.min is not None:
            schema["minItems"] = self.min
        if self.max is not None:
            schema["maxItems"] = self.max


@dataclass(frozen=True)
class Minimum:
    """Lower bound on a number."""

    value: int

    def apply(self, schema: SchemaDict) -> None:
        schema["minimum"] = self.value


@dataclass(frozen=True)
class Format:
    """OpenAPI format of a string or number (``date-time``, ``int64``)."""

    name: str

    def apply(self, schema: SchemaDict) -> None:
        schema["format"] = self.name


@dataclass(frozen=True)
class PreserveUnknownFields:
    """Keep fields the schema does not name instead of pruning them."""

    def apply(self, schema: SchemaDict) -> None:
        schema["x-kubernetes-preserve-unknown-fields"] = True


@dataclass(frozen=True)
class Schema:
    """Replace the schema derived from the Python type by this fragment."""

    fragment: SchemaDict = field(default_factory=dict)

    def apply(self, schema: SchemaDict) -> None:
        # Applied first, by openapi_schema, since it replaces the derived schema.
        return None


Marker = (
    Doc | Pattern | Default | Length | ItemCount | Minimum | Format | PreserveUnknownFields | Schema
)


# A JSON object kept as given: for fields fluxd stores but never interprets.
UnstructuredObject = Annotated[
    dict[str, object], Schema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]


@dataclass(frozen=True)
class Field:
    """One property of an object type, after unwrapping its annotations."""

    name: str
    annotation: object
    markers: tuple[Marker, ...]
    required: bool


def _unwrap(annotation: object) -> tuple[object, tuple[Marker, ...], bool | None]:
    """Strip ``Annotated``/``Required``/``NotRequired``; return type, markers, requiredness."""
    markers: list[Marker] = []
    required: bool | None = None
    current = annotation
    while True:
        origin = get_origin(current)
        if origin is Annotated:
            markers.extend(m for m in current.__metadata__ if _is_marker(m))  # type: ignore[attr-defined]
            current = get_args(current)[0]
        elif origin is NotRequired:
            required = False
            current = get_args(current)[0]
        elif origin is Required:
            required = True
            current = get_args(current)[0]
        else:
            return current, tuple(markers), required


def _is_marker(value: object) -> bool:
    return isinstance(value, Marker)


def object_fields(typed_dict: type) -> list[Field]:
    """The properties of a TypedDict, with requiredness read from the resolved hints.

    ``__required_keys__`` cannot be trusted under postponed annotations (the
    NotRequired wrapper is still a string when the class is built), so the
    resolved hints decide, falling back to the class's ``total``.
    """
    total = bool(getattr(typed_dict, "__total__", True))
    fields = []
    for name, hint in get_type_hints(typed_dict, include_extras=True).items():
        annotation, markers, required = _unwrap(hint)
        fields.append(
            Field(
                name=name,
                annotation=annotation,
                markers=markers,
                required=total if required is None else required,
            )
        )
    return fields


def _description(typed_dict: type) -> str | None:
    doc = typed_dict.__doc__
    if not doc:
        return None
    return " ".join(inspect.cleandoc(doc).split())


def openapi_schema(annotation: object) -> SchemaDict:
    """The OpenAPI v3 structural schema of a Python type annotation."""
    base, markers, _ = _unwrap(annotation)
    override = next((m for m in markers if isinstance(m, Schema)), None)
    schema = copy.deepcopy(override.fragment) if override else _base_schema(base)
    for marker in markers:
        marker.apply(schema)
    return schema


def _base_schema(base: object) -> SchemaDict:
    origin = get_origin(base)
    if isinstance(base, type) and is_typeddict(base):
        fields = object_fields(base)
        schema: SchemaDict = {"type": "object"}
        description = _description(base)
        if description:
            schema["description"] = description
        schema["properties"] = {f.name: openapi_schema(_rewrap(f)) for f in fields}
        required = sorted(f.name for f in fields if f.required)
        if required:
            schema["required"] = required
        return schema
    if base is str:
        return {"type": "string"}
    if base is bool:
        return {"type": "boolean"}
    if base is int:
        return {"type": "integer", "format": "int64"}
    if base is float:
        return {"type": "number"}
    if base is object:
        return {"x-kubernetes-preserve-unknown-fields": True}
    if origin is Literal:
        values = list(get_args(base))
        if not all(isinstance(value, str) for value in values):
            raise TypeError(f"only string enums are supported, got {base!r}")
        return {"type": "string", "enum": values}
    if origin is list:
        (item,) = get_args(base)
        return {"type": "array", "items": openapi_schema(item)}
    if origin is dict:
        key, value = get_args(base)
        if key is not str:
            raise TypeError(f"map keys must be str, got {base!r}")
        return {"type": "object", "additionalProperties": openapi_schema(value)}
    raise TypeError(f"no OpenAPI mapping for {base!r}")


def _rewrap(field_: Field) -> object:
    """The field's type with its markers, for a recursive openapi_schema call."""
    if not field_.markers:
        return field_.annotation
    return Annotated[(field_.annotation, *field_.markers)]


@dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry: a column of ``kubectl get``."""

    name: str
    type: str
    json_path: str
    priority: int = 0

    def manifest(self) -> SchemaDict:
        column: SchemaDict = {"jsonPath": self.json_path, "name": self.name, "type": self.type}
        if self.priority:
            column["priority"] = self.priority
        return column


# The columns every Flux kind shows.
AGE_COLUMN = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")
READY_COLUMN = PrinterColumn(
    name="Ready", type="string", json_path='.status.conditions[?(@.type=="Ready")].status'
)
STATUS_COLUMN = PrinterColumn(
    name="Status", type="string", json_path='.status.conditions[?(@.type=="Ready")].message'
)


@dataclass(frozen=True)
class CustomResource:
    """A kind served as a CRD: its identity, the TypedDict of a whole object, its columns."""

    kind: ResourceKind
    root: type
    printer_columns: tuple[PrinterColumn, ...] = (AGE_COLUMN,)

    @property
    def has_status(self) -> bool:
        """Whether the kind has a status, and so a status subresource."""
        return any(f.name == "status" for f in object_fields(self.root))

    def openapi_schema(self) -> SchemaDict:
        """The ``openAPIV3Schema`` of the kind.

        apiVersion, kind and metadata are typed as always present for code that
        reads objects, but enforcing them is the apiserver's job, not the CRD's.
        """
        schema = openapi_schema(self.root)
        required = [name for name in schema.get("required", []) if name not in _TYPE_META]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        return schema


_TYPE_META = frozenset({"apiVersion", "kind", "metadata"})
