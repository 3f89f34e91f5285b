"""CEL expressions in ${...}, when and shell strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from drawer.expr import ExprError, compile_expression
from drawer.loader import InvalidDrawer
from tests.conftest import RunText, load


def test_integers_stay_integers_and_hyphenated_ids_work(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          count: {type: integer, default: 3}
          region: {default: us-east}
          ratio: {type: number, default: 1}
        steps:
          - id: emit-ids
            run: printf 'a\\nb\\n'
          - id: double
            kind: value
            value: ${inputs.count * 2}
          - id: ids
            kind: value
            value: "${size(steps['emit-ids'].output.lines)} ids"
          - id: east
            when: inputs.region == 'us-east' && double.output == 6
            run: echo ${inputs.count * 2} ${inputs.ratio / 2.0}
          - id: west
            when: ${inputs.region == 'us-west'}
            run: echo never
        """
    )
    steps = result.steps
    assert steps["double"]["output"] == 6
    assert isinstance(steps["double"]["output"], int)
    assert steps["ids"]["output"] == "2 ids"
    assert steps["east"]["output"]["stdout"] == "6 0.5"
    assert steps["west"]["status"] == "skipped"


def test_runtime_type_error_fails_the_step_with_expr_error(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          ratio: {type: number, default: 3}
        steps:
          - id: mixed
            kind: value
            value: ${inputs.ratio / 2}
        """
    )
    error = result.steps["mixed"]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert "inputs.ratio / 2" in error["message"]


def test_syntax_errors_and_unknown_names_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(
            tmp_path,
            """
            inputs:
              count: {type: integer, default: 1}
            steps:
              - id: a
                kind: value
                value: ${inputs.count +}
              - id: b
                when: nope.status == 'ok' && inputs.cuont > 1
                run: echo hi
        """,
        )
    problems = caught.value.problems
    messages = [(p.position.line if p.position else 0, p.message) for p in problems]
    assert messages[0][0] == 7 and "Syntax error" in messages[0][1]
    assert problems[0].position is not None and problems[0].position.col == 28
    assert any(line == 9 and 'unknown name "nope"' in m for line, m in messages)
    assert any(line == 9 and 'no input "cuont"' in m for line, m in messages)


def test_compile_reports_offsets() -> None:
    with pytest.raises(ExprError) as caught:
        compile_expression("a +")
    assert caught.value.offset == 3
    assert compile_expression("x.y > steps['a-b'].output").step_ids == ("a-b",)


def test_macros_bind_their_own_variables_and_division_by_zero_is_an_error(
    run_text: RunText,
) -> None:
    result = run_text(
        """
        inputs:
          zero: {type: integer, default: 0}
        steps:
          - id: each
            kind: for_each
            over: [1, 2, 3]
            steps:
              - {id: sq, kind: value, value: "${item * item}"}
          - id: squares
            kind: value
            value: ${each.output.results.map(r, r.steps.sq.output)}
          - id: big
            kind: value
            value: ${each.output.results.filter(r, r.steps.sq.output > 3).size()}
          - id: broken
            kind: value
            value: ${10 / inputs.zero}
        """
    )
    assert result.steps["squares"]["output"] == [1, 4, 9]
    assert result.steps["big"]["output"] == 2
    assert result.steps["broken"]["error"]["code"] == "EXPR_ERROR"


def test_unknown_functions_are_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(
            tmp_path,
            """
            steps:
              - {id: a, kind: value, value: [1, 2]}
              - {id: b, kind: value, value: "${a.output.sum() + size(a.output)}"}
        """,
        )
    messages = [problem.message for problem in caught.value.problems]
    assert len(messages) == 1 and "unknown function sum()" in messages[0]


def test_an_undecodable_byte_reads_as_a_replacement_character_in_cel(run_text: RunText) -> None:
    """CEL strings are Unicode: a lone surrogate in a value (here from JSON) is U+FFFD there,
    not an EXPR_ERROR for every expression over that step (issue 11 item 16)."""
    result = run_text(
        r"""
        steps:
          - id: emit
            run: |
              printf '{"name": "caf\\udce9", "lone": "\\ud800"}'
          - id: joined
            when: ${emit.output.json.name.startsWith("caf")}
            kind: value
            value: ${emit.output.json.name + "/" + emit.output.json.lone}
        """
    )
    assert result.steps["joined"]["status"] == "ok", result.steps["joined"]["error"]
    assert result.steps["joined"]["output"] == "caf\ufffd/\ufffd"
