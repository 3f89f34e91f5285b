"""`executor: dask` — a `for_each` whose items run on a Dask cluster, in chunks.

```yaml
- id: crawl
  kind: for_each
  over: {file: urls.txt}
  executor: dask
  dask: {address: "tcp://scheduler:8786", chunk_size: 100}   # both optional
  parallelism: 4
  steps:
    - id: fetch
      run: curl -fsS "${item}"
```

Install the extra first: `pip install "drawer[dask]"` (drawer must also be installed on every
worker, in the same version).

**What runs where.** drawer itself (the *driver*) reads the items, cuts them into chunks of
`chunk_size` consecutive items (default 100) and hands each chunk to the cluster as one task.
The task runs the loop body for each of its items on the worker, exactly as the local
executor would (same step paths, same records, same `run` steps as real processes there),
up to `parallelism` items of the chunk at a time; the cluster runs one chunk per worker
thread. So at most `parallelism` x (worker threads) iterations run at once, and
`execution.max_processes` bounds each task's commands. The driver keeps one chunk per worker
thread in flight and submits the next when one comes back: a million-line file is never
held in memory, and nothing waits in the scheduler's queue.
Results come back per chunk and are recorded in the run store, the display and the run
document as if they had run locally: in input order, with the same counts and outputs.

**Where the cluster comes from.** `dask.address` names a running scheduler. Without it
drawer starts a `LocalCluster` on this machine for the loop and closes it when the loop
ends (each attempt of a retried loop gets a fresh one): worker processes by default, or
threads in this process with `DRAWER_DASK_PROCESSES=0` (quick to start, for tests and small
machines).

**What travels to the workers.** The drawer file's text and path (a worker loads and
validates it again), the run's inputs and secrets, drawer's environment (PATH included) and
the loop's `env`, the values of the loop variables of enclosing loops, and the records
(`{status, output, error}`) of the earlier steps whose ids the body mentions. Commands run
in the directory drawer runs in, by the same path. A remote cluster therefore needs drawer,
the commands the body runs, the same paths (a shared file system, or images with the same
layout) and a suitable PATH. What comes back: each iteration's record and the events of its
steps, command output lines included (so `drawer FILE logs` works), with secrets masked on
the worker — an output that holds a secret comes back as `***`.

**Failures.** `on_item_failure` and `tolerate` mean what they mean locally. Once the failures
exceed `tolerate`, no further chunk is submitted, and a flag (a Dask `Event` per loop) tells
the running chunks to start no more items (`finish`) or to cancel their running ones
(`stop`); items never started are `skipped`, items cut short `cancelled`. A chunk reports its
results when it ends, so the driver counts its failures then; a chunk whose own failures
exceed `tolerate` stops at once. The loop error names the lowest-indexed item that failed on
its own. Tasks are submitted with Dask's retries off (`retries=0`, and `allowed-failures: 0`
on the scheduler drawer starts), so only drawer's `retry` reruns anything: a chunk whose
worker is lost, or whose task fails, has all its items `failed` (`STEP_FAILED`, naming the
worker), and `retry` on the loop reruns just those. A scheduler you start yourself should
run with `distributed.scheduler.allowed-failures: 0` for the same guarantee; otherwise Dask
reruns a lost worker's chunk by itself. On Ctrl-C, SIGTERM or a timeout the running chunks
are asked to cancel their commands (each command's process group gets TERM, then KILL after
the grace period), and the cluster drawer started is closed; its worker processes leave
Ctrl-C to drawer, so a terminal's Ctrl-C cannot kill them under their commands.

**Limits.** `delay` (rate limiting) is refused with `executor: dask`: tasks on different
workers cannot share one pace. A `for_each` with `executor: dask` nested inside a chunk runs
locally on that worker. `--resume` takes over the iterations that ended `ok` as locally (on
the driver); an iteration that failed reruns whole on the cluster. A chunk's command output
travels back with its results: for commands that print a lot, use a smaller `chunk_size`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from drawer import engine, procs
from drawer import events as ev
from drawer.context import Masker, Outcome, RunContext, Scope
from drawer.counts import PARALLELISM
from drawer.loader import LoadedDrawer, iter_steps, load_text
from drawer.model import DASK_INSTALL, DaskOptions, ForEachStep
from drawer.records import CANCELLED, FAILED, OK, ErrorInfo, IterationRecord, StepRecord
from drawer.refs import plain
from drawer.signals import CANCELLING
from drawer.steps import for_each
from drawer.steps.for_each import (
    STATUS_CODES,
    ForEachOutput,
    Items,
    _closed,
    _FirstFailure,
    _loop_error,
    _Matcher,
    run_iteration,
    unstarted,
)
from drawer.steps.policy import FailurePolicy

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

PROCESSES_VARIABLE = "DRAWER_DASK_PROCESSES"
"""`0` makes the LocalCluster drawer starts use threads in this process instead of processes."""
FLAG_WAIT = 1.0
"""How long a chunk's flag watcher waits per call: a finished chunk's watcher ends within it."""
CLOSE_TIMEOUT = 10.0
"""Seconds the client and the LocalCluster get to close; the run goes on after that."""
CANCEL_MARGIN = 5.0
"""Seconds on top of the grace period that a cancelled loop waits for its chunks to return."""

Chunk = list[tuple[int, Any]]
WireEvent = tuple[str, dict[str, Any]]
"""An event as it travels back from a worker: its class name and its fields, packed."""

_IN_CHUNK: contextvars.ContextVar[bool] = contextvars.ContextVar("drawer_in_chunk", default=False)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_EVENTS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ev.StepStarted, ev.StepRetrying, ev.StepFinished, ev.LoopStarted, ev.IterationStarted,
        ev.IterationFinished, ev.CommandStarted, ev.CommandFinished, ev.OutputLine,
    )
}  # fmt: skip


@dataclass(frozen=True)
class LoopJob:
    """What every chunk of one loop needs, as plain data (sent once to each worker)."""

    text: str
    drawer_path: str
    step_id: str
    path: str
    run_id: str
    inputs: dict[str, Any]
    secrets: tuple[str, ...]
    base_env: dict[str, str]
    env: dict[str, str]
    workdir: str
    records: dict[str, Any]
    """`{status, output, error}` of the visible steps the body mentions, by id."""
    variables: dict[str, Any]
    """The loop variables of the enclosing loops (and repeats)."""
    parallelism: int
    limit: int
    grace: float
    max_processes: int
    max_workers: int | None
    serial: bool
    stop_flag: str
    cancel_flag: str


@dataclass(frozen=True)
class Packed:
    """A record or error inside a wire event, as JSON data."""

    kind: str
    data: Any


# the driver ------------------------------------------------------------------------------------


async def execute_on_dask(
    ctx: RunContext,
    step: ForEachStep,
    scope: Scope,
    path: str,
    items: Items,
    env: dict[str, str],
    output: ForEachOutput,
    reuse: ForEachOutput | None,
    limit: int,
) -> Outcome:
    """Run the loop's items on a Dask cluster; the outcome is the local executor's."""
    if _IN_CHUNK.get():
        local = step.model_copy(update={"executor": "local"})
        previous = Outcome(reuse) if reuse is not None else None
        return await for_each.execute(ctx, local, scope, path, previous)
    if engine.resolve_seconds(step.delay, scope):
        message = f"{path}: delay cannot pace items spread over a Dask cluster; remove it"
        return Outcome(None, ErrorInfo("INVALID_DRAWER", message, path))
    parallelism = (
        1 if ctx.serial else PARALLELISM.at_once(step.parallelism, scope.lookup, items.total)
    )
    loop = _DaskLoop(ctx, step, scope, path, env, output, reuse, limit, parallelism, items)
    ctx.emit(ev.LoopStarted(path, items.total, parallelism))
    ctx.partial[path] = output
    try:
        await loop.run(step.dask or DaskOptions())
    except SessionError as error:
        ctx.partial.pop(path, None)
        return Outcome(None, ErrorInfo(error.code, f"{path}: {error}", path))
    finally:
        for index, item in loop.source:
            output.record(unstarted(ctx, path, IterationRecord(index, item), loop.stopping))
    del ctx.partial[path]
    changed = for_each.source_changed(items, output, path)
    if changed is not None:
        return Outcome(output, changed)
    loop.matcher.finish()
    if output.counts[FAILED] > limit:
        return Outcome(output, _loop_error(path, output, loop.first_failure.iteration, limit))
    return Outcome(output)


class SessionError(Exception):
    """The cluster cannot be used: the extra is missing, or the scheduler is unreachable."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Session:
    """A Dask client, and the LocalCluster it started (if any); every call blocks, so the
    driver makes them from worker threads."""

    def __init__(self, client: Client, cluster: LocalCluster | None, flags: tuple[str, str]):
        self.client = client
        self.cluster = cluster
        self.flags = flags

    @classmethod
    def start(cls, options: DaskOptions, flags: tuple[str, str]) -> Session:
        try:
            import distributed
        except ImportError as error:
            raise SessionError(
                f"executor: dask needs Dask ({error}); {DASK_INSTALL}",
                "INVALID_DRAWER",
            ) from None
        if options.address:
            try:
                client = distributed.Client(options.address, set_as_default=False)
            except OSError as error:
                raise SessionError(
                    f"cannot reach the Dask scheduler at {options.address}: {error}",
                    "STEP_FAILED",
                ) from None
            return cls(client, None, flags)
        processes = os.environ.get(PROCESSES_VARIABLE, "1") != "0"
        cluster = distributed.LocalCluster(
            processes=processes,
            dashboard_address=":0",
            scheduler_kwargs={"allowed_failures": 0},
            preload=[__name__] if processes else [],
        )
        try:
            return cls(distributed.Client(cluster, set_as_default=False), cluster, flags)
        except BaseException:
            cluster.close()
            raise

    def capacity(self) -> int:
        """Worker threads in the cluster now: the chunks worth having in flight."""
        threads: dict[str, int] = self.client.nthreads()
        return max(1, sum(threads.values()))

    def scatter(self, job: LoopJob) -> Future[LoopJob]:
        return self.client.scatter(job, broadcast=True, hash=False)

    def submit(self, job: Future[LoopJob], chunk: Chunk, key: str) -> Future[list[WireEvent]]:
        return self.client.submit(run_chunk, job, chunk, key=key, retries=0, pure=False)

    def cancel(self, futures: list[Future[list[WireEvent]]]) -> None:
        self.client.cancel(futures, force=True)

    def raise_flags(self, cancel: bool) -> None:
        """Tell the running chunks to start no more items (and, with `cancel`, to cancel
        their running ones whatever the loop's policy)."""
        from distributed import Event

        stop, cancelling = self.flags
        if cancel:
            Event(cancelling, client=self.client).set()
        Event(stop, client=self.client).set()

    def close(self) -> None:
        from distributed import Event

        try:
            # Raising the stop flag ends the waits of the flag watchers still running; a
            # scheduler that lives on forgets both flags.
            with contextlib.suppress(Exception):
                Event(self.flags[0], client=self.client).set()
                if self.cluster is None:
                    for name in self.flags:
                        Event(name, client=self.client).clear()
            with contextlib.suppress(TimeoutError):
                self.client.close(timeout=CLOSE_TIMEOUT)
        finally:
            if self.cluster is not None:
                with contextlib.suppress(TimeoutError):
                    self.cluster.close(timeout=CLOSE_TIMEOUT)


@asynccontextmanager
async def open_session(options: DaskOptions, flags: tuple[str, str]) -> AsyncIterator[Session]:
    """A client for the loop, closed (with the cluster drawer started) however the loop ends."""
    session = await trio.to_thread.run_sync(Session.start, options, flags)
    try:
        yield session
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(session.close)


class _DaskLoop:
    """One attempt of a loop on the cluster, seen from the driver."""

    def __init__(
        self,
        ctx: RunContext,
        step: ForEachStep,
        scope: Scope,
        path: str,
        env: dict[str, str],
        output: ForEachOutput,
        reuse: ForEachOutput | None,
        limit: int,
        parallelism: int,
        items: Items,
    ) -> None:
        self.ctx = ctx
        self.step = step
        self.scope = scope
        self.path = path
        self.env = env
        self.output = output
        self.reuse = reuse
        self.limit = limit
        self.parallelism = parallelism
        self.chunk_size = (step.dask or DaskOptions()).chunk_size
        self.source: Iterator[tuple[int, Any]] = enumerate(items.values)
        self.matcher = _Matcher(ctx, path, items.total)
        self.first_failure = _FirstFailure()
        self.stopping = False
        self.in_flight: dict[str, tuple[Future[list[WireEvent]], Chunk]] = {}
        self.unsent: Chunk = []
        self.session: Session | None = None
        name = f"drawer-{ctx.run_id}-{path}-{uuid.uuid4().hex[:8]}"
        self.flags = (f"{name}-stop", f"{name}-cancel")

    def job(self) -> LoopJob:
        records, variables = _outer_names(self.scope, self.step)
        ctx = self.ctx
        return LoopJob(
            text=ctx.loaded.document.text,
            drawer_path=str(ctx.loaded.path),
            step_id=self.step.id,
            path=self.path,
            run_id=ctx.run_id,
            inputs=plain(ctx.inputs),
            secrets=tuple(ctx.masker.secrets),
            base_env=dict(ctx.base_env),
            env=dict(self.env),
            workdir=str(ctx.workdir),
            records=records,
            variables=variables,
            parallelism=self.parallelism,
            limit=self.limit,
            grace=ctx.grace,
            max_processes=int(ctx.process_limiter.total_tokens),
            max_workers=ctx.max_workers,
            serial=ctx.serial,
            stop_flag=self.flags[0],
            cancel_flag=self.flags[1],
        )

    async def run(self, options: DaskOptions) -> None:
        """Start the cluster once an item needs it, then send chunks until none is left."""
        try:
            self.unsent = await self.next_chunk()
            if self.unsent and not self.stopping:
                async with open_session(options, self.flags) as session:
                    self.session = session
                    await self.send_all(session)
        finally:
            for index, item in self.unsent:  # taken from the source, never submitted
                iteration = IterationRecord(index, item)
                self.output.record(unstarted(self.ctx, self.path, iteration, self.stopping))

    async def send_all(self, session: Session) -> None:
        job = await trio.to_thread.run_sync(session.scatter, self.job())
        send, receive = trio.open_memory_channel[str](math.inf)
        token = trio.lowlevel.current_trio_token()

        def arrived(key: str) -> None:  # called in a Dask thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(send.send_nowait, key)

        try:
            more = True
            while True:
                if more and not self.stopping:
                    capacity = (
                        1 if self.ctx.serial else await trio.to_thread.run_sync(session.capacity)
                    )
                    while more and not self.stopping and len(self.in_flight) < capacity:
                        self.unsent = self.unsent or await self.next_chunk()
                        more = bool(self.unsent) and not self.stopping
                        if more:
                            await self.submit(session, job, arrived)
                if not self.in_flight:
                    break
                await self.take_result(await receive.receive())
                await engine.durable(self.ctx)
                await self.check_policy()
        except BaseException:
            await self.wind_down(session, receive)
            raise

    async def submit(
        self, session: Session, job: Future[LoopJob], arrived: Callable[[str], None]
    ) -> None:
        chunk = self.unsent
        key = f"drawer-{self.path}[{chunk[0][0]}-{chunk[-1][0]}]-{uuid.uuid4().hex}"
        future = await trio.to_thread.run_sync(session.submit, job, chunk, key)
        self.in_flight[key] = (future, chunk)
        self.unsent = []
        future.add_done_callback(lambda _: arrived(key))

    async def take_result(self, key: str) -> None:
        """Record a finished chunk's iterations (a key already taken is ignored)."""
        entry = self.in_flight.get(key)
        if entry is not None:
            future, chunk = entry
            result = await trio.to_thread.run_sync(_result_of, future, abandon_on_cancel=True)
            del self.in_flight[key]
            self.replay(chunk, result)

    async def wind_down(self, session: Session, receive: trio.MemoryReceiveChannel[str]) -> None:
        """Cancelled (or failed): ask the running chunks to cancel, take what they return
        within the grace period, and count the rest as cancelled."""
        with trio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = trio.current_time() + self.ctx.grace + CANCEL_MARGIN
            if self.in_flight:
                await trio.to_thread.run_sync(session.raise_flags, True, abandon_on_cancel=True)
            for key, (future, _) in list(self.in_flight.items()):
                if future.done():  # its arrival may have been taken from the channel
                    await self.take_result(key)
            while self.in_flight:
                await self.take_result(await receive.receive())
        if self.in_flight:
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + CANCEL_MARGIN
                futures = [future for future, _ in self.in_flight.values()]
                await trio.to_thread.run_sync(session.cancel, futures, abandon_on_cancel=True)
        for _, chunk in self.in_flight.values():
            for index, item in chunk:
                self.output.record(_closed(IterationRecord(index, item), CANCELLED))
        self.in_flight.clear()

    async def next_chunk(self) -> Chunk:
        """The next `chunk_size` items that must run; items a retry or a resume takes over
        are recorded on the way."""
        chunk: Chunk = []
        reuse, matcher = self.reuse, self.matcher
        for index, item in self.source:
            if reuse is not None and reuse.statuses[index] == STATUS_CODES[OK]:
                reused = reuse.results[index] if reuse.results is not None else None
                self.output.record(reused or _closed(IterationRecord(index, item), OK))
                continue
            old_index = matcher.match(index, item)
            if old_index is not None and self.ended_ok(old_index):
                await self.take_over(index, item, old_index)
                continue
            if old_index is not None:
                matcher.done(index, old_index, self.step)  # it runs whole on the cluster
            chunk.append((index, item))
            if len(chunk) == self.chunk_size:
                break
            if self.stopping:  # a taken-over iteration failed: this chunk is not sent
                break
        return chunk

    def ended_ok(self, old_index: int) -> bool:
        """Whether the resumed run's iteration of this item ended ok."""
        previous, loop = self.ctx.previous, self.matcher.loop
        if previous is None or loop is None:
            return False
        row = previous.connection.execute(
            "SELECT status FROM steps WHERE run_id = ? AND path = ?",
            (previous.run_id, f"{loop.old_path}[{old_index}]"),
        ).fetchone()
        return row is not None and row[0] == OK

    async def take_over(self, index: int, item: Any, old_index: int) -> None:
        """A resumed run's ok iteration: here, step by step, reusing the earlier records."""
        iteration = IterationRecord(index, item)
        try:
            await run_iteration(self.ctx, self.step, self.scope, self.path, iteration, self.env)
        finally:
            if iteration.status in STATUS_CODES:
                self.output.record(iteration)
            self.matcher.done(index, old_index, self.step)
        await engine.durable(self.ctx)
        if iteration.status == FAILED:
            self.first_failure.add(iteration)
            await self.check_policy()

    async def check_policy(self) -> None:
        """Failures beyond `tolerate` under `stop` or `finish`: submit nothing more, and
        raise the flag the running chunks watch."""
        failed = self.output.counts[FAILED]
        if self.stopping or self.step.on_item_failure == "continue" or failed <= self.limit:
            return
        self.stopping = True
        if self.session is not None and self.in_flight:
            await trio.to_thread.run_sync(self.session.raise_flags, False)

    def replay(self, chunk: Chunk, result: list[WireEvent] | BaseException) -> None:
        """A chunk's events, emitted here as if it had run here; its iterations recorded."""
        if isinstance(result, BaseException):
            self.chunk_failed(chunk, result)
            return
        items = dict(chunk)
        ended: set[int] = set()
        for name, fields in result:
            event = _unpack_event(name, fields)
            self.ctx.emit(event)
            if (
                isinstance(event, ev.IterationFinished)
                and event.loop_path == self.path
                and event.record is not None
                and event.index in items
            ):
                iteration = event.record
                iteration.item = items[iteration.index]
                self.output.record(iteration)
                ended.add(iteration.index)
                if iteration.status == FAILED:
                    self.first_failure.add(iteration)
        for index, item in chunk:
            if index not in ended:  # never started: the loop was stopping
                iteration = IterationRecord(index, item)
                self.output.record(unstarted(self.ctx, self.path, iteration, self.stopping))

    def chunk_failed(self, chunk: Chunk, error: BaseException) -> None:
        """A lost worker or a failed task: every item of the chunk failed, so that a retry
        of the loop runs them again."""
        if type(error).__name__ == "KilledWorker":
            worker = getattr(getattr(error, "last_worker", None), "address", "?")
            reason = f"the Dask worker {worker} running it was lost"
        elif type(error).__name__ == "FutureCancelledError":
            reason = "its Dask task was cancelled"
        else:
            reason = f"its Dask task failed: {type(error).__name__}: {error}"
        reason = self.ctx.masker.text(reason)
        for index, item in chunk:
            item_path = f"{self.path}[{index}]"
            iteration = IterationRecord(index, item)
            iteration.status = FAILED
            iteration.error = ErrorInfo("STEP_FAILED", f"{item_path}: {reason}", item_path)
            iteration.started_at = iteration.ended_at = time.time()
            now = trio.current_time()
            self.ctx.emit(ev.IterationStarted(self.path, index, now, item_path))
            self.ctx.emit(
                ev.IterationFinished(self.path, index, FAILED, now, item_path, iteration, True)
            )
            self.output.record(iteration)
            self.first_failure.add(iteration)


def _result_of(future: Future[list[WireEvent]]) -> list[WireEvent] | BaseException:
    try:
        events: list[WireEvent] = future.result()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # a task's exception, KilledWorker, FutureCancelledError
        return error
    return events


def _outer_names(scope: Scope, step: ForEachStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records and loop variables the body may use: every enclosing loop variable, and
    the visible steps whose id appears in the body's text."""
    body = "".join(child.model_dump_json() for child in step.steps)
    mentioned = set()
    for name in _NAME.findall(body):
        mentioned.add(name)
        mentioned.update(name.split("-"))
    records: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    current: Scope | None = scope
    while current is not None:
        for name, value in current.vars.items():
            variables.setdefault(name, plain(value))
        for known in (current.records, current.exported):
            for step_id, record in known.items():
                if step_id in mentioned and step_id not in records:
                    records[step_id] = plain(record.view())
        current = current.parent
    return records, variables


def _unpack(value: Any) -> Any:
    if not isinstance(value, Packed):
        return value
    if value.kind == "record":
        return _record(value.data)
    if value.kind == "error":
        return ErrorInfo.from_json(value.data)
    data = value.data
    iteration = IterationRecord(data["index"], data["item"])
    iteration.status = data["status"]
    iteration.steps = {key: _record(step) for key, step in data["steps"].items()}
    iteration.error = ErrorInfo.from_json(data["error"]) if data["error"] else None
    iteration.started_at = data["started_at"]
    iteration.ended_at = data["ended_at"]
    return iteration


def _pack_record(record: StepRecord, masker: Masker) -> dict[str, Any]:
    """A step record with its times as timestamps (`as_json` would round them to ms)."""
    error = masker.error(record.error)
    return {
        "status": record.status,
        "attempts": record.attempts,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "output": masker.value(plain(record.output)),
        "error": error.as_json() if error else None,
    }


def _record(data: dict[str, Any]) -> StepRecord:
    record = StepRecord()
    record.status = data["status"]
    record.attempts = data["attempts"]
    record.started_at = data["started_at"]
    record.ended_at = data["ended_at"]
    record.output = data["output"]
    record.error = ErrorInfo.from_json(data["error"]) if data["error"] else None
    return record


def _unpack_event(name: str, fields: dict[str, Any]) -> ev.Event:
    cls = _EVENTS[name]
    values = {key: _unpack(value) for key, value in fields.items()}
    if "clock" in cls.__dataclass_fields__:
        values["clock"] = trio.current_time()
    event: ev.Event = cls(**values)
    return event


# the worker ------------------------------------------------------------------------------------


class _Collector:
    """A listener on a worker: every event of the chunk, packed as plain data, masked."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.events: list[WireEvent] = []

    def __call__(self, event: ev.Event) -> None:
        name = type(event).__name__
        if name not in _EVENTS:
            return
        fields = {
            field.name: self.pack(getattr(event, field.name))
            for field in dataclasses.fields(event)
            if field.name != "clock"
        }
        self.events.append((name, fields))

    def pack(self, value: Any) -> Any:
        masker = self.masker
        if isinstance(value, StepRecord):
            return Packed("record", _pack_record(value, masker))
        if isinstance(value, ErrorInfo):
            masked = masker.error(value)
            assert masked is not None
            return Packed("error", masked.as_json())
        if isinstance(value, IterationRecord):
            data = {
                "index": value.index,
                "item": masker.value(plain(value.item)),
                "status": value.status,
                "steps": {key: _pack_record(step, masker) for key, step in value.steps.items()},
                "error": self.pack(value.error).data if value.error else None,
                "started_at": value.started_at,
                "ended_at": value.ended_at,
            }
            return Packed("iteration", data)
        if isinstance(value, str):
            return masker.text(value)
        return value


class _StopFlags:
    """The loop's flags as one chunk sees them (Dask `Event`s on the scheduler)."""

    def __init__(self, job: LoopJob) -> None:
        from distributed import Event

        self.stop = Event(job.stop_flag)
        self.cancel = Event(job.cancel_flag)
        self.finished = threading.Event()

    def wait(self) -> bool:
        """True once the driver raises the stop flag; False when the chunk ended first (or the
        worker lost its scheduler, when there is nobody left to hear from)."""
        try:
            while not self.finished.is_set():
                if self.stop.wait(timeout=FLAG_WAIT):
                    return True
        except Exception:
            return False
        return False

    def cancelling(self) -> bool:
        try:
            return bool(self.cancel.is_set())
        except Exception:
            return False


@lru_cache(maxsize=8)
def _load(text: str, path: str) -> tuple[LoadedDrawer, dict[str, ForEachStep]]:
    """The drawer a job names, loaded once per worker process, with its loops by id."""
    loaded = load_text(text, Path(path))
    loops = {step.id: step for step, _ in iter_steps(loaded.model) if isinstance(step, ForEachStep)}
    return loaded, loops


def dask_setup(worker: object) -> None:
    """Preloaded into the worker processes of the LocalCluster drawer starts: they let
    the signals that cancel a run pass. A Ctrl-C reaches the terminal's whole process group, and a
    worker that died of it would leave its running commands behind; drawer cancels them
    through the flags, then closes the cluster. (A handler, not SIG_IGN: an ignored signal
    would stay ignored in the commands the worker starts.)"""
    if threading.current_thread() is threading.main_thread():
        for signum in CANCELLING:
            signal.signal(signum, _let_pass)


def _let_pass(signum: int, frame: object) -> None:
    """drawer, the driver, decides what a signal does to the work on this worker."""


def run_chunk(job: LoopJob, chunk: Chunk) -> list[WireEvent]:
    """The Dask task: the loop body for each item of one chunk; returns what happened."""
    flags = _StopFlags(job)
    if flags.stop.is_set():
        return []
    loaded, loops = _load(job.text, job.drawer_path)
    step = loops[job.step_id]
    token = _IN_CHUNK.set(True)
    try:
        return trio.run(_run_chunk, job, loaded, step, chunk, flags)
    finally:
        flags.finished.set()
        _IN_CHUNK.reset(token)


async def _run_chunk(
    job: LoopJob, loaded: LoadedDrawer, step: ForEachStep, chunk: Chunk, flags: _StopFlags
) -> list[WireEvent]:
    masker = Masker(list(job.secrets))
    collector = _Collector(masker)
    with (
        tempfile.TemporaryDirectory(prefix="drawer-") as tmp,
        procs.supervise(tmp, job.grace),
    ):
        ctx = RunContext(
            loaded=loaded,
            run_id=job.run_id,
            inputs=dict(job.inputs),
            masker=masker,
            emit=ev.Emitter([collector]),
            process_limiter=trio.CapacityLimiter(job.max_processes),
            base_env=dict(job.base_env),
            workdir=Path(job.workdir),
            tmpdir=Path(tmp),
            grace=job.grace,
            max_workers=job.max_workers,
            serial=job.serial,
        )
        scope = Scope(ctx, variables=dict(job.variables))
        for step_id, view in job.records.items():
            scope.records[step_id] = StepRecord.from_json(view)
        stop_scope = trio.CancelScope()
        policy = FailurePolicy(step.on_item_failure, job.limit, stop_scope)
        pending = iter(chunk)
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for index, item in pending:
                if policy.stopping:
                    return
                iteration = IterationRecord(index, item)
                await run_iteration(ctx, step, scope, job.path, iteration, dict(job.env))
                if iteration.status == FAILED:
                    failures += 1  # failures in this chunk: never more than in the loop
                    policy.failures_now(failures)

        async def watch() -> None:
            if await trio.to_thread.run_sync(flags.wait, abandon_on_cancel=True):
                policy.stopping = True
                if step.on_item_failure == "stop" or await trio.to_thread.run_sync(
                    flags.cancelling, abandon_on_cancel=True
                ):
                    stop_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            with stop_scope:
                async with trio.open_nursery() as workers:
                    for _ in range(min(job.parallelism, len(chunk))):
                        workers.start_soon(worker)
            nursery.cancel_scope.cancel()
    return collector.events
