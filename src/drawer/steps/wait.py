"""`wait` steps: sleep for a duration, or until a wall-clock time."""

from __future__ import annotations

import time
from datetime import datetime

import trio

from drawer import engine
from drawer.context import Outcome, RunContext, Scope
from drawer.model import WaitStep
from drawer.records import ErrorInfo
from drawer.refs import RefError, interpolate

TIMEOUT_PER_ATTEMPT = False


def seconds_until(value: object, now: float) -> float:
    """Seconds from `now` (epoch) to an RFC 3339 time; 0 for a time in the past.

    A time without an offset is local time, as ISO 8601 reads it.
    """
    if not isinstance(value, str):
        raise ValueError(f"until must be an RFC 3339 time, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f'until must be an RFC 3339 time like 2026-01-31T12:00:00Z, got "{value}"'
        ) from None
    return max(moment.timestamp() - now, 0.0)


def wait_seconds(step: WaitStep, scope: Scope) -> float:
    """How long this wait lasts, resolving a `${...}` duration or time when the step starts."""
    if step.until is not None:
        return seconds_until(interpolate(step.until, scope.lookup), time.time())
    return engine.resolve_seconds(step.duration, scope) or 0.0


async def execute(
    ctx: RunContext, step: WaitStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Sleep on trio's clock; the output says how long the step waited."""
    try:
        seconds = wait_seconds(step, scope)
    except (RefError, ValueError) as error:
        return Outcome(None, ErrorInfo(getattr(error, "code", "EXPR_ERROR"), str(error), path))
    started = trio.current_time()
    await trio.sleep(seconds)
    return Outcome({"waited": round(trio.current_time() - started, 3)})
