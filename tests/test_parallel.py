"""parallel: failure policies, tolerance, max_parallelism and delay, scopes, paths, retries."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import trio.testing

from drawer import events as ev
from drawer.loader import InvalidDrawer
from tests.conftest import RunText, load, until

NEVER = until("[ -e never ]")


def running_peak(log: ev.EventLog, loop_path: str) -> int:
    """The most branches of one parallel step running at once, from its events."""
    running = peak = 0
    for event in log.events:
        if isinstance(event, ev.IterationStarted) and event.loop_path == loop_path:
            running += 1
            peak = max(peak, running)
        elif isinstance(event, ev.IterationFinished) and event.loop_path == loop_path:
            running -= 1
    return peak


def test_stop_cancels_running_branches_and_names_lowest_own_failure(run_text: RunText) -> None:
    # b3 fails first (tolerated), freeing the slot b4 takes; b4's start lets b2 fail, which
    # is one failure too many: b0, g1 and b4 are blocked on a file that never appears and
    # are cancelled, b5 never starts. b2 failed after b3 but has the lower index.
    result = run_text(
        f"""
        steps:
          - id: block
            kind: parallel
            max_parallelism: 4
            tolerate: 1
            branches:
              - id: b0
                run: touch started-0; {NEVER}
              - id: g1
                steps:
                  - id: x
                    kind: value
                    value: x
                  - id: y
                    run: '{NEVER}'
              - id: b2
                run: '{until("[ -e started-4 ]")}; exit 2'
              - id: b3
                run: '{until("[ -e started-0 ]")}; exit 3'
              - id: b4
                run: touch started-4; {NEVER}
              - id: b5
                kind: value
                value: never started
        """
    )
    block = result.steps["block"]
    assert block["status"] == "failed"
    error = block["error"]
    assert error["code"] == "PARALLEL_BRANCH_FAILED"
    assert error["step_path"] == "block"
    assert error["message"].startswith("2 of 6 branches failed (tolerate 1)")
    assert error["cause"]["step_path"] == "block.b2"
    assert error["cause"]["code"] == "STEP_FAILED"
    output = block["output"]
    assert list(output) == ["b0", "g1", "b2", "b3", "b4", "b5"]
    statuses = {branch: record["status"] for branch, record in output.items()}
    assert statuses == {
        "b0": "cancelled",
        "g1": "cancelled",
        "b2": "failed",
        "b3": "failed",
        "b4": "cancelled",
        "b5": "skipped",
    }
    assert output["b0"]["error"]["code"] == "CANCELLED"
    assert output["g1"]["error"] == {
        "code": "CANCELLED",
        "message": "block.g1 was cancelled",
        "step_path": "block.g1",
        "cause": None,
    }
    assert output["g1"]["output"]["x"] == "x"
    assert output["b5"]["error"]["code"] == "DEPENDENCY_FAILED"
    assert output["b5"]["error"]["step_path"] == "block.b5"
    assert {e.index for e in result.log.of(ev.IterationStarted)} == {0, 1, 2, 3, 4}
    finished = {e.index: e.status for e in result.log.of(ev.IterationFinished)}
    assert finished == {0: "cancelled", 1: "cancelled", 2: "failed", 3: "failed", 4: "cancelled"}
    assert result.document["status"] == "failed"
    assert result.document["error"]["code"] == "PARALLEL_BRANCH_FAILED"


POLICY = """
steps:
  - id: data
    kind: value
    value: {}
  - id: block
    kind: parallel
    max_parallelism: 2
    on_branch_failure: %s
    branches:
      # a two-item loop with a 1s delay: a branch that takes one (mock) second, no process
      - id: slow
        kind: for_each
        over: [1, 2]
        delay: 1s
        steps:
          - {id: tick, kind: value, value: "${item}"}
      - id: broken
        kind: value
        value: ${data.output.missing}
      - {id: third, kind: value, value: 3}
      - {id: fourth, kind: value, value: 4}
"""


@pytest.mark.parametrize(
    ("policy", "statuses"),
    [
        ("stop", ["cancelled", "failed", "skipped", "skipped"]),
        ("finish", ["ok", "failed", "skipped", "skipped"]),
        ("continue", ["ok", "failed", "ok", "ok"]),
    ],
)
def test_policies_decide_what_the_first_failure_does_to_the_others(
    run_text: RunText, policy: str, statuses: list[str]
) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(POLICY % policy, clock=clock)
    block = result.steps["block"]
    assert [record["status"] for record in block["output"].values()] == statuses
    assert block["status"] == "failed"
    assert block["error"]["code"] == "PARALLEL_BRANCH_FAILED"
    assert block["error"]["cause"]["code"] == "REF_UNRESOLVED"
    assert block["error"]["cause"]["step_path"] == "block.broken"
    started = [e.index for e in result.log.of(ev.IterationStarted) if e.loop_path == "block"]
    assert started == [0, 1, 2, 3] if policy == "continue" else [0, 1]


CONTINUE = """
steps:
  - id: block
    kind: parallel
    on_branch_failure: continue
    tolerate: %s
    branches:
      - {id: one, kind: value, value: 1}
      - {id: bad, run: exit 4}
      - {id: two, run: echo 2}
      - {id: off, kind: value, value: 0, when: false}
      - id: g
        steps:
          - {id: gx, kind: value, value: x}
          - {id: gbad, run: exit 5}
          - {id: gz, kind: value, value: z}
"""


def test_continue_runs_every_branch_and_keeps_the_outputs_of_ok_ones(run_text: RunText) -> None:
    result = run_text(CONTINUE % 0)
    block = result.steps["block"]
    assert block["status"] == "failed"
    assert block["error"]["message"].startswith("2 of 5 branches failed;")
    assert block["error"]["cause"]["step_path"] == "block.bad"
    output = block["output"]
    assert output["one"]["output"] == 1
    assert output["two"]["output"]["stdout"] == "2"
    assert output["off"]["status"] == "skipped"  # when: false counts as done, not failed
    assert output["bad"]["output"]["exit_code"] == 4
    group = output["g"]
    assert group["status"] == "failed"
    assert group["error"]["step_path"] == "block.g.gbad"
    assert group["output"]["gx"] == "x"
    assert group["output"]["gbad"]["exit_code"] == 5
    assert group["output"]["gz"] is None
    assert len(result.log.of(ev.IterationStarted)) == 5


@pytest.mark.parametrize(
    ("tolerate", "status"),
    [("1", "failed"), ("2", "ok"), ('"40%"', "ok"), ('"39%"', "failed"), ('"100%"', "ok")],
)
def test_tolerate_counts_or_percent_of_the_branches(
    run_text: RunText, tolerate: str, status: str
) -> None:
    # two of five branches fail: 40% of 5 is 2, 39% of 5 is floor(1.95) = 1
    assert run_text(CONTINUE % tolerate).steps["block"]["status"] == status


def test_max_parallelism_bounds_the_branches_running_at_once(run_text: RunText) -> None:
    # Each pair of branches waits for the other (the 5th for all), so two really overlap;
    # a third would have to start for the limit to be broken.
    counted = '[ "$(ls arrived-* | wc -l)" -ge {} ]'
    branches = "".join(
        f"""
              - id: b{index}
                run: touch arrived-{index}; {until(counted.format(needed))}"""
        for index, needed in enumerate([2, 2, 4, 4, 5])
    )
    result = run_text(
        f"""
        steps:
          - id: block
            kind: parallel
            max_parallelism: 2
            branches:{branches}
        """
    )
    assert result.steps["block"]["status"] == "ok"
    assert result.log.of(ev.LoopStarted)[0].parallelism == 2
    assert running_peak(result.log, "block") == 2
    assert result.log.max_concurrent_commands() == 2
    started = [e.index for e in result.log.of(ev.IterationStarted)]
    assert started == [0, 1, 2, 3, 4]


def test_delay_spaces_launches_and_max_parallelism_takes_a_reference(run_text: RunText) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        """
        inputs:
          width: {type: integer, default: 3}
        steps:
          - id: block
            kind: parallel
            max_parallelism: ${inputs.width}
            delay: 0.2s
            branches:
              - {id: a, kind: value, value: a}
              - {id: b, kind: value, value: b}
              - {id: c, kind: value, value: c}
              - {id: d, kind: value, value: d}
        """,
        clock=clock,
    )
    assert result.steps["block"]["status"] == "ok"
    assert result.log.of(ev.LoopStarted)[0].parallelism == 3
    started = result.log.of(ev.IterationStarted)
    assert [e.index for e in started] == [0, 1, 2, 3]
    gaps = [round(later.clock - earlier.clock, 6) for earlier, later in itertools.pairwise(started)]
    assert gaps == [0.2, 0.2, 0.2]


@pytest.mark.parametrize("policy", ["stop", "finish"])
def test_a_branch_waiting_for_its_turn_does_not_start_after_a_failure(
    run_text: RunText, policy: str
) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        f"""
        steps:
          - id: data
            kind: value
            value: {{}}
          - id: block
            kind: parallel
            delay: 1s
            on_branch_failure: {policy}
            branches:
              - {{id: broken, kind: value, value: "${{data.output.missing}}"}}
              - {{id: a, kind: value, value: a}}
              - {{id: b, kind: value, value: b}}
        """,
        clock=clock,
    )
    output = result.steps["block"]["output"]
    assert [record["status"] for record in output.values()] == ["failed", "skipped", "skipped"]
    assert output["a"]["error"] == {
        "code": "DEPENDENCY_FAILED",
        "message": "not started: block.broken failed",
        "step_path": "block.a",
        "cause": None,
    }
    assert [e.index for e in result.log.of(ev.IterationStarted)] == [0]


def test_serial_execution_runs_one_branch_at_a_time(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          parallel: false
        steps:
          - id: block
            kind: parallel
            branches:
              - {id: a, kind: value, value: a}
              - {id: b, kind: value, value: b}
        """
    )
    assert result.steps["block"]["status"] == "ok"
    assert result.log.of(ev.LoopStarted)[0].parallelism == 1


def test_max_parallelism_that_resolves_to_nonsense_fails_the_step(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          width: {default: many}
        steps:
          - id: block
            kind: parallel
            max_parallelism: ${inputs.width}
            branches:
              - {id: a, kind: value, value: a}
        """
    )
    error = result.steps["block"]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert "max_parallelism must be" in error["message"]
    assert not result.log.of(ev.IterationStarted)


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, text)
    return [
        (p.position.line, p.position.col, p.message)
        for p in caught.value.problems
        if p.position is not None and p.severity == "error"
    ]


def test_a_branch_never_sees_a_sibling_branch(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
        steps:
          - id: block
            kind: parallel
            branches:
              - {id: b1, kind: value, value: one}
              - id: b2
                kind: value
                value: ${b1.output}
              - id: g1
                steps:
                  - {id: x, kind: value, value: "${b2.status}"}
        """,
    )
    assert [(line, col) for line, col, _ in problems] == [(9, 16), (12, 42)]
    assert '"b1" is inside "block" and cannot be referenced' in problems[0][2]
    assert '"b2" is inside "block" and cannot be referenced' in problems[1][2]


def test_a_group_step_is_not_referable_outside_its_group(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
        steps:
          - id: block
            kind: parallel
            branches:
              - id: g1
                steps:
                  - {id: x, kind: value, value: x}
              - {id: b2, kind: value, value: "${x.output}"}
          - id: after
            kind: value
            value: ${x.output}
        """,
    )
    assert [(line, col) for line, col, _ in problems] == [(9, 39), (12, 12)]
    assert all('"x" is inside "g1"' in message for _, _, message in problems)


def test_a_single_step_branch_is_referable_by_id_after_the_parallel_step(
    run_text: RunText,
) -> None:
    result = run_text(
        """
        steps:
          - id: block
            kind: parallel
            branches:
              - id: b1
                run: "echo '{\\"result\\": 42}'"
              - id: g1
                steps:
                  - {id: x, kind: value, value: x}
                  - {id: y, kind: value, value: "${x.output}-y"}
          - id: after
            kind: value
            value:
              plain: ${b1.output.json.result}
              expression: ${b1.output.json.result * 2}
              status: ${steps.b1.status}
              group: ${block.output.g1.output.y}
          - id: dag
            depends_on: [block]
            run: echo ${b1.output.json.result}
        """
    )
    assert result.document["status"] == "ok"
    assert result.steps["after"]["output"] == {
        "plain": 42,
        "expression": 84,
        "status": "ok",
        "group": "x-y",
    }
    assert result.steps["dag"]["output"]["stdout"] == "42"
    assert list(result.steps) == ["block", "after", "dag"]


def test_branches_see_what_the_parallel_step_sees_and_paths_name_them(
    run_text: RunText,
) -> None:
    result = run_text(
        """
        steps:
          - id: data
            kind: value
            value: {greeting: hi}
          - id: each
            kind: for_each
            over: [a, b]
            steps:
              - id: block
                kind: parallel
                env: {COLOR: blue}
                branches:
                  - id: b1
                    run: echo ${data.output.greeting}-${item}-$COLOR
                  - id: g1
                    steps:
                      - id: x
                        run: echo "$DRAWER_ITEM-$COLOR"
                      - id: fail
                        run: exit 1
                        on_failure: continue
              - id: after
                kind: value
                value: ${b1.output.stdout}
        """
    )
    assert result.document["status"] == "ok"
    results = result.steps["each"]["output"]["results"]
    assert [r["steps"]["after"]["output"] for r in results] == ["hi-a-blue", "hi-b-blue"]
    assert list(results[0]["steps"]) == ["block", "after"]
    group = results[1]["steps"]["block"]["output"]["g1"]
    assert group["status"] == "ok"
    assert group["output"]["x"]["stdout"] == "b-blue"
    steps = {e.path for e in result.log.of(ev.StepStarted)}
    assert {"each[0].block.b1", "each[0].block.g1.x", "each[1].block.g1.fail"} <= steps
    loops = {e.loop_path for e in result.log.of(ev.IterationStarted)}
    assert loops == {"each", "each[0].block", "each[1].block"}
    commands = {e.path for e in result.log.of(ev.CommandStarted)}
    assert "each[1].block.g1.x" in commands


def test_step_paths_in_records_and_events(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: block
            kind: parallel
            on_branch_failure: continue
            branches:
              - {id: b1, run: exit 3}
              - id: g1
                steps:
                  - {id: x, run: exit 4}
        """
    )
    output = result.steps["block"]["output"]
    assert output["b1"]["error"]["step_path"] == "block.b1"
    assert output["g1"]["error"]["step_path"] == "block.g1.x"
    started = [e.path for e in result.log.of(ev.StepStarted)]
    assert started == ["block", "block.b1", "block.g1.x"]
    assert {e.path for e in result.log.of(ev.CommandFinished)} == {"block.b1", "block.g1.x"}
    assert {(e.loop_path, e.index) for e in result.log.of(ev.IterationFinished)} == {
        ("block", 0),
        ("block", 1),
    }


def test_for_each_in_parallel_in_for_each_respects_max_processes(run_text: RunText) -> None:
    # The first two commands wait for each other, so two really run at once; a third
    # at the same time would break the budget.
    barrier = "mktemp arrived.XXXXXX >/dev/null; " + until('[ "$(ls arrived.* | wc -l)" -ge 2 ]')
    result = run_text(
        f"""
        execution:
          max_processes: 2
        steps:
          - id: outer
            kind: for_each
            over: [a, b]
            parallelism: all
            steps:
              - id: block
                kind: parallel
                branches:
                  - id: inner
                    kind: for_each
                    over: [1, 2, 3]
                    as: n
                    index_as: ni
                    parallelism: all
                    steps:
                      - id: build
                        run: {barrier}; echo ${{item}}-${{n}}
                  - id: g
                    steps:
                      - id: lint
                        run: {barrier}; echo lint-${{item}}
                      - id: check
                        run: {barrier}; echo check-${{item}}
        """
    )
    assert result.document["status"] == "ok"
    assert len(result.log.of(ev.CommandStarted)) == 10
    assert result.log.max_concurrent_commands() == 2
    second = result.steps["outer"]["output"]["results"][1]["steps"]["block"]["output"]
    builds = second["inner"]["output"]["results"]
    assert [r["steps"]["build"]["output"]["stdout"] for r in builds] == ["b-1", "b-2", "b-3"]
    assert second["g"]["output"]["check"]["stdout"] == "check-b"


def test_retry_reruns_only_the_failed_branches(run_text: RunText, tmp_path: Path) -> None:
    result = run_text(
        """
        steps:
          - id: block
            kind: parallel
            on_branch_failure: continue
            retry: {attempts: 2}
            branches:
              - id: steady
                run: echo steady >> runs.txt
              - id: flaky
                run: |
                  echo flaky >> runs.txt
                  if [ ! -e again ]; then touch again; exit 1; fi
              - id: g
                steps:
                  - {id: gx, run: echo g >> runs.txt}
        """
    )
    block = result.steps["block"]
    assert block["status"] == "ok"
    assert block["attempts"] == 2
    assert sorted((tmp_path / "runs.txt").read_text().split()) == ["flaky", "flaky", "g", "steady"]
    assert {name: record["status"] for name, record in block["output"].items()} == {
        "steady": "ok",
        "flaky": "ok",
        "g": "ok",
    }
    assert [e.index for e in result.log.of(ev.IterationStarted)] == [0, 1, 2, 1]


def test_timeout_keeps_finished_branches_and_exports_them(run_text: RunText) -> None:
    result = run_text(
        f"""
        steps:
          - id: block
            kind: parallel
            max_parallelism: 1
            timeout: 500ms
            on_failure: continue
            branches:
              - {{id: b0, kind: value, value: zero}}
              - {{id: b1, run: '{NEVER}'}}
              - {{id: b2, kind: value, value: two}}
          - id: after
            kind: value
            value: ${{b0.output}} ${{b1.status}} ${{b2.status}}
        """
    )
    block = result.steps["block"]
    assert block["status"] == "failed"
    assert block["error"]["code"] == "TIMEOUT"
    statuses = [record["status"] for record in block["output"].values()]
    assert statuses == ["ok", "cancelled", "skipped"]
    assert block["output"]["b2"]["error"]["code"] == "CANCELLED"  # never started: it says why
    assert result.steps["after"]["output"] == "zero cancelled skipped"
    assert result.document["status"] == "ok"
