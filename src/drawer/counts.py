"""Counts in a drawer file (how many at once, how many tries) and the one rule each obeys.

A count is an integer from a minimum up, or for some fields a word (`all`, `auto`), or for
the scheduling fields a `${...}` reference resolved when the step (or the run) starts. One
`Count` holds a field's rule: the model checks the literal with it (so `validate` points at
the line), the JSON Schema is written from it, and the step kinds and the engine resolve a
reference's value with it at run time (`EXPR_ERROR` when out of range). A boolean is never
a count, although Python and pydantic's lax mode take `true` for 1. A reference may also
give the count as text (`"4"`: environment variables and string inputs are text) or as a
whole float (`2.0`: a `type: number` input, or arithmetic).

`execution.parallel`, the one scheduling switch, follows the same pattern in `Switch`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from drawer.refs import Lookup, RefError, interpolate

REFERENCE_PATTERN = r"^\s*\$\{[\s\S]*\}\s*$"
"""`is_reference` as a JSON Schema pattern."""
PERCENT_PATTERN = r"^\s*0*(?:100(?:\.0+)?|\d{1,2}(?:\.\d+)?)%\s*$"
"""A percentage of at most 100 (`tolerate`)."""
_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def is_reference(text: str) -> bool:
    """True when a scheduling value is given as a ${...} reference to resolve at run time."""
    stripped = text.strip()
    return stripped.startswith("${") and stripped.endswith("}")


def shown(value: Any) -> str:
    """A value as a message shows it: text quoted, anything else as JSON (`true`, `null`)."""
    if isinstance(value, str):
        return f'"{value}"'
    return json.dumps(value, default=str, ensure_ascii=False)


def _resolved(value: Any, lookup: Lookup) -> Any:
    if isinstance(value, str) and is_reference(value):
        return interpolate(value, lookup)
    return value


class _Rule(ABC):
    """A pydantic annotation: `Annotated[int | str, RULE]` validates with `RULE.check` (one
    clear message, no lax coercion) and documents the field with `RULE.json_schema()`."""

    @abstractmethod
    def check(self, value: Any) -> Any:
        """The value as written when the field accepts it; ValueError otherwise."""

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """The field's JSON Schema."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return self.json_schema()


@dataclass(frozen=True)
class Count(_Rule):
    """What one count field accepts, and what its value means once resolved."""

    name: str
    minimum: int
    word: str | None = None
    """`all` (as many as there are) or `auto` (the CPU count), where the field takes one."""
    reference: bool = True
    description: str = ""

    def _choices(self, reference: bool) -> str:
        choices = [f"an integer >= {self.minimum}"]
        if self.word is not None:
            choices.append(f'"{self.word}"')
        if reference:
            choices.append("a ${...} reference")
        return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]

    def _count(self, value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= self.minimum:
            return value
        return None

    def check(self, value: Any) -> int | str:
        """The value as written when this field accepts it; ValueError otherwise."""
        count = self._count(value)
        if count is not None:
            return count
        if isinstance(value, str) and (
            value == self.word or (self.reference and is_reference(value))
        ):
            return value
        raise ValueError(f"{self.name} must be {self._choices(self.reference)}, got {shown(value)}")

    def resolve(self, value: int | str, lookup: Lookup, word: int = 0) -> int:
        """The count to use when the step starts: a reference resolved, the word as `word`.

        Raises RefError (EXPR_ERROR) when the reference gives anything but a count in range.
        """
        resolved = _resolved(value, lookup)
        number = resolved
        if isinstance(resolved, str):
            text = resolved.strip()
            if text == self.word:
                return word
            if _INTEGER_TEXT.fullmatch(text):
                number = int(text)
        elif isinstance(resolved, float) and resolved.is_integer():
            number = int(resolved)  # a `type: number` input, or arithmetic: 2.0 is 2
        count = self._count(number)
        if count is not None:
            return count
        source = f" (from {value})" if isinstance(value, str) and value != resolved else ""
        raise RefError(
            f"{self.name} must be {self._choices(False)}, got {shown(resolved)}{source}",
            code="EXPR_ERROR",
        )

    def at_once(self, value: int | str, lookup: Lookup, total: int) -> int:
        """How many run at once (`parallelism`, `max_parallelism`): `all` is `total`, and
        0 and 1 are serial."""
        return max(self.resolve(value, lookup, total), 1)

    def json_schema(self) -> dict[str, Any]:
        shapes: list[dict[str, Any]] = [{"type": "integer", "minimum": self.minimum}]
        patterns = [f"^{self.word}$"] if self.word is not None else []
        if self.reference:
            patterns.append(REFERENCE_PATTERN)
        if patterns:
            shapes.append({"type": "string", "pattern": "|".join(patterns)})
        schema = shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
        return {**schema, "description": self.description}


@dataclass(frozen=True)
class Tolerance(_Rule):
    """`tolerate`: how many failures still end ok, a count or a percentage of the total."""

    def check(self, value: Any) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value):
            return value
        raise ValueError(
            f'tolerate must be a count >= 0 or a percentage like "10%", got {shown(value)}'
        )

    def json_schema(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": PERCENT_PATTERN},
            ],
            "description": 'failures that still end ok: a count or a percentage like "10%"',
        }


@dataclass(frozen=True)
class Switch(_Rule):
    """A yes/no scheduling field: a boolean, or a reference that gives one when the run starts.

    Text is no boolean (`no`, `off`, `'0'` are not false); a reference may give the text
    `true` or `false`, as `when` allows, since environment variables are text.
    """

    name: str
    description: str = ""

    def check(self, value: Any) -> bool | str:
        if isinstance(value, bool) or (isinstance(value, str) and is_reference(value)):
            return value
        raise ValueError(
            f"{self.name} must be true, false or a ${{...}} reference, got {shown(value)}"
        )

    def resolve(self, value: bool | str, lookup: Lookup) -> bool:
        resolved = _resolved(value, lookup)
        answer = as_boolean(resolved)
        if answer is not None:
            return answer
        source = f" (from {value})" if isinstance(value, str) else ""
        raise RefError(
            f"{self.name} must be true or false, got {shown(resolved)}{source}", code="EXPR_ERROR"
        )

    def json_schema(self) -> dict[str, Any]:
        return {
            "anyOf": [{"type": "boolean"}, {"type": "string", "pattern": REFERENCE_PATTERN}],
            "description": self.description,
        }


def as_boolean(value: Any) -> bool | None:
    """A resolved yes/no value (`execution.parallel`, `when`, `until`): a boolean, or the text
    `true`/`false` in any case (environment variables are text); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def cpu_count() -> int:
    """What `auto` means for max_workers and max_processes: the CPUs this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


PARALLELISM = Count(
    "parallelism", 0, "all",
    description='iterations at once: a count (0 and 1 are serial), "all", or a ${...} reference',
)  # fmt: skip
MAX_PARALLELISM = Count(
    "max_parallelism", 0, "all",
    description='branches at once: a count (0 and 1 are serial), "all" (the default), '
    "or a ${...} reference",
)  # fmt: skip
MAX_ITERATIONS = Count(
    "max_iterations", 1, description="at most this many tries: a count >= 1 or a ${...} reference"
)
MAX_WORKERS = Count(
    "max_workers", 1, "auto",
    description='sibling steps at once: a count >= 1, "auto" (the CPU count), or a ${...} '
    "reference; none: no limit",
)  # fmt: skip
MAX_PROCESSES = Count(
    "max_processes", 1, "auto",
    description='commands at once in the whole run: a count >= 1, "auto" (the CPU count), or '
    "a ${...} reference; none: max(16, 4 x CPUs)",
)  # fmt: skip
ATTEMPTS = Count(
    "attempts", 1, reference=False, description="tries in all, the first included (1: no retry)"
)
CHUNK_SIZE = Count("chunk_size", 1, reference=False, description="items per Dask task")
TOLERATE = Tolerance()
PARALLEL = Switch(
    "parallel",
    description="false: one step at a time (debugging); a boolean or a ${...} reference",
)
