"""CEL health check expressions: compiling, Flux's evaluation order, and kstatus replaced."""

from __future__ import annotations

from typing import Any

import pytest

from fluxd.apply import Status, health
from fluxd.apply.cel import (
    EvaluationError,
    Expression,
    ExpressionError,
    HealthCheckExprs,
    dependency_ready,
    ready_expression,
)

SEALED = "bitnami.com/v1alpha1"
# The SealedSecret example of Flux's documentation, verbatim.
SEALED_ENTRY = {
    "apiVersion": SEALED,
    "kind": "SealedSecret",
    "failed": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')",
    "current": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')",
}


def sealed_secret(synced: str | None, *, generation: int = 1, observed: Any = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": observed}
    if synced is not None:
        status["conditions"] = [{"type": "Synced", "status": synced}]
    return {
        "apiVersion": SEALED,
        "kind": "SealedSecret",
        "metadata": {"name": "s", "namespace": "ns", "generation": generation},
        "status": status,
    }


@pytest.mark.parametrize(
    ("synced", "expected"),
    [
        pytest.param("True", Status.CURRENT, id="synced"),
        pytest.param("False", Status.FAILED, id="failed"),
        pytest.param("Unknown", Status.IN_PROGRESS, id="nothing-true-yet"),
    ],
)
def test_the_documented_sealed_secret_expressions_decide(synced: str, expected: Status) -> None:
    exprs = HealthCheckExprs.from_spec([SEALED_ENTRY])
    assert health(sealed_secret(synced), exprs=exprs).status is expected


def test_in_progress_is_asked_first_then_failed_then_current() -> None:
    exprs = HealthCheckExprs.from_spec(
        [{"apiVersion": SEALED, "current": "true", "failed": "true", "inProgress": "true"}]
    )
    assert health(sealed_secret("True"), exprs=exprs).status is Status.IN_PROGRESS
    exprs = HealthCheckExprs.from_spec(
        [{"apiVersion": SEALED, "current": "true", "failed": "true"}]
    )
    assert health(sealed_secret("True"), exprs=exprs).status is Status.FAILED


def test_a_stale_observed_generation_is_in_progress_whatever_the_expressions_say() -> None:
    exprs = HealthCheckExprs.from_spec([SEALED_ENTRY])
    stale = sealed_secret("True", generation=2, observed=1)
    assert health(stale, exprs=exprs).status is Status.IN_PROGRESS
    # A CRD that types observedGeneration as a string is left to the expressions.
    typed_as_string = sealed_secret("True", generation=2, observed="1")
    assert health(typed_as_string, exprs=exprs).status is Status.CURRENT


def test_expressions_replace_kstatus_for_their_kind() -> None:
    exprs = HealthCheckExprs.from_spec([SEALED_ENTRY])
    obj = sealed_secret("True")
    # kstatus alone would call it Failed: a Stalled condition is True.
    obj["status"]["conditions"].append({"type": "Stalled", "status": "True"})
    assert health(obj).status is Status.FAILED
    assert health(obj, exprs=exprs).status is Status.CURRENT


def test_other_kinds_keep_kstatus() -> None:
    exprs = HealthCheckExprs.from_spec([SEALED_ENTRY])
    other = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "warming"}]},
    }
    assert health(other, exprs=exprs).status is Status.IN_PROGRESS
    assert health(None, exprs=exprs).status is Status.NOT_FOUND


def test_an_entry_without_kind_covers_its_group_and_a_kind_entry_wins() -> None:
    exprs = HealthCheckExprs.from_spec(
        [
            {"apiVersion": "bitnami.com/v1", "current": "false"},
            {"apiVersion": SEALED, "kind": "SealedSecret", "current": "true"},
        ]
    )
    assert health(sealed_secret(None), exprs=exprs).status is Status.CURRENT
    # The version never matters: only the group is matched.
    other_kind = {**sealed_secret(None), "apiVersion": "bitnami.com/v2", "kind": "Other"}
    assert health(other_kind, exprs=exprs).status is Status.IN_PROGRESS


def test_an_expression_that_cannot_be_evaluated_is_unknown_and_says_why() -> None:
    exprs = HealthCheckExprs.from_spec([{"apiVersion": SEALED, "current": "status.phase == 'Up'"}])
    verdict = health(sealed_secret("True"), exprs=exprs)
    assert verdict.status is Status.UNKNOWN
    assert verdict.error == (
        "failed to evaluate the CEL expression 'status.phase == 'Up'': no such key: phase"
    )


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param(
            [{"apiVersion": SEALED, "current": "status.phase =="}],
            "failed to create custom status evaluator for healthchecks[0]: failed to parse the "
            "expression Current: failed to parse the CEL expression 'status.phase ==': ERROR: "
            "<input>:1:16: Syntax error: mismatched input '<EOF>'",
            id="syntax",
        ),
        pytest.param(
            [{"apiVersion": SEALED, "current": "true", "failed": "has(status)"}],
            "failed to create custom status evaluator for healthchecks[0]: failed to parse the "
            "expression Failed: failed to parse the CEL expression 'has(status)': ERROR: "
            "<input>:1:5: invalid argument to has() macro",
            id="has-of-a-variable",
        ),
        pytest.param(
            [{"apiVersion": SEALED, "current": ""}],
            "failed to create custom status evaluator for healthchecks[0]: "
            "expression Current not specified",
            id="no-current",
        ),
        pytest.param(
            [SEALED_ENTRY, {**SEALED_ENTRY, "apiVersion": "bitnami.com/v1"}],
            "duplicate custom health check for GroupKind SealedSecret.bitnami.com "
            "at healthchecks[1]",
            id="duplicate",
        ),
    ],
)
def test_bad_entries_are_refused_with_fluxs_message(
    entries: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ExpressionError) as raised:
        HealthCheckExprs.from_spec(entries)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("'a,b,c'.split(',') == ['a', 'b', 'c']", True, id="split"),
        pytest.param("'a,b,c'.split(',', 2) == ['a', 'b,c']", True, id="split-limit"),
        pytest.param("'Ready'.lowerAscii() == 'ready'", True, id="lowerAscii"),
        pytest.param("'Ready'.upperAscii() == 'READY'", True, id="upperAscii"),
        pytest.param("' v1 '.trim() == 'v1'", True, id="trim"),
        pytest.param("'v1.2.3'.replace('.', '-') == 'v1-2-3'", True, id="replace"),
        pytest.param("'v1.2.3'.indexOf('.') == 2", True, id="indexOf"),
        pytest.param("'v1.2.3'.lastIndexOf('.') == 4", True, id="lastIndexOf"),
        pytest.param("'v1.2.3'.substring(1, 4) == '1.2'", True, id="substring"),
        pytest.param("'v1'.charAt(1) == '1'", True, id="charAt"),
        pytest.param("['a', 'b'].join('/') == 'a/b'", True, id="join"),
        pytest.param("'main'.startsWith('ma') && 'main'.matches('^m.*n$')", True, id="builtins"),
        # Flux's environment compares numbers across types.
        pytest.param("2 == 2.0 && 3 > 2.5", True, id="cross-type-numbers"),
    ],
)
def test_the_string_functions_flux_enables_work(source: str, expected: bool) -> None:
    assert Expression.parse(source).evaluate_bool({}) is expected


def test_a_non_boolean_health_result_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match=r"as boolean: 'status\.phase'"):
        Expression.parse("status.phase").evaluate_bool({"status": {"phase": "Up"}})


# -- dependsOn[].readyExpr ----------------------------------------------------------


def kustomization(name: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 3, "labels": {"app/version": version}},
        "status": {
            "observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


# The lockstep example of Flux's documentation, verbatim.
LOCKSTEP = (
    "dep.metadata.labels['app/version'] == self.metadata.labels['app/version'] &&\n"
    "dep.status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True') &&\n"
    "dep.metadata.generation == dep.status.observedGeneration\n"
)


@pytest.mark.parametrize(
    ("dep_version", "ready"),
    [pytest.param("v1.2.3", True, id="same-version"), pytest.param("v1.2.2", False, id="behind")],
)
def test_the_documented_lockstep_expression(dep_version: str, ready: bool) -> None:
    expression = ready_expression(LOCKSTEP)
    self_obj = kustomization("app-frontend", "v1.2.3")
    dep = kustomization("app-backend", dep_version)
    assert dependency_ready(expression, self_obj=self_obj, dep=dep) is ready


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            "dep.status ==",
            "failed to parse the CEL expression 'dep.status ==': ERROR: <input>:1:14: Syntax error",
            id="syntax",
        ),
        pytest.param(
            "status.ready && dep.metadata.name == 'x'",
            "failed to parse the CEL expression 'status.ready && dep.metadata.name == 'x'': "
            "ERROR: undeclared reference to 'status'",
            id="undeclared",
        ),
    ],
)
def test_a_ready_expression_names_self_and_dep_only(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        ready_expression(source)
    assert str(raised.value).startswith(message)


def test_a_ready_expression_must_be_boolean() -> None:
    expression = ready_expression("dep.metadata.name")
    with pytest.raises(ExpressionError, match="expected bool, got string"):
        dependency_ready(expression, self_obj={}, dep={"metadata": {"name": "x"}})


def test_a_ready_expression_on_a_missing_field_fails_to_evaluate() -> None:
    expression = ready_expression("dep.metadata.labels['app/version'] == 'v1'")
    with pytest.raises(EvaluationError, match="no such key: labels"):
        dependency_ready(expression, self_obj={}, dep={"metadata": {"name": "x"}})
