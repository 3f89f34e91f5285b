"""The command line as a user runs it: exit codes, messages, the run document, signals."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import is_alive, read_pid, run_cli, wait_for

BAD_FILES = {
    "malformed-yaml": ("d.yaml", "steps:\n  - id: a\n    run: [echo\n", "d.yaml:3:", "expected"),
    "malformed-json": (
        "d.json",
        '{"steps": [\n  {"id": "a", "run": "x",}\n]}\n',
        "d.json:2:",
        "comma",
    ),
    "unknown-key": (
        "d.yaml",
        "steps:\n  - id: a\n    run: x\n    tmeout: 5s\n",
        "d.yaml:4:5",
        'did you mean "timeout"',
    ),
    "wrong-type": (
        "d.yaml",
        "steps:\n  - id: a\n    kind: for_each\n    over: [1]\n"
        "    parallelism: ten\n    steps: [{id: b, run: x}]\n",
        "d.yaml:5:18",
        "parallelism must be an integer >= 0",
    ),
    "duplicate-id": (
        "d.yaml",
        "steps:\n  - {id: a, run: x}\n  - {id: a, run: y}\n",
        "d.yaml:3:10",
        'duplicate step id "a"',
    ),
    "bad-id-characters": (
        "d.yaml",
        "steps:\n  - {id: 9lives, run: x}\n",
        "d.yaml:2:10",
        'id "9lives" must start with a letter or _',
    ),
    "wait-needs-one-of": (
        "d.yaml",
        "steps:\n  - id: w\n    kind: wait\n",
        "d.yaml:2:5",
        "a wait step takes exactly one of duration: or until:",
    ),
    "reserved-id": ("d.yaml", "steps:\n  - {id: inputs, run: x}\n", "d.yaml:2:10", "reserved"),
    "unknown-depends-on": (
        "d.yaml",
        "steps:\n  - {id: lint, run: x}\n  - {id: b, run: y, depends_on: [lnit]}\n",
        "d.yaml:3:34",
        'did you mean "lint"',
    ),
    "cycle": (
        "d.yaml",
        "steps:\n  - {id: a, run: x, depends_on: [b]}\n  - {id: b, run: y, depends_on: [a]}\n",
        "d.yaml:2:",
        "a -> b -> a",
    ),
    "unknown-step-ref": (
        "d.yaml",
        "steps:\n  - {id: a, run: 'echo ${nope.output}'}\n",
        "d.yaml:2:24",
        'unknown name "nope"',
    ),
    "forward-ref": (
        "d.yaml",
        "steps:\n  - {id: a, run: 'echo ${b.output}'}\n  - {id: b, run: x}\n",
        "d.yaml:2:24",
        "may not have finished",
    ),
    "sibling-started-at-once": (
        "d.yaml",
        "steps:\n  - {id: a, run: x}\n  - {id: b, run: 'echo ${a.output}', depends_on: []}\n",
        "d.yaml:3:24",
        'add "a" to the depends_on',
    ),
    "other-loop-body": (
        "d.yaml",
        "steps:\n  - id: l\n    kind: for_each\n    over: [1]\n"
        "    steps: [{id: inner, run: x}]\n"
        "  - {id: b, run: 'echo ${inner.output}'}\n",
        "d.yaml:6:24",
        "cannot be referenced from outside",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_exit_2_with_position_and_run_nothing(tmp_path: Path, case: str) -> None:
    name, text, where, message = BAD_FILES[case]
    (tmp_path / name).write_text(text)
    for verb in ("validate", "run"):
        result = run_cli(name, verb, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert where in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
        assert "^" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_validate_json_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "steps:\n  - {id: a, run: x, tmeout: 1}\n  - {id: a, run: y}\n  - {id: c, run: y}\n"
    )
    result = run_cli("d.yaml", "validate", "--json", cwd=tmp_path)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert [(p["line"], p["severity"]) for p in report["problems"]] == [(2, "error")]
    (tmp_path / "d.yaml").write_text(
        "steps:\n  - {id: a, run: x}\n  - {id: a, run: y}\n"
        "  - {id: c, run: 'echo ${a.output} ${zz.output}'}\n"
    )
    report = json.loads(run_cli("d.yaml", "validate", "--json", cwd=tmp_path).stdout)
    assert [p["line"] for p in report["problems"]] == [3, 4]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["-i", "count=many"], {}, 'input "count" must be an integer, got "many"'),
        (["-i", "cont=3"], {}, 'did you mean "count"'),
        ([], {"DRAWER_INPUT_COUNT": "2"}, 'missing required input "token"'),
        (["-i", "token=abc"], {}, "shorter than 4 characters"),
        (["-i", "mode=fast"], {"DRAWER_INPUT_TOKEN": "abcd"}, "must be one of"),
    ],
)
def test_bad_inputs_exit_2_naming_the_input(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        inputs:
          count: {type: integer, default: 1}
          token: {required: true, secret: true}
          mode: {enum: [slow, careful], default: slow}
        steps:
          - {id: a, run: 'echo ${inputs.count}'}
    """)
    )
    result = run_cli("d.yaml", "run", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert re.search(r"d\.yaml:\d+:\d+", result.stderr) or "did you mean" in result.stderr


def test_run_json_output_file_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        inputs:
          n: {type: integer, default: 2}
        steps:
          - {id: a, run: "echo ${inputs.n}"}
        outputs:
          n: ${a.output.stdout}
    """)
    )
    result = run_cli("d.yaml", "run", "--json", "--output", "doc.json", "-i", "n=5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["outputs"] == {"n": "5"}
    assert document["inputs"] == {"n": 5}
    assert json.loads((tmp_path / "doc.json").read_text()) == document
    failing = tmp_path / "f.yaml"
    failing.write_text("steps:\n  - {id: a, run: 'echo boom >&2; exit 3'}\n")
    result = run_cli("f.yaml", "run", "--no-progress", cwd=tmp_path)
    assert result.returncode == 1
    assert "STEP_FAILED" in result.stdout
    assert "boom" in result.stdout  # the stderr tail in the summary
    quiet = run_cli("f.yaml", "run", "--quiet", cwd=tmp_path)
    assert "[a] boom" not in quiet.stdout and "STEP_FAILED" in quiet.stdout


def test_foreach_over_a_non_list_exits_1(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        steps:
          - {id: data, run: echo hello}
          - id: each
            kind: for_each
            over: ${data.output.stdout}
            steps: [{id: x, run: 'echo ${item}'}]
    """)
    )
    result = run_cli("d.yaml", "run", "--json", cwd=tmp_path)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["steps"]["each"]["error"]["code"] == "FOREACH_NOT_A_LIST"
    assert "str" in document["steps"]["each"]["error"]["message"]


def test_file_found_by_name_in_drawers_folder(tmp_path: Path) -> None:
    (tmp_path / "drawers").mkdir()
    (tmp_path / "drawers" / "hello.yml").write_text("steps:\n  - {id: a, run: echo hi}\n")
    assert run_cli("hello", "validate", cwd=tmp_path).returncode == 0
    missing = run_cli("nothing", "run", cwd=tmp_path)
    assert missing.returncode == 2
    assert "drawers/nothing.yaml" in missing.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("steps:\n  - {id: a, run: echo hi}\n")
    assert run_cli("d.yaml", "rnu", cwd=tmp_path).returncode == 2
    assert 'did you mean "run"' in run_cli("d.yaml", "rnu", cwd=tmp_path).stderr
    assert run_cli("d.yaml", "run", "--bogus", cwd=tmp_path).returncode == 2
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("drawer ")


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGQUIT, 131)],
)
def test_signal_cancels_the_run_and_leaves_no_child(tmp_path: Path, signum: int, code: int) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        steps:
          - id: each
            kind: for_each
            over: [1, 2, 3]
            parallelism: 3
            steps:
              - id: sleeper
                run: sleep 60 & echo $! > child-${item}.pid; echo $$ > pid-${item}; wait
    """)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--output", "doc.json", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # child-N.pid is complete before pid-N is written.
    pids = [read_pid(tmp_path / f"pid-{item}", process) for item in (1, 2, 3)]
    pids += [int((tmp_path / f"child-{item}.pid").read_text().strip()) for item in (1, 2, 3)]
    sent = time.monotonic()
    process.send_signal(signum)
    assert process.wait(timeout=10) == code
    assert time.monotonic() - sent < 6  # within the grace period
    assert [pid for pid in pids if is_alive(pid)] == []
    document = json.loads((tmp_path / "doc.json").read_text())
    assert document["status"] == "cancelled"
    assert document["error"]["code"] == "CANCELLED"
    statuses = [r["status"] for r in document["steps"]["each"]["output"]["results"]]
    assert statuses == ["cancelled"] * 3


def test_second_sigint_kills_at_once(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        steps:
          - id: stubborn
            run: |
              trap 'touch got-term' TERM; trap '' INT; echo $$ > pid
              while true; do sleep 0.1 || true; done
    """)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pid = read_pid(tmp_path / "pid", process)
    process.send_signal(signal.SIGINT)
    # drawer has taken the first SIGINT once its command gets the SIGTERM; the command
    # outlives it (its sleep dies of it, not the loop), so the grace period runs.
    wait_for(lambda: (tmp_path / "got-term").exists(), "the SIGTERM to the command", process)
    assert process.poll() is None  # waiting out the grace period: the command ignores TERM
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - sent < 3
    assert not is_alive(pid)


def test_problems_become_github_annotations_under_actions(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("steps:\n  - id: a\n    run: x\n    tmeout: 5s\n")
    result = run_cli("d.yaml", "validate", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 2
    assert (
        '::error file=d.yaml,line=4,col=5::unknown key "tmeout" in step "a" (did you mean '
        '"timeout"?)' in result.stderr
    )
    plain = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert "::error" not in plain.stderr


def test_every_input_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent("""\
        inputs:
          name: {required: true}
          version: {required: true}
          count: {type: integer, default: 1}
        steps:
          - {id: a, run: 'echo ${inputs.name}'}
    """)
    )
    result = run_cli("d.yaml", "run", "-i", "count=x", "-i", "nmae=1", cwd=tmp_path)
    assert result.returncode == 2
    for message in (
        'unknown input "nmae"',
        'missing required input "name"',
        'missing required input "version"',
        'input "count" must be an integer',
    ):
        assert message in result.stderr


ENDLESS_OUTPUT = """\
steps:
  - id: talk
    run: while true; do echo line; sleep 0.01; done
"""


def _last_run(tmp_path: Path) -> dict[str, object]:
    shown = run_cli("d.yaml", "show", "last", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    document: dict[str, object] = json.loads(shown.stdout)
    return document


def test_a_closed_pipe_on_stdout_cancels_the_run_and_exits_141(tmp_path: Path) -> None:
    """Issue 11 item 21: `drawer d.yaml run | head -n 3` exited 3 with a traceback and left
    the run `running` in the store."""
    (tmp_path / "d.yaml").write_text(ENDLESS_OUTPUT)
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()  # as head does after three lines
    _, stderr = process.communicate(timeout=30)
    assert "[talk] line\n" in lines
    assert process.returncode == 141, stderr
    assert "Traceback" not in stderr and "Broken pipe" in stderr
    document = _last_run(tmp_path)
    assert document["status"] == "cancelled"
    assert document["error"] == {
        "code": "CANCELLED",
        "message": "drawer's output was closed: [Errno 32] Broken pipe",
        "step_path": None,
        "cause": None,
    }


@pytest.mark.parametrize(
    ("redirect", "message"),
    [(">&-", "Bad file descriptor"), (">/dev/full", "No space left on device")],
)
def test_a_closed_or_full_stdout_cancels_the_run_and_exits_1(
    tmp_path: Path, redirect: str, message: str
) -> None:
    """Issue 11 item 21: `run >&-` exited 1 with an AttributeError, `> /dev/full` exited 3."""
    (tmp_path / "d.yaml").write_text(ENDLESS_OUTPUT)
    drawer = (sys.executable, "-m", "drawer", "d.yaml", "run")
    done = subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *drawer],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and message in done.stderr
    assert _last_run(tmp_path)["status"] == "cancelled"
