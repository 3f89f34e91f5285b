"""Sharding a loop across machines (SPEC 6): `plan`, `run --shard I/N` and `merge`.

An item belongs to shard `int(sha256(canonical JSON)[:16], 16) % N + 1`: the same on every
machine and Python version, whatever the order of the items. Equal items share a shard
(their occurrence numbers are counted within it), so a shard's identities are the same as
in an unsharded run. Steps that depend on the sharded loop run after the merge, not in a
shard: a shard records them `skipped` with SHARD_DEFERRED.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drawer.graph import dependencies
from drawer.loader import LoadedDrawer
from drawer.model import Drawer, ForEachStep, child_lists
from drawer.records import (
    CANCELLED,
    FAILED,
    OK,
    SKIPPED,
    document_problem,
    fields_problem,
)
from drawer.steps.policy import tolerance

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(Exception):
    """A usage problem with sharding (exit 2); `code` is SHARD_MISSING for missing parts."""

    def __init__(self, message: str, code: str = "INVALID_DRAWER") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Shard:
    """This run's shard of its sharded loop."""

    index: int
    count: int
    loop: str
    deferred: frozenset[str] = frozenset()
    total: int | None = None
    """How many items the whole loop has (known once the loop has resolved `over`)."""
    selected: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, item: Any) -> bool:
        return shard_of(item, self.count) == self.index

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "loop": self.loop, "total": self.total}


def shard_of(item: Any, count: int) -> int:
    """The shard (from 1) an item belongs to among `count`."""
    from drawer.store import item_hash

    return int(item_hash(item)[:16], 16) % count + 1


def parse_shard(text: str) -> tuple[int, int]:
    match = _SHARD.match(text)
    if not match:
        raise ShardError("it takes I/N, like 2/5")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ShardError("I must be between 1 and N (shards count from 1)")
    return index, count


def sharded_loop(model: Drawer) -> ForEachStep:
    """The loop marked `shard: true`, else the only top-level for_each."""
    marked = [step for step in _all_steps(model.steps) if getattr(step, "shard", False)]
    top = {step.id for step in model.steps}
    if len(marked) > 1:
        names = ", ".join(step.id for step in marked)
        raise ShardError(f"only one for_each may be marked shard: true; these are: {names}")
    if marked:
        if marked[0].id not in top:
            raise ShardError(
                f"the loop {marked[0].id} is marked shard: true but is not a top-level step;"
                " only a top-level for_each can be sharded"
            )
        loop = marked[0]
        assert isinstance(loop, ForEachStep)
        return loop
    loops = [step for step in model.steps if isinstance(step, ForEachStep)]
    if len(loops) == 1:
        return loops[0]
    if not loops:
        raise ShardError("there is no top-level for_each to shard")
    names = ", ".join(step.id for step in loops)
    raise ShardError(f"several top-level loops ({names}): mark the one to shard with shard: true")


def _all_steps(steps: Sequence[Any]) -> list[Any]:
    found = []
    for step in steps:
        found.append(step)
        for nested in child_lists(step, step.id):
            found.extend(_all_steps(nested.steps))
    return found


def deferred_steps(model: Drawer, loop: str) -> frozenset[str]:
    """The top-level steps that depend on the loop, directly or through others."""
    deps = dependencies(model.steps)
    deferred: set[str] = set()
    changed = True
    while changed:
        changed = False
        for step in model.steps:
            if step.id not in deferred and any(
                dep == loop or dep in deferred for dep in deps[step.id]
            ):
                deferred.add(step.id)
                changed = True
    return frozenset(deferred)


def make_shard(model: Drawer, text: str) -> Shard:
    index, count = parse_shard(text)
    loop = sharded_loop(model)
    return Shard(index, count, loop.id, deferred_steps(model, loop.id))


def plan(model: Drawer, shards: int) -> dict[str, Any]:
    if shards < 1:
        raise ShardError("--shards must be at least 1")
    loop = sharded_loop(model)
    return {
        "loop": loop.id,
        "shards": shards,
        "deferred": sorted(deferred_steps(model, loop.id)),
        "shard": [f"{index}/{shards}" for index in range(1, shards + 1)],
    }


# merging ---------------------------------------------------------------------------------------


_SHARD_FIELDS = {"index": "count", "count": "count", "loop": "text", "total": "count?"}
_ITERATION_FIELDS = {"index": "count", "status": "text", "error": "error?"}


def _part_problem(part: Any) -> str | None:
    """Where a part is not a shard's run document as drawer writes it, or None."""
    problem = document_problem(part)
    if problem is not None:
        return problem
    problem = fields_problem(part, "", {"ended_at": "time", "shard": "object"})
    problem = problem or fields_problem(part["shard"], "shard", _SHARD_FIELDS)
    if problem is not None:
        return problem
    if not 1 <= part["shard"]["index"] <= part["shard"]["count"]:
        return "shard.index is not between 1 and shard.count"
    loop_id = part["shard"]["loop"]
    output = (part["steps"].get(loop_id) or {}).get("output")
    if output is None:
        return None
    results = output.get("results") if isinstance(output, dict) else None
    if not isinstance(output, dict) or not isinstance(results, list | None):
        return f"steps.{loop_id}.output is not a for_each output"
    for number, entry in enumerate(results or []):
        where = f"steps.{loop_id}.output.results[{number}]"
        if not isinstance(entry, dict):
            return f"{where} is not an iteration record"
        problem = fields_problem(entry, where, _ITERATION_FIELDS)
        if problem is not None:
            return problem
    return None


def check_parts(parts: Sequence[Any], names: Sequence[str]) -> tuple[str, int]:
    """The loop and shard count all parts agree on; SHARD_MISSING names what is missing or
    given twice. A part that is not a shard's run document is refused first, by name."""
    infos = []
    for part, name in zip(parts, names, strict=True):
        if not isinstance(part, dict) or not isinstance(part.get("shard"), dict):
            raise ShardError(f"{name} is not the run document of a shard (run --shard I/N)")
        problem = _part_problem(part)
        if problem is not None:
            raise ShardError(f"{name} is not a shard's run document as drawer wrote it: {problem}")
        infos.append((part["shard"], name))
    counts = {info["count"] for info, _ in infos}
    loops = {info["loop"] for info, _ in infos}
    drawers = {part.get("name") for part in parts}
    if len(counts) > 1 or len(loops) > 1 or len(drawers) > 1:
        raise ShardError("the parts come from different plans (drawer, loop or shard count differ)")
    count = counts.pop()
    seen: dict[int, str] = {}
    problems = []
    for info, name in infos:
        if info["index"] in seen:
            problems.append(
                f"shard {info['index']}/{count} is given twice ({seen[info['index']]}, {name})"
            )
        seen[info["index"]] = name
    missing = [f"{index}/{count}" for index in range(1, count + 1) if index not in seen]
    if missing:
        problems.append(f"missing shard(s) {', '.join(missing)}")
    if problems:
        raise ShardError("; ".join(problems), "SHARD_MISSING")
    return loops.pop(), count


def merge(
    parts: Sequence[dict[str, Any]], names: Sequence[str], loaded: LoadedDrawer
) -> dict[str, Any]:
    """One run document from the shards' documents, as an unsharded run would give it."""
    loop_id, _ = check_parts(parts, names)
    ordered = sorted(parts, key=lambda part: part["shard"]["index"])
    first = ordered[0]
    loop = next(step for step in loaded.model.steps if step.id == loop_id)
    assert isinstance(loop, ForEachStep)
    records = [part["steps"].get(loop_id) or {} for part in ordered]
    results: list[dict[str, Any]] = []
    for record in records:
        part_output = record.get("output") or {}
        entries = part_output.get("results") or []
        results.extend(entry for entry in entries if isinstance(entry, dict))
    results.sort(key=lambda entry: entry["index"])
    totals = {part["shard"].get("total") for part in ordered}
    total = totals.pop() if len(totals) == 1 and None not in totals else len(results)
    counts = {OK: 0, FAILED: 0, CANCELLED: 0, SKIPPED: 0}
    for entry in results:
        if entry.get("status") in counts:
            counts[entry["status"]] += 1
    try:
        limit = tolerance(loop.tolerate, total)
    except (ValueError, AttributeError):
        limit = 0
    output: dict[str, Any] = {
        "total": total,
        "succeeded": counts[OK],
        "failed": counts[FAILED],
        "cancelled": counts[CANCELLED],
        "skipped": counts[SKIPPED],
    }
    if loop.collect == "all":
        output["results"] = results
    error = None
    status = OK
    if counts[FAILED] > limit:
        status = FAILED
        error = _loop_error(loop_id, total, counts[FAILED], limit, results)
    elif counts[CANCELLED] and any(record.get("status") == CANCELLED for record in records):
        status = CANCELLED
    started: list[str] = [record["started_at"] for record in records if record.get("started_at")]
    ended: list[str] = [record["ended_at"] for record in records if record.get("ended_at")]
    merged_loop = {
        "status": status,
        "attempts": max((record.get("attempts") or 0) for record in records),
        "started_at": min(started) if started else None,
        "ended_at": max(ended) if ended else None,
        "duration": _span(min(started), max(ended)) if started and ended else None,
        "output": output,
        "error": error,
    }
    steps = dict(first["steps"])
    steps[loop_id] = merged_loop
    run_status, run_error = _run_status(loaded, steps, ordered)
    document = {
        "run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
        "drawer": first.get("drawer"),
        "name": first.get("name"),
        "resumed_from": None,
        "merged_from": [part["run_id"] for part in ordered],
        "status": run_status,
        "started_at": min(part["started_at"] for part in ordered),
        "ended_at": max(part["ended_at"] for part in ordered),
        "duration": _span(
            min(part["started_at"] for part in ordered), max(part["ended_at"] for part in ordered)
        ),
        "inputs": first.get("inputs", {}),
        "outputs": {},
        "steps": steps,
        "error": run_error,
        "edits": first.get("edits", []),
        "definitions": first.get("definitions", {}),
    }
    document["outputs"] = _outputs(loaded, document, ordered)
    return document


def _span(start: str, end: str) -> float:
    from drawer.records import from_rfc3339

    begin, finish = from_rfc3339(start), from_rfc3339(end)
    if begin is None or finish is None:
        return 0.0
    return round(finish - begin, 3)


def _loop_error(
    loop_id: str, total: int, failed: int, limit: int, results: list[dict[str, Any]]
) -> dict[str, Any]:
    allowed = f" (tolerate {limit})" if limit else ""
    message = f"{failed} of {total} iterations failed{allowed}"
    first = next((entry for entry in results if entry.get("status") == FAILED), None)
    cause = None
    if first is not None:
        cause = first.get("error") or {
            "code": "STEP_FAILED",
            "message": f"{loop_id}[{first['index']}] failed",
            "step_path": f"{loop_id}[{first['index']}]",
            "cause": None,
        }
        message += f"; first: {cause['message']}"
    return {"code": "FOREACH_ITEM_FAILED", "message": message, "step_path": loop_id, "cause": cause}


def _run_status(
    loaded: LoadedDrawer, steps: dict[str, Any], parts: Sequence[dict[str, Any]]
) -> tuple[str, dict[str, Any] | None]:
    if any(part.get("status") == CANCELLED for part in parts):
        cancelled = next(part for part in parts if part.get("status") == CANCELLED)
        return CANCELLED, cancelled.get("error")
    for step in loaded.model.steps:
        record = steps.get(step.id) or {}
        if record.get("status") == FAILED and step.on_failure == "stop":
            return FAILED, record.get("error")
    return OK, None


def _outputs(
    loaded: LoadedDrawer, document: dict[str, Any], parts: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The drawer's `outputs:` resolved against the merged records."""
    import trio

    from drawer.context import Masker, RunContext, Scope
    from drawer.engine import resolve_outputs
    from drawer.events import Emitter
    from drawer.records import StepRecord

    warnings: list[str] = []
    ctx = RunContext(
        loaded=loaded,
        run_id=document["run_id"],
        inputs=dict(document.get("inputs") or {}),
        masker=Masker([]),
        emit=Emitter([lambda event: warnings.append(getattr(event, "text", ""))]),
        process_limiter=trio.CapacityLimiter(1),
        base_env={},
        workdir=loaded.path.parent,
        tmpdir=loaded.path.parent,
    )
    scope = Scope(ctx)
    for step_id, record in document["steps"].items():
        scope.records[step_id] = StepRecord.from_json(record)
    return resolve_outputs(ctx, scope)
