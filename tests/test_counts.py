"""Counts, the parallel switch and durations: one rule per field, for literals (validate) and
for references (EXPR_ERROR at run time); a boolean is never a count, text is never a boolean."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import trio.testing

from drawer import events as ev
from drawer.counts import cpu_count
from drawer.loader import InvalidDrawer
from tests.conftest import RunText, load, run_cli

LOOP = """
steps:
  - id: each
    kind: for_each
    over: [1, 2, 3]
    {field}
    steps: [{{id: show, kind: value, value: x}}]
"""
EXECUTION = """
execution:
  {field}
steps:
  - {{id: only, kind: value, value: 1}}
"""
BLOCK = """
steps:
  - id: block
    kind: parallel
    {field}
    branches: [{{id: a, kind: value, value: 1}}]
"""
TRIES = """
steps:
  - id: tries
    kind: repeat
    until: true
    {field}
    steps: [{{id: t, kind: value, value: 1}}]
"""


def _problem(tmp_path: Path, template: str, field: str) -> str:
    """The one error the loader gives for a field, as `line:col message`."""
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, template.format(field=field))
    errors = [p for p in caught.value.problems if p.severity == "error"]
    assert len(errors) == 1, [p.message for p in errors]
    assert errors[0].position is not None
    return f"{errors[0].position.line}:{errors[0].position.col} {errors[0].message}"


REFUSED = [
    # issue 11 item 2: out of range
    (EXECUTION, "max_workers: -1", 'max_workers must be an integer >= 1, "auto" or'),
    (EXECUTION, "max_workers: 0", "max_workers must be an integer >= 1"),
    (EXECUTION, "max_processes: 0", "max_processes must be an integer >= 1"),
    (LOOP, "parallelism: -1", "parallelism must be an integer >= 0"),
    (TRIES, "max_iterations: 0", "max_iterations must be an integer >= 1"),
    # item 4: a boolean is never a count, whatever YAML spelling
    (
        LOOP,
        "parallelism: true",
        'parallelism must be an integer >= 0, "all" or a ${...} reference, got true',
    ),
    (LOOP, "parallelism: yes", 'got "yes"'),
    (BLOCK, "max_parallelism: true", "max_parallelism must be an integer >= 0"),
    (TRIES, "max_iterations: true", "max_iterations must be an integer >= 1"),
    (TRIES, "parallelism: false\n    max_iterations: 2", "parallelism must be an integer >= 0"),
    (EXECUTION, "max_workers: true", "max_workers must be an integer >= 1"),
    (EXECUTION, "max_processes: false", "max_processes must be an integer >= 1"),
    (LOOP, "tolerate: true", "tolerate must be a count >= 0 or a percentage"),
    (BLOCK, "tolerate: false", "tolerate must be a count >= 0 or a percentage"),
    (LOOP, "retry: {attempts: true}", "attempts must be an integer >= 1, got true"),
    (LOOP, "dask: {chunk_size: true}", "chunk_size must be an integer >= 1, got true"),
    (LOOP, "retry: {backoff: true}", "backoff"),
    # item 5: text is never a boolean
    (EXECUTION, "parallel: no", 'parallel must be true, false or a ${...} reference, got "no"'),
    (EXECUTION, "parallel: 'off'", 'got "off"'),
    (EXECUTION, "parallel: '0'", 'got "0"'),
    (EXECUTION, "parallel: 'false'", 'got "false"'),
    (EXECUTION, "parallel: 0", "got 0"),
    # the same class elsewhere: booleans as numbers, numbers and text as booleans
    (LOOP, "delay: true", "a duration must be a number of seconds"),
    (LOOP, "timeout: false", "a duration must be a number of seconds"),
    (LOOP, "retry: {delay: true}", "a duration must be a number of seconds"),
    (LOOP, "shard: yes", 'shard must be true or false, got "yes"'),
    (LOOP, "retry: {jitter: 1}", "jitter must be true or false, got 1"),
    (LOOP, "when: 1", "when must be true, false or an expression, got 1"),
]


@pytest.mark.parametrize(
    ("template", "field", "expected"), REFUSED, ids=[field for _, field, _ in REFUSED]
)
def test_a_count_or_switch_out_of_its_range_is_refused_where_it_is_written(
    tmp_path: Path, template: str, field: str, expected: str
) -> None:
    problem = _problem(tmp_path, template, field)
    assert expected in problem
    line = 1 + next(n for n, text in enumerate(template.splitlines()) if "{field}" in text)
    assert problem.startswith(f"{line}:")


@pytest.mark.parametrize(
    "text",
    [
        "steps:\n  - id: s\n    kind: for_each\n    over: {range: [1, true]}\n    steps: []\n",
        "steps:\n  - id: s\n    kind: for_each\n    over: {range: ['1', 3]}\n    steps: []\n",
        "inputs:\n  x: {required: yes}\nsteps: [{id: s, kind: value, value: 1}]\n",
        "inputs:\n  x: {secret: 1}\nsteps: [{id: s, kind: value, value: 1}]\n",
        "version: true\nsteps: [{id: s, kind: value, value: 1}]\n",
        "steps:\n  - id: s\n    kind: switch\n    cases: [{when: 1, steps: []}]\n",
        "steps:\n  - id: s\n    kind: repeat\n    max_iterations: 2\n    until: 0\n    steps: []\n",
    ],
)
def test_other_fields_take_no_boolean_as_a_number_nor_a_number_as_a_boolean(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(InvalidDrawer):
        load(tmp_path, text)


def test_validate_exits_2_with_the_position_of_a_negative_max_workers(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(EXECUTION.format(field="max_workers: -1"))
    checked = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert checked.returncode == 2
    assert "d.yaml:3:16: error: max_workers must be an integer >= 1" in checked.stderr


def _max_running(log: ev.EventLog) -> int:
    running = peak = 0
    for event in log.events:
        if isinstance(event, ev.StepStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(event, ev.StepFinished):
            running -= 1
    return peak


def test_max_workers_auto_is_the_cpu_count(run_text: RunText) -> None:
    siblings = "\n".join(
        f"  - {{id: w{n}, kind: wait, duration: 1s, depends_on: []}}"
        for n in range(cpu_count() + 2)
    )
    result = run_text(
        "execution:\n  max_workers: auto\nsteps:\n" + siblings + "\n",
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert result.document["status"] == "ok", result.document["error"]
    assert _max_running(result.log) == cpu_count()


def test_max_processes_auto_is_the_cpu_count(run_text: RunText) -> None:
    """Each command waits (5 s at most) until as many as there are CPUs have started: under
    `auto` exactly that many ever run at once, never fewer (a limit of 1 would wait out every
    deadline) nor more (all 8 would start)."""
    wait = (
        'touch "started.${item}"; i=0; '
        f"while [ $(ls started.* | wc -l) -lt {cpu_count()} ] && [ $i -lt 100 ]; "
        "do i=$((i+1)); sleep 0.05; done"
    )
    result = run_text(
        f"""
        execution:
          max_processes: auto
        steps:
          - id: each
            kind: for_each
            over: {{range: [8]}}
            parallelism: all
            steps: [{{id: t, run: '{wait}'}}]
        """
    )
    assert result.document["status"] == "ok", result.document["error"]
    assert result.log.max_concurrent_commands() == cpu_count()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_workers", "-1", 'max_workers must be an integer >= 1 or "auto", got "-1"'),
        ("max_processes", "0", 'max_processes must be an integer >= 1 or "auto", got "0"'),
        ("max_processes", "many", 'got "many" (from ${env.COUNT})'),
        ("parallel", "no", 'parallel must be true or false, got "no" (from ${env.COUNT})'),
    ],
)
def test_an_execution_reference_out_of_range_fails_the_run(
    run_text: RunText, monkeypatch: pytest.MonkeyPatch, field: str, value: str, message: str
) -> None:
    monkeypatch.setenv("COUNT", value)
    result = run_text(EXECUTION.format(field=f"{field}: ${{env.COUNT}}"))
    assert result.document["status"] == "failed"
    assert result.document["error"]["code"] == "EXPR_ERROR"
    assert message in result.document["error"]["message"]


@pytest.mark.parametrize(
    ("template", "field", "step", "message"),
    [
        (LOOP, "parallelism: ${inputs.n}", "each", "parallelism must be an integer >= 0"),
        (BLOCK, "max_parallelism: ${inputs.n}", "block", "max_parallelism must be"),
        (TRIES, "max_iterations: ${inputs.n}", "tries", "max_iterations must be an integer >= 1"),
    ],
)
@pytest.mark.parametrize(
    ("kind", "value"),
    [("integer", "-1"), ("boolean", "true"), ("number", "2.5"), ("array", "[1]"), ("string", "x")],
)
def test_a_step_count_reference_out_of_range_is_an_expression_error(
    run_text: RunText, template: str, field: str, step: str, message: str, kind: str, value: str
) -> None:
    text = f"inputs:\n  n: {{type: {kind}}}\n" + textwrap.dedent(template.format(field=field))
    if "max_iterations" not in field:
        text = text.replace("until: true", "until: true\n    max_iterations: 2")
    result = run_text(text, inputs=[f"n={value}"])
    error = result.steps[step]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert message in error["message"]
    assert "(from ${inputs.n})" in error["message"]


def test_a_reference_may_give_a_count_or_a_switch_as_text(
    run_text: RunText, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIDTH", " 2 ")
    monkeypatch.setenv("PARALLEL", "False")
    result = run_text(LOOP.format(field="parallelism: ${env.WIDTH}"))
    assert result.log.of(ev.LoopStarted)[0].parallelism == 2
    serial = run_text(
        "execution:\n  parallel: ${env.PARALLEL}\n" + LOOP.format(field="parallelism: all")
    )
    assert serial.log.of(ev.LoopStarted)[0].parallelism == 1


def test_a_reference_may_give_a_count_as_a_whole_float_and_only_that(run_text: RunText) -> None:
    # A `type: number` input given 2 is 2.0; arithmetic on it too. 2.5 is still refused.
    text = "inputs:\n  n: {type: number}\n" + textwrap.dedent(
        LOOP.format(field="parallelism: ${inputs.n * 1.5}")
    )
    result = run_text(text, inputs=["n=2"])
    assert result.document["status"] == "ok"
    assert result.log.of(ev.LoopStarted)[0].parallelism == 3
    refused = run_text(text, inputs=["n=1"])
    error = refused.steps["each"]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert "got 1.5" in error["message"]


def test_references_are_checked_by_validate_like_any_other(tmp_path: Path) -> None:
    problem = _problem(tmp_path, EXECUTION, "max_workers: ${inputs.nope}")
    assert problem == '3:16 ${inputs.nope}: no input "nope"'


def test_parallelism_0_is_serial(run_text: RunText) -> None:
    result = run_text(LOOP.format(field="parallelism: 0"))
    assert result.log.of(ev.LoopStarted)[0].parallelism == 1


def test_a_duration_reference_that_gives_a_list_is_an_expression_error(run_text: RunText) -> None:
    """It was an internal error (a TypeError in the duration parser), exit 3."""
    result = run_text(
        """
        inputs:
          t: {type: array, default: [1]}
        steps:
          - {id: a, run: "true", timeout: "${inputs.t}"}
          - {id: w, kind: wait, duration: "${inputs.t}", depends_on: []}
          - {id: l, kind: for_each, over: [1], delay: "${inputs.t}", steps: [], depends_on: []}
        """
    )
    for step in ("a", "w", "l"):
        error = result.steps[step]["error"]
        assert error["code"] == "EXPR_ERROR"
        assert "must be a number of seconds or text like 30s, got [1]" in error["message"]


def test_retry_delays_given_as_references_are_resolved_when_the_step_starts(
    run_text: RunText,
) -> None:
    """An unresolved `${...}` reached the duration parser: exit 3 with the run left running."""
    result = run_text(
        """
        inputs:
          d: {default: 2s}
          t: {type: array, default: [1]}
        steps:
          - id: a
            run: "exit 1"
            retry: {attempts: 2, delay: "${inputs.d}", max_delay: "${inputs.d}"}
          - id: b
            depends_on: []
            run: "exit 1"
            retry: {attempts: 2, delay: "${inputs.t}"}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    [retrying] = [e for e in result.log.of(ev.StepRetrying) if e.path == "a"]
    assert retrying.delay == 2.0
    assert result.steps["a"]["attempts"] == 2
    assert result.steps["a"]["error"]["code"] == "STEP_FAILED"
    error = result.steps["b"]["error"]
    assert error["code"] == "EXPR_ERROR"
    assert "must be a number of seconds or text like 30s, got [1]" in error["message"]
