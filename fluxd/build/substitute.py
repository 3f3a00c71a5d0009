"""Flux's post-build variable substitution (``spec.postBuild``).

After kustomize has built the objects, every object's YAML text has its
``${var}`` references expanded with bash-like rules: defaults (``${var:=x}``,
``${var:-x}``, ``${var=x}``), length, case changes, substrings, prefix/suffix
removal and replacement. ``$${var}`` is written out as a literal ``${var}`` and
a bare ``$var`` is left alone. As in Flux, substitution only runs when the spec
has a ``postBuild`` section and at least one variable is defined, or always with
``postBuild.substituteStrategy: Always`` (so ``${var:=default}`` applies with no
variables at all); objects labelled or annotated
``kustomize.toolkit.fluxcd.io/substitute: disabled`` are left untouched. In
strict mode an unset variable without a default is an error naming the
variable and the object. Variable values never appear in messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxd.build.errors import SubstitutionError
from fluxd.build.manifests import load_object, object_id
from fluxd.kube.secrets import InvalidSecretData, secret_bytes

SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"
DISABLED_VALUE = "disabled"
#: Flux validates every variable name with this pattern (POSIX classes, ASCII).
VARIABLE_NAME_PATTERN = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
_VARIABLE_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
_DEFAULT_OPERATORS = frozenset({"-", "+", "=", "?", ":-", ":+", ":=", ":?"})


class ExpansionError(Exception):
    """The text has a malformed ``${...}`` or, in strict mode, an unset variable."""


def collect_variables(
    *, inline: Mapping[str, str], referenced: Sequence[Mapping[str, str]] = ()
) -> dict[str, str]:
    """Merge ``substituteFrom`` data (in order, later wins) under the inline ``substitute``.

    ``referenced`` holds the data of each ConfigMap/Secret that exists, in spec
    order (Secret values already decoded, see :func:`referenced_variables`). Newlines
    are removed from values, as Flux does.
    """
    variables: dict[str, str] = {}
    for data in referenced:
        for name, value in data.items():
            variables[name] = value.replace("\n", "")
    for name, value in inline.items():
        variables[name] = value.replace("\n", "")
    return variables


def referenced_variables(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The variables one ``substituteFrom`` object provides: a ConfigMap's data, or a Secret's
    decoded data."""
    if kind != "Secret":
        return {str(name): str(value) for name, value in (obj.get("data") or {}).items()}
    try:
        values = secret_bytes(obj)
    except InvalidSecretData as error:
        raise SubstitutionError(str(error)) from None
    return {name: value.decode("utf-8", "replace") for name, value in values.items()}


def substitution_runs(*, post_build: bool, always: bool, variables: Mapping[str, str]) -> bool:
    """Whether a build substitutes: Flux's ``WithVariables`` (default) or ``Always`` strategy."""
    return post_build and (always or bool(variables))


def validate_variable_names(variables: Mapping[str, str]) -> None:
    for name in variables:
        if not _VARIABLE_NAME.match(name):
            raise SubstitutionError(
                f"'{name}' var name is invalid, must match '{VARIABLE_NAME_PATTERN}'"
            )


def is_substitution_disabled(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return DISABLED_VALUE in (labels.get(SUBSTITUTE_KEY), annotations.get(SUBSTITUTE_KEY))


def substitute_document(
    document: str, *, variables: Mapping[str, str], strict: bool, source: str = "build output"
) -> dict[str, Any]:
    """Parse one built object and expand its variables unless it opts out."""
    obj = load_object(document, source=source)
    if is_substitution_disabled(obj):
        return obj
    try:
        expanded = expand(document, variables=variables, strict=strict)
    except ExpansionError as error:
        identity = object_id(obj)
        raise SubstitutionError(
            f"post build failed for '{identity}': variable substitution failed: {error}",
            object_id=identity,
        ) from None
    return load_object(expanded, source=object_id(obj))


def expand(text: str, *, variables: Mapping[str, str], strict: bool) -> str:
    """Expand ``${...}`` references in ``text`` with Flux's envsubst rules."""
    nodes = _Parser(text).parse_text()

    def lookup(name: str) -> tuple[str, bool]:
        if name in variables:
            return variables[name], True
        return "", not strict

    return "".join(node.evaluate(lookup) for node in nodes)


# ---------------------------------------------------------------- syntax tree

Lookup = Callable[[str], tuple[str, bool]]


@dataclass
class _Text:
    value: str

    def evaluate(self, lookup: Lookup) -> str:
        return self.value


@dataclass
class _Reference:
    """``${param<operator>args...}``."""

    param: str
    operator: str = ""
    args: list[_Text | _Reference] = field(default_factory=list)

    def evaluate(self, lookup: Lookup) -> str:
        arguments = [argument.evaluate(lookup) for argument in self.args]
        value, exists = lookup(self.param)
        if not exists and self.operator not in _DEFAULT_OPERATORS:
            raise ExpansionError(f'variable not set (strict mode): "{self.param}"')
        return _apply(self.operator, value, arguments)


def _apply(operator: str, value: str, args: list[str]) -> str:
    if operator == "#" and not args:
        return str(len(value.encode("utf-8")))
    transforms: dict[str, Callable[[str, list[str]], str]] = {
        ",": lambda v, _: v[:1].lower() + v[1:],
        ",,": lambda v, _: v.lower(),
        "^": lambda v, _: v[:1].upper() + v[1:],
        "^^": lambda v, _: v.upper(),
        "#": lambda v, a: _trim_prefix(v, a[0], shortest=True),
        "##": lambda v, a: _trim_prefix(v, a[0], shortest=False),
        "%": lambda v, a: _trim_suffix(v, a[0], shortest=True),
        "%%": lambda v, a: _trim_suffix(v, a[0], shortest=False),
        ":": _substring,
        "/": lambda v, a: v.replace(a[0], a[1] if len(a) > 1 else "", 1),
        "//": lambda v, a: v.replace(a[0], a[1] if len(a) > 1 else ""),
        "/#": lambda v, a: a[1] + v[len(a[0]) :] if len(a) == 2 and v.startswith(a[0]) else v,
        "/%": lambda v, a: (
            v[: len(v) - len(a[0])] + a[1] if len(a) == 2 and v.endswith(a[0]) else v
        ),
    }
    transform = transforms.get(operator)
    if transform is not None:
        return transform(value, args)
    # Plain ${var} and every default operator: the value, or the joined default when empty.
    if not value and args:
        return "".join(args)
    return value


def _substring(value: str, args: list[str]) -> str:
    try:
        position = int(args[0])
    except ValueError:
        return value
    if position < 0:
        position = max(len(value) + position, 0)
    if len(args) == 1:
        return value[position:]
    try:
        length = int(args[1])
    except ValueError:
        return value
    if length < 0:
        end = len(value) + length
        return "" if end < position else value[position:end]
    return value[position : position + length]


def _glob(pattern: str) -> re.Pattern[str]:
    """Go ``path.Match`` patterns: ``*`` and ``?`` never match ``/``."""
    translated = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            translated.append("[^/]*")
        elif char == "?":
            translated.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                translated.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                if body.startswith("^"):
                    body = "^" + body[1:]
                translated.append(f"[{body}]")
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            translated.append(re.escape(pattern[index]))
        else:
            translated.append(re.escape(char))
        index += 1
    return re.compile("".join(translated) + r"\Z", re.DOTALL)


def _trim_prefix(value: str, pattern: str, *, shortest: bool) -> str:
    matcher = _glob(pattern)
    lengths = range(1, len(value) + 1) if shortest else range(len(value), 0, -1)
    for length in lengths:
        if matcher.match(value[:length]):
            return value[length:]
    return value


def _trim_suffix(value: str, pattern: str, *, shortest: bool) -> str:
    return _trim_prefix(value[::-1], pattern[::-1], shortest=shortest)[::-1]


# --------------------------------------------------------------------- parser


def _is_identifier(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def peek(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.text[index] if index < len(self.text) else ""

    def parse_text(self) -> list[_Text | _Reference]:
        nodes: list[_Text | _Reference] = []
        literal: list[str] = []
        while self.position < len(self.text):
            if self.peek() == "$" and self.peek(1) == "{":
                if literal:
                    nodes.append(_Text("".join(literal)))
                    literal = []
                self.position += 2
                nodes.append(self.parse_reference())
            elif self.peek() == "$" and self.peek(1) == "$":
                # "$$" is an escaped dollar: "$${var}" stays a literal "${var}".
                literal.append("$")
                self.position += 2
            else:
                literal.append(self.peek())
                self.position += 1
        if literal:
            nodes.append(_Text("".join(literal)))
        return nodes

    def parse_reference(self) -> _Reference:
        """Parse after ``${`` up to and including the closing brace."""
        if self.peek() == "#":
            self.position += 1
            name = self.identifier()
            if not name:
                raise ExpansionError("bad substitution")
            self.expect_close()
            return _Reference(param=name, operator="#")
        name = self.identifier()
        if not name:
            raise ExpansionError("unable to parse variable name")
        following = self.peek()
        if following == ":":
            if self.peek(1) in ("=", "-", "?", "+"):
                operator = ":" + self.peek(1)
                self.position += 2
                return self.parse_default(name, operator)
            self.position += 1
            return self.parse_substring(name)
        if following == "=":
            self.position += 1
            return self.parse_default(name, "=")
        if following in (",", "^"):
            operator = self.take_operator(lambda char: char in ",^")
            self.expect_close()
            return _Reference(param=name, operator=operator)
        if following == "/":
            return self.parse_replace(name)
        if following in ("#", "%"):
            operator = self.take_operator(lambda char: char == following)
            argument = self.parameter(stop="}", escapes=False)
            self.expect_close()
            return _Reference(param=name, operator=operator, args=[argument])
        if following != "}":
            raise ExpansionError("missing closing brace")
        self.position += 1
        return _Reference(param=name)

    def identifier(self) -> str:
        start = self.position
        while self.position < len(self.text) and _is_identifier(self.text[self.position]):
            self.position += 1
        return self.text[start : self.position]

    def take_operator(self, accepts: Callable[[str], bool]) -> str:
        operator = self.peek()
        self.position += 1
        if accepts(self.peek()):
            operator += self.peek()
            self.position += 1
        return operator

    def expect_close(self) -> None:
        if self.peek() != "}":
            raise ExpansionError("bad substitution")
        self.position += 1

    def parse_default(self, name: str, operator: str) -> _Reference:
        args: list[_Text | _Reference] = []
        while self.peek() != "}":
            if not self.peek():
                raise ExpansionError("unable to parse substitution within function")
            args.append(self.parameter(stop="}", escapes=False))
        self.position += 1
        return _Reference(param=name, operator=operator, args=args)

    def parse_substring(self, name: str) -> _Reference:
        args = [self.parameter(stop=":}", escapes=False)]
        if self.peek() == "}":
            self.position += 1
            return _Reference(param=name, operator=":", args=args)
        if self.peek() != ":":
            raise ExpansionError("bad substitution")
        self.position += 1
        args.append(self.parameter(stop="}", escapes=False))
        self.expect_close()
        return _Reference(param=name, operator=":", args=args)

    def parse_replace(self, name: str) -> _Reference:
        self.position += 1
        operator = "/"
        if self.peek() in ("/", "#", "%"):
            operator += self.peek()
            self.position += 1
        pattern: _Text | _Reference = (
            _Text("") if self.peek() == "/" else self.parameter(stop="/", escapes=True)
        )
        if self.peek() != "/":
            raise ExpansionError("bad substitution")
        self.position += 1
        if self.peek() == "}":
            self.position += 1
            return _Reference(param=name, operator=operator, args=[pattern])
        replacement = self.parameter(stop="}", escapes=True)
        self.expect_close()
        return _Reference(param=name, operator=operator, args=[pattern, replacement])

    def parameter(self, *, stop: str, escapes: bool) -> _Text | _Reference:
        """One argument: a nested ``${...}`` or a run of text up to ``stop`` or ``${``."""
        if self.peek() == "$" and self.peek(1) == "{":
            self.position += 2
            return self.parse_reference()
        literal: list[str] = []
        while self.position < len(self.text):
            char = self.peek()
            if char == "$" and self.peek(1) == "{":
                break
            if escapes and char == "$" and self.peek(1) == "$":
                literal.append("$")
                self.position += 2
                continue
            if escapes and char == "\\" and self.peek(1) in ("/", "\\"):
                literal.append(self.peek(1))
                self.position += 2
                continue
            if char in stop:
                break
            literal.append(char)
            self.position += 1
        if not literal:
            raise ExpansionError("unable to parse substitution within function")
        return _Text("".join(literal))
