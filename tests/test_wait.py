"""wait: a duration or a wall-clock time, on trio's MockClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio.testing

from drawer import events as ev
from tests.conftest import RunText


def step_clocks(log: ev.EventLog, path: str) -> tuple[float, float]:
    started = next(e.clock for e in log.of(ev.StepStarted) if e.path == path)
    finished = next(e.clock for e in log.of(ev.StepFinished) if e.path == path)
    return started, finished


def rfc3339_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_duration_sleeps_on_trios_clock(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          pause: {type: string, default: 1m}
        steps:
          - id: pause
            kind: wait
            duration: 30s
          - id: again
            kind: wait
            duration: ${inputs.pause}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.document["status"] == "ok"
    assert result.steps["pause"]["output"] == {"waited": 30.0}
    assert result.steps["again"]["output"] == {"waited": 60.0}
    started, finished = step_clocks(result.log, "pause")
    assert finished - started == 30.0
    assert step_clocks(result.log, "again")[0] == finished


def test_until_sleeps_to_a_wall_clock_time_given_by_reference(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          at: {type: string, required: true}
        steps:
          - id: later
            kind: wait
            until: ${inputs.at}
        """,
        [f"at={rfc3339_in(60)}"],
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.steps["later"]["status"] == "ok"
    started, finished = step_clocks(result.log, "later")
    # The target was 60 s ahead of the wall clock when the test computed it; the real time
    # spent loading and starting the run (well under 10 s) comes off the wait.
    assert 50.0 < finished - started <= 60.0
    assert result.steps["later"]["output"]["waited"] == round(finished - started, 3)


def test_until_in_the_past_returns_at_once(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: past
            kind: wait
            until: 2001-01-01T00:00:00+02:00
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.steps["past"]["output"] == {"waited": 0.0}
    started, finished = step_clocks(result.log, "past")
    assert finished == started


def test_timeout_bounds_the_wait_and_bad_values_fail(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          at: {type: string, default: next tuesday}
        steps:
          - id: long
            kind: wait
            duration: 1h
            timeout: 5s
            on_failure: continue
          - id: bad
            kind: wait
            until: ${inputs.at}
            on_failure: continue
          - id: number
            kind: wait
            until: ${1 + 1}
            on_failure: continue
          - id: listed
            kind: wait
            duration: ${[1]}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    long = result.steps["long"]
    assert long["status"] == "failed"
    assert long["error"]["code"] == "TIMEOUT"
    started, finished = step_clocks(result.log, "long")
    assert finished - started == 5.0
    bad = result.steps["bad"]
    assert bad["error"]["code"] == "EXPR_ERROR"
    assert "next tuesday" in bad["error"]["message"]
    for step_id, shown in (("number", "2"), ("listed", "[1]")):
        error = result.steps[step_id]["error"]
        assert error["code"] == "EXPR_ERROR"
        assert f"got {shown}" in error["message"]
