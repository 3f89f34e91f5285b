"""switch: the first true case runs, the default, no match, failures and step paths."""

from __future__ import annotations

from drawer import events as ev
from tests.conftest import RunText

ROUTE = """
inputs:
  n: {type: integer, default: 5}
steps:
  - id: size
    kind: value
    value: ${inputs.n}
  - id: route
    kind: switch
    env: {ROUTE_ENV: from-switch}
    cases:
      - when: ${size.output > 100}
        steps:
          - id: huge
            kind: value
            value: huge
      - when: size.output > 3
        steps:
          - id: x
            kind: value
            value: big ${size.output}
          - id: x2
            run: echo "$ROUTE_ENV ${x.output}"
      - when: "true"
        steps:
          - id: also
            kind: value
            value: never, an earlier case matched
    default:
      - id: y
        kind: value
        value: small
  - id: after
    kind: value
    value: ${route.output.matched}
"""


def started_paths(log: ev.EventLog) -> list[str]:
    return [event.path for event in log.of(ev.StepStarted)]


def test_first_true_case_runs_in_its_own_scope_with_indexed_paths(run_text: RunText) -> None:
    result = run_text(ROUTE)
    assert result.document["status"] == "ok"
    route = result.steps["route"]
    assert route["status"] == "ok"
    assert route["output"]["matched"] == 1
    steps = route["output"]["steps"]
    assert list(steps) == ["x", "x2"]
    assert steps["x"]["output"] == "big 5"
    assert steps["x2"]["output"]["stdout"] == "from-switch big 5"
    assert result.steps["after"]["output"] == 1
    assert started_paths(result.log) == ["size", "route", "route.1.x", "route.1.x2", "after"]


def test_default_runs_when_no_case_matches(run_text: RunText) -> None:
    text = ROUTE.replace('- when: "true"', '- when: "false"')
    result = run_text(text, ["n=2"])
    route = result.steps["route"]
    assert route["status"] == "ok"
    assert route["output"]["matched"] == "default"
    assert route["output"]["steps"]["y"]["output"] == "small"
    assert "route.default.y" in started_paths(result.log)
    assert result.steps["after"]["output"] == "default"


def test_no_match_without_default_is_ok_with_matched_null(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: route
            kind: switch
            cases:
              - when: false
                steps: [{id: a, kind: value, value: 1}]
          - id: after
            kind: value
            value: ${route.output}
        """
    )
    assert result.document["status"] == "ok"
    assert result.steps["route"]["status"] == "ok"
    assert result.steps["after"]["output"] == {"matched": None, "steps": {}}
    assert started_paths(result.log) == ["route", "after"]


def test_a_failing_case_fails_the_switch_with_the_lists_error(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: route
            kind: switch
            cases:
              - when: true
                steps:
                  - id: bad
                    run: exit 3
                  - id: later
                    kind: value
                    value: not reached
        """
    )
    route = result.steps["route"]
    assert result.document["status"] == "failed"
    assert route["status"] == "failed"
    assert route["error"]["code"] == "STEP_FAILED"
    assert route["error"]["step_path"] == "route.0.bad"
    assert route["output"]["matched"] == 0
    assert route["output"]["steps"]["later"]["status"] == "skipped"
    assert result.document["error"]["step_path"] == "route.0.bad"


def test_a_when_that_is_not_a_boolean_fails_with_expr_error(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          mode: {type: string, default: fast}
        steps:
          - id: route
            kind: switch
            cases:
              - when: ${inputs.mode}
                steps: [{id: a, kind: value, value: 1}]
        """
    )
    route = result.steps["route"]
    assert route["status"] == "failed"
    assert route["error"]["code"] == "EXPR_ERROR"
    assert route["error"]["step_path"] == "route"
    assert "fast" in route["error"]["message"]
