"""repeat: the lowest satisfying iteration wins, failures, exhaustion, pacing, `until` scope."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio.testing

from drawer import events as ev
from drawer.loader import InvalidDrawer
from tests.conftest import RunText, load


def test_parallel_winner_is_the_lowest_satisfying_iteration(run_text: RunText) -> None:
    # Iterations 4 and 5 both satisfy; 5 finishes first. 6 waits until it is cancelled, and 4
    # waits for 6's process to be gone: 6 is cancelled only once 5 has been judged, so 4 ends
    # after 5, and being lower it still wins.
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 20
            parallelism: 3
            until: probe.output.stdout == 'ready'
            steps:
              - id: probe
                run: |
                  wait_for() { n=0; while ! eval "$1"; do
                    n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01; done; }
                  case ${index} in
                    4) wait_for '[ -s started-6 ]'
                       wait_for '! kill -0 "$(cat started-6)" 2>/dev/null'
                       echo ready ;;
                    5) wait_for '[ -s started-6 ]'; echo ready ;;
                    6) echo $$ > started-6; wait_for false ;;
                    *) echo "not yet" ;;
                  esac
        """
    )
    tries = result.steps["tries"]
    assert tries["status"] == "ok"
    output = tries["output"]
    assert output["winner"] == 4
    assert output["satisfied"] is True
    assert output["iterations"] == 7
    assert output["last"]["probe"]["stdout"] == "ready"
    statuses = [record["status"] for record in output["results"]]
    assert statuses == ["ok", "ok", "ok", "ok", "ok", "ok", "cancelled"]
    assert [record["index"] for record in output["results"]] == list(range(7))
    finished = [e.index for e in result.log.of(ev.IterationFinished)]
    assert finished.index(5) < finished.index(4)
    assert sorted(e.index for e in result.log.of(ev.IterationStarted)) == list(range(7))


def test_a_failed_iteration_does_not_end_the_repeat(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 10
            until: probe.output.stdout == 'ready'
            steps:
              - id: probe
                run: |
                  [ ${index} -ne 1 ] || exit 1
                  if [ ${index} -ge 3 ]; then echo ready; else echo "not yet"; fi
        """
    )
    output = result.steps["tries"]["output"]
    assert result.steps["tries"]["status"] == "ok"
    assert output["winner"] == 3
    assert output["iterations"] == 4
    assert [record["status"] for record in output["results"]] == ["ok", "failed", "ok", "ok"]
    error = output["results"][1]["error"]
    assert (error["code"], error["step_path"]) == ("STEP_FAILED", "tries#1.probe")


EXHAUSTING = """
steps:
  - id: tries
    kind: repeat
    max_iterations: 3
    on_exhausted: %s
    until: probe.output.stdout == 'ready'
    steps:
      - id: probe
        run: |
          echo "try ${index}"
          [ ${index} -ne 2 ] || exit 1
"""


def test_exhaustion_fails_with_repeat_exhausted(run_text: RunText) -> None:
    tries = run_text(EXHAUSTING % "fail").steps["tries"]
    assert tries["status"] == "failed"
    error = tries["error"]
    assert error["code"] == "REPEAT_EXHAUSTED"
    assert "after 3 iterations" in error["message"]
    assert "the last, tries#2, failed" in error["message"]
    assert error["cause"]["step_path"] == "tries#2.probe"
    assert tries["output"]["iterations"] == 3


def test_on_exhausted_ok_reports_the_highest_finished_iteration(run_text: RunText) -> None:
    result = run_text(EXHAUSTING % "ok")
    tries = result.steps["tries"]
    assert result.document["status"] == "ok"
    assert tries["status"] == "ok"
    output = tries["output"]
    assert (output["satisfied"], output["winner"], output["iterations"]) == (False, None, 3)
    assert output["last"]["probe"]["stdout"] == "try 2"


def test_on_item_failure_stop_fails_with_the_iterations_own_error(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 10
            on_item_failure: stop
            until: probe.output.stdout == 'ready'
            steps:
              - id: probe
                run: |
                  [ ${index} -ne 1 ] || exit 1
                  echo "not yet"
        """
    )
    tries = result.steps["tries"]
    assert tries["status"] == "failed"
    assert (tries["error"]["code"], tries["error"]["step_path"]) == (
        "STEP_FAILED",
        "tries#1.probe",
    )
    assert tries["output"]["iterations"] == 2
    assert [e.index for e in result.log.of(ev.IterationStarted)] == [0, 1]


def test_delay_spaces_iteration_starts(run_text: RunText) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 5
            delay: 1s
            until: ${index == 3}
            steps: [{id: v, kind: value, value: "${index}"}]
        """,
        clock=clock,
    )
    assert result.steps["tries"]["output"]["winner"] == 3
    starts = [e.clock for e in result.log.of(ev.IterationStarted)]
    gaps = [round(later - earlier, 6) for earlier, later in itertools.pairwise(starts)]
    assert gaps == [1.0, 1.0, 1.0]


def test_until_sees_the_body_and_the_index_variable(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          tries: {type: integer, default: 6}
        steps:
          - id: bare
            kind: repeat
            max_iterations: ${inputs.tries}
            parallelism: all
            index_as: attempt
            until: probe.output == 'ready' && attempt > 2
            steps:
              - id: probe
                kind: value
                value: "${attempt % 2 == 0 ? 'ready' : 'waiting'}"
          - id: template
            kind: repeat
            max_iterations: 5
            until: ${check.output.n == 2}
            steps: [{id: check, kind: value, value: {n: "${index}"}}]
        """
    )
    bare = result.steps["bare"]["output"]
    assert (bare["winner"], bare["last"]) == (4, {"probe": "ready"})
    assert result.steps["template"]["output"]["winner"] == 2
    started = result.log.of(ev.LoopStarted)
    assert [(e.total, e.parallelism) for e in started] == [(6, 6), (5, 1)]


def test_an_until_that_cannot_be_evaluated_fails_the_iteration(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 2
            until: probe.output.missing == 1
            steps: [{id: probe, kind: value, value: {n: 1}}]
        """
    )
    tries = result.steps["tries"]
    assert tries["error"]["code"] == "REPEAT_EXHAUSTED"
    first = tries["output"]["results"][0]
    assert first["status"] == "failed"
    assert first["error"]["step_path"] == "tries#0"
    assert first["error"]["message"].startswith("until: ")
    assert "no key 'missing'" in first["error"]["message"]


def test_until_referencing_an_unknown_step_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(
            tmp_path,
            """
            steps:
              - id: tries
                kind: repeat
                max_iterations: 3
                until: prob.output.stdout == 'ready'
                steps: [{id: probe, kind: value, value: 1}]
            """,
        )
    problems = [p for p in caught.value.problems if p.severity == "error"]
    assert len(problems) == 1
    assert 'unknown name "prob"' in problems[0].message
    assert problems[0].hint == 'did you mean "probe"?'


def test_retry_reruns_only_iterations_that_did_not_end_ok(
    run_text: RunText, tmp_path: Path
) -> None:
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 3
            on_item_failure: stop
            retry: {attempts: 2}
            until: probe.output.stdout == 'ready'
            steps:
              - id: probe
                run: |
                  echo ${index} >> runs.txt
                  if [ ${index} = 1 ] && [ ! -e again ]; then touch again; exit 1; fi
                  [ ${index} -lt 2 ] || echo ready
        """
    )
    tries = result.steps["tries"]
    assert (tries["status"], tries["attempts"]) == ("ok", 2)
    assert (tmp_path / "runs.txt").read_text().split() == ["0", "1", "1", "2"]
    assert tries["output"]["winner"] == 2


def test_a_timeout_keeps_the_iterations_that_ran(run_text: RunText) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 10
            delay: 1s
            timeout: 2500ms
            until: false
            steps: [{id: v, kind: value, value: "${index}"}]
        """,
        clock=clock,
    )
    tries = result.steps["tries"]
    assert tries["error"]["code"] == "TIMEOUT"
    assert tries["output"]["iterations"] == 3
    assert tries["output"]["last"] == {"v": 2}


def test_bad_max_iterations_reference_is_an_expression_error(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          n: {type: integer, default: 0}
        steps:
          - id: tries
            kind: repeat
            max_iterations: ${inputs.n}
            until: true
            steps: [{id: v, kind: value, value: 1}]
        """
    )
    error = result.steps["tries"]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert "max_iterations must be an integer >= 1, got 0" in error["message"]


def test_a_lower_failure_under_stop_beats_a_higher_success_and_retry_keeps_it(
    run_text: RunText, tmp_path: Path
) -> None:
    # First attempt: 1 satisfies, which cancels 2; 0 fails only once 2 is gone, so after 1
    # was judged. Iteration order decides, not timing: the lower failure ends the attempt.
    # The retry reruns 0 and keeps 1's verdict, so 1 wins without running again.
    result = run_text(
        """
        steps:
          - id: tries
            kind: repeat
            max_iterations: 5
            parallelism: 3
            on_item_failure: stop
            retry: {attempts: 2}
            until: probe.output.stdout == 'ready'
            steps:
              - id: probe
                run: |
                  echo ${index} >> runs.txt
                  wait_for() { n=0; while ! eval "$1"; do
                    n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01; done; }
                  case ${index} in
                    0) [ ! -e again ] || { echo "not yet"; exit 0; }
                       touch again
                       wait_for '[ -s started-2 ]'
                       wait_for '! kill -0 "$(cat started-2)" 2>/dev/null'
                       exit 1 ;;
                    1) wait_for '[ -s started-2 ]'; echo ready ;;
                    2) echo $$ > started-2; wait_for false ;;
                  esac
        """
    )
    tries = result.steps["tries"]
    assert (tries["status"], tries["attempts"]) == ("ok", 2)
    assert tries["output"]["winner"] == 1
    assert tries["output"]["iterations"] == 2
    runs = (tmp_path / "runs.txt").read_text().split()
    assert (sorted(runs[:3]), runs[3:]) == (["0", "1", "2"], ["0"])
    retrying = result.log.of(ev.StepRetrying)[0]
    assert (retrying.error.code, retrying.error.step_path) == ("STEP_FAILED", "tries#0.probe")
