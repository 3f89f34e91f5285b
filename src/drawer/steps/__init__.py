"""Step kinds: one module each, all implementing `StepKind`, listed in `KINDS`."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from drawer.model import STEP_KINDS

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


class _Registry(Mapping[str, StepKind]):
    """Kind name -> module `drawer.steps.<kind>`, imported on first use (start-up stays light)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.loaded: dict[str, StepKind] = {}

    def __getitem__(self, kind: str) -> StepKind:
        module = self.loaded.get(kind)
        if module is None:
            if kind not in self.names:
                raise KeyError(kind)
            module = importlib.import_module(f"drawer.steps.{kind}")
            self.loaded[kind] = module
        return module

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


KINDS: Mapping[str, StepKind] = _Registry(STEP_KINDS)
