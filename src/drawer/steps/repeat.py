"""`repeat` steps: run a body again until a condition holds, up to `parallelism` tries at once."""

from __future__ import annotations

import time
from typing import Any

import trio

from drawer import engine
from drawer import events as ev
from drawer.context import Outcome, RunContext, Scope
from drawer.counts import MAX_ITERATIONS, PARALLELISM
from drawer.model import RepeatStep
from drawer.records import CANCELLED, FAILED, OK, RUNNING, ErrorInfo, IterationRecord
from drawer.refs import RefError
from drawer.steps.policy import Pacing
from drawer.steps.run import step_env

TIMEOUT_PER_ATTEMPT = False


class RepeatOutput:
    """`{iterations, satisfied, winner, last, results}`; results hold the iterations that ran."""

    def __init__(self) -> None:
        self.records: dict[int, IterationRecord] = {}
        self.satisfying: set[int] = set()
        # The lowest iteration that ends the repeat (it satisfied `until`, or failed under
        # `on_item_failure: stop`): iterations above it no longer matter, those below run on.
        self.ending: int | None = None

    @property
    def winner(self) -> int | None:
        return self.ending if self.ending in self.satisfying else None

    def last(self) -> IterationRecord | None:
        """The winner, else the highest iteration that finished (ok or failed)."""
        if self.winner is not None:
            return self.records[self.winner]
        finished = [record for record in self.records.values() if record.status in (OK, FAILED)]
        return max(finished, key=lambda record: record.index, default=None)

    def as_json(self) -> dict[str, Any]:
        last = self.last()
        return {
            "iterations": len(self.records),
            "satisfied": self.winner is not None,
            "winner": self.winner,
            "last": None
            if last is None
            else {step_id: record.output for step_id, record in last.steps.items()},
            "results": [self.records[index] for index in sorted(self.records)],
        }


async def run_iteration(
    ctx: RunContext,
    step: RepeatStep,
    scope: Scope,
    path: str,
    iteration: IterationRecord,
    env: dict[str, str],
) -> bool:
    """One pass through the body, then `until` in its scope; True when it ended ok and holds.

    A failed pass is not evaluated (its outputs may be missing); an `until` that cannot be
    evaluated fails the iteration, so the policy for failed iterations decides what follows.
    """
    # A repeat is a loop: its iteration's item is its index (as in its results), so
    # DRAWER_INDEX and DRAWER_ITEM name this innermost loop, not an enclosing one.
    loop = (iteration.index, iteration.index)
    child = scope.child({step.index_as: iteration.index}, env, loop=loop)
    here = f"{path}#{iteration.index}"
    iteration.steps = child.records
    iteration.status = RUNNING
    iteration.started_at = time.time()
    ctx.emit(
        ev.IterationStarted(path, iteration.index, trio.current_time(), f"{path}#{iteration.index}")
    )
    satisfied = False
    try:
        result = await engine.run_list(ctx, step.steps, child, here)
        iteration.error = result.error
        if result.failed:
            iteration.status = FAILED
        else:
            try:
                satisfied = engine.evaluate_condition(step.until, child)
            except RefError as error:
                iteration.error = ErrorInfo(error.code, f"until: {error}", here)
            iteration.status = FAILED if iteration.error else OK
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
                f"{path}#{iteration.index}",
                iteration,
            )
        )
    return satisfied


async def execute(
    ctx: RunContext, step: RepeatStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Run iterations in index order, `parallelism` at a time, until the lowest one satisfies."""
    try:
        limit = MAX_ITERATIONS.resolve(step.max_iterations, scope.lookup)
        workers = 1 if ctx.serial else PARALLELISM.at_once(step.parallelism, scope.lookup, limit)
        delay = engine.resolve_seconds(step.delay, scope) or 0.0
        env = step_env(step, scope)
    except (RefError, ValueError) as error:
        return Outcome(None, ErrorInfo(getattr(error, "code", "EXPR_ERROR"), str(error), path))
    # A retry reruns only what did not end ok; a kept iteration keeps its verdict on `until`.
    earlier = previous.output if previous and isinstance(previous.output, RepeatOutput) else None
    output = RepeatOutput()
    pacing = Pacing(delay)
    in_flight: dict[int, trio.CancelScope] = {}
    indices = iter(range(limit))
    ctx.emit(ev.LoopStarted(path, limit, workers, "iterations at most"))

    def end_at(index: int, satisfied: bool) -> None:
        if satisfied:
            output.satisfying.add(index)
        if output.ending is None or index < output.ending:
            output.ending = index
            for other, cancel_scope in in_flight.items():
                if other > index:
                    cancel_scope.cancel()

    async def worker() -> None:
        for index in indices:
            if output.ending is not None and index > output.ending:
                return
            kept = earlier.records.get(index) if earlier is not None else None
            if earlier is not None and kept is not None and kept.status == OK:
                output.records[index] = kept
                if index in earlier.satisfying:
                    end_at(index, True)
                continue
            iteration = IterationRecord(index, index)
            satisfied = False
            # Cancelled by a lower iteration that ended the repeat: while waiting for its
            # turn it never started and leaves no record; while running it ends cancelled.
            with trio.CancelScope() as cancel_scope:
                in_flight[index] = cancel_scope
                try:
                    await pacing.wait_turn()
                    output.records[index] = iteration
                    satisfied = await run_iteration(ctx, step, scope, path, iteration, env)
                finally:
                    del in_flight[index]
            await engine.durable(ctx)  # as a loop slot does, before its next iteration
            if satisfied or (iteration.status == FAILED and step.on_item_failure == "stop"):
                end_at(index, satisfied)

    ctx.partial[path] = output
    async with trio.open_nursery() as nursery:
        for _ in range(min(workers, limit)):
            nursery.start_soon(worker)
    del ctx.partial[path]
    if output.winner is not None:
        return Outcome(output)
    if output.ending is not None:
        failed = output.records[output.ending]
        here = f"{path}#{failed.index}"
        return Outcome(output, failed.error or ErrorInfo("STEP_FAILED", f"{here} failed", here))
    if step.on_exhausted == "ok":
        return Outcome(output)
    return Outcome(output, _exhausted(path, output))


def _exhausted(path: str, output: RepeatOutput) -> ErrorInfo:
    ran = len(output.records)
    last = output.records[max(output.records)]
    state = f"failed: {last.error.message}" if last.error else "ended ok"
    message = (
        f"until was not satisfied after {ran} iteration{'s' if ran != 1 else ''}; "
        f"the last, {path}#{last.index}, {state}"
    )
    return ErrorInfo("REPEAT_EXHAUSTED", message, path, last.error)
