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

Compiling and evaluating is ``fluxd.cel``'s, shared with the commit status
expressions of notification Providers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fluxd.apply.health import Health, Status
from fluxd.cel import EvaluationError, Expression, ExpressionError, cel_type

# What a dependency expression may name; anything else is an undeclared reference.
SELF = "self"
DEP = "dep"
_READY_EXPR_VARIABLES = frozenset({SELF, DEP})


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
            f"CEL expression output type mismatch: expected bool, got {cel_type(result)}"
        )
    return result


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
