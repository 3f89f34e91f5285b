"""After a cancel or a run timeout, every step ends with a final status and a code: one that
never started is `skipped`, saying why, in the run document, the store and the summary."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio.testing

from drawer import events as ev
from tests.conftest import RunText, run_cli, wait_for

FINAL = {"ok", "failed", "skipped", "cancelled"}

NESTED = """
execution: {timeout: 10s}
steps:
  - id: slow
    kind: wait
    duration: 1h
  - id: after
    run: echo never
  - id: fan
    depends_on: []
    kind: for_each
    over: [1, 2]
    parallelism: all
    steps:
      - {id: hold, kind: wait, duration: 1h}
      - {id: next, kind: value, value: never}
  - id: block
    depends_on: []
    kind: parallel
    max_parallelism: 1
    branches:
      - {id: first, kind: wait, duration: 1h}
      - {id: second, kind: value, value: never}
      - id: group
        steps: [{id: inner, kind: value, value: never}]
  - id: last
    depends_on: [slow, fan]
    kind: value
    value: never
"""


def records(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record (a dict with a status) in a run document, at any depth."""
    if isinstance(value, dict):
        if isinstance(value.get("status"), str):
            yield path, value
        for key, item in value.items():
            yield from records(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from records(item, f"{path}/{index}")


def test_a_run_timeout_leaves_no_step_pending_at_any_depth(run_text: RunText) -> None:
    result = run_text(NESTED, clock=trio.testing.MockClock(autojump_threshold=0))
    document = result.document
    assert document["error"]["code"] == "RUN_TIMEOUT"
    found = dict(records(document["steps"]))
    assert {path: r["status"] for path, r in found.items() if r["status"] not in FINAL} == {}
    steps = document["steps"]
    assert steps["slow"]["status"] == "cancelled"
    # A step the timeout cut short says so, with the run's code (it said CANCELLED).
    assert steps["slow"]["error"] == {
        "code": "RUN_TIMEOUT",
        "message": "slow was cut short: the run exceeded its timeout",
        "step_path": "slow",
        "cause": None,
    }
    for never in ("after", "last"):
        assert steps[never]["status"] == "skipped"
        assert steps[never]["error"] == {
            "code": "RUN_TIMEOUT",
            "message": f"{never} never started: the run exceeded its timeout",
            "step_path": never,
            "cause": None,
        }
    for iteration in steps["fan"]["output"]["results"]:
        assert iteration["steps"]["hold"]["status"] == "cancelled"
        assert iteration["steps"]["next"]["status"] == "skipped"
        assert iteration["steps"]["next"]["error"]["code"] == "RUN_TIMEOUT"
    block = steps["block"]["output"]
    assert [block[b]["status"] for b in ("first", "second", "group")] == [
        "cancelled",
        "skipped",
        "skipped",
    ]
    assert block["second"]["error"]["code"] == block["group"]["error"]["code"] == "RUN_TIMEOUT"
    # The end of every step is an event, so the store and the reporters hear of it.
    finished = {e.path: e.record.status for e in result.log.of(ev.StepFinished)}
    assert finished["after"] == finished["last"] == finished["fan[0].next"] == "skipped"


def test_a_step_cancelled_by_its_loop_names_the_iteration(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: data
            kind: value
            value: {}
          - id: fan
            kind: for_each
            over: [0, 1]
            parallelism: all
            steps:
              - id: hold
                kind: switch
                cases:
                  - when: item == 0
                    steps:
                      - {id: pause, kind: wait, duration: 1s}
                      - {id: bad, kind: value, value: "${data.output.missing}"}
                default: [{id: wait, kind: wait, duration: 1h}]
              - {id: next, kind: value, value: never}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    second = result.steps["fan"]["output"]["results"][1]["steps"]
    assert second["hold"]["status"] == "cancelled"
    assert second["next"]["status"] == "skipped"
    assert second["next"]["error"] == {
        "code": "CANCELLED",
        "message": "fan[1].next never started: fan[1] was cancelled",
        "step_path": "fan[1].next",
        "cause": None,
    }


def test_after_a_failure_steps_not_run_are_recorded_in_the_store(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("steps:\n  - {id: a, run: 'false'}\n  - {id: b, run: x}\n")
    completed = run_cli("d.yaml", "run", "--no-progress", cwd=tmp_path)
    assert completed.returncode == 1
    rows = _step_rows(tmp_path)
    assert rows["b"][0] == "skipped"
    assert json.loads(rows["b"][1] or "{}")["code"] == "DEPENDENCY_FAILED"


def _step_rows(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(tmp_path / ".drawer" / "drawer.db") as connection:
        rows = connection.execute("SELECT path, status, error FROM steps").fetchall()
    return {path: (status, error) for path, status, error in rows}


def test_sigint_leaves_every_step_final_in_document_store_and_summary(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent(
            """\
            steps:
              - id: slow
                run: echo started > started; sleep 60
              - id: after
                run: echo never
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--output", "doc.json", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for((tmp_path / "started").exists, "the command to start", process, 30)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 130
    document = json.loads((tmp_path / "doc.json").read_text())
    assert document["status"] == "cancelled"
    after = document["steps"]["after"]
    assert after["status"] == "skipped"
    assert after["error"]["code"] == "CANCELLED"
    assert after["error"]["message"] == (
        f"after never started: the run was cancelled by signal {int(signal.SIGINT)}"
    )
    rows = _step_rows(tmp_path)
    assert rows["after"][0] == "skipped"
    assert json.loads(rows["after"][1] or "{}")["code"] == "CANCELLED"
    assert re.search(r"after\s*[│|]\s*skipped\s*[│|]", stdout), stdout  # the summary's row
    assert "pending" not in stdout


def test_iterations_that_never_start_are_skipped_saying_why(run_text: RunText) -> None:
    stopped = run_text(
        """
        steps:
          - id: fan
            kind: for_each
            over: [1, 0, 0]
            on_item_failure: stop
            steps:
              - {id: check, run: "exit ${item}"}
        """
    )
    results = stopped.steps["fan"]["output"]["results"]
    assert [r["status"] for r in results] == ["failed", "skipped", "skipped"]
    assert [r["error"] for r in results[1:]] == [
        {
            "code": "CANCELLED",
            "message": f"fan[{index}] never started: fan stopped after an item failed",
            "step_path": f"fan[{index}]",
            "cause": None,
        }
        for index in (1, 2)
    ]
    # Items waiting for their turn (a delay) when the loop stops say so too.
    paced = run_text(
        """
        inputs:
          m: {type: object, default: {}}
        steps:
          - id: fan
            kind: for_each
            over: [0, 1, 2]
            parallelism: all
            delay: 5s
            steps:
              - {id: check, kind: value, value: "${item == 0 ? inputs.m.x : item}"}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    results = paced.steps["fan"]["output"]["results"]
    assert [r["status"] for r in results] == ["failed", "skipped", "skipped"]
    assert {r["error"]["message"].split(": ", 1)[1] for r in results[1:]} == {
        "fan stopped after an item failed"
    }
    timed_out = run_text(
        """
        execution: {timeout: 10s}
        steps:
          - id: fan
            kind: for_each
            over: [0, 1, 2]
            steps:
              - {id: hold, kind: wait, duration: 1h}
        """,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    results = timed_out.steps["fan"]["output"]["results"]
    assert [r["status"] for r in results] == ["cancelled", "skipped", "skipped"]
    assert [r["error"]["code"] for r in results[1:]] == ["RUN_TIMEOUT", "RUN_TIMEOUT"]


def test_execution_settings_that_fail_leave_every_step_skipped_saying_why(tmp_path: Path) -> None:
    # `max_workers: ${inputs.w}` given 0 fails the run before any step starts; its steps once
    # ended as `"steps": {}`, with nothing in the store or the summary.
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent(
            """\
            inputs:
              w: {type: string, default: "2"}
            execution: {max_workers: "${inputs.w}"}
            steps:
              - {id: a, run: 'true'}
              - {id: b, depends_on: [], run: 'true'}
            """
        )
    )
    completed = run_cli(
        "d.yaml", "run", "-i", "w=0", "--output", "doc.json", "--no-progress", cwd=tmp_path
    )
    assert completed.returncode == 1, completed.stderr
    document = json.loads((tmp_path / "doc.json").read_text())
    assert document["error"]["code"] == "EXPR_ERROR"
    rows = _step_rows(tmp_path)
    for step in ("a", "b"):
        record = document["steps"][step]
        assert record["status"] == "skipped"
        assert record["error"]["code"] == "EXPR_ERROR"
        assert record["error"]["message"].startswith(f"{step} never started: max_workers must be")
        assert record["error"]["cause"] == document["error"]
        assert rows[step][0] == "skipped"
        assert json.loads(rows[step][1] or "{}")["code"] == "EXPR_ERROR"
        assert re.search(rf"{step}\s*[│|]\s*skipped\s*[│|]", completed.stdout), completed.stdout
