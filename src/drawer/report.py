"""What a person sees: a live display on a terminal, prefixed lines elsewhere, a summary."""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from drawer import events as ev
from drawer.paths import in_iteration
from drawer.records import FAILED, recorded

SINGULAR = {"items": "item", "branches": "branch", "iterations at most": "iteration at most"}
"""A loop's unit for a total of one ("1 item", not "1 items")."""
STATUS_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow", "cancelled": "magenta"}
STATUS_MARK = {"ok": "✓", "failed": "✗", "skipped": "-", "cancelled": "!"}
PROGRESS_EVERY = 5.0


def _clock_text() -> str:
    return time.strftime("%H:%M:%S")


class DisplayStream:
    """drawer's own stdout (or stderr), which may be closed, a broken pipe or a full disk.

    The first failed write is kept in `lost`, reported once to `on_lost` (the CLI cancels the
    run), and every later write is dropped: a run never dies of its display.
    """

    def __init__(
        self, stream: TextIO | None, on_lost: Callable[[OSError], None] | None = None
    ) -> None:
        self.stream = stream
        self.on_lost = on_lost
        self.lost: OSError | None = None
        if stream is None:  # fd closed before drawer started: Python gives no file at all
            self._lose(OSError(errno.EBADF, os.strerror(errno.EBADF)))

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        try:
            return self.stream is not None and self.lost is None and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def write(self, text: str) -> int:
        if self.lost is None and self.stream is not None:
            try:
                self.stream.write(text)
            except (OSError, ValueError) as error:
                self._lose(error)
        return len(text)

    def flush(self) -> None:
        if self.lost is None and self.stream is not None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as error:
                self._lose(error)

    def _lose(self, error: OSError | ValueError) -> None:
        self.lost = error if isinstance(error, OSError) else OSError(errno.EBADF, str(error))
        if self.stream is not None:
            # Point the fd at /dev/null so that the flush at exit cannot fail again.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass
        if self.on_lost is not None:
            self.on_lost(self.lost)


@dataclass
class LoopCounts:
    total: int
    done: int = 0
    failed: int = 0
    running: int = 0


class PlainReporter:
    """Timestamped lines for CI and pipes: output prefixed with its step path."""

    def __init__(
        self,
        stream: TextIO,
        *,
        verbose: bool = False,
        quiet: bool = False,
        progress: TextIO | None = None,
    ) -> None:
        self.stream = stream
        self.verbose = verbose
        self.quiet = quiet
        self.progress = progress or stream
        """Where the periodic loop progress lines go (GitHub mode: outside the groups)."""
        self.loops: dict[str, LoopCounts] = {}
        self.started: dict[str, float] = {}
        """Iterations whose start line is shown and whose end line is due (verbose)."""
        self.told: set[str] = set()
        """Iterations that are also a step (a single-step `parallel` branch) whose end the
        step's own line told: their iteration's end line would say it twice."""
        self.last_progress = time.monotonic()

    def line(self, text: str) -> None:
        self.stream.write(f"{_clock_text()} {text}\n")

    def __call__(self, event: ev.Event) -> None:
        if self.quiet:
            return
        if isinstance(event, ev.OutputLine):
            if event.stream == "warning":
                self.line(f"warning: {event.text}")
            else:
                self.stream.write(f"[{event.path}] {event.text}\n")
        elif isinstance(event, ev.StepFinished):
            if event.path in self.started:
                # One path, one lifecycle: the iteration's end line is left out for this one.
                del self.started[event.path]
                self.told.add(event.path)
            if self.verbose or not in_iteration(event.path):
                record = event.record
                mark = STATUS_MARK.get(record.status, "?")
                error = (
                    f": {record.error.message}"
                    if record.error and record.error.code != "DEPENDENCY_FAILED"
                    else ""
                )
                if event.reused is not None:
                    origin = event.reused[0]
                    self.line(f"{mark} {event.path} {record.status} (reused from {origin})")
                else:
                    self.line(
                        f"{mark} {event.path} {record.status} ({record.duration or 0:.2f}s){error}"
                    )
        elif isinstance(event, ev.StepStarted):
            if event.path in self.started:
                return  # an iteration that is this very step: its start line is shown
            if self.verbose or not in_iteration(event.path):
                self.line(f"> {event.path} started")
        elif isinstance(event, ev.StepRetrying):
            self.line(
                f"↻ {event.path} attempt {event.attempt} in {event.delay:g}s "
                f"after {event.error.code}"
            )
        elif isinstance(event, ev.LoopStarted):
            self.loops[event.path] = LoopCounts(event.total)
            unit = SINGULAR.get(event.unit, event.unit) if event.total == 1 else event.unit
            self.line(f"  {event.path}: {event.total} {unit}, {event.parallelism} at a time")
        elif isinstance(event, ev.IterationStarted | ev.IterationFinished):
            self.iteration(event)

    def iteration(self, event: ev.IterationStarted | ev.IterationFinished) -> None:
        counts = self.loops.get(event.loop_path)
        if counts is None:
            return
        if isinstance(event, ev.IterationStarted):
            counts.running += 1
            if self.verbose:
                self.started[event.path] = event.clock
                self.line(f"> {event.path or event.loop_path} started")
            return
        counts.running -= 1
        counts.done += 1
        counts.failed += event.status == "failed"
        if event.path in self.told:
            self.told.discard(event.path)
        elif self.verbose:
            took = event.clock - self.started.pop(event.path, event.clock)
            self.line(
                f"{STATUS_MARK.get(event.status, '?')} {event.path or event.loop_path} "
                f"{event.status} ({took:.2f}s)"
            )
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = now
            for path, loop in self.loops.items():
                if loop.done < loop.total:
                    self.progress.write(
                        f"{_clock_text()}   {path}: {loop.done}/{loop.total} done, "
                        f"{loop.failed} failed, {loop.running} running\n"
                    )


@dataclass
class LiveReporter:
    """A rich live display: running steps and a bar per loop with done/failed/running/total."""

    console: Console
    running: dict[str, float] = field(default_factory=dict)
    loops: dict[str, tuple[TaskID, LoopCounts]] = field(default_factory=dict)
    live: Live | None = None

    def __post_init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=self.console,
        )

    def __enter__(self) -> LiveReporter:
        self.live = Live(
            self.render(),
            console=self.console,
            refresh_per_second=8,
            transient=True,
            get_renderable=self.render,
        )
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def render(self) -> Group:
        now = time.monotonic()
        lines = [
            Text.assemble(("⠿ ", "cyan"), path, (f"  {now - started:.1f}s", "dim"))
            for path, started in list(self.running.items())[:12]
        ]
        return Group(self.progress, *lines)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepStarted) and event.kind != "for_each":
            self.running[event.path] = time.monotonic()
        elif isinstance(event, ev.StepFinished):
            self.running.pop(event.path, None)
            if not in_iteration(event.path):
                record = event.record
                style = STATUS_STYLE.get(record.status, "white")
                self.console.print(
                    Text.assemble(
                        (f"{STATUS_MARK.get(record.status, '?')} ", style),
                        event.path,
                        (
                            f" {record.status} (reused from {event.reused[0]})"
                            if event.reused is not None
                            else f" {record.status} ({record.duration or 0:.2f}s)",
                            "dim",
                        ),
                    )
                )
        elif isinstance(event, ev.LoopStarted):
            counts = LoopCounts(event.total)
            task = self.progress.add_task(
                event.path, total=event.total or 1, counts=self.counts_text(counts)
            )
            self.loops[event.path] = (task, counts)
        elif isinstance(event, ev.IterationStarted | ev.IterationFinished):
            entry = self.loops.get(event.loop_path)
            if entry is None:
                return
            task, counts = entry
            if isinstance(event, ev.IterationStarted):
                counts.running += 1
            else:
                counts.running -= 1
                counts.done += 1
                counts.failed += event.status == "failed"
            self.progress.update(task, completed=counts.done, counts=self.counts_text(counts))
        elif isinstance(event, ev.OutputLine) and event.stream == "warning":
            self.console.print(f"[yellow]warning:[/] {event.text}", markup=True)

    @staticmethod
    def counts_text(counts: LoopCounts) -> str:
        return (
            f"{counts.done}/{counts.total} done  {counts.failed} failed  {counts.running} running"
        )


STDERR_TAIL_LINES = 10


def stderr_tail(output: Any) -> list[str]:
    """The last lines of a step output's stderr, as the failure summary shows them."""
    stderr = output.get("stderr") if isinstance(output, dict) else None
    return stderr.splitlines()[-STDERR_TAIL_LINES:] if isinstance(stderr, str) else []


class HiddenFailures:
    """The stderr tails of failed steps that the run document cannot hold: those inside a
    sub-drawer, whose `drawer` step's record keeps only the child's outputs.

    While a sub-drawer runs, the tail of each of its failed steps is kept; when it ends, only
    the one its error names as the root cause (the one a summary can show) stays.
    """

    def __init__(self) -> None:
        self.running: dict[str, dict[str, list[str]]] = {}
        """Per running `drawer` step: the tails of its failed steps so far."""
        self.tails: dict[str, list[str]] = {}

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepStarted) and event.kind == "drawer":
            self.running[event.path] = {}
        elif isinstance(event, ev.StepFinished):
            held = self.running.pop(event.path, None) if event.kind == "drawer" else None
            error = event.record.error
            if held is not None and error is not None:
                cause = error.root_cause().step_path
                if cause in held:
                    outer = self.enclosing(cause)
                    (self.tails if outer is None else outer)[cause] = held[cause]
            elif event.record.status == FAILED and event.kind != "drawer":
                enclosing = self.enclosing(event.path)
                tail = stderr_tail(recorded(event.record.output)) if enclosing is not None else []
                if enclosing is not None and tail:
                    enclosing[event.path] = tail

    def enclosing(self, path: str) -> dict[str, list[str]] | None:
        """The tails of the innermost running sub-drawer that `path` is inside, if any."""
        end = len(path)
        while (end := path.rfind(".", 0, end)) > 0:
            held = self.running.get(path[:end])
            if held is not None:
                return held
        return None


def find_output(document: dict[str, Any], step_path: str) -> Any:
    """The output of the step at a path such as `lint[3].ruff`, `tries#2.probe`,
    `block.g1.x` or `route.default.y` in a run document; None when it is not there."""
    current: Any = {"steps": document.get("steps", {})}
    for index, repeat_index, name in re.findall(r"\[(\d+)\]|#(\d+)|\.?([A-Za-z0-9_-]+)", step_path):
        output = current.get("output") if isinstance(current, dict) else None
        if index or repeat_index:
            results = output.get("results") if isinstance(output, dict) else None
            position = int(index or repeat_index)
            if not isinstance(results, list) or position >= len(results):
                return None
            current = results[position]
            continue
        if (
            isinstance(output, dict)
            and "matched" in output
            and name in (str(output["matched"]), "default")
        ):
            current = {"steps": output.get("steps") or {}}  # a switch case
            continue
        steps = current.get("steps") if isinstance(current, dict) else None
        if isinstance(steps, dict) and name in steps:
            current = steps[name]
        elif isinstance(output, dict) and name in output:
            found = output[name]  # a parallel branch's record, or a group member's output
            current = found if isinstance(found, dict) and "status" in found else {"output": found}
        else:
            return None
    return current.get("output") if isinstance(current, dict) else None


def items_text(record: dict[str, Any]) -> str:
    """ok / failed / total for loops and parallel blocks; iterations for a repeat."""
    output = record.get("output")
    if not isinstance(output, dict):
        return ""
    if "total" in output and "succeeded" in output:
        return f"{output['succeeded']} / {output['failed']} / {output['total']}"
    if "iterations" in output and "winner" in output:
        results = output.get("results") or []
        failed = sum(1 for result in results if result.get("status") == "failed")
        return f"{len(results) - failed} / {failed} / {output['iterations']} iterations"
    branches = [value for value in output.values() if isinstance(value, dict) and "status" in value]
    if branches and len(branches) == len(output):
        failed = sum(1 for branch in branches if branch["status"] == "failed")
        ok = sum(1 for branch in branches if branch["status"] == "ok")
        return f"{ok} / {failed} / {len(branches)} branches"
    return ""


def root_cause(error: dict[str, Any]) -> dict[str, Any]:
    """The innermost error of a run document's error chain: the one the summary explains."""
    while error.get("cause"):
        error = error["cause"]
    return error


def print_summary(
    document: dict[str, Any], console: Console, hidden: Mapping[str, list[str]] | None = None
) -> None:
    """A table of the top-level steps, then each failure with its error and stderr tail
    (from its record, or from `hidden` for a step inside a sub-drawer)."""
    title = f"{document['name']}: {document['status']} in {document['duration']:.2f}s"
    if document.get("resumed_from"):
        title += f", resuming run {document['resumed_from']}"
    table = Table(title=title, title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("items ok / failed / total", justify="right")
    for step_id, record in document["steps"].items():
        status = record["status"]
        duration = record["duration"]
        table.add_row(
            step_id,
            Text(status, STATUS_STYLE.get(status, "white")),
            f"{duration:.2f}s" if duration is not None else "",
            items_text(record),
        )
    console.print(table)
    error = document.get("error")
    if not error:
        return
    console.print(Text(f"error {error['code']}: {error['message']}", "bold red"))
    cause = root_cause(error)
    if cause is not error:
        console.print(
            Text(f"  caused by {cause['code']} at {cause['step_path']}: {cause['message']}", "red")
        )
    path = cause.get("step_path") or ""
    tail = (hidden or {}).get(path) or stderr_tail(find_output(document, path))
    if tail:
        console.print(Text(f"  stderr of {cause['step_path']} (last {len(tail)} lines):", "dim"))
        for line in tail:
            console.print(Text(f"    {line}"))
