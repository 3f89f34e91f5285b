"""`run` steps: a command through a shell or as argv, references passed as data."""

from __future__ import annotations

import errno
import json
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import trio

from drawer import events as ev
from drawer.context import Outcome, RunContext, Scope
from drawer.model import RunStep
from drawer.paths import in_iteration
from drawer.procs import CommandResult, CommandSpec, run_command
from drawer.records import CommandOutput, ErrorInfo
from drawer.refs import (
    Ref,
    RefError,
    interpolate,
    parse_plain_path,
    parse_template,
    resolve_ref,
    to_text,
)
from drawer.shell import ShellTemplate, compile_shell, render_shell
from drawer.textlines import decode_text, text_lines
from drawer.valuefiles import CommandFiles

TIMEOUT_PER_ATTEMPT = True
INLINE_LIMIT = 64 * 1024
KEEP_TEXT = 1024 * 1024
KEEP_TEXT_IN_LOOP = 4 * 1024
LINE_LIMIT = 64 * 1024


@cache
def _shell_program(shell: str) -> tuple[str, ...]:
    if shell == "python":
        return (shutil.which("python3") or sys.executable, "-c")
    if shell == "sh":
        return ("sh", "-e", "-c")
    if shutil.which("bash"):
        return ("bash", "-e", "-o", "pipefail", "-c")
    return ("sh", "-e", "-c")


@cache
def _compiled(script: str) -> ShellTemplate:
    """Validation already rejected every script with a problem: accept all roots here."""
    template, _ = compile_shell(script, lambda content: True)
    return template


def step_env(step: Any, scope: Scope) -> dict[str, str]:
    """The enclosing steps' env plus this step's, references resolved."""
    if not step.env:
        return scope.env
    env = dict(scope.env)
    for name, value in step.env.items():
        env[name] = to_text(interpolate(value, scope.lookup) if isinstance(value, str) else value)
    return env


def command_bytes(text: str) -> bytes:
    """The bytes a command gets for a text value (stdin, a value file), as Python passes
    arguments and the environment: UTF-8, an undecodable byte that came in from a file name,
    `-i` or the environment given back as it was. A lone surrogate from a `\\ud800` escape
    in JSON has no bytes: UnicodeEncodeError (VALUE_NOT_TEXT)."""
    return text.encode("utf-8", "surrogateescape")


def _shell_command(
    ctx: RunContext, step: RunStep, scope: Scope, env: dict[str, str], as_files: dict[str, bytes]
) -> tuple[str, ...]:
    assert isinstance(step.run, str)
    template = _compiled(step.run)
    as_file: set[int] = set()
    for shell_ref in template.refs:
        value = _resolve(shell_ref.content, scope)
        text = to_text(value)
        name = f"DRAWER_REF_{shell_ref.number}"
        data = command_bytes(text)
        if len(data) > INLINE_LIMIT:
            as_files[name + "_FILE"] = data
            as_file.add(shell_ref.number)
        else:
            env[name] = text
    script = render_shell(template, frozenset(as_file))
    shell = step.shell or ctx.loaded.model.defaults.shell or "bash"
    return (*_shell_program(shell), script)


def _resolve(content: str, scope: Scope) -> Any:
    return resolve_ref(Ref(content, 0, 0, parse_plain_path(content)), scope.lookup)


def _argv(step: RunStep, scope: Scope) -> tuple[str, ...]:
    assert not isinstance(step.run, str)
    argv: list[str] = []
    for element in step.run:
        if not isinstance(element, str):
            argv.append(to_text(element))
            continue
        template = parse_template(element)
        if template.single_ref is not None:
            value = interpolate(element, scope.lookup)
            if isinstance(value, list):
                argv.extend(to_text(item) for item in value)
                continue
            argv.append(to_text(value))
        else:
            argv.append(to_text(interpolate(element, scope.lookup)))
    return tuple(argv)


def _command_env(
    ctx: RunContext, step: RunStep, scope: Scope, as_files: dict[str, bytes]
) -> dict[str, str]:
    """The command's environment; a value it gets as a file is put in `as_files` instead."""
    env = dict(ctx.base_env)
    env.update(step_env(step, scope))
    for name, value in scope.loop_env().items():
        # As a file when the environment cannot hold it: too large, or holding a NUL byte
        # (every command of the loop gets these, whether it reads them or not).
        data = command_bytes(value) if len(value) > INLINE_LIMIT // 4 else None
        if "\0" in value or (data is not None and len(data) > INLINE_LIMIT):
            as_files[name + "_FILE"] = data or command_bytes(value)
        else:
            env[name] = value
    return env


def parse_output_file(text: str) -> dict[str, str]:
    """`key=value` lines and `key<<DELIM` blocks, as GitHub's $GITHUB_OUTPUT."""
    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            block: list[str] = []
            while index < len(lines) and lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            index += 1
            values[key.strip()] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


def decode(data: bytes) -> str:
    text = decode_text(data)
    if text.endswith("\n"):
        text = text[:-1]
    return text


def command_output(
    result: CommandResult, values: dict[str, str], keep: int, ctx: RunContext
) -> CommandOutput:
    """The output object of a run step, secrets masked; its record keeps `keep` characters."""
    mask = ctx.masker.text if ctx.masker else (lambda text: text)
    # A kept tail may begin inside a secret: it is cut past the longest one before masking.
    cut = ctx.masker.longest
    stdout = mask(decode(result.stdout)[0 if result.stdout_complete else cut :])
    stderr = mask(decode(result.stderr)[cut if result.stderr_truncated else 0 :])
    lines: list[str] | None = None
    parsed: Any = None
    if result.stdout_complete:
        lines = text_lines(stdout)
        stripped = stdout.strip()
        if (
            stripped[:1] in ("{", "[", '"')
            or stripped[:1].isdigit()
            or stripped in ("true", "false", "null")
            or stripped[:1] == "-"
        ):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
    data = {
        "exit_code": result.exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_truncated": not result.stdout_complete,
        "stderr_truncated": result.stderr_truncated,
        "lines": lines,
        "json": parsed,
        "values": {key: mask(value) for key, value in values.items()},
    }
    return CommandOutput(data, keep)


async def execute(
    ctx: RunContext, step: RunStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Run the command once, holding a slot of the run's process budget only while it runs.
    The files it is given (they may hold a secret) exist only while it holds that slot."""
    as_files: dict[str, bytes] = {}
    try:
        env = _command_env(ctx, step, scope, as_files)
        argv = (
            _shell_command(ctx, step, scope, env, as_files)
            if isinstance(step.run, str)
            else _argv(step, scope)
        )
        stdin = interpolate(step.stdin, scope.lookup) if step.stdin is not None else None
        cwd = None
        if step.cwd is not None:
            cwd = str(ctx.workdir / to_text(interpolate(step.cwd, scope.lookup)))
        elif ctx.workdir != Path.cwd():
            cwd = str(ctx.workdir)
        spec_stdin = None if stdin is None else command_bytes(to_text(stdin))
    except RefError as error:
        return Outcome(None, ErrorInfo(error.code, str(error), path))
    except UnicodeEncodeError as error:  # a lone surrogate from a `\ud800` escape in JSON
        return Outcome(None, _not_text(path, error))
    splitter = LineSplitter(path, ctx)
    async with ctx.process_limiter:
        with CommandFiles(ctx.tmpdir) as files:
            try:
                for name, data in as_files.items():
                    env[name] = files.holding(name.removesuffix("_FILE"), data)
                output_file = env["DRAWER_OUTPUT"] = files.holding("output", b"")
            except OSError as error:  # no fd or memory left for one
                message = f"{path} could not start: {error}"
                return Outcome(None, ErrorInfo("STEP_FAILED", message, path))
            spec = CommandSpec(argv, env, cwd, spec_stdin)
            try:
                result = await run_command(
                    spec,
                    on_output=splitter.feed,
                    on_started=lambda pid: ctx.emit(ev.CommandStarted(path, pid, _clock())),
                    grace=ctx.grace,
                    kill_now=ctx.kill_now,
                )
            except OSError as error:
                code = "VALUE_TOO_LARGE" if error.errno == errno.E2BIG else "STEP_FAILED"
                return Outcome(None, ErrorInfo(code, f"{path} could not start: {error}", path))
            except ValueError as error:  # "embedded null byte" in an argument or the env
                return Outcome(None, _not_text(path, error))
            ctx.emit(ev.CommandFinished(path, result.exit_code, _clock()))
            written = files.read(output_file)
    splitter.flush()
    values = parse_output_file(written.decode("utf-8", errors="replace"))
    keep = KEEP_TEXT_IN_LOOP if in_iteration(path) else KEEP_TEXT  # iteration records
    output = command_output(result, values, keep, ctx)
    if result.not_found:
        return Outcome(output, ErrorInfo("COMMAND_NOT_FOUND", result.error or "not found", path))
    if result.exit_code != 0:
        return Outcome(output, ErrorInfo("STEP_FAILED", _failure_message(path, result), path))
    return Outcome(output)


def _not_text(path: str, error: ValueError) -> ErrorInfo:
    """A value no command can receive: a NUL byte in an argument or the environment, or a
    lone surrogate (from a `\\ud800` escape in JSON), which stands for no bytes at all."""
    if isinstance(error, UnicodeEncodeError):
        code = ord(error.object[error.start])
        reason = (
            f"the lone surrogate U+{code:04X} (a \\u{code:04x} escape in JSON?), which is"
            " not text: no bytes stand for it"
        )
    elif "null" in str(error):
        reason = (
            "a NUL byte, which an argument or environment variable cannot hold (stdin can:"
            " pass the value as `stdin:`)"
        )
    else:
        reason = f"what a command cannot receive ({error})"
    message = f"{path} could not start: a value passed to it holds {reason}"
    return ErrorInfo("VALUE_NOT_TEXT", message, path)


def _failure_message(path: str, result: CommandResult) -> str:
    code = result.exit_code
    if code is not None and code > 128:
        return f"{path} was killed by signal {code - 128} (exit code {code})"
    return f"{path} exited with code {code}"


def _clock() -> float:
    return trio.current_time()


class LineSplitter:
    """Turns a command's output chunks into masked lines for the display, in linear time.

    A line longer than LINE_LIMIT bytes is shown (and logged) as several lines of at most
    that many bytes, cut between characters: the pending line never grows past it, however
    long a command writes without a newline.
    """

    def __init__(self, path: str, ctx: RunContext) -> None:
        self.path = path
        self.ctx = ctx
        self.partial: dict[str, bytearray] = {}

    def feed(self, stream: str, chunk: bytes) -> None:
        pending = self.partial.setdefault(stream, bytearray())
        *lines, rest = chunk.split(b"\n")
        for line in lines:
            pending += line
            self._emit_long(stream, pending, whole=True)
            self.emit(stream, bytes(pending))
            pending.clear()
        pending += rest
        self._emit_long(stream, pending, whole=False)

    def _emit_long(self, stream: str, pending: bytearray, *, whole: bool) -> None:
        """Emit whole pieces of LINE_LIMIT bytes from the front of `pending`. With secrets,
        the secrets in it are masked before a cut, and while the line goes on a cut waits
        until the bytes after it could hold the longest secret: no piece shows part of one."""
        masker = self.ctx.masker
        while len(pending) > LINE_LIMIT + (0 if whole else masker.longest):
            if masker.longest:
                masked = masker.data(bytes(pending))
                if len(masked) != len(pending) or masked != pending:
                    pending[:] = masked
                    continue
            cut = LINE_LIMIT
            while cut > LINE_LIMIT - 4 and pending[cut] & 0xC0 == 0x80:  # inside a character
                cut -= 1
            self.emit(stream, bytes(pending[:cut]))
            del pending[:cut]  # O(1) at the front of a bytearray

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            self._emit_long(stream, rest, whole=True)
            if rest:
                self.emit(stream, bytes(rest))
        self.partial.clear()

    def emit(self, stream: str, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace").removesuffix("\r")
        self.ctx.emit(ev.OutputLine(self.path, stream, self.ctx.masker.text(text)))
