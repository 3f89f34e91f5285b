"""Step lists (chains and DAGs), when, on_failure, retry, timeouts and the run document."""

from __future__ import annotations

from pathlib import Path

import trio.testing

from drawer import events as ev
from tests.conftest import RunText, is_alive, until


def _order(result_log: ev.EventLog) -> list[str]:
    return [
        f"{'start' if isinstance(e, ev.StepStarted) else 'end'} {e.path}"
        for e in result_log.events
        if isinstance(e, ev.StepStarted | ev.StepFinished)
    ]


def test_dag_branches_overlap_and_join(run_text: RunText) -> None:
    # B and C each wait for the other's file: they finish only if they overlap.
    result = run_text(
        f"""
        steps:
          - id: A
            run: echo a
          - id: B
            depends_on: [A]
            run: 'touch b; {until("[ -e c ]")}'
          - id: C
            depends_on: [A]
            run: 'touch c; {until("[ -e b ]")}'
          - id: D
            depends_on: [B, C]
            run: echo d
        """
    )
    assert result.document["status"] == "ok"
    order = _order(result.log)
    assert order.index("start B") < order.index("end C")
    assert order.index("start C") < order.index("end B")
    assert order.index("start D") > max(order.index("end B"), order.index("end C"))
    assert order.index("start B") > order.index("end A")


def test_depends_on_empty_starts_at_once(run_text: RunText) -> None:
    result = run_text(
        f"""
        steps:
          - id: slow
            run: '{until("[ -e fast-ran ]")}'
          - id: fast
            depends_on: []
            run: touch fast-ran
        """
    )
    assert result.document["status"] == "ok"
    order = _order(result.log)
    assert order.index("start fast") < order.index("end slow")


def test_failed_dependency_skips_dependants(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: A
            run: exit 4
          - id: B
            depends_on: [A]
            run: echo never
          - id: C
            depends_on: []
            run: echo independent
        """
    )
    steps = result.steps
    assert steps["A"]["status"] == "failed"
    assert steps["A"]["error"]["code"] == "STEP_FAILED"
    assert steps["A"]["output"]["exit_code"] == 4
    assert steps["B"]["status"] == "skipped"
    assert steps["B"]["error"]["code"] == "DEPENDENCY_FAILED"
    assert steps["C"]["status"] == "ok"
    assert result.document["status"] == "failed"
    assert result.document["error"]["step_path"] == "A"


def test_chain_stops_at_a_failure_and_skips_the_rest(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - {id: one, run: "exit 1"}
          - {id: two, run: "echo never"}
        """
    )
    assert result.steps["two"]["status"] == "skipped"
    assert result.steps["two"]["error"]["code"] == "DEPENDENCY_FAILED"
    assert not any(e.path == "two" for e in result.log.of(ev.StepStarted))


def test_when_false_skips_but_counts_as_finished(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          deploy: {type: boolean, default: false}
        steps:
          - id: ship
            when: ${inputs.deploy}
            run: echo shipping
          - id: after
            run: echo ${ship.status}
        """
    )
    assert result.steps["ship"]["status"] == "skipped"
    assert result.steps["ship"]["output"] is None
    assert result.steps["after"]["output"]["stdout"] == "skipped"
    assert result.document["status"] == "ok"


def test_reference_into_a_skipped_step_fails_with_ref_unresolved(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - {id: maybe, when: false, run: echo x}
          - {id: use, kind: value, value: "${maybe.output.stdout}"}
        """
    )
    assert result.steps["use"]["error"]["code"] == "REF_UNRESOLVED"
    assert "maybe.output" in result.steps["use"]["error"]["message"]


def test_retry_succeeds_on_the_third_attempt(run_text: RunText, tmp_path: Path) -> None:
    result = run_text(
        """
        steps:
          - id: flaky
            retry: {attempts: 3, delay: 0}
            run: |
              echo x >> tries
              [ "$(wc -l < tries)" -ge 3 ]
        """
    )
    flaky = result.steps["flaky"]
    assert flaky["status"] == "ok"
    assert flaky["attempts"] == 3
    assert len(result.log.of(ev.StepRetrying)) == 2


def test_retry_delays_grow_by_backoff_up_to_max_delay(run_text: RunText) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        """
        inputs:
          nothing: {type: object, default: {}}
        steps:
          - id: never
            retry: {attempts: 4, delay: 1s, backoff: 3, max_delay: 5s, on: [REF_UNRESOLVED]}
            kind: value
            value: ${inputs.nothing.missing}
          - id: once
            kind: value
            value: ${inputs.nothing.missing}
            on_failure: continue
            depends_on: []
        """,
        clock=clock,
    )
    assert result.steps["never"]["status"] == "failed"
    assert result.steps["never"]["attempts"] == 4
    retries = [(e.path, e.attempt, e.delay) for e in result.log.of(ev.StepRetrying)]
    assert retries == [("never", 2, 1.0), ("never", 3, 3.0), ("never", 4, 5.0)]
    # REF_UNRESOLVED is not in the default `on` list
    assert result.steps["once"]["attempts"] == 1


def test_timeout_ends_the_command_and_its_group(run_text: RunText, tmp_path: Path) -> None:
    result = run_text(
        """
        steps:
          - id: slow
            timeout: 1s
            run: sleep 60 & echo $! > child.pid; sleep 60
        """
    )
    slow = result.steps["slow"]
    assert slow["status"] == "failed"
    assert slow["error"]["code"] == "TIMEOUT"
    child = int((tmp_path / "child.pid").read_text())
    assert not is_alive(child)


def test_run_timeout_fails_the_run(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          timeout: 1s
        steps:
          - {id: slow, run: sleep 30}
        """
    )
    assert result.document["status"] == "failed"
    assert result.document["error"]["code"] == "RUN_TIMEOUT"
    assert result.steps["slow"]["status"] == "cancelled"


def test_serial_execution_runs_one_step_at_a_time_in_file_order(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          parallel: false
        steps:
          - {id: a, run: echo a, depends_on: []}
          - {id: b, run: echo b, depends_on: []}
          - {id: c, run: echo c, depends_on: [a]}
        """
    )
    assert _order(result.log) == ["start a", "end a", "start b", "end b", "start c", "end c"]


def test_max_workers_bounds_siblings(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          max_workers: 2
        steps:
          - {id: a, run: "true", depends_on: []}
          - {id: b, run: "true", depends_on: []}
          - {id: c, run: "true", depends_on: []}
          - {id: d, run: "true", depends_on: []}
        """
    )
    running = peak = 0
    for event in result.log.events:
        if isinstance(event, ev.StepStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(event, ev.StepFinished):
            running -= 1
    assert peak == 2


def test_run_output_object_and_named_outputs(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: emit
            run: |
              printf '\\xef\\xbb\\xbf{"a": [1, 2]}\\n'
              echo oops >&2
              echo "version=1.2.3" >> "$DRAWER_OUTPUT"
              printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$DRAWER_OUTPUT"
          - id: use
            run: [echo, "${emit.output.values.version}", "${emit.output.json.a}"]
          - id: spread
            run: [printf, "%s|", "${emit.output.json.a}"]
        """
    )
    output = result.steps["emit"]["output"]
    assert output["json"] == {"a": [1, 2]}
    assert output["stdout"] == '{"a": [1, 2]}'
    assert output["stderr"] == "oops"
    assert output["lines"] == ['{"a": [1, 2]}']
    assert output["values"] == {"version": "1.2.3", "notes": "line one\nline two"}
    assert output["exit_code"] == 0
    assert output["stdout_truncated"] is False
    assert result.steps["use"]["output"]["stdout"] == "1.2.3 1 2"
    assert result.steps["spread"]["output"]["stdout"] == "1|2|"


def test_env_cwd_and_stdin(run_text: RunText, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = run_text(
        """
        env:
          GREETING: hello
        steps:
          - id: show
            cwd: sub
            env: {WHO: "${inputs.who}"}
            stdin: "from stdin"
            run: echo "$GREETING $WHO $(basename "$PWD") $(cat)"
        inputs:
          who: {default: you}
        """
    )
    assert result.steps["show"]["output"]["stdout"] == "hello you sub from stdin"


def test_command_not_found(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - {id: missing, run: [definitely-not-a-command-xyz]}
        """
    )
    assert result.steps["missing"]["error"]["code"] == "COMMAND_NOT_FOUND"
    assert result.steps["missing"]["output"]["exit_code"] is None


def test_drawer_outputs_and_run_document_shape(run_text: RunText) -> None:
    result = run_text(
        """
        name: shape
        steps:
          - {id: a, kind: value, value: {n: 3}}
        outputs:
          n: ${a.output.n}
          text: "n is ${a.output.n}"
        """
    )
    document = result.document
    assert set(document) == {
        "run_id",
        "drawer",
        "name",
        "resumed_from",
        "status",
        "started_at",
        "ended_at",
        "duration",
        "inputs",
        "outputs",
        "steps",
        "error",
        # What `run --resume RUN_DOC.json` needs beyond SPEC 3.2: the --set edits and the
        # step definition hashes.
        "edits",
        "definitions",
    }
    assert document["outputs"] == {"n": 3, "text": "n is 3"}
    record = document["steps"]["a"]
    assert set(record) == {
        "status",
        "attempts",
        "started_at",
        "ended_at",
        "duration",
        "output",
        "error",
    }
    assert record["started_at"].endswith("Z")


def test_secret_input_is_masked_everywhere(run_text: RunText, tmp_path: Path) -> None:
    secret = "s3cr3t-value-42"
    result = run_text(
        """
        inputs:
          token: {secret: true, required: true}
        steps:
          - id: leak
            run: |
              echo "token is ${inputs.token}"
              printf 's3cr3t-' >&2; printf 'value-42\\n' >&2
              echo "t=${inputs.token}" >> "$DRAWER_OUTPUT"
              exit 1
        """,
        inputs=[f"token={secret}"],
    )
    import json

    text = json.dumps(result.document) + "".join(e.text for e in result.log.of(ev.OutputLine))
    assert secret not in text
    assert result.document["inputs"]["token"] == "***"
    assert result.steps["leak"]["output"]["stdout"] == "token is ***"
