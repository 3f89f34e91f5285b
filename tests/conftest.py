"""Shared helpers: run a drawer from YAML text in-process, or the CLI as a real process; wait
for a rendezvous, always with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from drawer.engine import RunOptions, execute_run
from drawer.events import EventLog, IterationFinished
from drawer.inputs import resolve_inputs
from drawer.loader import LoadedDrawer, load_text


@dataclass
class RunResult:
    document: dict[str, Any]
    log: EventLog

    @property
    def steps(self) -> dict[str, Any]:
        steps: dict[str, Any] = self.document["steps"]
        return steps


def load(tmp_path: Path, text: str, name: str = "drawer.yaml") -> LoadedDrawer:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_text(path.read_text(encoding="utf-8"), path)


def run_loaded(
    loaded: LoadedDrawer,
    workdir: Path,
    inputs: list[str] | None = None,
    clock: Any = None,
    listeners: list[Any] | None = None,
) -> RunResult:
    """Run in-process; `listeners` hear every event after the returned log has recorded it."""
    log = EventLog()
    resolved = resolve_inputs(loaded.model.inputs, inputs or [], os.environ)
    options = RunOptions(
        resolved.values, resolved.secrets, [log, *(listeners or [])], grace=2.0, workdir=workdir
    )

    async def main() -> dict[str, Any]:
        return await execute_run(loaded, options)

    document = trio.run(main, clock=clock)
    return RunResult(document, log)


RunText = Callable[..., RunResult]


@pytest.fixture
def run_text(tmp_path: Path) -> RunText:
    """Run a drawer given as YAML text in tmp_path; returns its document and events."""

    def runner(
        text: str,
        inputs: list[str] | None = None,
        clock: Any = None,
        listeners: list[Any] | None = None,
    ) -> RunResult:
        return run_loaded(load(tmp_path, text), tmp_path, inputs, clock, listeners)

    return runner


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The drawer command line as a user runs it."""
    full_env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "drawer", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def is_alive(pid: int) -> bool:
    """True while a process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


# Waiting: every rendezvous has a deadline, so a regression fails a test instead of hanging
# the suite (pytest-timeout, configured in pyproject.toml, is only the backstop).

WAIT_SECONDS = 60.0


def until(condition: str, seconds: float = WAIT_SECONDS) -> str:
    """Shell that polls `condition` every 10 ms and gives up (exit 9) after about `seconds`."""
    tries = int(seconds * 100)
    return (
        f'n=0; until {condition}; do n=$((n+1)); [ "$n" -lt {tries} ] || exit 9; sleep 0.01; done'
    )


def wait_for(
    condition: Callable[[], bool],
    what: str,
    process: subprocess.Popen[Any] | None = None,
    seconds: float = WAIT_SECONDS,
) -> None:
    """Poll `condition` every 10 ms; fail after `seconds`, or at once if `process` has ended."""
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds:g}s for {what}")
        time.sleep(0.01)


async def wait_for_async(
    condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS
) -> None:
    """`wait_for` inside trio.run: the other tasks go on while it polls."""
    with trio.move_on_after(seconds):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"waited {seconds:g}s for {what}")


def read_pid(path: Path, process: subprocess.Popen[Any] | None = None) -> int:
    """The pid a command wrote with `echo $$ > path`, once the whole line is there."""
    wait_for(lambda: path.exists() and path.read_text().endswith("\n"), f"a pid in {path}", process)
    return int(path.read_text().strip())


class FinishedFiles:
    """A listener that touches `finished-INDEX` in a folder once a loop's iteration has ended
    and its end is in the event log: a command that waits for the file knows that drawer
    has recorded that end, not only that the other command exited."""

    def __init__(self, folder: Path, loop_path: str) -> None:
        self.folder = folder
        self.loop_path = loop_path

    def __call__(self, event: Any) -> None:
        if isinstance(event, IterationFinished) and event.loop_path == self.loop_path:
            (self.folder / f"finished-{event.index}").touch()


def tagged(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment carries DRAWER_TEST_TAG=tag."""
    needle = f"DRAWER_TEST_TAG={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != b"Z":
            found.append(int(entry))
    return found
