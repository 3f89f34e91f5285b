"""GitHub mode (SPEC 5), on whenever `GITHUB_ACTIONS=true`.

- Each top-level step's lines are buffered and printed in one `::group::` when it ends, so
  groups of steps running side by side never interleave; loop progress lines go out at once.
- Secrets are registered with `::add-mask::` before anything else is printed (the runner
  consumes that line and never shows it; drawer masks them in its own output anyway).
- At the end: one `::error file=...,line=...::` per failing step definition, on its line in
  the drawer file, with how many of its executions failed; and a job summary
  (`$GITHUB_STEP_SUMMARY`): a table of the steps, the failures, and a Mermaid graph coloured
  by status, kept under GitHub's 1 MiB limit whatever the size of the loops.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from drawer import events as ev
from drawer.diagram import worse
from drawer.loader import LoadedDrawer
from drawer.model import AnyStep, child_lists
from drawer.paths import definition_path, in_iteration
from drawer.records import CANCELLED, FAILED, OK, SKIPPED
from drawer.report import PlainReporter, items_text

SUMMARY_LIMIT = 1_000_000
"""Bytes of job summary drawer writes at most (GitHub refuses a step's summary over 1 MiB)."""
FAILURES_SHOWN = 20
# Errors that only say that something inside failed: the inner step is annotated instead.
CONTAINER_CODES = frozenset({"FOREACH_ITEM_FAILED", "PARALLEL_BRANCH_FAILED", "SUBDRAWER_FAILED"})


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (`file=`, `title=`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def mask_commands(secrets: Sequence[str]) -> list[str]:
    """`::add-mask::` lines for every secret; a multi-line one line by line (the runner
    matches masks within a line), leaving out lines under 4 characters as drawer's own
    masking does (masking every `}` in a log helps nobody)."""
    pieces: list[str] = []
    for secret in secrets:
        lines = secret.splitlines()
        candidates = [secret] if len(lines) <= 1 else [line for line in lines if len(line) >= 4]
        for piece in candidates:
            if piece.strip() and piece not in pieces:
                pieces.append(piece)
    return [f"::add-mask::{escape_data(piece)}" for piece in pieces]


def top_level(path: str) -> str:
    """The top-level step a step path belongs to: `lint[3].ruff` -> `lint`."""
    for index, char in enumerate(path):
        if char in ".[#":
            return path[:index]
    return path


def step_lines(loaded: LoadedDrawer) -> dict[str, int]:
    """The line of every step definition in the file, by definition path (`lint.ruff`)."""
    source = loaded.document.source
    lines: dict[str, int] = {}

    def visit(
        steps: Sequence[AnyStep], keys: tuple[str | int, ...], prefix: str, offset: int
    ) -> None:
        for index, step in enumerate(steps):
            here = (*keys, offset + index)
            path = f"{prefix}.{step.id}" if prefix else step.id
            position = source.value((*here, "id")) or source.value(here)
            if position is not None:
                lines[path] = position.line
            for nested in child_lists(step, path):
                visit(nested.steps, (*here, *nested.keys), nested.prefix, nested.offset)

    visit(loaded.model.steps, ("steps",), "", 0)
    return lines


@dataclass
class Failures:
    """Failed executions of one step definition."""

    count: int = 0
    first_path: str = ""
    first_message: str = ""


@dataclass
class GitHubReporter:
    """Groups per top-level step while running; annotations and the job summary after."""

    stream: TextIO
    verbose: bool = False
    quiet: bool = False
    buffers: dict[str, tuple[io.StringIO, PlainReporter]] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """The worst status of each step definition (for the Mermaid graph)."""
    failures: dict[str, Failures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.direct = PlainReporter(self.stream, verbose=self.verbose, quiet=self.quiet)

    def reporter(self, path: str) -> PlainReporter:
        top = top_level(path)
        entry = self.buffers.get(top)
        if entry is None:
            buffer = io.StringIO()
            reporter = PlainReporter(
                buffer, verbose=self.verbose, quiet=self.quiet, progress=self.stream
            )
            entry = self.buffers[top] = (buffer, reporter)
        return entry[1]

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished):
            self.finished(event)
        path = _event_path(event)
        if not path:
            self.direct(event)
            return
        self.reporter(path)(event)
        if isinstance(event, ev.StepFinished) and event.path == top_level(event.path):
            self.close_group(event)

    def close_group(self, event: ev.StepFinished) -> None:
        buffer, _ = self.buffers.pop(event.path)
        if self.quiet:
            return
        record = event.record
        took = f" in {record.duration:.2f}s" if record.duration is not None else ""
        self.stream.write(f"::group::{escape_data(event.path)}: {record.status}{took}\n")
        self.stream.write(buffer.getvalue())
        self.stream.write("::endgroup::\n")
        self.stream.flush()

    def finished(self, event: ev.StepFinished) -> None:
        record = event.record
        self.note_status(event.path, record.status)
        error = record.error
        if record.status != FAILED or error is None or error.code in CONTAINER_CODES:
            return
        failures = self.failures.setdefault(definition_path(event.path), Failures())
        failures.count += 1
        if not failures.first_path or _before(event.path, failures.first_path):
            failures.first_path = event.path
            failures.first_message = f"{error.code}: {error.message}"

    def note_status(self, path: str, status: str) -> None:
        """Keep the worst status of each step definition (its node's colour)."""
        definition = definition_path(path)
        if worse(status, self.statuses.get(definition)):
            self.statuses[definition] = status

    # after the run ----------------------------------------------------------------------------

    def annotations(self, loaded: LoadedDrawer, display_path: str) -> list[str]:
        """One `::error` per failing step definition, on its line in the drawer file."""
        lines = step_lines(loaded)
        commands = []
        for definition, failures in self.failures.items():
            line = _line_of(definition, lines)
            where = f"file={escape_property(display_path)}"
            if line is not None:
                where += f",line={line}"
            title = escape_property(f"drawer: {definition} failed")
            commands.append(f"::error {where},title={title}::{escape_data(_describe(failures))}")
        return commands

    def summary(self, document: dict[str, Any], loaded: LoadedDrawer) -> str:
        """The job summary in Markdown, under SUMMARY_LIMIT bytes."""
        from drawer.diagram import render_status_mermaid

        head = [
            f"### drawer: {_cell(str(document['name']))} {document['status']}"
            f" in {document['duration']:.2f}s",
            "",
        ]
        if document.get("resumed_from"):
            head += [f"Resumed run `{document['resumed_from']}`.", ""]
        table = ["| step | status | duration | items ok / failed / total |", "|---|---|---:|---:|"]
        for step_id, record in document["steps"].items():
            duration = record.get("duration")
            table.append(
                f"| `{_cell(step_id)}` | {_STATUS_ICON.get(record['status'], '')}"
                f" {record['status']} | {'' if duration is None else f'{duration:.2f}s'}"
                f" | {items_text(record)} |"
            )
        failures = self.failure_lines()
        graph = [
            "",
            "```mermaid",
            render_status_mermaid(loaded.model, self.statuses).rstrip(),
            "```",
        ]
        parts = [head, table, failures, graph]
        text = _joined(parts)
        if len(text.encode("utf-8")) > SUMMARY_LIMIT:
            parts[3] = ["", "_(the step graph is too large for a job summary)_"]
            text = _joined(parts)
        while len(text.encode("utf-8")) > SUMMARY_LIMIT and len(table) > 3:
            table = table[: max(3, len(table) // 2)]
            parts[1] = [*table, "| … | | | |"]
            text = _joined(parts)
        return text

    def failure_lines(self) -> list[str]:
        if not self.failures:
            return []
        lines = ["", "**Failed**", ""]
        ordered = sorted(self.failures.items(), key=lambda item: item[1].first_path)
        for definition, failures in ordered[:FAILURES_SHOWN]:
            lines.append(f"- `{_cell(definition)}`: {_cell(_describe(failures))}")
        if len(ordered) > FAILURES_SHOWN:
            lines.append(f"- … and {len(ordered) - FAILURES_SHOWN} more")
        return lines


_STATUS_ICON = {OK: "✅", FAILED: "❌", SKIPPED: "⏭️", CANCELLED: "⛔"}


def _event_path(event: ev.Event) -> str:
    if isinstance(event, ev.IterationStarted | ev.IterationFinished | ev.LoopStarted):
        return getattr(event, "loop_path", "") or getattr(event, "path", "")
    return getattr(event, "path", "") or ""


def _before(path: str, other: str) -> bool:
    """Step paths in run order: `lint[2].x` before `lint[10].x`."""
    return _sort_key(path) < _sort_key(other)


def _sort_key(path: str) -> list[Any]:
    key: list[Any] = []
    number = ""
    for char in path:
        if char.isdigit():
            number += char
            continue
        if number:
            key.append(int(number))
            number = ""
        key.append(char)
    if number:
        key.append(int(number))
    return [(0, part) if isinstance(part, int) else (1, part) for part in key]


def _line_of(definition: str, lines: dict[str, int]) -> int | None:
    """The definition's line, else its nearest enclosing step's (inside a sub-drawer)."""
    while definition:
        if definition in lines:
            return lines[definition]
        definition = definition.rpartition(".")[0]
    return None


def _describe(failures: Failures) -> str:
    if in_iteration(failures.first_path):
        plural = "" if failures.count == 1 else "s"
        times = f"in {failures.count} iteration{plural}"
    else:
        times = "once" if failures.count == 1 else f"{failures.count} times"
    return f"failed {times}; first at {failures.first_path}: {failures.first_message}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or inline code."""
    flat = " ".join(text.split())
    if len(flat) > 300:
        flat = flat[:297] + "..."
    return flat.replace("|", "\\|").replace("`", "'")


def _joined(parts: list[list[str]]) -> str:
    return "\n".join(line for part in parts for line in part) + "\n"


def write_summary(path: Path, text: str) -> None:
    """Append to the job summary file (other steps of the job write theirs too)."""
    with path.open("a", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(text)
