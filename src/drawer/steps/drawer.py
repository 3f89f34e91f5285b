"""`drawer` steps: run another drawer file inside this run, sharing its budget and cancellation.

The child gets its own inputs, directory and secrets, and the command environment of the
calling step; it keeps the calling run's process budget, `max_workers` and `parallel`
(its own `execution:` block applies only when it runs on its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from drawer import engine
from drawer.context import Masker, Outcome, RunContext, Scope
from drawer.inputs import (
    InputError,
    ResolvedInputs,
    check_type,
    check_value,
    convert,
    hide_given_secrets,
    shown,
)
from drawer.loader import InvalidDrawer, LoadedDrawer, load_drawer
from drawer.model import DrawerStep, InputSpec
from drawer.records import ErrorInfo
from drawer.refs import RefError, interpolate_deep, to_text
from drawer.steps.run import step_env

TIMEOUT_PER_ATTEMPT = True


def load_child(ctx: RunContext, step: DrawerStep) -> LoadedDrawer:
    """The called file, relative to the calling file, loaded once per run."""
    path = (ctx.loaded.path.parent / step.drawer).resolve()
    child = ctx.subdrawers.get(path)
    if child is None:
        child = ctx.subdrawers[path] = load_drawer(path)
    return child


def _typed(name: str, spec: InputSpec, value: Any) -> Any:
    """A passed value as the input's type; text converts as it does on the command line."""
    if isinstance(value, str) and spec.type != "string":
        return convert(name, spec, value)
    if spec.type == "string" and isinstance(value, int | float):
        return to_text(value)
    try:
        return check_type(name, spec, value)
    except InputError:
        raise InputError(
            f'input "{name}" must be a {spec.type}, got {shown(spec, value)}', name
        ) from None


def _check_inputs(specs: Mapping[str, InputSpec], given: dict[str, Any]) -> ResolvedInputs:
    """Type, check and complete the given values (validation has already checked the names)."""
    values: dict[str, Any] = {}
    secrets: list[str] = []
    for name, spec in specs.items():
        value = given.get(name)
        if value is not None:
            value = _typed(name, spec, value)
        elif spec.default is not None:
            value = check_type(name, spec, spec.default)
        elif spec.required:
            raise InputError(f'missing required input "{name}"', name)
        secret = check_value(name, spec, value)
        if secret is not None:
            secrets.append(secret)
        values[name] = value
    return ResolvedInputs(values, secrets)


def child_inputs(step: DrawerStep, child: LoadedDrawer, scope: Scope) -> ResolvedInputs:
    """The step's `inputs:` resolved in the calling scope, typed and checked against the
    child's declarations, defaults filled; a message never shows a secret value."""
    specs = child.model.inputs
    given: dict[str, Any] = interpolate_deep(step.inputs, scope.lookup)
    try:
        return _check_inputs(specs, given)
    except InputError as error:
        raise hide_given_secrets([error], specs, given)[0] from None


def command_env(ctx: RunContext, step: DrawerStep, scope: Scope) -> dict[str, str]:
    """What a command of the calling step would see: the run's environment, the enclosing
    steps' and this step's `env`, and the loop variables."""
    env = dict(ctx.base_env)
    env.update(step_env(step, scope))
    env.update(scope.loop_env())
    return env


async def execute(
    ctx: RunContext, step: DrawerStep, scope: Scope, path: str, previous: Outcome | None
) -> Outcome:
    """Run the child's steps under this step's path; its outputs are the step's output."""
    try:
        child = load_child(ctx, step)
    except (InvalidDrawer, OSError) as error:
        message = f'sub-drawer "{step.drawer}" cannot be loaded: {error}'
        return Outcome(None, ErrorInfo("INVALID_DRAWER", message, path))
    try:
        inputs = child_inputs(step, child, scope)
        env = command_env(ctx, step, scope)
    except InputError as error:
        message = f'sub-drawer "{step.drawer}": {error}'
        return Outcome(None, ErrorInfo("INPUT_INVALID", message, path))
    except RefError as error:
        return Outcome(None, ErrorInfo(error.code, str(error), path))
    masker = Masker([*ctx.masker.secrets, *inputs.secrets])
    child_ctx = dataclasses.replace(
        ctx,
        loaded=child,
        inputs=inputs.values,
        workdir=child.path.parent,
        base_env=env,
        masker=masker,
    )
    child_scope = Scope(child_ctx)
    try:
        engine.resolve_env(child_ctx, child_scope)
    except RefError as error:
        return Outcome(None, masker.error(ErrorInfo(error.code, str(error), path)))
    result = await engine.run_list(child_ctx, child.model.steps, child_scope, path)
    output = masker.value(engine.resolve_outputs(child_ctx, child_scope))
    if not result.failed:
        return Outcome(output)
    cause = result.error
    reason = f": {cause.message}" if cause is not None else ""
    message = f'sub-drawer "{step.drawer}" failed{reason}'
    return Outcome(output, masker.error(ErrorInfo("SUBDRAWER_FAILED", message, path, cause)))
