"""Shared helpers: run a drawer from YAML text in-process, or the CLI as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from drawer.engine import RunOptions, execute_run
from drawer.events import EventLog
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
    loaded: LoadedDrawer, workdir: Path, inputs: list[str] | None = None, clock: Any = None
) -> RunResult:
    log = EventLog()
    resolved = resolve_inputs(loaded.model.inputs, inputs or [], os.environ)
    options = RunOptions(resolved.values, resolved.secrets, [log], grace=2.0, workdir=workdir)

    async def main() -> dict[str, Any]:
        return await execute_run(loaded, options)

    document = trio.run(main, clock=clock)
    return RunResult(document, log)


RunText = Callable[..., RunResult]


@pytest.fixture
def run_text(tmp_path: Path) -> RunText:
    """Run a drawer given as YAML text in tmp_path; returns its document and events."""

    def runner(text: str, inputs: list[str] | None = None, clock: Any = None) -> RunResult:
        return run_loaded(load(tmp_path, text), tmp_path, inputs, clock)

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
