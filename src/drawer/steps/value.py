"""`value` steps: reshape data between steps without starting a process."""

from __future__ import annotations

from drawer.context import Outcome, RunContext, Scope
from drawer.model import ValueStep
from drawer.records import ErrorInfo
from drawer.refs import RefError, interpolate_deep

TIMEOUT_PER_ATTEMPT = False


async def execute(
    ctx: RunContext, step: ValueStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """The resolved value is the output."""
    try:
        return Outcome(ctx.masker.value(interpolate_deep(step.value, scope.lookup)))
    except RefError as error:
        return Outcome(None, ErrorInfo(error.code, str(error), path))
