"""`switch` steps: run the steps of the first case whose `when` holds, else the default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drawer import engine
from drawer.context import Outcome, RunContext, Scope
from drawer.model import AnyStep, SwitchStep
from drawer.records import ErrorInfo
from drawer.refs import RefError
from drawer.steps.run import step_env

TIMEOUT_PER_ATTEMPT = False


def choose_case(step: SwitchStep, scope: Scope) -> tuple[int | str | None, Sequence[AnyStep]]:
    """The matched case (its index, "default", or None) and the steps it runs."""
    for index, case in enumerate(step.cases):
        if engine.evaluate_condition(case.when, scope):
            return index, case.steps
    if step.default is not None:
        return "default", step.default
    return None, ()


async def execute(
    ctx: RunContext, step: SwitchStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Evaluate the cases in order and run the chosen list; its failure is the switch's."""
    try:
        matched, steps = choose_case(step, scope)
        env = step_env(step, scope)
    except RefError as error:
        return Outcome(None, ErrorInfo(error.code, str(error), path))
    body = scope.child({}, env)
    output: dict[str, Any] = {"matched": matched, "steps": body.records}
    if matched is None:
        return Outcome(output)
    ctx.partial[path] = output
    result = await engine.run_list(ctx, steps, body, f"{path}.{matched}")
    del ctx.partial[path]
    return Outcome(output, result.error if result.failed else None)
