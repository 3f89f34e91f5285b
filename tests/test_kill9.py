"""`kill -9` of drawer: nothing that had finished is lost, no command outlives it (SPEC 3.5)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from drawer.store import DATABASE
from tests.conftest import run_cli, tagged, wait_for

NEVER = "sleep 60"


def drawer_env(tag: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    env["DRAWER_TEST_TAG"] = tag
    return env


def start(tmp_path: Path, text: str, tag: str, *args: str) -> subprocess.Popen[bytes]:
    (tmp_path / "d.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--quiet", *args],
        cwd=tmp_path,
        env=drawer_env(tag),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(tmp_path: Path, drawer: subprocess.Popen[bytes], marker: str) -> None:
    wait_for(lambda: (tmp_path / marker).exists(), marker, drawer)
    drawer.send_signal(signal.SIGKILL)
    drawer.wait(timeout=60)


def calls(tmp_path: Path) -> Counter[str]:
    path = tmp_path / "calls.txt"
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return Counter(lines)


def integrity(tmp_path: Path) -> str:
    connection = sqlite3.connect(tmp_path / ".drawer" / DATABASE)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def resume(tmp_path: Path, tag: str) -> dict[str, object]:
    (tmp_path / "go").touch()  # the step that was killed ends this time
    result = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


# Item 4: every finished step is on disk before the next starts -----------------------------

STEP = "echo {name} >> calls.txt"
WAITING = "echo {name} >> calls.txt; touch {name}.started; [ -e go ] || " + NEVER

KILLED_IN_THIRD = f"""\
steps:
  - id: one
    run: {STEP.format(name="one")}
  - id: two
    kind: value
    value: "${{one.output.exit_code}}-two"
  - id: three
    run: {WAITING.format(name="three")}
"""

KILLED_IN_BRANCH = f"""\
steps:
  - id: first
    run: {STEP.format(name="first")}
  - id: both
    kind: parallel
    branches:
      - id: quick
        run: {STEP.format(name="quick")}
      - id: chain
        steps:
          - id: early
            run: {STEP.format(name="early")}
          - id: late
            run: {WAITING.format(name="late")}
"""

KILLED_IN_CHILD = f"""\
steps:
  - id: first
    run: {STEP.format(name="first")}
  - id: sub
    kind: drawer
    drawer: ./child.yaml
"""

CHILD = f"""\
steps:
  - id: inner1
    run: {STEP.format(name="inner1")}
  - id: inner2
    run: {STEP.format(name="inner2")}
  - id: inner3
    run: {WAITING.format(name="inner3")}
"""


@pytest.mark.parametrize(
    ("text", "marker", "again"),
    [
        (KILLED_IN_THIRD, "three.started", {"three": 1}),
        (KILLED_IN_BRANCH, "late.started", {"late": 1}),
        (KILLED_IN_CHILD, "inner3.started", {"inner3": 1}),
    ],
    ids=["third-of-three", "parallel-branch", "sub-drawer"],
)
def test_a_resume_after_kill_9_runs_only_what_had_not_finished(
    tmp_path: Path, text: str, marker: str, again: dict[str, int]
) -> None:
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    drawer = start(tmp_path, text, "durable")
    if marker == "late.started":  # the other branch must have ended too
        log = tmp_path / "calls.txt"
        wait_for(lambda: log.exists() and "quick" in log.read_text(), "quick", drawer)
    kill_when(tmp_path, drawer, marker)
    # The killed step's command is ended by drawer's watchdog, not left to finish.
    wait_for(lambda: not tagged("durable"), "no command left by the killed drawer", seconds=15)
    first = calls(tmp_path)
    assert integrity(tmp_path) == "ok"
    resumed = resume(tmp_path, "durable")
    assert resumed["status"] == "ok"
    assert calls(tmp_path) == Counter(again), f"before the kill: {first}"
