"""CEL in Kustomizations: health check expressions and dependency ready expressions.

kustomize-controller evaluates two kinds of CEL expressions (fluxcd/pkg runtime/cel):

- ``spec.healthCheckExprs``: per API group (and optionally kind), a ``current``
  expression and optional ``inProgress`` and ``failed`` ones. They are only
  parsed, never type-checked, because custom resources may have any top-level
  fields; the object itself is the activation, so ``status.conditions`` names
  the object's own ``status``. They replace kstatus for the objects they match.
- ``spec.dependsOn[].readyExpr``: compiled against two variables, ``self``
  (the Kustomization being reconciled) and ``dep`` (its dependency), and must
  yield a boolean.

Expressions that cannot be compiled are configuration errors: the caller
stalls the Kustomization with reason ``InvalidCELExpression``. Messages follow
fluxcd/pkg's wording, so users see the text Flux would show.

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

from fluxd.apply.health import Health, Status

if TYPE_CHECKING:
    import cel

# What a dependency expression may name; anything else is an undeclared reference.
SELF = "self"
DEP = "dep"
_READY_EXPR_VARIABLES = frozenset({SELF, DEP})
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
            program = _cel().compile(source)
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
        context = _cel().Context(variables=dict(activation), functions=dict(_STRING_FUNCTIONS))
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


# -- health check expressions -----------------------------------------------------------


@dataclass(frozen=True)
class StatusEvaluator:
    """``current``/``inProgress``/``failed`` of one healthCheckExprs entry."""

    current: Expression
    failed: Expression | None = None
    in_progress: Expression | None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> StatusEvaluator:
        current = str(entry.get("current") or "")
        if not current:
            raise ExpressionError("expression Current not specified")
        failed = str(entry.get("failed") or "")
        in_progress = str(entry.get("inProgress") or "")
        return cls(
            current=_parse_named("Current", current),
            failed=_parse_named("Failed", failed) if failed else None,
            in_progress=_parse_named("InProgress", in_progress) if in_progress else None,
        )

    def evaluate(self, obj: Mapping[str, Any]) -> Health:
        """kstatus of ``obj`` by the expressions (RFC 0009 order: inProgress, failed, current)."""
        observed = _integer((obj.get("status") or {}).get("observedGeneration"))
        generation = _integer((obj.get("metadata") or {}).get("generation"))
        # A non-integer observedGeneration (some CRDs type it as a string) is left to the user.
        if observed is not None and generation is not None and observed != generation:
            return Health(
                Status.IN_PROGRESS,
                f"generation is {generation}, but latest observed generation is {observed}",
            )
        steps = (
            (self.in_progress, Status.IN_PROGRESS),
            (self.failed, Status.FAILED),
            (self.current, Status.CURRENT),
        )
        for expression, status in steps:
            if expression is None:
                continue
            try:
                matched = expression.evaluate_bool(obj)
            except EvaluationError as error:
                return Health(Status.UNKNOWN, str(error), error=str(error))
            if matched:
                return Health(status, f"{status.value} by the expression '{expression.source}'")
        return Health(Status.IN_PROGRESS, "no health check expression is true yet")


def _parse_named(name: str, source: str) -> Expression:
    try:
        return Expression.parse(source)
    except ExpressionError as error:
        raise ExpressionError(f"failed to parse the expression {name}: {error}") from error


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class HealthCheckExprs:
    """The evaluators of ``spec.healthCheckExprs``, by (group, kind); kind "" is group-wide."""

    evaluators: Mapping[tuple[str, str], StatusEvaluator]

    @classmethod
    def from_spec(cls, entries: Sequence[Mapping[str, Any]] | None) -> HealthCheckExprs:
        """Compile every entry; a bad or duplicate one raises :class:`ExpressionError`."""
        evaluators: dict[tuple[str, str], StatusEvaluator] = {}
        for index, entry in enumerate(entries or ()):
            key = (group_of(str(entry.get("apiVersion") or "")), str(entry.get("kind") or ""))
            if key in evaluators:
                group, kind = key
                shown = f"{kind}.{group}" if group else kind
                raise ExpressionError(
                    f"duplicate custom health check for GroupKind {shown} at healthchecks[{index}]"
                )
            try:
                evaluators[key] = StatusEvaluator.from_entry(entry)
            except ExpressionError as error:
                raise ExpressionError(
                    f"failed to create custom status evaluator for healthchecks[{index}]: {error}"
                ) from error
        return cls(evaluators)

    def __bool__(self) -> bool:
        return bool(self.evaluators)

    def evaluator_for(self, api_version: str, kind: str) -> StatusEvaluator | None:
        """The entry for this kind, else its group's kind-less entry, else None (kstatus)."""
        group = group_of(api_version)
        return self.evaluators.get((group, kind)) or self.evaluators.get((group, ""))


def group_of(api_version: str) -> str:
    """The group of ``group/version`` ("" for the core group's ``v1``); versions never matter."""
    group, slash, _ = api_version.partition("/")
    return group if slash else ""


# -- dependency ready expressions ----------------------------------------------------------


def ready_expression(source: str) -> Expression:
    """Compile a ``dependsOn[].readyExpr``, which may name ``self`` and ``dep`` only."""
    return Expression.parse(source, variables=_READY_EXPR_VARIABLES)


def dependency_ready(
    expression: Expression, *, self_obj: Mapping[str, Any], dep: Mapping[str, Any]
) -> bool:
    """Evaluate a ready expression; a non-boolean result is a configuration error."""
    result = expression.evaluate({SELF: self_obj, DEP: dep})
    if not isinstance(result, bool):
        raise ExpressionError(
            f"CEL expression output type mismatch: expected bool, got {_cel_type(result)}"
        )
    return result


def _cel_type(value: object) -> str:
    names = {str: "string", int: "int", float: "double", bytes: "bytes", list: "list", dict: "map"}
    return "null_type" if value is None else names.get(type(value), type(value).__name__)


__all__ = [
    "DEP",
    "SELF",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "HealthCheckExprs",
    "StatusEvaluator",
    "dependency_ready",
    "group_of",
    "ready_expression",
]
