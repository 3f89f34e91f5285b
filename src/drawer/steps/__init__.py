"""Step kinds: one module each, all implementing `StepKind`, listed in `KINDS`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from drawer.context import Outcome, RunContext, Scope


class StepKind(Protocol):
    """A step kind: how one attempt of a step of this kind runs."""

    @property
    def TIMEOUT_PER_ATTEMPT(self) -> bool:
        """True when `timeout` bounds each attempt (run) rather than the whole step."""

    async def execute(
        self, ctx: RunContext, step: Any, scope: Scope, path: str, previous: Outcome | None
    ) -> Outcome:
        """Run one attempt; `previous` is the last attempt's outcome (reruns reuse what passed)."""


def _registry() -> dict[str, StepKind]:
    from drawer.steps import for_each, run, value

    return {"run": run, "for_each": for_each, "value": value}


KINDS: dict[str, StepKind] = _registry()
