"""What happens during a run, as plain records that listeners (display, store, GitHub) hear."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drawer.records import ErrorInfo, IterationRecord, StepRecord


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class StepStarted:
    path: str
    kind: str
    clock: float


@dataclass(frozen=True, slots=True)
class StepRetrying:
    path: str
    attempt: int
    delay: float
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class StepFinished:
    path: str
    kind: str
    record: StepRecord
    clock: float
    reused: tuple[str, str] | None = None
    """(run id, step path) of the record a resumed run reused instead of running the step."""


@dataclass(frozen=True, slots=True)
class LoopStarted:
    path: str
    total: int
    parallelism: int
    unit: str = "items"


@dataclass(frozen=True, slots=True)
class IterationStarted:
    loop_path: str
    index: int
    clock: float
    path: str = ""
    """The iteration's own step path (`lint[3]`, `tries#2`, `block.b1`)."""


@dataclass(frozen=True, slots=True)
class IterationFinished:
    loop_path: str
    index: int
    status: str
    clock: float
    path: str = ""
    record: IterationRecord | None = None
    """The iteration's record (a loop or repeat iteration; a branch has none)."""
    keyed: bool = False
    """True for a for_each iteration: its item is its identity across runs (SPEC 3.5)."""


@dataclass(frozen=True, slots=True)
class CommandStarted:
    """Emitted while the command holds its process-budget slot."""

    path: str
    pid: int
    clock: float


@dataclass(frozen=True, slots=True)
class CommandFinished:
    """Emitted before the command's process-budget slot is released."""

    path: str
    exit_code: int | None
    clock: float


@dataclass(frozen=True, slots=True)
class OutputLine:
    path: str
    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    document: dict[str, Any]


Event = (
    RunStarted | StepStarted | StepRetrying | StepFinished | LoopStarted | IterationStarted
    | IterationFinished | CommandStarted | CommandFinished | OutputLine | RunFinished
)  # fmt: skip
Listener = Callable[[Event], None]


class Emitter:
    """Fans each event out to every listener, in the order they were added."""

    def __init__(self, listeners: list[Listener] | None = None) -> None:
        self.listeners: list[Listener] = list(listeners or [])

    def __call__(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)


class EventLog:
    """A listener that keeps every event (tests assert order and overlap from it)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def max_concurrent_commands(self) -> int:
        running = peak = 0
        for event in self.events:
            if isinstance(event, CommandStarted):
                running += 1
                peak = max(peak, running)
            elif isinstance(event, CommandFinished):
                running -= 1
        return peak
