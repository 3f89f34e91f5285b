"""The GitHub Action: drawer.action as a real process, and action.yml / container/action.yml
run the way the runner runs them (env substituted, scripts through bash, INPUT_* variables)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import textwrap
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from drawer.action import (
    ActionError,
    action_input,
    declared_inputs,
    parse_edits,
    parse_inputs,
    read_action_inputs,
    read_results,
    write_step_outputs,
)
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[1]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
SECRET = "s3cr3t-t0ken-4242"

GREET = """\
inputs:
  greeting: {type: string, required: true}
  count: {type: integer, default: 1}
  notes: {type: string, default: ""}
steps:
  - id: hello
    run: echo ${inputs.greeting}
  - id: gate
    run: exit 0
outputs:
  said: ${hello.output.stdout}
  count: ${inputs.count}
  notes: ${inputs.notes}
  summary_file: ${has(env.GITHUB_STEP_SUMMARY)}
"""

GREET_INPUTS = "greeting=hello world\ncount=2\nnotes<<EOF\nline one\nline=two\n\nEOF\n"
GREET_OUTPUTS = {
    "said": "hello world",
    "count": 2,
    "notes": "line one\nline=two\n",
    "summary_file": True,
}


@dataclass(frozen=True)
class Runner:
    """One job's directories and environment, as the GitHub runner prepares them."""

    workspace: Path
    temp: Path
    output: Path
    summary: Path

    def environ(self, extra: Mapping[str, str]) -> dict[str, str]:
        own = ("GITHUB_", "INPUT_", "DRAWER_", "RUNNER_")
        env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
        env.update(
            GITHUB_WORKSPACE=str(self.workspace),
            RUNNER_TEMP=str(self.temp),
            GITHUB_OUTPUT=str(self.output),
            GITHUB_STEP_SUMMARY=str(self.summary),
        )
        env.update(extra)
        return env

    def write(self, name: str, text: str) -> None:
        (self.workspace / name).write_text(textwrap.dedent(text), encoding="utf-8")


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    files = Runner(tmp_path / "workspace", tmp_path / "temp", tmp_path / "out", tmp_path / "sum")
    files.workspace.mkdir()
    files.temp.mkdir()
    files.output.touch()
    files.summary.touch()
    return files


def parse_github_output(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it; every entry must be a `name<<DELIMITER` block."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    index = 0
    while index < len(lines) - 1:
        name, sep, delimiter = lines[index].partition("<<")
        assert sep and delimiter.startswith("ghadelimiter_"), lines[index]
        end = lines.index(delimiter, index + 1)
        values[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return values


def action_env(inputs: Mapping[str, str]) -> dict[str, str]:
    return {f"INPUT_{name.upper()}": value for name, value in inputs.items()}


def run_action(
    runner: Runner, env: Mapping[str, str], command: list[str] | None = None
) -> Finished:
    done = subprocess.run(
        command or [sys.executable, "-m", "drawer.action"],
        cwd=runner.workspace,
        env=runner.environ(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    outputs = parse_github_output(runner.output.read_text(encoding="utf-8"))
    return Finished(done.returncode, done.stdout, done.stderr, outputs)


def assert_greeted(finished: Finished, runner: Runner) -> dict[str, Any]:
    """The outputs of a GREET run that ended ok; returns its run document."""
    assert finished.code == 0, finished.stderr
    assert finished.outputs["status"] == "ok"
    results = Path(finished.outputs["results"])
    assert not results.is_absolute() and results.parts[:2] == (".drawer", "results")
    document: dict[str, Any] = json.loads((runner.workspace / results).read_text("utf-8"))
    assert finished.outputs["run-id"] == document["run_id"] != ""
    assert json.loads(finished.outputs["outputs"]) == document["outputs"] == GREET_OUTPUTS
    assert finished.outputs["outputs"] == json.dumps(
        GREET_OUTPUTS, separators=(",", ":"), ensure_ascii=False
    )
    return document


# drawer.action as a process ----------------------------------------------------------------


def test_a_run_gives_status_run_id_results_and_outputs(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    inputs = {"drawer": "greet.yaml", "inputs": GREET_INPUTS, "args": "--no-store --quiet"}
    finished = run_action(runner, action_env(inputs))
    document = assert_greeted(finished, runner)
    assert document["status"] == "ok"
    assert not (runner.workspace / ".drawer" / "drawer.db").exists(), "args reach drawer"
    assert (runner.workspace / ".drawer" / ".gitignore").read_text().endswith("*\n")


def test_a_failing_run_is_failed_and_exits_1(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    inputs = {"drawer": "greet", "inputs": "greeting=hi", "set": "\ngate.run=exit 3\n"}
    finished = run_action(runner, {**action_env(inputs), "GITHUB_WORKSPACE": ""})
    assert finished.code == 1
    assert finished.outputs["status"] == "failed"
    results = Path(finished.outputs["results"])
    assert results.is_absolute() and results.parent == runner.temp, "no workspace: RUNNER_TEMP"
    document = json.loads(results.read_text("utf-8"))
    assert document["run_id"] == finished.outputs["run-id"]
    assert document["steps"]["gate"]["output"]["exit_code"] == 3


def test_an_invalid_drawer_is_an_error_and_exits_2(runner: Runner) -> None:
    runner.write("bad.yaml", "steps:\n  - id: a\n    kind: nope\n")
    finished = run_action(runner, action_env({"drawer": "bad.yaml", "summary": "true"}))
    assert finished.code == 2
    assert "bad.yaml" in finished.stderr
    assert finished.outputs == {"status": "error", "run-id": "", "results": "", "outputs": "{}"}


def test_input_values_stay_data(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    (runner.workspace / "keep").mkdir()
    greeting = """$(touch pwned)"; rm -rf keep; echo '`touch pwned2`"""
    notes = "$(touch pwned3)\n'; rm -rf keep #"
    text = f"greeting={greeting}\nnotes<<END\n{notes}\nEND\n"
    finished = run_action(runner, action_env({"drawer": "greet.yaml", "inputs": text}))
    assert finished.code == 0, finished.stderr
    outputs = json.loads(finished.outputs["outputs"])
    assert (outputs["said"], outputs["notes"]) == (greeting, notes)
    assert not list(runner.workspace.glob("pwned*"))
    assert (runner.workspace / "keep").is_dir()


def test_summary_false_runs_drawer_without_the_job_summary(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    inputs = {"drawer": "greet.yaml", "inputs": "greeting=hi", "summary": "false"}
    finished = run_action(runner, {**action_env(inputs), "GITHUB_ACTIONS": "true"})
    assert finished.code == 0, finished.stderr
    assert json.loads(finished.outputs["outputs"])["summary_file"] is False
    assert runner.summary.read_text() == ""


def test_a_malformed_inputs_line_is_reported_without_its_value(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    inputs = {"drawer": "greet.yaml", "inputs": f"greeting=hi\n{SECRET}\n"}
    finished = run_action(runner, action_env(inputs))
    assert finished.code == 2
    assert "::error::drawer action: inputs: line 2 is neither" in finished.stdout
    assert SECRET not in finished.stdout + finished.stderr
    assert finished.outputs["status"] == "error"
    assert not (runner.workspace / ".drawer").exists(), "drawer did not run"


def test_an_input_the_drawer_does_not_declare_is_an_error(runner: Runner) -> None:
    runner.write("greet.yaml", GREET)
    finished = run_action(runner, action_env({"drawer": "greet.yaml", "inputs": "greting=hi"}))
    assert finished.code == 2
    assert 'no input "greting"' in finished.stdout
    assert 'did you mean "greeting"?' in finished.stdout
    assert finished.outputs["status"] == "error"
    assert not (runner.workspace / ".drawer").exists(), "drawer did not run"


def test_every_problem_with_the_inputs_is_reported_in_one_go(runner: Runner) -> None:
    """Every malformed line, not only the first, and the unknown input names together with
    the other problems (issue 11 item 28)."""
    runner.write("greet.yaml", GREET)
    inputs = {
        "drawer": "greet.yaml",
        "inputs": f"greting=hi\n{SECRET}\n=x\ncount=2\nnotes<<\nsize=1\n",
        "set": "oops\na.b=1\nalso bad\n",
        "summary": "maybe",
    }
    finished = run_action(runner, action_env(inputs))
    assert finished.code == 2
    prefix = "::error::drawer action: "
    known = "(inputs: count, greeting, notes)"
    assert [line for line in finished.stdout.splitlines() if line.startswith("::error::")] == [
        f"{prefix}inputs: line 2 is neither NAME=VALUE nor NAME<<DELIMITER (value hidden)",
        f"{prefix}inputs: line 3 has no NAME before '='",
        f"{prefix}inputs: line 5 needs NAME<<DELIMITER, both non-empty",
        f"{prefix}set: line 1 is not PATH=VALUE",
        f"{prefix}set: line 3 is not PATH=VALUE",
        f'{prefix}summary must be "true" or "false", got "maybe"',
        f'{prefix}inputs: greet.yaml has no input "greting" {known}; did you mean "greeting"?',
        f'{prefix}inputs: greet.yaml has no input "size" {known}',
    ]
    assert SECRET not in finished.stdout + finished.stderr
    assert finished.outputs["status"] == "error"
    assert not (runner.workspace / ".drawer").exists(), "drawer did not run"


@pytest.mark.parametrize("github_mode", [False, True], ids=["plain", "github"])
def test_a_secret_input_never_shows(runner: Runner, github_mode: bool) -> None:
    runner.write(
        "login.yaml",
        """\
        inputs:
          token: {type: string, required: true, secret: true}
        steps:
          - id: login
            env: {TOKEN: "${inputs.token}"}
            run: echo "token is $TOKEN"; echo "$TOKEN" >&2
        outputs:
          token: ${inputs.token}
          said: ${login.output.stdout}
        """,
    )
    env = action_env({"drawer": "login.yaml", "inputs": f"token={SECRET}"})
    finished = run_action(runner, {**env, "GITHUB_ACTIONS": "true" if github_mode else "false"})
    assert finished.code == 0, finished.stderr
    shown = [line for line in (finished.stdout + finished.stderr).splitlines() if SECRET in line]
    # The runner consumes ::add-mask:: lines; they are how it learns what to mask.
    assert shown == ([f"::add-mask::{SECRET}"] if github_mode else [])
    assert SECRET not in runner.output.read_text()
    assert json.loads(finished.outputs["outputs"]) == {"token": "***", "said": "token is ***"}
    assert SECRET not in (runner.workspace / finished.outputs["results"]).read_text()


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGQUIT, 131)],
)
def test_a_signal_is_passed_on_to_drawer(runner: Runner, signum: int, code: int) -> None:
    runner.write("wait.yaml", "steps:\n  - id: wait\n    run: touch started; sleep 30\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer.action"],
        cwd=runner.workspace,
        env=runner.environ(action_env({"drawer": "wait.yaml", "args": "--no-store"})),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for((runner.workspace / "started").exists, "the step to start", process, 30)
        process.send_signal(signum)
        assert process.wait(timeout=20) == code
    finally:
        process.kill()
        process.wait()
    outputs = parse_github_output(runner.output.read_text())
    assert outputs["status"] == "cancelled" and outputs["run-id"]


# reading the action's inputs in-process ----------------------------------------------------


def test_hyphenated_and_underscored_input_variables_are_read() -> None:
    assert action_input({"INPUT_RUN-ARGS": "a"}, "run-args") == "a"
    assert action_input({"INPUT_RUN_ARGS": "b"}, "run-args") == "b"
    assert action_input({"INPUT_RUN-ARGS": "a", "INPUT_RUN_ARGS": "b"}, "run-args") == "a"
    assert action_input({}, "run-args") == ""


def test_inputs_are_read_like_github_output() -> None:
    text = "a=1\r\n\n  b = x=y<<z \nc<<END\r\nline\r\nEND=no\n\nEND\nd<<E\nE\n"
    assert parse_inputs(text) == [("a", "1"), ("b", " x=y<<z "), ("c", "line\nEND=no\n"), ("d", "")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"x=1\n{SECRET}", "inputs: line 2 is neither NAME=VALUE nor NAME<<DELIMITER"),
        (f"={SECRET}", "inputs: line 1 has no NAME before '='"),
        (f"x<<\n{SECRET}", "inputs: line 1 needs NAME<<DELIMITER"),
        (f"x<<EOF\n{SECRET}\nEO", 'inputs: "x<<EOF" (line 1) has no closing "EOF" line'),
    ],
)
def test_malformed_inputs_name_the_line_not_the_value(text: str, message: str) -> None:
    with pytest.raises(ActionError) as raised:
        parse_inputs(text)
    assert raised.value.problems[0].startswith(message)
    assert SECRET not in str(raised.value)


def test_outputs_that_are_not_utf8_become_escapes_in_github_output(tmp_path: Path) -> None:
    """A drawer output holding a byte that is not UTF-8 (a file name, say) is written to
    $GITHUB_OUTPUT as a JSON escape, not a crash after the run (issue 11 item 16)."""
    document = tmp_path / "run.json"
    document.write_text('{"status": "ok", "run_id": "r1", "outputs": {"f": "caf\\udce9"}}')
    output = tmp_path / "github_output"
    write_step_outputs({"GITHUB_OUTPUT": str(output)}, read_results(document, {}))
    values = parse_github_output(output.read_bytes().decode("utf-8"))
    assert values["outputs"] == '{"f":"caf\\udce9"}'
    assert json.loads(values["outputs"]) == {"f": "caf\udce9"}


def test_set_lines_become_run_edits() -> None:
    assert parse_edits("\n a.b = 1\r\nc:=[1, 2]\n") == ["a.b= 1", "c:=[1, 2]"]
    with pytest.raises(ActionError, match="set: line 2 is not PATH=VALUE"):
        parse_edits("a=1\nnothing\n")


def test_every_problem_with_the_action_inputs_is_reported_together() -> None:
    environ = {"INPUT_SET": "oops", "INPUT_ARGS": "--x 'open", "INPUT_SUMMARY": "maybe"}
    with pytest.raises(ActionError) as raised:
        read_action_inputs(environ)
    assert raised.value.problems == [
        'the "drawer" input is required: the drawer file to run',
        "set: line 1 is not PATH=VALUE",
        "args: No closing quotation",
        'summary must be "true" or "false", got "maybe"',
    ]
    action = read_action_inputs({"INPUT_DRAWER": " d.yaml\n", "INPUT_ARGS": "-v --set 'a=b c'"})
    assert (action.drawer, action.args, action.summary) == (
        "d.yaml",
        ("-v", "--set", "a=b c"),
        True,
    )


@pytest.mark.parametrize(
    ("files", "drawer", "edits", "declared"),
    [
        ({"drawers/d.yml": "inputs: {a: {}, b: {}}\nsteps: []\n"}, "d", [], {"a", "b"}),
        ({"d.json": '{"steps": []}'}, "d.json", [], set()),
        ({"d.yaml": "inputs: {a: {}}\nsteps: []\n"}, "d.yaml", ["inputs.c.type=string"], None),
        ({"d.yaml": "inputs: [a]\nsteps: []\n"}, "d.yaml", [], None),
        ({"d.yaml": "steps: [\n"}, "d.yaml", [], None),
        ({}, "d.yaml", [], None),
    ],
    ids=[
        "found-by-name",
        "none-declared",
        "set-edits-inputs",
        "not-a-map",
        "unparsable",
        "no-file",
    ],
)
def test_the_declared_input_names_are_known_before_the_run_or_left_to_drawer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    drawer: str,
    edits: list[str],
    declared: set[str] | None,
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert declared_inputs(drawer, edits) == declared


# action.yml, run as the runner runs a composite action --------------------------------------


def load_action(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return loaded


def evaluate(text: str, values: Mapping[str, str]) -> str:
    """`${{ NAME }}` replaced as the runner does; an expression the test does not know fails."""

    def one(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"unexpected expression {match.group(0)}"
        return values[match.group(1)]

    return EXPRESSION.sub(one, text)


def fake_python(folder: Path, body: str) -> Path:
    """A `python3` first on PATH, as the runner's Python would be."""
    folder.mkdir(exist_ok=True)
    script = folder / "python3"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(0o755)
    return folder


def run_composite(
    runner: Runner, action_path: Path, given: Mapping[str, str], env: Mapping[str, str]
) -> tuple[dict[str, str], list[subprocess.CompletedProcess[str]]]:
    """Every step of action.yml: `env:` values evaluated (never the scripts), each script run
    by `bash --noprofile --norc -eo pipefail FILE` in the workspace with its own
    GITHUB_OUTPUT; then the action's outputs evaluated from the steps' outputs."""
    action = load_action(action_path / "action.yml")
    assert action["runs"]["using"] == "composite"
    values = {
        f"inputs.{name}": given.get(name, str(spec.get("default", "")))
        for name, spec in action["inputs"].items()
    }
    finished = []
    for number, step in enumerate(action["runs"]["steps"]):
        assert set(step) <= {"name", "id", "shell", "env", "run"}, "a key this test ignores"
        assert step["shell"] == "bash"
        script = runner.temp / f"step-{number}.sh"
        script.write_text(step["run"], encoding="utf-8")
        output = runner.temp / f"step-{number}.out"
        output.touch()
        step_env = runner.environ(
            {
                **env,
                "GITHUB_ACTIONS": "true",
                "GITHUB_ACTION_PATH": str(action_path),
                "GITHUB_OUTPUT": str(output),
                "RUNNER_OS": "Linux",
            }
        )
        step_env.update({key: evaluate(str(v), values) for key, v in step.get("env", {}).items()})
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=runner.workspace,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        finished.append(done)
        if done.returncode != 0:
            return {}, finished
        for name, value in parse_github_output(output.read_text(encoding="utf-8")).items():
            values[f"steps.{step['id']}.outputs.{name}"] = value
    outputs = {name: evaluate(spec["value"], values) for name, spec in action["outputs"].items()}
    return outputs, finished


def test_no_run_script_of_the_composite_action_holds_an_expression() -> None:
    steps = load_action(REPO / "action.yml")["runs"]["steps"]
    assert [step["name"] for step in steps] == ["Install drawer", "Run drawer"]
    for step in steps:
        assert "${{" not in step["run"]
        assert step["shell"] == "bash"


def test_the_composite_action_runs_as_the_runner_runs_it(runner: Runner, tmp_path: Path) -> None:
    runner.write("greet.yaml", GREET)
    pip_log = tmp_path / "pip.log"
    bin_dir = fake_python(
        tmp_path / "bin",
        f'if [ "$1 $2" = "-m pip" ]; then printf "%s\\n" "$@" > "{pip_log}"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"',
    )
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    given = {"drawer": "greet.yaml", "inputs": GREET_INPUTS}
    outputs, steps = run_composite(runner, REPO, given, env)
    assert [step.returncode for step in steps] == [0, 0], steps[-1].stderr
    assert pip_log.read_text().split("\n")[:3] == ["-m", "pip", "install"]
    assert pip_log.read_text().split("\n")[-2] == str(REPO), "installs the action's own files"
    assert_greeted(Finished(0, steps[1].stdout, steps[1].stderr, outputs), runner)


def test_the_install_step_refuses_a_python_older_than_3_11(runner: Runner, tmp_path: Path) -> None:
    bin_dir = fake_python(
        tmp_path / "bin",
        'if [ "$1" = "--version" ]; then echo "Python 3.10.12"; fi\nexit 1',
    )
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    _, steps = run_composite(runner, REPO, {"drawer": "greet.yaml"}, env)
    assert len(steps) == 1 and steps[0].returncode == 1
    assert "::error::drawer needs Python 3.11 or newer, and python3 is Python 3.10.12" in (
        steps[0].stdout
    )


def _build_backend_offline() -> bool:
    setuptools = importlib.util.find_spec("setuptools")
    wheel = importlib.util.find_spec("wheel")
    major = int(version("setuptools").split(".")[0]) if setuptools else 0
    return wheel is not None and major >= 69


def venv_seeing_our_packages(venv: Path) -> Path:
    """A fresh virtual environment whose Python also sees the packages this interpreter sees
    (pip, setuptools, wheel and drawer's dependencies), but not drawer itself.

    `venv --system-site-packages` is not that: from inside a virtualenv it shows the *base*
    interpreter's site-packages (there, an old setuptools and no wheel), not this one's. A
    `.pth` file naming our site directories is read at start-up, and since its lines are plain
    paths the `.pth` files inside them (the editable install of this checkout) are not."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = [
        *site.getsitepackages(),
        *([site.getusersitepackages()] if site.ENABLE_USER_SITE else []),
    ]
    seen = [folder for folder in ours if folder in sys.path]
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    (Path(purelib) / "outer-site-packages.pth").write_text(
        "".join(f"{folder}\n" for folder in seen), encoding="utf-8"
    )
    return venv


def test_the_install_step_installs_drawer_from_the_action_checkout(
    runner: Runner, tmp_path: Path
) -> None:
    """A real `pip install "$GITHUB_ACTION_PATH"` into a fresh virtual environment (drawer's
    dependencies come from this one). The action's files are copied, so the build writes
    nothing into the repository."""
    pip_env = {"PIP_NO_DEPS": "1"}
    # The test extra brings setuptools>=69 and wheel, so the build needs no network; without
    # them pip fetches the build backend from PyPI into an isolated build environment.
    if _build_backend_offline():
        # pip reads PIP_NO_BUILD_ISOLATION inverted: "0" means --no-build-isolation.
        pip_env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    checkout = tmp_path / "action"
    shutil.copytree(
        REPO / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("action.yml", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, checkout / name)
    venv = venv_seeing_our_packages(tmp_path / "venv")
    bin_dir = fake_python(tmp_path / "bin", f'exec "{venv / "bin" / "python"}" "$@"')
    env = {**pip_env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    runner.write("greet.yaml", GREET)
    given = {"drawer": "greet.yaml", "inputs": GREET_INPUTS}
    outputs, steps = run_composite(runner, checkout, given, env)
    assert [step.returncode for step in steps] == [0, 0], steps[-1].stderr
    assert_greeted(Finished(0, steps[1].stdout, steps[1].stderr, outputs), runner)
    where = subprocess.run(
        [venv / "bin" / "python", "-c", "import drawer.action; print(drawer.action.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)


# container/action.yml ----------------------------------------------------------------------


def test_the_container_action_matches_the_composite_one() -> None:
    composite = load_action(REPO / "action.yml")
    container = load_action(REPO / "container" / "action.yml")
    assert container["inputs"] == composite["inputs"]
    assert (
        list(container["outputs"])
        == list(composite["outputs"])
        == [
            "status",
            "run-id",
            "results",
            "outputs",
        ]
    )
    runs = container["runs"]
    assert runs["using"] == "docker"
    assert (REPO / "container" / runs["image"]).resolve() == REPO / "Dockerfile"


def test_the_container_entrypoint_runs_with_docker_input_variables(runner: Runner) -> None:
    container = load_action(REPO / "container" / "action.yml")
    runs = container["runs"]
    # tini stays PID 1 (reaping, signals), as in the image's own ENTRYPOINT.
    assert [runs["entrypoint"], *runs["args"][:2]] == ["tini", "-g", "--"]
    command = runs["args"][2:]
    assert command[0] == "python"
    given = {"drawer": "greet.yaml", "inputs": GREET_INPUTS, "set": "hello.timeout=30s"}
    # Docker actions get every input, given or default, as INPUT_<NAME upper-cased>.
    env = {
        f"INPUT_{name.upper()}": given.get(name, str(spec.get("default", "")))
        for name, spec in container["inputs"].items()
    }
    runner.write("greet.yaml", GREET)
    finished = run_action(runner, env, [sys.executable, *command[1:]])
    assert_greeted(finished, runner)


def test_a_drawer_file_over_the_size_limit_is_not_parsed_by_the_glue(tmp_path: Path) -> None:
    """The glue reads the file's inputs through the loader's one reader, which refuses a file
    past 8 MiB before reading it: parsing 9 MiB of blank lines took about 400 MB."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"inputs: {a: {}}\nsteps: []\n" + b"\n" * (9 * 2**20))
    small = tmp_path / "small.yaml"
    small.write_bytes(b"inputs: {a: {}}\nsteps: []\n")
    assert declared_inputs(str(small), []) == frozenset({"a"})
    tracemalloc.start()
    try:
        assert declared_inputs(str(big), []) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20
