"""Reading kustomize's YAML output the way Kubernetes tooling does.

Kustomize writes YAML 1.2, where ``yes``, ``on``, ``12:30`` and ``2024-01-01``
are plain strings; PyYAML's default resolver is YAML 1.1 and would turn them into
booleans, sexagesimal integers and dates, corrupting ConfigMap and Secret data.
:class:`ManifestLoader` resolves scalars with the YAML 1.2 core schema instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from fluxd.build.errors import ManifestError

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A safe loader resolving plain scalars with the YAML 1.2 core schema."""


# Start from no implicit resolvers at all, then add only YAML 1.2 core ones.
ManifestLoader.yaml_implicit_resolvers = {}
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null",
    re.compile(r"^(?:~|null|Null|NULL|)$"),
    ["~", "n", "N", ""],
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_str(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


ManifestLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
# Explicit !!timestamp tags are not used by Kubernetes; keep such values as text.
ManifestLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)

_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$")


def split_documents(stream: str) -> list[str]:
    """Split a multi-document YAML stream into non-empty document texts."""
    documents: list[str] = []
    current: list[str] = []
    for line in stream.splitlines(keepends=True):
        if _DOCUMENT_SEPARATOR.match(line.rstrip("\r\n")):
            documents.append("".join(current))
            current = []
        else:
            current.append(line)
    documents.append("".join(current))
    return [document for document in documents if document.strip()]


def load_documents(text: str, *, source: str) -> Iterator[Any]:
    """Parse every YAML document of ``text``; errors name ``source``."""
    try:
        yield from yaml.load_all(text, Loader=ManifestLoader)
    except yaml.YAMLError as error:
        raise ManifestError(
            f"failed to decode Kubernetes YAML from {source}: {_yaml_problem(error)}",
            path=source,
        ) from error


def load_object(text: str, *, source: str) -> dict[str, Any]:
    """Parse one document that must be a Kubernetes object."""
    documents = [document for document in load_documents(text, source=source) if document]
    if len(documents) != 1:
        raise ManifestError(f"expected one Kubernetes object in {source}", path=source)
    return require_object(documents[0], source=source)


def require_object(document: object, *, source: str) -> dict[str, Any]:
    """Check the apiVersion/kind/name every Kubernetes object needs."""
    if not isinstance(document, dict):
        raise ManifestError(
            f"failed to decode Kubernetes YAML from {source}: not a map", path=source
        )
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not (document.get("apiVersion") and document.get("kind") and name):
        raise ManifestError(
            f"failed to decode Kubernetes apiVersion, kind and name from {source}", path=source
        )
    return document


def object_id(obj: dict[str, Any]) -> str:
    """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as Flux prints objects."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "")
    kind = obj.get("kind", "")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return str(problem)
