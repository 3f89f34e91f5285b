"""The command line: `drawer FILE VERB ...`; parses words, calls one function, maps exit codes."""

from __future__ import annotations

import errno
import gc
import io
import json
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO, cast

import typer

from drawer import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
VERBS = ("run", "validate", "graph", "set", "get", "unset", "history", "show", "logs", "plan")
COMMANDS = ("merge", "schema", "help")

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

TOP_HELP = f"""drawer {__version__}: run workflow files with parallel for_each.

Usage: drawer FILE VERB [OPTIONS]

  FILE is a path, or NAME found as NAME.yaml, NAME.yml or NAME.json in ./drawers/
  and then in the current directory.

Verbs:
  run        run the drawer (drawer FILE run --help for options)
  validate   report every problem in the file at once, exit 0 or 2
  graph      print the step graph (--format mermaid, dot or text)
  set        edit fields in place: drawer FILE set lint.parallelism=10 [--dry-run]
  get        print a field: drawer FILE get lint.parallelism [--effective]
  unset      remove a field: drawer FILE unset lint.timeout
  history    past runs of this drawer, newest first [--limit N] [--json]
  show       one past run: drawer FILE show RUN_ID|last [--json]
  logs       a past run's command output: drawer FILE logs RUN_ID|last [STEP_PATH]

  plan       the shards of the sharded loop: drawer FILE plan --shards N [--format json]

Commands:
  merge      join shards' run documents: drawer merge PART... [--output FILE]
  schema     print the JSON Schema of drawer files (for editors)

Options:
  --version  print the version
  --help     this help
"""


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    sys.stderr.write(f"drawer: {message}\n")
    raise SystemExit(code)


def find_drawer(name: str) -> Path:
    """A path as given, else NAME.yaml|yml|json in ./drawers/ and then in `.`."""
    path = Path(name)
    if path.is_file():
        return path
    looked = [str(path)]
    if path.suffix == "" and "/" not in name:
        for folder in (Path("drawers"), Path(".")):
            for suffix in (".yaml", ".yml", ".json"):
                candidate = folder / f"{name}{suffix}"
                looked.append(str(candidate))
                if candidate.is_file():
                    return candidate
    fail(f"no drawer file {name!r}; looked for: {', '.join(looked)}")


def _file_secrets(text: str | None, path: Path) -> Any:
    """A Masker for messages that quote a drawer file: it hides its secret inputs' defaults
    (the text may carry one from a `--set` edit)."""
    from drawer.context import Masker
    from drawer.inputs import secret_defaults
    from drawer.source import ParseError, parse_document

    try:
        data = parse_document(text, str(path)).data if text else None
    except ParseError:
        data = None
    return Masker(secret_defaults(data))


def print_problems(error: Any, stream: Any = None) -> None:
    from drawer.source import format_problem

    stream = stream or sys.stderr
    mask = _file_secrets(error.text, error.path).text
    for problem in error.problems:
        stream.write(mask(format_problem(problem, error.text, str(error.path))) + "\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for problem in error.problems:
            stream.write(mask(github_annotation(problem, str(error.path))) + "\n")
    errors = sum(problem.severity == "error" for problem in error.problems)
    if errors:
        stream.write(f"{error.path}: {errors} error(s); nothing was run\n")


def github_annotation(problem: Any, path: str) -> str:
    """`::error file=...,line=...,col=...::message` with GitHub's escaping of data."""

    def escape(text: str, property_value: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if property_value else text

    where = f"file={escape(path, True)}"
    if problem.position is not None:
        where += f",line={problem.position.line},col={problem.position.col}"
    message = problem.message + (f" ({problem.hint})" if problem.hint else "")
    return f"::{problem.severity} {where}::{escape(message)}"


def problems_json(problems: Any, path: Path) -> list[dict[str, Any]]:
    return [
        {
            "severity": problem.severity,
            "code": problem.code,
            "message": problem.message,
            "file": str(path),
            "line": problem.position.line if problem.position else None,
            "col": problem.position.col if problem.position else None,
            "hint": problem.hint,
        }
        for problem in problems
    ]


def load_or_exit(file: str, as_json: bool = False, edits: list[str] | None = None) -> Any:
    """The validated drawer (with `run --set` edits applied in memory), or exit 2."""
    from drawer.loader import InvalidDrawer, load_drawer, load_text

    path = find_drawer(file)
    try:
        if not edits:
            return load_drawer(path)
        from drawer.assign import AssignError, apply_assignments

        try:
            text = apply_assignments(read_text(path), path, edits, as_string=False)
        except AssignError as error:
            fail(str(error))
        return load_text(text, path)
    except InvalidDrawer as error:
        if as_json:
            report = {"valid": False, "problems": problems_json(error.problems, path)}
            report = _file_secrets(error.text, error.path).value(report)
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            print_problems(error)
        raise SystemExit(EXIT_USAGE) from None


@app.command()
def validate(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    as_json: Annotated[bool, typer.Option("--json", help="print problems as JSON")] = False,
) -> None:
    """Report every problem in the drawer file at once; exit 0 when it can run, else 2."""
    loaded = load_or_exit(file, as_json)
    if as_json:
        report = {"valid": True, "problems": problems_json(loaded.warnings, loaded.path)}
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    if loaded.warnings:
        from drawer.source import format_problem

        for problem in loaded.warnings:
            sys.stderr.write(format_problem(problem, loaded.document.text, str(loaded.path)) + "\n")
    steps = sum(1 for _ in _all_steps(loaded.model))
    sys.stdout.write(f"{loaded.path}: valid ({steps} steps, {len(loaded.warnings)} warnings)\n")


class GraphFormat(StrEnum):
    """The choices of `graph --format` (an Enum: typer before 0.19 knows no Literal)."""

    MERMAID = "mermaid"
    DOT = "dot"
    TEXT = "text"


@app.command()
def graph(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    graph_format: Annotated[
        GraphFormat,
        typer.Option("--format", help="mermaid, dot (Graphviz) or text (a tree for the terminal)"),
    ] = GraphFormat.TEXT,
) -> None:
    """Print the step graph: every step, its nesting and the dependencies of every list."""
    loaded = load_or_exit(file)
    from drawer.diagram import render

    sys.stdout.write(render(loaded.model, graph_format.value, loaded.name))


def read_text(path: Path) -> str:
    from drawer.loader import InvalidDrawer, read_drawer_text

    try:
        return read_drawer_text(path)
    except InvalidDrawer as error:
        fail(f"{path}: {error.problems[0].message}")


@app.command(name="set")
def set_command(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    assignments: Annotated[list[str], typer.Argument(metavar="PATH=VALUE...")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print a unified diff; write nothing")
    ] = False,
    as_string: Annotated[bool, typer.Option("--string", help="keep every value a string")] = False,
) -> None:
    """Edit fields in place (STEP.field=VALUE, a.b.c=VALUE, /json/pointer=VALUE, PATH:=JSON);
    every other byte of the file stays as it was. All or nothing; validated first."""
    from drawer.assign import AssignError, apply_assignments, unified_diff, write_atomic

    path = find_drawer(file)
    text = read_text(path)
    try:
        new_text = apply_assignments(text, path, assignments, as_string)
    except AssignError as error:
        fail(str(error))
    if dry_run:
        sys.stdout.write(unified_diff(text, new_text, path))
        return
    if new_text != text:
        write_atomic(path, new_text)


@app.command(name="get")
def get_command(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    target: Annotated[str, typer.Argument(metavar="PATH")],
    effective: Annotated[
        bool, typer.Option("--effective", help="the value after defaults, as JSON")
    ] = False,
) -> None:
    """Print a field as written in the file (JSON for lists and maps)."""
    from drawer.assign import AssignError, effective_value, read_path

    path = find_drawer(file)
    try:
        if effective:
            loaded = load_or_exit(file)
            sys.stdout.write(effective_value(loaded, target) + "\n")
        else:
            sys.stdout.write(read_path(read_text(path), path, target) + "\n")
    except AssignError as error:
        fail(str(error))


@app.command(name="unset")
def unset_command(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    target: Annotated[str, typer.Argument(metavar="PATH")],
) -> None:
    """Remove a field and its line(s); exit 2 when it is not there."""
    from drawer.assign import AssignError, remove_path, write_atomic

    path = find_drawer(file)
    text = read_text(path)
    try:
        new_text = remove_path(text, path, target)
    except AssignError as error:
        fail(str(error))
    write_atomic(path, new_text)


def _all_steps(model: Any) -> Any:
    from drawer.loader import iter_steps

    return iter_steps(model)


@app.command()
def run(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", metavar="NAME=VALUE", help="an input value (repeatable)"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print only the run document (JSON) on stdout")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="also write the run document to FILE"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the summary")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="print every lifecycle event with timings")
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="plain lines even on a terminal")
    ] = False,
    edits: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="PATH=VALUE", help="edit the drawer for this run only"),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", metavar="DIR", help="record the run in DIR (default .drawer/)"),
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="record nothing")] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN_ID|last|RUN_DOC.json",
            help="a new run that reuses what an earlier run finished ok",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option("--shard", metavar="I/N", help="run only shard I of N of the sharded loop"),
    ] = None,
) -> None:
    """Run the drawer; exit 0 when it succeeded, 1 when it failed, 128+N on signal N."""
    from drawer.resume import definitions

    earlier = None
    if resume is not None:
        if edits:
            fail(
                "--set cannot be used with --resume: the resumed run's edits are applied again"
                " (start a new run to change the drawer)"
            )
        earlier = _resume_source(file, resume, store, no_store)
        edits = _resumed_edits(earlier.facts)
    loaded = load_or_exit(file, edits=edits)
    from drawer.inputs import InputErrors, resolve_inputs

    assignments = inputs or []
    if earlier is not None:
        assignments = _resumed_inputs(loaded, earlier.facts, assignments)
    try:
        resolved = resolve_inputs(loaded.model.inputs, assignments, os.environ)
    except InputErrors as errors:
        _input_problems(loaded, errors.errors)
    if shard is None and earlier is not None and earlier.facts.shard:
        shard = earlier.facts.shard  # resuming a shard resumes the same shard
    this_shard = _shard_or_exit(loaded, shard) if shard is not None else None
    steps = definitions(loaded)
    recorder = None
    if not no_store:
        recorder = _open_recorder(
            loaded, resolved, edits or [], store, steps, earlier.facts.run_id if earlier else None
        )
    previous = _previous(earlier, steps, loaded) if earlier is not None else None
    try:
        document, signum, lost = _execute(
            loaded,
            resolved,
            as_json=as_json,
            quiet=quiet,
            verbose=verbose,
            no_progress=no_progress,
            listeners=[recorder] if recorder is not None else [],
            extra={
                "previous": previous,
                "resumed_from": earlier.facts.run_id if earlier else None,
                "commit": recorder.commit if recorder is not None else None,
                "edits": list(edits or []),
                "definitions": steps,
                "shard": this_shard,
            },
        )
    finally:
        if recorder is not None:
            recorder.connection.close()
        if earlier is not None:
            earlier.connection.close()
    if recorder is not None and recorder.failure is not None:
        sys.stderr.write(f"drawer: warning: {recorder.failure}\n")
    if output is not None:
        _write_atomic(output, _document_text(document, pretty=False))
    from drawer.signals import CANCELLING, exit_code

    if lost is not None and signum not in CANCELLING:
        _exit_display_lost(lost)
    if as_json:
        from drawer.report import DisplayStream

        out = DisplayStream(sys.stdout)
        out.write(_document_text(document, pretty=out.isatty()))
        out.flush()
        if out.lost is not None:
            _exit_display_lost(out.lost)
    status = document["status"]
    if status == "cancelled":
        raise SystemExit(exit_code(signum))
    raise SystemExit(EXIT_OK if status == "ok" else EXIT_FAILED)


def _input_problems(loaded: Any, errors: list[Any]) -> NoReturn:
    from drawer.source import Problem, format_problem

    mask = _file_secrets(loaded.document.text, loaded.path).text
    for error in errors:
        position = (
            loaded.document.source.key(("inputs", error.name))
            if error.name in loaded.model.inputs
            else None
        )
        problem = Problem(
            str(error),
            position,
            code="INPUT_INVALID",
            hint="inputs are given as -i NAME=VALUE or DRAWER_INPUT_NAME",
        )
        text = format_problem(problem, loaded.document.text, str(loaded.path))
        sys.stderr.write(mask(text) + "\n")
    raise SystemExit(EXIT_USAGE)


def _document_text(document: dict[str, Any], *, pretty: bool) -> str:
    """Indented for a person at a terminal; compact (C encoder, a tenth of the memory) else."""
    from drawer.records import json_text

    if pretty:
        return json_text(document, indent=2, separators=None) + "\n"
    return json_text(document, separators=None) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _shard_or_exit(loaded: Any, text: str) -> Any:
    from drawer.shard import ShardError, make_shard

    try:
        return make_shard(loaded.model, text)
    except ShardError as error:
        fail(f"{loaded.path}: --shard {text}: {error}")


@app.command()
def plan(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    shards: Annotated[int, typer.Option("--shards", metavar="N", help="how many shards")],
    plan_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="gha-matrix|json",
            help='gha-matrix (default): {"shard": ["1/N", ...]} for a matrix\'s fromJSON;'
            " json: with the loop and the steps deferred to after the merge",
        ),
    ] = "gha-matrix",
) -> None:
    """The shards of the sharded loop, for a GitHub Actions matrix."""
    from drawer.shard import ShardError
    from drawer.shard import plan as make_plan

    if plan_format not in ("gha-matrix", "json"):
        fail(f"--format takes gha-matrix or json, got {plan_format!r}")
    loaded = load_or_exit(file)
    try:
        planned = make_plan(loaded.model, shards)
    except ShardError as error:
        fail(f"{loaded.path}: {error}")
    if plan_format == "gha-matrix":
        sys.stdout.write(json.dumps({"shard": planned["shard"]}, separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(planned, indent=2) + "\n")


@app.command(name="merge")
def merge_command(
    parts: Annotated[list[Path], typer.Argument(metavar="PART...", help="shards' run documents")],
    output: Annotated[
        Path | None,
        typer.Option("--output", metavar="FILE", help="write the merged run document to FILE"),
    ] = None,
) -> None:
    """Join the run documents of every shard into the document of the whole run; exit 0
    when it is ok, 1 when it failed, 2 when a shard is missing (SHARD_MISSING)."""
    from drawer.assign import AssignError, apply_assignments
    from drawer.loader import InvalidDrawer, load_drawer, load_text
    from drawer.shard import ShardError, check_parts, merge

    documents = []
    for part in parts:
        try:
            documents.append(json.loads(part.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            fail(f"{part}: cannot read a run document: {error}")
    try:  # before the drawer file is looked for: it is named by the first part
        check_parts(documents, [str(part) for part in parts])
    except ShardError as error:
        fail(f"{error.code}: {error}" if error.code == "SHARD_MISSING" else str(error))
    first = documents[0]
    drawer_path = Path(first["drawer"])
    try:
        loaded = load_drawer(drawer_path)
        if first.get("edits"):
            text = apply_assignments(read_text(drawer_path), drawer_path, first["edits"], False)
            loaded = load_text(text, drawer_path)
    except (InvalidDrawer, OSError, AssignError) as error:
        fail(
            f"merge needs the drawer file the shards ran, {drawer_path}, from the same"
            f" directory: {error}"
        )
    try:
        document = merge(documents, [str(part) for part in parts], loaded)
    except ShardError as error:
        fail(f"{error.code}: {error}")
    text = _document_text(document, pretty=output is None and sys.stdout.isatty())
    if output is not None:
        _write_atomic(output, _document_text(document, pretty=False))
        from rich.console import Console

        from drawer.report import print_summary

        print_summary(document, Console(file=sys.stdout))
    else:
        sys.stdout.write(text)
    if os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get("GITHUB_STEP_SUMMARY"):
        _merged_summary(document, loaded)
    raise SystemExit(EXIT_OK if document["status"] == "ok" else EXIT_FAILED)


def _merged_summary(document: dict[str, Any], loaded: Any) -> None:
    """The merged run's job summary: the same table and graph as a single run's."""
    from drawer.github import GitHubReporter, write_summary

    reporter = GitHubReporter(sys.stderr)

    def visit(steps: dict[str, Any], prefix: str) -> None:
        for step_id, record in steps.items():
            path = f"{prefix}.{step_id}" if prefix else step_id
            reporter.note_status(path, record.get("status"))
            output = record.get("output")
            if isinstance(output, dict):
                for entry in output.get("results") or []:
                    if isinstance(entry, dict) and isinstance(entry.get("steps"), dict):
                        visit(entry["steps"], f"{path}[{entry.get('index')}]")

    visit(document["steps"], "")
    write_summary(Path(os.environ["GITHUB_STEP_SUMMARY"]), reporter.summary(document, loaded))


def _open_store_or_exit(option: Path | None) -> tuple[Any, Path]:
    from drawer.store import StoreError, open_store, store_directory

    directory = store_directory(option, os.environ, Path.cwd())
    try:
        connection = open_store(directory)
    except StoreError as error:
        fail(f"STORE_ERROR: {error} (choose another with --store DIR, or run with --no-store)")
    return connection, directory


def _content_hash(loaded: Any) -> str:
    import hashlib

    return hashlib.sha256(loaded.path.read_bytes()).hexdigest()


def _open_recorder(
    loaded: Any,
    resolved: Any,
    edits: list[str],
    option: Path | None,
    steps: dict[str, str],
    resumed_from: str | None,
) -> Any:
    """The store's listener for this run, or exit 2 (STORE_ERROR) before anything runs."""
    from drawer.inputs import recorded_inputs
    from drawer.store import RunFacts, RunRecorder

    connection, directory = _open_store_or_exit(option)
    facts = RunFacts(
        drawer_path=loaded.path.resolve(),
        content_hash=_content_hash(loaded),
        inputs=recorded_inputs(loaded.model.inputs, resolved.values),
        edits=edits,
        secrets=resolved.secrets,
        resumed_from=resumed_from,
        definitions=steps,
    )
    return RunRecorder(connection, directory, facts)


class _Earlier:
    """The run a `--resume` continues: a connection to read its records, and its facts."""

    def __init__(self, connection: Any, facts: Any) -> None:
        self.connection = connection
        self.facts = facts


def _resume_source(file: str, resume: str, option: Path | None, no_store: bool) -> _Earlier:
    """The run named by `--resume RUN_ID|last|RUN_DOC.json`, or exit 2 saying why not.
    A run document is recorded into the store first (into memory with --no-store)."""
    import sqlite3

    from drawer.store import (
        UNRECORDED,
        DocumentError,
        StoreError,
        check_store,
        find_run,
        import_document,
        migrate,
        resume_facts,
        store_directory,
    )

    path = find_drawer(file).resolve()
    as_document = resume.endswith(".json") or (resume != "last" and Path(resume).is_file())
    if as_document:
        try:
            document = json.loads(Path(resume).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            fail(f"--resume {resume}: cannot read a run document: {error}")
        if no_store:
            connection = sqlite3.connect(":memory:", isolation_level=None)
            migrate(connection)
        else:
            connection, _ = _open_store_or_exit(option)
        try:
            run_id = import_document(connection, document, path)
            return _Earlier(connection, resume_facts(connection, run_id))
        except (DocumentError, StoreError, sqlite3.Error) as error:
            fail(f"--resume {resume}: {error}")
    # Read-only: with --no-store this run records nothing; else the recorder opens the store
    # for writing, and checks it, before anything runs.
    directory = store_directory(option, os.environ, Path.cwd())
    connection = _read_store_or_exit(directory)
    with _reading_store(directory):
        if no_store and connection is not None:
            check_store(connection, directory)
        run = find_run(connection, path, resume) if connection is not None else None
        if run is None:
            what = "no runs" if resume == "last" else f"no run {resume}"
            fail(
                f"--resume {resume}: {what} of {path} recorded in {directory}"
                f" (see: drawer {file} history)"
            )
        if run.status == "running":
            fail(
                f"--resume {resume}: run {run.run_id} is still running (process {run.pid});"
                " resume it once it has ended"
            )
        if run.status == UNRECORDED:
            fail(
                f"--resume {resume}: run {run.run_id} is {UNRECORDED}: its store stopped"
                " recording it (a full disk?), so it lacks steps that may have finished and"
                " cannot be trusted to resume from; resume from the run document it wrote"
                " (--output), or start a new run"
            )
        return _Earlier(connection, resume_facts(connection, run.run_id))


def _resumed_edits(facts: Any) -> list[str]:
    """The resumed run's `--set` edits. One that held a secret was recorded masked: it is not
    applied again (as a secret input, the secret is given again with -i)."""
    from drawer.context import MASK

    kept = []
    for edit in facts.edits:
        if MASK in edit:
            sys.stderr.write(
                f"drawer: the --set edit {edit} of run {facts.run_id} held a secret, which was"
                " not recorded: it is not applied again (give a secret input again with -i)\n"
            )
        else:
            kept.append(edit)
    return kept


def _resumed_inputs(loaded: Any, facts: Any, given: list[str]) -> list[str]:
    """The resumed run's inputs as -i assignments; only secret inputs may be given again."""
    from drawer.context import MASK
    from drawer.refs import to_text

    specs = loaded.model.inputs
    for assignment in given:
        name = assignment.partition("=")[0].strip()
        if name in specs and not specs[name].secret:
            fail(
                f"-i {name}: --resume reuses the inputs of run {facts.run_id}; only secret"
                " inputs are given again (start a new run to change the others)"
            )
    reused = [
        f"{name}={to_text(value)}"
        for name, value in facts.inputs.items()
        if name in specs and not specs[name].secret and value is not None and value != MASK
    ]
    return reused + given


def _previous(earlier: _Earlier, steps: dict[str, str], loaded: Any) -> Any:
    """The Previous the engine consults; says on stderr which steps changed since."""
    from drawer.resume import Previous, changed_steps

    facts = earlier.facts
    old = facts.definitions
    if old is None:
        if facts.content_hash == _content_hash(loaded):
            old = steps
        else:
            old = {}
            sys.stderr.write(
                f"drawer: run {facts.run_id} did not record its step definitions and the"
                " file has changed since: every step runs again\n"
            )
    changed = changed_steps(old, steps)
    for name in changed[:20]:
        sys.stderr.write(f"drawer: {name} changed since run {facts.run_id}: it runs again\n")
    if len(changed) > 20:
        sys.stderr.write(f"drawer: ... and {len(changed) - 20} more changed steps\n")
    return Previous(earlier.connection, facts.run_id, old, steps)


def _execute(
    loaded: Any,
    resolved: Any,
    *,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    no_progress: bool,
    listeners: list[Any],
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int | None, OSError | None]:
    import trio
    from rich.console import Console

    from drawer.context import Interrupt
    from drawer.engine import RunOptions, execute_run
    from drawer.loader import iter_steps
    from drawer.report import (
        DisplayStream,
        HiddenFailures,
        LiveReporter,
        PlainReporter,
        print_summary,
    )
    from drawer.signals import CANCELLING, KILL_NOW

    interrupt = Interrupt()
    kill_now = trio.Event()
    cancel_scope = trio.CancelScope()

    def display_lost(error: OSError) -> None:
        # As a pipe-closed CLI stops at its next write, the run is cancelled, not left running.
        if interrupt.signal is None:
            interrupt.signal = signal.SIGPIPE
            interrupt.reason = f"drawer's output was closed: {error}"
            cancel_scope.cancel()

    stream = DisplayStream(sys.stderr if as_json else sys.stdout, display_lost)
    text_stream = cast("TextIO", stream)  # it has every method a reporter calls
    console = Console(file=text_stream)
    live = stream.isatty() and not no_progress and not quiet and not verbose
    hidden = HiddenFailures()
    # Only a sub-drawer's failures are hidden from the run document: without a `drawer` step
    # the listener would be called for every event of the run for nothing.
    if any(step.kind == "drawer" for step, _ in iter_steps(loaded.model)):
        listeners = [*listeners, hidden]
    live_reporter = LiveReporter(console) if live else None
    github = None
    if os.environ.get("GITHUB_ACTIONS") == "true" and live_reporter is None:
        from drawer.github import GitHubReporter, mask_commands

        github = GitHubReporter(text_stream, verbose=verbose, quiet=quiet)
        for command in mask_commands(resolved.secrets):
            stream.write(command + "\n")
        listeners.append(github)
    else:
        listeners.append(live_reporter or PlainReporter(text_stream, verbose=verbose, quiet=quiet))

    async def main() -> dict[str, Any]:
        async with trio.open_nursery() as nursery:

            async def watch_signals(task_status: trio.TaskStatus[None]) -> None:
                with trio.open_signal_receiver(*CANCELLING) as signals:
                    task_status.started()
                    async for signum in signals:
                        if interrupt.signal in (None, signal.SIGPIPE):
                            # A hangup closes the terminal, and a write may have failed first:
                            # the signal is still what ended the run.
                            interrupt.signal, interrupt.reason = signum, None
                            cancel_scope.cancel()
                        elif signum in KILL_NOW:
                            kill_now.set()

            # Taken before the first command starts: a signal that came before the handler
            # killed drawer outright, leaving no run document and its commands running.
            await nursery.start(watch_signals)
            options = RunOptions(
                resolved.values, resolved.secrets, listeners, kill_now=kill_now, **(extra or {})
            )
            document = await execute_run(loaded, options, interrupt, cancel_scope)
            nursery.cancel_scope.cancel()
        return document

    # Everything imported so far lives as long as the run: keep it out of every GC pass.
    gc.freeze()
    try:
        if live_reporter is not None:
            with live_reporter:
                document = trio.run(main)
        else:
            document = trio.run(main)
    except Exception:
        traceback.print_exc()
        fail(
            "internal error: please report it with the traceback above "
            "(https://github.com/drawer-dev/drawer/issues)",
            EXIT_INTERNAL,
        )
    if not (as_json and quiet):
        print_summary(document, console, hidden.tails)
    if github is not None:
        _github_report(github, document, loaded, text_stream)
    return document, interrupt.signal, stream.lost


def _exit_display_lost(error: OSError) -> NoReturn:
    """Exit as a CLI whose output went away does: 141 (128 + SIGPIPE) for a broken pipe, else
    1, with one line on stderr when stderr still works."""
    from drawer.report import DisplayStream

    DisplayStream(sys.stderr).write(f"drawer: cannot write the output: {error}\n")
    raise SystemExit(128 + signal.SIGPIPE if error.errno == errno.EPIPE else EXIT_FAILED)


def _github_report(github: Any, document: dict[str, Any], loaded: Any, stream: Any) -> None:
    """Annotations on the failing steps' lines (in the file as it is on disk) and the job
    summary, after a run in GitHub mode."""
    from drawer.github import write_summary
    from drawer.loader import load_drawer

    try:
        on_disk = load_drawer(loaded.path)
    except Exception:  # edited away from a valid file: the lines of the run's own text
        on_disk = loaded
    display = str(loaded.path)
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        with suppress(ValueError):
            display = str(loaded.path.resolve().relative_to(Path(workspace).resolve()))
    for command in github.annotations(on_disk, display):
        stream.write(command + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            write_summary(Path(summary), github.summary(document, loaded))
        except OSError as error:
            sys.stderr.write(f"drawer: warning: cannot write the job summary: {error}\n")


def _open_history(file: str, option: Path | None) -> tuple[Path, Any, Path]:
    """The drawer file's resolved path, the store's connection, read-only (None: nothing
    recorded yet) and its directory; exit 2 when the store cannot be read."""
    from drawer.store import store_directory

    path = find_drawer(file).resolve()
    directory = store_directory(option, os.environ, Path.cwd())
    return path, _read_store_or_exit(directory), directory


def _read_store_or_exit(directory: Path) -> Any:
    from drawer.store import StoreError, read_store

    try:
        return read_store(directory)
    except StoreError as error:
        fail(f"STORE_ERROR: {error}")


def _past_run(file: str, run_id: str, option: Path | None) -> tuple[Any, Any, Path]:
    """(connection, run summary, store directory) of one recorded run, or exit 2."""
    from drawer.store import DATABASE, find_run

    path, connection, directory = _open_history(file, option)
    with _reading_store(directory):
        run = find_run(connection, path, run_id) if connection is not None else None
    if run is None:
        what = "no runs" if run_id == "last" else f"no run {run_id}"
        fail(f"{what} of {path} recorded in {directory / DATABASE} (see: drawer {file} history)")
    return connection, run, directory


@contextmanager
def _reading_store(directory: Path) -> Iterator[None]:
    """Exit 2 (STORE_ERROR) when a read fails; a malformed store is named, with what to do."""
    from drawer.store import DATABASE, StoreDamaged, StoreError

    try:
        yield
    except StoreDamaged as error:
        fail(f"STORE_ERROR: {StoreDamaged(error.problem, error.directory or directory)}")
    except StoreError as error:
        fail(f"STORE_ERROR: {error} ({directory / DATABASE})")


StoreOption = Annotated[
    Path | None,
    typer.Option("--store", metavar="DIR", help="the store to read (default .drawer/)"),
]


@app.command()
def history(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most N runs")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the runs as JSON")] = False,
    store: StoreOption = None,
) -> None:
    """Past runs of this drawer file, newest first: id, status, start, duration, resumed_from."""
    from drawer.records import rfc3339
    from drawer.store import runs_of

    path, connection, directory = _open_history(file, store)
    with _reading_store(directory):
        runs = runs_of(connection, path, limit) if connection is not None else []
    if as_json:
        sys.stdout.write(json.dumps([run.as_json() for run in runs], indent=2) + "\n")
        return
    if not runs:
        sys.stderr.write(f"drawer: no runs of {path} recorded yet\n")
        return
    for run in runs:
        duration = "" if run.duration is None else f"{run.duration:.2f}s"
        resumed = f"  resumed from {run.resumed_from}" if run.resumed_from else ""
        started = rfc3339(run.started_at)
        sys.stdout.write(f"{run.run_id}  {run.status:<9}  {started}  {duration:>9}{resumed}\n")


@app.command()
def show(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="a run id, or last")],
    as_json: Annotated[bool, typer.Option("--json", help="print the run document")] = False,
    store: StoreOption = None,
) -> None:
    """One past run: its summary, or with --json its run document."""
    from drawer.store import UNRECORDED, run_document

    connection, run, directory = _past_run(file, run_id, store)
    with _reading_store(directory):
        document = run_document(connection, run.run_id)
    if run.status == UNRECORDED:
        sys.stderr.write(
            f"drawer: warning: run {run.run_id} is {UNRECORDED}: its store stopped recording it"
            " (a full disk?), so steps may be missing from what follows\n"
        )
    if as_json:
        sys.stdout.write(_document_text(document, pretty=sys.stdout.isatty()))
        return
    from rich.console import Console

    from drawer.report import print_summary, root_cause, stderr_tail
    from drawer.store import step_output

    # The store keeps every step's record, a sub-drawer's steps too (the document cannot).
    failing = root_cause(document["error"]).get("step_path") if document.get("error") else None
    with _reading_store(directory):
        hidden = (
            {failing: stderr_tail(step_output(connection, run.run_id, failing))} if failing else {}
        )
    resumed = f", resumed from {document['resumed_from']}" if document["resumed_from"] else ""
    sys.stdout.write(f"run {run.run_id} started {document['started_at']}{resumed}\n")
    print_summary(document, Console(file=sys.stdout), hidden)


@app.command()
def logs(
    file: Annotated[str, typer.Option("--drawer-file", hidden=True)],
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="a run id, or last")],
    step_path: Annotated[
        str | None, typer.Argument(metavar="STEP_PATH", help="one step, e.g. lint[3].ruff")
    ] = None,
    store: StoreOption = None,
) -> None:
    """A past run's command output: one step's log, or every log in order, each line
    prefixed with its step path."""
    from drawer.store import has_step, step_logs

    connection, run, directory = _past_run(file, run_id, store)
    with _reading_store(directory):
        found = step_logs(connection, directory, run.run_id)
    if step_path is None:
        for path, log in found:
            with log.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    sys.stdout.write(f"[{path}] {line}")
        return
    logs_by_path = dict(found)
    if step_path in logs_by_path:
        sys.stdout.write(logs_by_path[step_path].read_text(encoding="utf-8", errors="replace"))
        return
    with _reading_store(directory):
        if not has_step(connection, run.run_id, step_path):
            fail(f"run {run.run_id} has no step {step_path!r}")


def _schema_command(args: list[str]) -> NoReturn:
    """`drawer schema`: the JSON Schema (draft-07) of the drawer format, for editors."""
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(
            "usage: drawer schema\n\nPrint the JSON Schema (draft-07) of drawer files, for"
            " editors:\n  # yaml-language-server: $schema=<URL or path of the schema>\n"
        )
        raise SystemExit(EXIT_OK)
    if args:
        fail(f"drawer schema takes no arguments, got {' '.join(args)}")
    from drawer.schema import schema_text

    sys.stdout.write(schema_text())
    raise SystemExit(EXIT_OK)


def _reserve_standard_fds() -> None:
    """Open /dev/null on a closed fd 0, 1 or 2, so that no pipe or database file gets that
    number and is then written to as drawer's output or a command's."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one


def _show_undecodable_text() -> None:
    """Write a lone surrogate (an undecodable byte of a file name, `-i` value or environment
    variable that a message or summary shows) as `\\udce9`, as Python's stderr does, instead
    of failing the write: the display is never lost to a value it shows."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def main(argv: list[str]) -> None:
    """`drawer FILE VERB ...` or `drawer COMMAND ...`, dispatched to the Typer app."""
    _reserve_standard_fds()
    _show_undecodable_text()
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(TOP_HELP)
        raise SystemExit(EXIT_OK if argv else EXIT_USAGE)
    first = argv[0]
    if first == "schema":
        _schema_command(argv[1:])
    if first == "merge":
        app(argv, prog_name="drawer")
    if first in COMMANDS:
        fail(f'"{first}" is not available in this version of drawer')
    if first.startswith("-"):
        if first in ("--install-completion", "--show-completion"):
            app(argv, prog_name="drawer")
        fail(f"unknown option {first}; usage: drawer FILE VERB [OPTIONS]")
    if len(argv) < 2:
        fail(
            f"what should drawer do with {first}? usage: drawer FILE VERB; verbs: "
            f"{', '.join(VERBS)}"
        )
    verb = argv[1]
    if verb not in VERBS:
        from drawer.source import suggest

        guess = suggest(verb, VERBS)
        hint = f'; did you mean "{guess}"?' if guess else f" (verbs: {', '.join(VERBS)})"
        fail(f'unknown verb "{verb}"{hint}')
    app([verb, "--drawer-file", first, *argv[2:]], prog_name=f"drawer {first}")
