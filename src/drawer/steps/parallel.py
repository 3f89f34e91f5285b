"""`parallel` steps: different branches at once, each in its own scope, under one failure policy.

A branch is one step (its record is that step's record, and after the parallel step it is
referable by its own id) or a group `{id, steps}` run as a list (its record's output is
`{STEP_ID: output}`). Branches start in file order, `max_parallelism` at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from drawer import engine
from drawer import events as ev
from drawer.context import Outcome, RunContext, Scope
from drawer.counts import MAX_PARALLELISM
from drawer.model import AnyStep, BranchGroup, ParallelStep
from drawer.records import CANCELLED, FAILED, OK, PENDING, RUNNING, SKIPPED, ErrorInfo, StepRecord
from drawer.refs import RefError
from drawer.steps.policy import FailurePolicy, Pacing, tolerance
from drawer.steps.run import step_env

TIMEOUT_PER_ATTEMPT = False

Branch = AnyStep | BranchGroup


class ParallelOutput:
    """`{BRANCH_ID: record}` in branch order; `passed` names the branches a retry reuses."""

    def __init__(self, branches: Sequence[Branch]) -> None:
        self.records: dict[str, StepRecord] = {branch.id: StepRecord() for branch in branches}
        self.passed: set[str] = set()

    def as_json(self) -> dict[str, Any]:
        return {branch_id: record.as_json() for branch_id, record in self.records.items()}


async def run_branch(
    ctx: RunContext,
    branch: Branch,
    index: int,
    scope: Scope,
    path: str,
    env: dict[str, str],
    output: ParallelOutput,
) -> ErrorInfo | None:
    """One branch in a scope of its own; returns its failure (its list's error), or None.
    Cancellation propagates, leaving the branch's record cancelled."""
    child = scope.child({}, env)
    branch_path = f"{path}.{branch.id}"
    record = output.records[branch.id]
    record.start()
    status = RUNNING
    failure: ErrorInfo | None = None
    ctx.emit(ev.IterationStarted(path, index, trio.current_time(), branch_path))
    try:
        if isinstance(branch, BranchGroup):
            record.attempts = 1
            result = await engine.run_list(ctx, branch.steps, child, branch_path)
        else:
            result = await engine.run_list(ctx, (branch,), child, path)
        if result.failed:
            status = FAILED
            failure = result.error or ErrorInfo("STEP_FAILED", f"{branch_path} failed", branch_path)
        else:
            status = OK
    finally:
        if isinstance(branch, BranchGroup):
            outputs = {step_id: step.output for step_id, step in child.records.items()}
            if status == RUNNING:
                message = f"{branch_path} was cancelled"
                record.finish(CANCELLED, outputs, ErrorInfo("CANCELLED", message, branch_path))
            else:
                record.finish(status, outputs, failure)
        else:
            output.records[branch.id] = child.records[branch.id]
        if status == OK:
            output.passed.add(branch.id)
        finished = CANCELLED if status == RUNNING else status
        ctx.emit(ev.IterationFinished(path, index, finished, trio.current_time(), branch_path))
    await engine.durable(ctx)  # as a loop slot does: a branch that ended is on disk
    return failure


async def execute(
    ctx: RunContext, step: ParallelStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Run the branches under `max_parallelism`, `delay` and the branch failure policy."""
    branches = step.branches
    try:
        width = (
            1
            if ctx.serial
            else MAX_PARALLELISM.at_once(step.max_parallelism, scope.lookup, len(branches))
        )
        delay = engine.resolve_seconds(step.delay, scope) or 0.0
        env = step_env(step, scope)
    except (RefError, ValueError) as error:
        return Outcome(None, ErrorInfo(getattr(error, "code", "EXPR_ERROR"), str(error), path))
    output = ParallelOutput(branches)
    reuse = previous.output if previous and isinstance(previous.output, ParallelOutput) else None
    limit = tolerance(step.tolerate, len(branches))
    pacing = Pacing(delay)
    stop_scope = trio.CancelScope()
    policy = FailurePolicy(step.on_branch_failure, limit, stop_scope)
    stopped_by: ErrorInfo | None = None
    failures: dict[int, ErrorInfo] = {}
    pending = enumerate(branches)
    ctx.emit(ev.LoopStarted(path, len(branches), width, "branches"))

    async def worker() -> None:
        nonlocal stopped_by
        for index, branch in pending:
            if reuse is not None and branch.id in reuse.passed:
                output.records[branch.id] = reuse.records[branch.id]
                output.passed.add(branch.id)
                continue
            # No checkpoint between taking a branch and booking its turn: starts keep file order.
            await pacing.wait_turn()
            if policy.stopping:
                return
            failure = await run_branch(ctx, branch, index, scope, path, env, output)
            if failure is not None:
                failures[index] = failure
                policy.failures_now(len(failures))
                if policy.stopping and stopped_by is None:
                    stopped_by = failure
            if policy.stopping:
                return

    ctx.partial[path] = output
    try:
        with stop_scope:
            async with trio.open_nursery() as nursery:
                for _ in range(min(width, len(branches))):
                    nursery.start_soon(worker)
    finally:
        _close_unstarted(ctx, output, path, stopped_by)
        for branch in branches:
            if not isinstance(branch, BranchGroup):
                scope.exported[branch.id] = output.records[branch.id]
    del ctx.partial[path]
    if len(failures) > limit:
        return Outcome(output, _branch_error(path, len(branches), failures, limit))
    return Outcome(output)


def _close_unstarted(
    ctx: RunContext, output: ParallelOutput, path: str, stopped_by: ErrorInfo | None
) -> None:
    """Branches the policy (or a cancellation) never let start are skipped, saying why."""
    for branch_id, record in output.records.items():
        if record.status == PENDING:
            branch_path = f"{path}.{branch_id}"
            if stopped_by is not None:
                message = f"not started: {stopped_by.step_path} failed"
                why = ErrorInfo("DEPENDENCY_FAILED", message, branch_path)
            else:
                why = ctx.not_started(branch_path, path)
            record.finish(SKIPPED, error=why)


def _branch_error(path: str, total: int, failures: dict[int, ErrorInfo], limit: int) -> ErrorInfo:
    """PARALLEL_BRANCH_FAILED, caused by the lowest-indexed branch that failed on its own."""
    cause = failures[min(failures)]
    allowed = f" (tolerate {limit})" if limit else ""
    message = f"{len(failures)} of {total} branches failed{allowed}; first: {cause.message}"
    return ErrorInfo("PARALLEL_BRANCH_FAILED", message, path, cause)
