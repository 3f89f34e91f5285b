"""The GitHub Action's glue (SPEC 5): the action's inputs become one `drawer FILE run`, and its
run document becomes the step's outputs. action.yml (composite) and container/action.yml
(docker) both run `python -m drawer.action`.

Input values are data: they reach drawer as `DRAWER_INPUT_<NAME>` variables (not in argv,
where `ps` shows them) and never pass through a shell. This module never prints them.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from drawer.inputs import env_name
from drawer.records import json_text
from drawer.signals import CANCELLING

EXIT_USAGE = 2
ACTION_INPUTS = ("drawer", "inputs", "set", "args", "summary")
RESULTS_DIR = Path(".drawer") / "results"


class ActionError(Exception):
    """Action inputs that cannot be used: each problem becomes an `::error::`, exit 2.
    `readable` is what could be read all the same (the well-formed lines), so that the
    problems found with those are reported in the same go."""

    def __init__(self, problems: Sequence[str], readable: Sequence[Any] = ()) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
        self.readable = list(readable)


@dataclass(frozen=True)
class ActionInputs:
    drawer: str
    inputs: tuple[tuple[str, str], ...]
    edits: tuple[str, ...]
    args: tuple[str, ...]
    summary: bool


@dataclass(frozen=True)
class StepOutputs:
    """What the action step gives later steps (`steps.ID.outputs.*`)."""

    status: str
    run_id: str = ""
    results: str = ""
    outputs: str = "{}"

    def as_dict(self) -> dict[str, str]:
        return {
            "status": self.status,
            "run-id": self.run_id,
            "results": self.results,
            "outputs": self.outputs,
        }


NOT_RUN = StepOutputs("error")


def action_input(environ: Mapping[str, str], name: str) -> str:
    """An action input's value ("" when not given). Docker actions get `INPUT_<NAME>` upper-cased
    with hyphens kept (`INPUT_RUN-ARGS`, readable only through os.environ); a shell step can
    only pass the underscore spelling. Both are read."""
    upper = name.upper().replace(" ", "_")
    for key in (f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}"):
        if key in environ:
            return environ[key]
    return ""


def _lines(text: str) -> list[str]:
    return [line.removesuffix("\r") for line in text.split("\n")]


def parse_inputs(text: str) -> list[tuple[str, str]]:
    """`NAME=VALUE` lines and `NAME<<DELIMITER` ... `DELIMITER` blocks, read as the runner
    reads `$GITHUB_OUTPUT` (whichever of `=` and `<<` comes first decides). Blank lines are
    skipped. Every malformed line is reported, each by its number, never its text: it may
    hold a secret."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    lines = _lines(text)
    index = 0
    while index < len(lines):
        line, number = lines[index], index + 1
        index += 1
        if not line.strip():
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line[:equals].strip(), line[equals + 1 :]
            if name:
                pairs.append((name, value))
            else:
                problems.append(f"inputs: line {number} has no NAME before '='")
            continue
        if heredoc < 0:
            problems.append(
                f"inputs: line {number} is neither NAME=VALUE nor NAME<<DELIMITER (value hidden)"
            )
            continue
        name, delimiter = line[:heredoc].strip(), line[heredoc + 2 :].strip()
        if not name or not delimiter:
            problems.append(f"inputs: line {number} needs NAME<<DELIMITER, both non-empty")
            continue
        try:
            end = lines.index(delimiter, index)
        except ValueError:  # the block runs to the end: nothing after it can be read
            problems.append(
                f'inputs: "{name}<<{delimiter}" (line {number}) has no closing "{delimiter}" line'
            )
            break
        pairs.append((name, "\n".join(lines[index:end])))
        index = end + 1
    if problems:
        raise ActionError(problems, pairs)
    return pairs


def parse_edits(text: str) -> list[str]:
    """`PATH=VALUE` (or `PATH:=JSON`) lines for `run --set`; blank lines are skipped; every
    malformed line is reported."""
    edits: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        path, sep, value = line.partition("=")
        if not sep or not path.strip():
            problems.append(f"set: line {number} is not PATH=VALUE")
        else:
            edits.append(f"{path.strip()}={value}")
    if problems:
        raise ActionError(problems, edits)
    return edits


def read_action_inputs(environ: Mapping[str, str]) -> ActionInputs:
    """The action's inputs from `INPUT_*`, input names checked against the drawer file's;
    every problem found is raised together, so one failed job shows them all."""
    problems: list[str] = []
    drawer = action_input(environ, "drawer").strip()
    if not drawer:
        problems.append('the "drawer" input is required: the drawer file to run')
    inputs: list[tuple[str, str]] = []
    edits: list[str] = []
    args: list[str] = []
    try:
        inputs = parse_inputs(action_input(environ, "inputs"))
    except ActionError as error:
        problems += error.problems
        inputs = error.readable
    try:
        edits = parse_edits(action_input(environ, "set"))
    except ActionError as error:
        problems += error.problems
        edits = error.readable
    try:
        args = shlex.split(action_input(environ, "args"))
    except ValueError as error:
        problems.append(f"args: {error}")
    summary = action_input(environ, "summary").strip().lower() or "true"
    if summary not in ("true", "false"):
        problems.append(f'summary must be "true" or "false", got "{summary}"')
    declared = declared_inputs(drawer, edits) if drawer else None
    if declared is not None:
        problems += unknown_input_problems(drawer, [name for name, _ in inputs], declared)
    if problems:
        raise ActionError(problems)
    return ActionInputs(drawer, tuple(inputs), tuple(edits), tuple(args), summary == "true")


def locate_drawer(name: str) -> Path | None:
    """The file `drawer NAME run` reads: a path, else NAME.yaml|yml|json in ./drawers/, then ."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix or "/" in name:
        return None
    for folder in (Path("drawers"), Path(".")):
        for suffix in (".yaml", ".yml", ".json"):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def declared_inputs(drawer: str, edits: Sequence[str]) -> frozenset[str] | None:
    """The input names the drawer file declares; None when that cannot be told before the run
    (no such file, a file drawer will reject, or `set` edits the inputs): drawer then reports."""
    if any(edit.lstrip("/").startswith("inputs") for edit in edits):
        return None
    path = locate_drawer(drawer)
    if path is None:
        return None
    from drawer.loader import InvalidDrawer, read_drawer_text
    from drawer.source import ParseError, parse_document

    try:
        data = parse_document(read_drawer_text(path), str(path)).data
    except (OSError, InvalidDrawer, ParseError):
        return None
    declared = data.get("inputs", {}) if isinstance(data, dict) else None
    return frozenset(declared) if isinstance(declared, dict) else None


def unknown_input_problems(
    drawer: str, names: Sequence[str], declared: frozenset[str]
) -> list[str]:
    """A name the drawer does not declare is an error, as `-i` would make it: as an
    environment variable it would be ignored without a word."""
    from drawer.source import suggest

    known = ", ".join(sorted(declared)) or "none"
    problems = []
    for name in dict.fromkeys(names):
        if name not in declared:
            guess = suggest(name, declared)
            hint = f'; did you mean "{guess}"?' if guess else ""
            problems.append(f'inputs: {drawer} has no input "{name}" (inputs: {known}){hint}')
    return problems


def results_path(environ: Mapping[str, str], drawer: str) -> Path:
    """A new file for the run document: under `$GITHUB_WORKSPACE/.drawer/results/` (so later
    steps and artifact uploads find it by a relative path), else in `$RUNNER_TEMP`."""
    name = f"{Path(drawer).stem or 'drawer'}-{secrets.token_hex(4)}.json"
    workspace = environ.get("GITHUB_WORKSPACE", "")
    if not workspace or not Path(workspace).is_dir():
        return Path(environ.get("RUNNER_TEMP") or tempfile.gettempdir()).absolute() / name
    store = Path(workspace).absolute() / RESULTS_DIR.parent
    if not store.exists():
        store.mkdir()
        # As the run store does when it creates .drawer/: its contents stay out of git.
        (store / ".gitignore").write_text("# created by drawer: run records\n*\n")
    (store / RESULTS_DIR.name).mkdir(exist_ok=True)
    return store / RESULTS_DIR.name / name


def drawer_command(action: ActionInputs, document: Path) -> list[str]:
    """`drawer FILE run` as an argv list (no shell); `--output` last, so it is the one used."""
    command = [sys.executable, "-m", "drawer", action.drawer, "run"]
    for edit in action.edits:
        command += ["--set", edit]
    return [*command, *action.args, "--output", str(document)]


def drawer_environment(environ: Mapping[str, str], action: ActionInputs) -> dict[str, str]:
    """The action's environment without its own `INPUT_*` plumbing, plus one
    `DRAWER_INPUT_<NAME>` per input; without `GITHUB_STEP_SUMMARY` when `summary` is false."""
    plumbing = {f"INPUT_{name.upper()}" for name in ACTION_INPUTS}
    env = {key: value for key, value in environ.items() if key not in plumbing}
    for name, value in action.inputs:
        env[env_name(name)] = value
    if not action.summary:
        env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def run_drawer(command: list[str], env: Mapping[str, str]) -> int:
    """Run drawer with this process's stdout and stderr; the signals that cancel a run are
    passed on to it (in its own process group, so a signal sent to the whole group reaches it once).
    Returns its exit code, 128+N when signal N ended it."""
    process: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if process is None:
            pending.append(signum)
        else:
            process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in CANCELLING}
    try:
        sys.stdout.flush()
        process = subprocess.Popen(
            command, env=dict(env), process_group=0 if os.name == "posix" else None
        )
        for signum in pending:
            process.send_signal(signum)
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def read_results(document: Path, environ: Mapping[str, str]) -> StepOutputs:
    """The step outputs from drawer's run document; `error` when drawer wrote none."""
    try:
        run = json.loads(document.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return NOT_RUN
    outputs = json_text(run.get("outputs", {}))
    return StepOutputs(
        str(run["status"]), str(run["run_id"]), shown_path(document, environ), outputs
    )


def shown_path(path: Path, environ: Mapping[str, str]) -> str:
    """`path` relative to `$GITHUB_WORKSPACE` when inside it (with `/`), else absolute."""
    workspace = environ.get("GITHUB_WORKSPACE", "")
    if workspace:
        try:
            return path.relative_to(Path(workspace).absolute()).as_posix()
        except ValueError:
            pass
    return str(path)


def write_step_outputs(environ: Mapping[str, str], outputs: StepOutputs) -> None:
    """Append to `$GITHUB_OUTPUT`, each value in the `name<<DELIMITER` form with a random
    delimiter that does not occur in it (so no value can end its block early)."""
    path = environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8", errors="backslashreplace", newline="") as stream:
        for name, value in outputs.as_dict().items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            stream.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def report_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        escaped = problem.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        print(f"::error::drawer action: {escaped}", flush=True)


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Run the drawer the action's inputs name; write the step outputs; drawer's exit code."""
    try:
        action = read_action_inputs(environ)
    except ActionError as error:
        report_problems(error.problems)
        write_step_outputs(environ, NOT_RUN)
        return EXIT_USAGE
    document = results_path(environ, action.drawer)
    code = run_drawer(drawer_command(action, document), drawer_environment(environ, action))
    write_step_outputs(environ, read_results(document, environ))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
