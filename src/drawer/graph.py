"""Step lists as DAGs: dependencies (explicit or implied by file order), cycles, ancestry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class HasDependencies(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> tuple[str, ...] | None: ...


def dependencies(steps: Sequence[HasDependencies]) -> dict[str, tuple[str, ...]]:
    """Each step's direct dependencies: `depends_on`, or else the step above it."""
    deps: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for step in steps:
        if step.depends_on is not None:
            deps[step.id] = tuple(step.depends_on)
        else:
            deps[step.id] = (previous,) if previous is not None else ()
        previous = step.id
    return deps


def is_chain(steps: Sequence[HasDependencies]) -> bool:
    """True when the list runs strictly in file order (no step declares depends_on)."""
    return all(step.depends_on is None for step in steps)


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as `[a, b, a]`, or None; unknown ids are ignored."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, ()):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def ancestors(deps: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Every step that must have finished before `node` starts (transitively)."""
    seen: set[str] = set()
    todo = list(deps.get(node, ()))
    while todo:
        current = todo.pop()
        if current in seen or current not in deps:
            continue
        seen.add(current)
        todo.extend(deps[current])
    return seen
