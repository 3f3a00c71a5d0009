"""CEL expressions, compiled once and evaluated many times, with Flux's string library.

Flux evaluates CEL in several controllers through one package (fluxcd/pkg
runtime/cel): kustomize-controller's health checks and dependency ready
expressions, notification-controller's commit status keys. fluxd keeps the
compiling and evaluating here, below the layers that use it, so each of them
words its own errors but none of them wraps the library twice.

The engine is the Rust ``cel`` crate (``common-expression-language``). Flux's
environment adds cel-go's string extension library; its functions (``split``,
``lowerAscii``, ...) are provided here, so expressions from Flux's
documentation work unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cel

# Macros whose first argument binds a name inside the macro (``e`` in ``filter(e, ...)``).
_BINDING_MACRO = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
# The binding prefixes parse errors with its own sentence; Flux shows only the issues.
_PARSE_PREFIX = re.compile(r"^Failed to parse expression '.*?': ", re.DOTALL)


class ExpressionError(ValueError):
    """An expression cannot be compiled (a configuration error: the user must fix it)."""


class EvaluationError(RuntimeError):
    """An expression failed while evaluating (a missing field, a type mismatch, ...)."""


# -- cel-go's ext.Strings, as functions (receiver-style calls reach them too) --------------


def _index_of(text: str, sub: str, offset: int = 0) -> int:
    if not 0 <= offset <= len(text):
        _out_of_range(offset)
    return text.find(sub, offset)


def _last_index_of(text: str, sub: str, offset: int | None = None) -> int:
    return text.rfind(sub, 0, None if offset is None else offset + len(sub))


def _split(text: str, separator: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    return text.split(separator, limit - 1 if limit > 0 else -1)


def _substring(text: str, start: int, end: int | None = None) -> str:
    stop = len(text) if end is None else end
    if not 0 <= start <= stop <= len(text):
        _out_of_range(start if start < 0 or start > len(text) else stop)
    return text[start:stop]


def _replace(text: str, old: str, new: str, limit: int = -1) -> str:
    return text.replace(old, new, limit)


def _char_at(text: str, index: int) -> str:
    if not 0 <= index <= len(text):
        _out_of_range(index)
    return text[index : index + 1]


def _join(items: Sequence[str], separator: str = "") -> str:
    return separator.join(items)


def _out_of_range(index: int) -> None:
    raise IndexError(f"index out of range: {index}")


# -- cel-go's list.first() / list.last() -------------------------------------------------
# In cel-go they yield an optional, read with ``.value()``. The engine has optionals but
# no way for a function to return one, so ``.first().value()`` is read as ``.first()``
# returning the element itself: what the expressions Flux documents need
# (``uid.split('-').first().value()``).

_OPTIONAL_VALUE = re.compile(r"\.(first|last)\(\s*\)\s*\.value\(\s*\)")


def _first(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("optional.none() dereference")
    return items[0]


def _last(items: Sequence[Any]) -> Any:
    if not items:
        raise ValueError("optional.none() dereference")
    return items[-1]


_LIST_FUNCTIONS: Mapping[str, Callable[..., Any]] = {"first": _first, "last": _last}

_STRING_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "charAt": _char_at,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "lowerAscii": lambda text: _ascii_case(text, str.lower),
    "upperAscii": lambda text: _ascii_case(text, str.upper),
    "replace": _replace,
    "split": _split,
    "substring": _substring,
    "trim": lambda text: text.strip(),
    "join": _join,
    "reverse": lambda text: text[::-1],
}


_FUNCTIONS: Mapping[str, Callable[..., Any]] = {**_STRING_FUNCTIONS, **_LIST_FUNCTIONS}


def _ascii_case(text: str, change: Callable[[str], str]) -> str:
    return "".join(change(char) if char.isascii() else char for char in text)


# -- expressions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """One compiled expression, evaluated as many times as needed."""

    source: str
    program: cel.Program

    @classmethod
    def parse(cls, source: str, *, variables: frozenset[str] | None = None) -> Expression:
        """Compile ``source``; with ``variables``, naming anything else is an error."""
        try:
            program = _cel().compile(_OPTIONAL_VALUE.sub(r".\1()", source))
        except (ValueError, RuntimeError) as error:
            issues = _PARSE_PREFIX.sub("", str(error))
            raise ExpressionError(
                f"failed to parse the CEL expression '{source}': {issues}"
            ) from error
        if variables is not None:
            undeclared = _free_names(source, program) - variables
            if undeclared:
                names = ", ".join(f"'{name}'" for name in sorted(undeclared))
                raise ExpressionError(
                    f"failed to parse the CEL expression '{source}': "
                    f"ERROR: undeclared reference to {names}"
                )
        return cls(source, program)

    def evaluate(self, activation: Mapping[str, Any]) -> object:
        context = _cel().Context(variables=dict(activation), functions=_FUNCTIONS)
        try:
            return self.program.execute(context)
        except KeyError as error:
            raise self._failed(f"no such key: {error.args[0] if error.args else ''}") from error
        except Exception as error:  # the binding raises a builtin per CEL error kind
            raise self._failed(str(error)) from error

    def evaluate_bool(self, activation: Mapping[str, Any]) -> bool:
        result = self.evaluate(activation)
        if not isinstance(result, bool):
            raise EvaluationError(f"failed to evaluate CEL expression as boolean: '{self.source}'")
        return result

    def _failed(self, detail: str) -> EvaluationError:
        return EvaluationError(f"failed to evaluate the CEL expression '{self.source}': {detail}")


def _cel() -> Any:
    """The CEL library, imported on first use.

    Importing it loads its command line's dependencies too (about 28 MiB
    resident), which a daemon whose Kustomizations use no expression never
    needs.
    """
    import cel

    return cel


def _free_names(source: str, program: cel.Program) -> set[str]:
    # The binding lists every identifier, macro-bound ones included; those are not free.
    bound = set(_BINDING_MACRO.findall(source))
    return set(program.variables()) - bound


def cel_type(value: object) -> str:
    names = {str: "string", int: "int", float: "double", bytes: "bytes", list: "list", dict: "map"}
    return "null_type" if value is None else names.get(type(value), type(value).__name__)


__all__ = ["EvaluationError", "Expression", "ExpressionError", "cel_type"]
