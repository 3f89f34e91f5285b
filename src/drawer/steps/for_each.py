"""`for_each` steps: the same body for every item, `parallelism` at a time, results in order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from drawer import engine
from drawer import events as ev
from drawer.context import Outcome, RunContext, Scope
from drawer.counts import PARALLELISM
from drawer.globs import glob_files
from drawer.model import FileSource, ForEachStep, GlobSource, RangeSource
from drawer.records import CANCELLED, FAILED, OK, RUNNING, SKIPPED, ErrorInfo, IterationRecord
from drawer.refs import RefError, interpolate, interpolate_deep, plain
from drawer.steps.policy import FailurePolicy, Pacing, tolerance
from drawer.steps.run import step_env
from drawer.textlines import decode_text, file_lines

TIMEOUT_PER_ATTEMPT = False
STATUS_CODES = {OK: 1, FAILED: 2, CANCELLED: 3, SKIPPED: 4}


@dataclass(frozen=True)
class Items:
    """The items of a loop: how many, and a way to go through them once, lazily if need be."""

    total: int
    values: Iterable[Any]


class NotAList(Exception):
    """`over` gave something other than a list (FOREACH_NOT_A_LIST)."""


def _count_lines(path: Path, as_json: bool) -> int:
    """Items in a lines/jsonl file, by the rule `_read_lines` reads them with; jsonl lines are
    checked here so a bad one stops the loop before anything runs."""
    count = 0
    for number, text in file_lines(path):
        count += 1
        if as_json:
            try:
                json.loads(text)
            except ValueError as error:
                raise NotAList(f"{path.name}:{number}: not a JSON value ({error})") from None
    return count


def open_items(ctx: RunContext, step: ForEachStep, scope: Scope) -> Items:
    """Resolve `over` into items; a file in lines or jsonl format is read lazily."""
    over = step.over
    if isinstance(over, GlobSource):
        pattern = str(interpolate(over.glob, scope.lookup))
        files = glob_files(pattern, ctx.workdir)
        return Items(len(files), files)
    if isinstance(over, FileSource):
        name = str(interpolate(over.file, scope.lookup))
        path = ctx.workdir / name
        if not path.is_file():
            raise NotAList(
                f"over: no file {name!r} (relative paths are taken from the "
                f"directory drawer runs in, {ctx.workdir})"
            )
        if over.format == "json":
            try:
                data = json.loads(decode_text(path.read_bytes()))
            except ValueError as error:
                raise NotAList(f"{name}: not JSON ({error})") from None
            if not isinstance(data, list):
                raise NotAList(f"{path} holds a JSON {type(data).__name__}, not a list")
            return Items(len(data), data)
        as_json = over.format == "jsonl"
        total = _count_lines(path, as_json)
        return Items(total, _LazyLines(path, name, as_json, total))
    if isinstance(over, RangeSource):
        numbers = range(*over.range)
        return Items(len(numbers), numbers)
    if isinstance(over, str):
        value = interpolate(over, scope.lookup)
        if not isinstance(value, list):
            kind = "null" if value is None else type(plain(value)).__name__
            raise NotAList(f"over {over} gave a {kind}, not a list")
        return Items(len(value), value)
    values = interpolate_deep(over, scope.lookup)  # like a `value:` list
    return Items(len(values), values)


class _LazyLines:
    """A lines/jsonl file's items, read lazily as they were counted: never more than `total`
    (lines added while the loop runs are no items). A file that lost lines or a jsonl line
    that is no longer JSON since it was counted ends the reading, and `changed` says how."""

    def __init__(self, path: Path, name: str, as_json: bool, total: int) -> None:
        self.path = path
        self.name = name
        self.as_json = as_json
        self.total = total
        self.changed: str | None = None

    def __iter__(self) -> Iterator[Any]:
        read = 0
        for number, text in file_lines(self.path):
            if read == self.total:
                return
            try:
                value = json.loads(text) if self.as_json else text
            except ValueError as error:
                self.changed = f"{self.name}:{number} is no longer a JSON value ({error})"
                break
            read += 1
            yield value
        if read < self.total and self.changed is None:
            self.changed = f"{self.name} ends after {read} of the {self.total} items it held"
        if self.changed is not None:
            self.changed += " when the loop started: it changed while the loop read it"


def source_changed(items: Items, output: ForEachOutput, path: str) -> ErrorInfo | None:
    """The loop's error when its file changed under it (FOREACH_NOT_A_LIST), the items it
    could no longer read then skipped, saying why; None when it did not."""
    values = items.values
    if not isinstance(values, _LazyLines) or values.changed is None:
        return None
    error = ErrorInfo("FOREACH_NOT_A_LIST", values.changed, path)
    for index, status in enumerate(output.statuses):
        if not status:
            here = f"{path}[{index}]"
            never = ErrorInfo("FOREACH_NOT_A_LIST", f"{here} never started: {error.message}", here)
            iteration = _closed(IterationRecord(index, None), SKIPPED)
            iteration.error = never
            output.record(iteration)
    return error


class ForEachOutput:
    """`{total, succeeded, failed, cancelled, skipped, results}`, results in input order."""

    def __init__(self, total: int, collect: bool) -> None:
        self.total = total
        self.counts = {OK: 0, FAILED: 0, CANCELLED: 0, SKIPPED: 0}
        self.results: list[IterationRecord | None] | None = [None] * total if collect else None
        self.statuses = bytearray(total)

    def record(self, iteration: IterationRecord) -> None:
        self.counts[iteration.status] += 1
        self.statuses[iteration.index] = STATUS_CODES[iteration.status]
        if self.results is not None:
            self.results[iteration.index] = iteration

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "total": self.total,
            "succeeded": self.counts[OK],
            "failed": self.counts[FAILED],
            "cancelled": self.counts[CANCELLED],
            "skipped": self.counts[SKIPPED],
        }
        if self.results is not None:
            data["results"] = self.results
        return data


class ShardOutput(ForEachOutput):
    """A shard's loop output: its own items' counts, and `{index, item, status, error}` for
    each of them (with their steps under `collect: all`), indices those of the whole loop."""

    def __init__(self, total: int, collect: bool, selected: int) -> None:
        super().__init__(total, True)
        self.collect = collect
        self.total = selected

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        kept = [entry for entry in self.results or [] if entry is not None]
        if self.collect:
            data["results"] = kept
        else:
            data["results"] = [
                {
                    "index": entry.index,
                    "item": entry.item,
                    "status": entry.status,
                    "error": entry.error.as_json() if entry.error else None,
                }
                for entry in kept
            ]
        return data


class _FirstFailure:
    """The lowest-indexed iteration that failed on its own (the loop error's cause)."""

    def __init__(self) -> None:
        self.iteration: IterationRecord | None = None

    def add(self, iteration: IterationRecord) -> None:
        if self.iteration is None or iteration.index < self.iteration.index:
            self.iteration = iteration


async def run_iteration(
    ctx: RunContext,
    step: ForEachStep,
    scope: Scope,
    path: str,
    iteration: IterationRecord,
    env: dict[str, str],
) -> None:
    """One item through the body; the record ends ok, failed or cancelled."""
    variables = {step.as_: iteration.item, step.index_as: iteration.index}
    child = scope.child(variables, env, loop=(iteration.item, iteration.index))
    iteration.steps = child.records
    iteration.status = RUNNING
    iteration.started_at = time.time()
    ctx.emit(
        ev.IterationStarted(
            path,
            iteration.index,
            trio.current_time(),
            f"{path}[{iteration.index}]",
        )
    )
    try:
        result = await engine.run_list(ctx, step.steps, child, f"{path}[{iteration.index}]")
        iteration.status = FAILED if result.failed else OK
        iteration.error = result.error
    finally:
        if iteration.status == RUNNING:
            iteration.status = CANCELLED
        iteration.ended_at = time.time()
        ctx.emit(
            ev.IterationFinished(
                path,
                iteration.index,
                iteration.status,
                trio.current_time(),
                f"{path}[{iteration.index}]",
                iteration,
                keyed=True,
            )
        )


async def execute(
    ctx: RunContext, step: ForEachStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Run every item under the loop's parallelism and failure policy."""
    try:
        items = open_items(ctx, step, scope)
        workers = (
            1 if ctx.serial else PARALLELISM.at_once(step.parallelism, scope.lookup, items.total)
        )
        delay = engine.resolve_seconds(step.delay, scope) or 0.0
        env = step_env(step, scope)
    except NotAList as error:
        return Outcome(None, ErrorInfo("FOREACH_NOT_A_LIST", str(error), path))
    except (RefError, ValueError, OSError) as error:
        code = getattr(
            error, "code", "FOREACH_NOT_A_LIST" if isinstance(error, OSError) else "EXPR_ERROR"
        )
        return Outcome(None, ErrorInfo(code, str(error), path))
    shard = ctx.shard if ctx.shard is not None and ctx.shard.loop == path else None
    if shard is not None:
        # Only this shard's items, under their indices in the whole loop.
        shard.total = items.total
        pairs = [(index, item) for index, item in enumerate(items.values) if shard.holds(item)]
        changed = source_changed(items, ForEachOutput(0, False), path)
        if changed is not None:
            return Outcome(None, changed)
        output: ForEachOutput = ShardOutput(items.total, step.collect == "all", len(pairs))
        source: Iterator[tuple[int, Any]] = iter(pairs)
        count = len(pairs)
    else:
        output = ForEachOutput(items.total, step.collect == "all")
        source = enumerate(items.values)
        count = items.total
    reuse = previous.output if previous and isinstance(previous.output, ForEachOutput) else None
    limit = tolerance(step.tolerate, count)
    if step.executor == "dask":
        from drawer.steps.dask_executor import execute_on_dask

        return await execute_on_dask(ctx, step, scope, path, items, env, output, reuse, limit)
    pacing = Pacing(delay)
    stop_scope = trio.CancelScope()
    policy = FailurePolicy(step.on_item_failure, limit, stop_scope)
    first_failure = _FirstFailure()
    matcher = _Matcher(ctx, path, count)
    ctx.emit(ev.LoopStarted(path, count, workers))

    async def worker() -> None:
        for index, item in source:
            if reuse is not None and reuse.statuses[index] == STATUS_CODES[OK]:
                reused = reuse.results[index] if reuse.results is not None else None
                output.record(reused or _closed(IterationRecord(index, item), OK))
                continue
            matched = matcher.match(index, item)
            if matched is not None and matcher.take_bare(index, matched, step):
                iteration = _closed(IterationRecord(index, item), OK)
                iteration.started_at = iteration.ended_at = time.time()
                here = f"{path}[{index}]"
                now = trio.current_time()
                ctx.emit(ev.IterationStarted(path, index, now, here))
                ctx.emit(ev.IterationFinished(path, index, OK, now, here, iteration, keyed=True))
                output.record(iteration)
                continue
            iteration = IterationRecord(index, item)
            turn = False
            try:
                # No checkpoint between taking an item and asking for its turn: items start
                # in input order (a worker yields after each iteration instead, below).
                await pacing.wait_turn()
                turn = True
            finally:
                if not turn:  # cancelled while waiting for its turn: it never started
                    output.record(unstarted(ctx, path, iteration, policy.stopping))
            if policy.stopping:
                output.record(unstarted(ctx, path, iteration, stopped=True))
                return
            try:
                await run_iteration(ctx, step, scope, path, iteration, env)
            finally:
                if iteration.status in STATUS_CODES:
                    output.record(iteration)
                if matched is not None:
                    matcher.done(index, matched, step)
            await engine.durable(ctx)
            if iteration.status == FAILED:
                first_failure.add(iteration)
                policy.failures_now(output.counts[FAILED])
            if policy.stopping:
                return
            await trio.lowlevel.checkpoint()  # a body that never waits still lets others run

    ctx.partial[path] = output
    try:
        with stop_scope:
            async with trio.open_nursery() as nursery:
                for _ in range(min(workers, max(count, 1))):
                    nursery.start_soon(worker)
    finally:
        stopped = policy.stopping
        for index, item in source:
            output.record(unstarted(ctx, path, IterationRecord(index, item), stopped))
    del ctx.partial[path]
    changed = source_changed(items, output, path)
    if changed is not None:
        return Outcome(output, changed)
    matcher.finish()
    if output.counts[FAILED] > limit:
        return Outcome(output, _loop_error(path, output, first_failure.iteration, limit))
    return Outcome(output)


class _Matcher:
    """A resumed loop's items matched to the earlier run's iterations (SPEC 3.5): by the
    item's identity, counted in index order (workers take items in that order)."""

    def __init__(self, ctx: RunContext, path: str, total: int) -> None:
        self.previous = ctx.previous
        self.path = path
        self.total = total
        self.loop = self.previous.loop(path) if self.previous is not None else None
        # Bound once: the store module (sqlite3) is imported only by runs that resume.
        from drawer.store import item_hash

        self.item_hash = item_hash
        self.seen: dict[str, int] = {}
        self.kept = 0

    def match(self, index: int, item: Any) -> int | None:
        """The earlier index of this item's iteration, aliased for its steps; or None."""
        loop = self.loop
        if loop is None or not loop.by_identity or self.previous is None:
            return None
        digest = self.item_hash(item)
        occurrence = self.seen.get(digest, 0)
        self.seen[digest] = occurrence + 1
        old_index = loop.by_identity.get(f"{digest}#{occurrence}")
        if old_index is not None:
            self.previous.aliases[f"{self.path}[{index}]"] = f"{loop.old_path}[{old_index}]"
        return old_index

    def take_bare(self, index: int, old_index: int, step: ForEachStep) -> bool:
        """True when the earlier iteration ended ok but kept no step records (a run document
        of a `collect: none` loop) and the body is unchanged: it counts as done."""
        loop, previous = self.loop, self.previous
        if loop is None or previous is None or old_index not in loop.bare:
            return False
        if not all(previous.unchanged(f"{self.path}.{body.id}") for body in step.steps):
            return False
        previous.aliases.pop(f"{self.path}[{index}]", None)
        if old_index == index:
            self.kept += 1
        return True

    def done(self, index: int, old_index: int, step: ForEachStep) -> None:
        assert self.previous is not None
        complete = self.previous.iteration_done(f"{self.path}[{index}]", step.steps)
        if complete and old_index == index:
            self.kept += 1

    def finish(self) -> None:
        """Every item reused in place, and no more or fewer than before: the loop's output
        is what it was, and the steps after it may be reused."""
        loop = self.loop
        if loop is not None and self.previous is not None and self.kept == self.total == loop.total:
            self.previous.reused.add(self.path)


def _closed(iteration: IterationRecord, status: str) -> IterationRecord:
    iteration.status = status
    return iteration


def unstarted(
    ctx: RunContext, path: str, iteration: IterationRecord, stopped: bool = False
) -> IterationRecord:
    """An iteration that never started: skipped, saying why (its loop's `stop` policy, or
    the cancellation that reached the loop), as a step left unstarted says why."""
    here = f"{path}[{iteration.index}]"
    if stopped:
        iteration.error = ErrorInfo(
            "CANCELLED", f"{here} never started: {path} stopped after an item failed", here
        )
    else:
        iteration.error = ctx.not_started(here, path)
    return _closed(iteration, SKIPPED)


def _loop_error(
    path: str, output: ForEachOutput, first: IterationRecord | None, limit: int
) -> ErrorInfo:
    failed = output.counts[FAILED]
    allowed = f" (tolerate {limit})" if limit else ""
    message = f"{failed} of {output.total} iterations failed{allowed}"
    cause = None
    if first is not None:
        cause = first.error or ErrorInfo(
            "STEP_FAILED", f"{path}[{first.index}] failed", f"{path}[{first.index}]"
        )
        message += f"; first: {cause.message}"
    return ErrorInfo("FOREACH_ITEM_FAILED", message, path, cause)
