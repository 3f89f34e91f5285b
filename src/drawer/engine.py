"""The run on trio: step lists in order or as a DAG, one step's when/retry/timeout, the run."""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from drawer import events as ev
from drawer import procs
from drawer.context import Interrupt, Masker, Outcome, RunContext, Scope
from drawer.counts import (
    MAX_PROCESSES,
    MAX_WORKERS,
    PARALLEL,
    as_boolean,
    cpu_count,
    is_reference,
)
from drawer.graph import dependencies, is_chain
from drawer.inputs import recorded_inputs
from drawer.loader import LoadedDrawer
from drawer.model import (
    AnyStep,
    BranchGroup,
    DrawerStep,
    ParallelStep,
    RetryPolicy,
    RunStep,
    parse_duration,
)
from drawer.records import (
    CANCELLED,
    FAILED,
    OK,
    PENDING,
    RUNNING,
    SKIPPED,
    ErrorInfo,
    StepRecord,
    rfc3339,
)
from drawer.refs import RefError, interpolate, interpolate_deep, plain, to_text
from drawer.steps import KINDS

if TYPE_CHECKING:
    from drawer.resume import Previous
    from drawer.shard import Shard


@dataclass(frozen=True)
class ListResult:
    """How a step list ended: failed when a step failed with on_failure: stop."""

    failed: bool
    error: ErrorInfo | None = None
    failed_step: str = ""
    """The path of the step whose failure stopped the list."""


def join_path(prefix: str, step_id: str) -> str:
    return f"{prefix}.{step_id}" if prefix else step_id


async def run_list(
    ctx: RunContext, steps: Sequence[AnyStep], scope: Scope, prefix: str
) -> ListResult:
    """Run one step list: a chain in file order, or a DAG bounded by max_workers. Every
    step ends with a final status: one that never started is `skipped`, with
    DEPENDENCY_FAILED after a failure, or why the list was cancelled."""
    for step in steps:
        scope.records[step.id] = StepRecord()
    result: ListResult | None = None
    try:
        if is_chain(steps):
            result = await _run_chain(ctx, steps, scope, prefix)
        else:
            result = await _run_dag(ctx, steps, scope, prefix)
        return result
    finally:

        def why(path: str) -> ErrorInfo:
            if result is not None and result.failed:
                return ErrorInfo("DEPENDENCY_FAILED", f"not run: {result.failed_step} failed", path)
            return ctx.not_started(path, prefix)

        close_unstarted(ctx, steps, scope, prefix, why)


def close_unstarted(
    ctx: RunContext,
    steps: Sequence[AnyStep],
    scope: Scope,
    prefix: str,
    why: Callable[[str], ErrorInfo],
) -> None:
    """The one place a step that never started gets its final status: every step of the list
    still pending (or not yet recorded) ends `skipped`, its error `why(path)`, in its record
    and, through StepFinished, in the store and the summary."""
    for step in steps:
        record = scope.records.setdefault(step.id, StepRecord())
        if record.status != PENDING:
            continue
        path = join_path(prefix, step.id)
        record.finish(SKIPPED, error=why(path))
        ctx.emit(ev.StepFinished(path, step.kind, record, trio.current_time()))


async def _run_chain(
    ctx: RunContext, steps: Sequence[AnyStep], scope: Scope, prefix: str
) -> ListResult:
    for index, step in enumerate(steps):
        path = join_path(prefix, step.id)
        record = scope.records[step.id]
        after = (join_path(prefix, steps[index - 1].id),) if index else ()
        if index:
            await durable(ctx)  # the step before is on disk before this one starts
        await run_step(ctx, step, scope, path, record, after)
        if record.status == FAILED and step.on_failure == "stop":
            return ListResult(True, record.error, path)
    return ListResult(False)


async def _run_dag(
    ctx: RunContext, steps: Sequence[AnyStep], scope: Scope, prefix: str
) -> ListResult:
    deps = dependencies(steps)
    limit = 1 if ctx.serial else (ctx.max_workers or len(steps))
    pending = list(steps)
    finished: set[str] = set()
    running = 0
    failure: ErrorInfo | None = None
    failed_step = ""
    send, receive = trio.open_memory_channel[str](math.inf)

    async def run_one(step: AnyStep) -> None:
        after = tuple(join_path(prefix, dep) for dep in deps[step.id])
        await run_step(ctx, step, scope, join_path(prefix, step.id), scope.records[step.id], after)
        send.send_nowait(step.id)

    async with trio.open_nursery() as nursery:
        while pending or running:
            for step in list(pending):
                if failed_step:
                    break  # run_list skips what is left
                if running >= limit or not all(dep in finished for dep in deps[step.id]):
                    continue
                pending.remove(step)
                running += 1
                nursery.start_soon(run_one, step)
            if not running:
                break
            done_id = await receive.receive()
            running -= 1
            finished.add(done_id)
            await durable(ctx)  # on disk before a step that depends on it starts
            done_step = next(step for step in steps if step.id == done_id)
            record = scope.records[done_id]
            if record.status == FAILED and done_step.on_failure == "stop" and not failed_step:
                failure, failed_step = record.error, join_path(prefix, done_id)
    return ListResult(bool(failed_step), failure, failed_step)


async def durable(ctx: RunContext) -> None:
    """Wait until every step and iteration finished so far is committed to the store.

    Called before anything that depends on a finished step starts (the next step of a chain,
    a DAG step whose dependencies are done, the next try of a repeat; a loop slot before its
    next item), so that a `kill -9` loses nothing a resume could reuse. The last step of a
    list needs no call of its own: its parent's is the next. Steps ending in the same
    scheduler round share one transaction (RunRecorder.commit).
    """
    if ctx.commit is not None:
        await ctx.commit()


def retry_policy(ctx: RunContext, step: AnyStep) -> RetryPolicy:
    """The step's retry merged key by key over defaults.retry (for run and drawer steps)."""
    base = ctx.loaded.model.defaults.retry if isinstance(step, RunStep | DrawerStep) else None
    if step.retry is None:
        return base or RetryPolicy()
    if base is None:
        return step.retry
    merged = base.model_dump(exclude_unset=False)
    merged.update(step.retry.model_dump(exclude_unset=True))
    return RetryPolicy.model_validate(merged)


def resolve_scheduling(value: Any, scope: Scope) -> Any:
    """A scheduling field's value, resolving a ${...} reference when the step starts."""
    if isinstance(value, str) and is_reference(value):
        return interpolate(value, scope.lookup)
    return value


def resolve_seconds(value: Any, scope: Scope) -> float | None:
    if value is None:
        return None
    return parse_duration(resolve_scheduling(value, scope))


def evaluate_condition(when: bool | str, scope: Scope) -> bool:
    """`when`/`until`: true/false, a `${...}` template, or a bare CEL expression."""
    if isinstance(when, bool):
        return when
    if "${" in when:
        value = interpolate(when, scope.lookup)
    else:
        from drawer.expr import evaluate

        value = evaluate(when, scope.lookup)
    answer = as_boolean(value)
    if answer is None:
        raise RefError(f"when must be true or false; {when} is {plain(value)!r}", code="EXPR_ERROR")
    return answer


async def _attempt(
    ctx: RunContext,
    step: AnyStep,
    scope: Scope,
    path: str,
    previous: Outcome | None,
    timeout: float | None,
) -> Outcome:
    kind = KINDS[step.kind]
    if timeout is None:
        return await kind.execute(ctx, step, scope, path, previous)
    with trio.move_on_after(timeout) as cancel_scope:
        return await kind.execute(ctx, step, scope, path, previous)
    assert cancel_scope.cancelled_caught
    message = f"{path} timed out after {timeout:g}s"
    return Outcome(ctx.partial.pop(path, None), ErrorInfo("TIMEOUT", message, path))


def _retryable(error: ErrorInfo, policy: RetryPolicy) -> bool:
    """A loop's failure is retried when what failed inside it is (`on` lists leaf codes)."""
    return error.code in policy.on or error.root_cause().code in policy.on


class _Retry(NamedTuple):
    """A step's retry policy with its delays in seconds, references resolved."""

    policy: RetryPolicy
    delay: float
    max_delay: float | None


async def _attempts(
    ctx: RunContext,
    step: AnyStep,
    scope: Scope,
    path: str,
    record: StepRecord,
    per_attempt: float | None,
    retry: _Retry,
) -> Outcome:
    policy, delay, max_delay = retry
    outcome: Outcome | None = None
    for attempt in range(1, policy.attempts + 1):
        record.attempts = attempt
        outcome = await _attempt(ctx, step, scope, path, outcome, per_attempt)
        error = outcome.error
        if error is None or attempt == policy.attempts or not _retryable(error, policy):
            return outcome
        wait = delay if max_delay is None else min(delay, max_delay)
        if policy.jitter:
            wait *= random.uniform(0.5, 1.0)
        ctx.emit(ev.StepRetrying(path, attempt + 1, wait, ctx.masker.error(error) or error))
        await trio.sleep(wait)
        delay *= policy.backoff
    assert outcome is not None
    return outcome


async def run_step(
    ctx: RunContext,
    step: AnyStep,
    scope: Scope,
    path: str,
    record: StepRecord,
    after: Sequence[str] = (),
) -> None:
    """One step: `when`, retries, its timeout, and a finished record whatever happens.
    `after` holds the paths of the steps it depends on (a resumed run checks them)."""
    if ctx.shard is not None and path in ctx.shard.deferred:
        record.finish(
            SKIPPED,
            error=ErrorInfo(
                "SHARD_DEFERRED",
                f"{path} depends on the sharded loop {ctx.shard.loop}: it runs after"
                " the shards are merged",
                path,
            ),
        )
        ctx.emit(ev.StepFinished(path, step.kind, record, trio.current_time()))
        return
    previous = ctx.previous
    if previous is not None:
        reused = previous.reuse(step, path, after)
        if reused is not None:
            old = reused.record
            record.status, record.attempts, record.output = OK, old.attempts, old.output
            record.started_at, record.ended_at = old.started_at, old.ended_at
            now = trio.current_time()
            ctx.emit(ev.StepStarted(path, step.kind, now))
            origin = (previous.run_id, reused.old_path)
            if isinstance(step, ParallelStep) and isinstance(old.output, dict):
                _export_branches(step, old.output, scope)
            ctx.emit(ev.StepFinished(path, step.kind, record, now, origin))
            return
    record.start()
    ctx.emit(ev.StepStarted(path, step.kind, trio.current_time()))
    try:
        outcome = await _run_guarded(ctx, step, scope, path, record)
        if outcome is not None:
            error = ctx.masker.error(outcome.error)
            record.finish(FAILED if error else OK, outcome.output, error)
    finally:
        # Cancellation may arrive as Cancelled or inside an ExceptionGroup from a nursery.
        if record.status == RUNNING:
            record.finish(CANCELLED, ctx.partial.pop(path, None), ctx.cut_short(path))
        if previous is not None:
            previous.skipped_again(path, record)
        ctx.emit(ev.StepFinished(path, step.kind, record, trio.current_time()))


def _export_branches(step: ParallelStep, output: dict[str, Any], scope: Scope) -> None:
    """A reused parallel step's single-step branches, referable by their ids as after a run."""
    for branch in step.branches:
        data = output.get(branch.id)
        if not isinstance(branch, BranchGroup) and isinstance(data, dict):
            scope.exported[branch.id] = StepRecord.from_json(data)


async def _run_guarded(
    ctx: RunContext, step: AnyStep, scope: Scope, path: str, record: StepRecord
) -> Outcome | None:
    try:
        if step.when is not None and not evaluate_condition(step.when, scope):
            record.finish(SKIPPED)
            return None
        timeout_value = step.timeout
        if timeout_value is None and isinstance(step, RunStep | DrawerStep):
            timeout_value = ctx.loaded.model.defaults.timeout
        timeout = resolve_seconds(timeout_value, scope)
        policy = retry_policy(ctx, step)
        # Durations given as references are resolved once, when the step starts, as a
        # timeout is: an unresolved `${...}` reached parse_duration and ended the run.
        retry = (
            _Retry(
                policy,
                resolve_seconds(policy.delay, scope) or 0.0,
                resolve_seconds(policy.max_delay, scope),
            )
            if policy.attempts > 1
            else _Retry(policy, 0.0, None)  # one attempt never waits (and the loop's hot path)
        )
    except (RefError, ValueError) as error:
        return Outcome(None, ErrorInfo(getattr(error, "code", "EXPR_ERROR"), str(error), path))
    if KINDS[step.kind].TIMEOUT_PER_ATTEMPT or timeout is None:
        return await _attempts(ctx, step, scope, path, record, timeout, retry)
    with trio.move_on_after(timeout) as cancel_scope:
        return await _attempts(ctx, step, scope, path, record, None, retry)
    assert cancel_scope.cancelled_caught
    message = f"{path} timed out after {timeout:g}s"
    return Outcome(ctx.partial.pop(path, None), ErrorInfo("TIMEOUT", message, path))


# the run ------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    inputs: dict[str, Any]
    secrets: list[str]
    listeners: list[ev.Listener]
    grace: float = 5.0
    workdir: Path | None = None
    kill_now: trio.Event | None = None
    previous: Previous | None = None
    resumed_from: str | None = None
    commit: Callable[[], Awaitable[None]] | None = None
    edits: list[str] = field(default_factory=list)
    """`run --set` edits, kept in the document so that a resume from it reapplies them."""
    definitions: dict[str, str] = field(default_factory=dict)
    """Step definition hashes (resume.definitions), kept in the document for the same reason."""
    shard: Shard | None = None


def default_max_processes() -> int:
    return max(16, 4 * (os.cpu_count() or 1))


def _execution_settings(ctx: RunContext, scope: Scope) -> None:
    execution = ctx.loaded.model.execution
    ctx.process_limiter.total_tokens = (
        default_max_processes()
        if execution.max_processes is None
        else MAX_PROCESSES.resolve(execution.max_processes, scope.lookup, cpu_count())
    )
    ctx.max_workers = (
        None
        if execution.max_workers is None
        else MAX_WORKERS.resolve(execution.max_workers, scope.lookup, cpu_count())
    )
    ctx.serial = not PARALLEL.resolve(execution.parallel, scope.lookup)


def resolve_env(ctx: RunContext, scope: Scope) -> None:
    """Add the drawer's `env:` to the command environment, references resolved, each value
    as a step's `env:` gives it (`true`, JSON for a list or a mapping)."""
    for name, value in ctx.loaded.model.env.items():
        resolved = interpolate(value, scope.lookup) if isinstance(value, str) else value
        ctx.base_env[name] = to_text(resolved)


async def execute_run(
    loaded: LoadedDrawer,
    options: RunOptions,
    interrupt: Interrupt | None = None,
    cancel_scope: trio.CancelScope | None = None,
) -> dict[str, Any]:
    """Run a validated drawer and return its run document (SPEC 3.2)."""
    masker = Masker(options.secrets)
    emit = ev.Emitter(options.listeners)
    workdir = options.workdir or Path.cwd()
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    started = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="drawer-") as tmp,
        procs.supervise(tmp, options.grace),
    ):
        ctx = RunContext(
            loaded=loaded,
            run_id=run_id,
            inputs=options.inputs,
            masker=masker,
            emit=emit,
            process_limiter=trio.CapacityLimiter(1),
            base_env=dict(os.environ),
            workdir=workdir,
            tmpdir=Path(tmp),
            grace=options.grace,
            kill_now=options.kill_now if options.kill_now is not None else trio.Event(),
            previous=options.previous,
            commit=options.commit,
            shard=options.shard,
            interrupt=interrupt or Interrupt(),
        )
        scope = Scope(ctx)
        emit(ev.RunStarted(run_id, loaded.name, str(loaded.path)))
        status, error = OK, None
        try:
            _execution_settings(ctx, scope)
            resolve_env(ctx, scope)
            run_timeout = resolve_seconds(loaded.model.execution.timeout, scope)
        except (RefError, ValueError) as problem:
            status = FAILED
            error = ErrorInfo(getattr(problem, "code", "EXPR_ERROR"), str(problem), None)
            cause = error
            close_unstarted(
                ctx,
                loaded.model.steps,
                scope,
                "",
                lambda path: ErrorInfo(
                    cause.code, f"{path} never started: {cause.message}", path, cause
                ),
            )
        if error is None:
            status, error = await _run_top(
                ctx, scope, run_timeout, cancel_scope or trio.CancelScope()
            )
        outputs = resolve_outputs(ctx, scope)
    ended = time.time()
    document: dict[str, Any] = {
        "run_id": run_id,
        "drawer": str(loaded.path),
        "name": loaded.name,
        "resumed_from": options.resumed_from,
        "status": status,
        "started_at": rfc3339(started),
        "ended_at": rfc3339(ended),
        "duration": round(ended - started, 3),
        "inputs": recorded_inputs(loaded.model.inputs, options.inputs),
        "outputs": outputs,
        "steps": {step_id: record.as_json() for step_id, record in scope.records.items()},
        "error": error.as_json() if error else None,
        "edits": options.edits,
        "definitions": options.definitions,
    }
    if options.shard is not None:
        document["shard"] = options.shard.as_json()
    document = masker.value(plain(document))
    emit(ev.RunFinished(document))
    return document


async def _run_top(
    ctx: RunContext,
    scope: Scope,
    run_timeout: float | None,
    cancel_scope: trio.CancelScope,
) -> tuple[str, ErrorInfo | None]:
    steps: Sequence[AnyStep] = ctx.loaded.model.steps
    result = ListResult(False)
    interrupt = ctx.interrupt
    with cancel_scope:
        if run_timeout is not None:
            ctx.deadline = cancel_scope.deadline = trio.current_time() + run_timeout
        result = await run_list(ctx, steps, scope, "")
    if cancel_scope.cancelled_caught:
        if interrupt.reason is not None:
            return CANCELLED, ErrorInfo("CANCELLED", interrupt.reason)
        if interrupt.signal is not None:
            return CANCELLED, ErrorInfo("CANCELLED", f"cancelled by signal {interrupt.signal}")
        return FAILED, ErrorInfo("RUN_TIMEOUT", f"the run exceeded its timeout of {run_timeout}s")
    if result.failed:
        return FAILED, result.error
    return OK, None


def resolve_outputs(ctx: RunContext, scope: Scope) -> dict[str, Any]:
    """The drawer's `outputs:`; one that cannot be resolved is null, with a warning."""
    outputs: dict[str, Any] = {}
    for name, value in ctx.loaded.model.outputs.items():
        try:
            outputs[name] = plain(interpolate_deep(value, scope.lookup))
        except RefError as error:
            outputs[name] = None
            warning = ctx.masker.text(f"output {name} is null: {error}")
            ctx.emit(ev.OutputLine("", "warning", warning))
    return outputs
