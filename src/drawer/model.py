"""The drawer file format as pydantic models (frozen, unknown keys forbidden)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

STEP_KINDS = ("run", "for_each", "value")
LATER_KINDS = ("parallel", "repeat", "switch", "drawer", "wait")
RESERVED_IDS = frozenset({"inputs", "env", "steps", "run", "drawer"})
CEL_RESERVED = frozenset(
    {
        "in", "if", "null", "true", "false", "as", "break", "const", "continue", "else", "for",
        "function", "import", "let", "loop", "package", "namespace", "return", "var", "void",
        "while",
    }
)  # fmt: skip


def is_reference(text: str) -> bool:
    """True when a scheduling value is given as a ${...} reference to resolve at run time."""
    stripped = text.strip()
    return stripped.startswith("${") and stripped.endswith("}")


def parse_duration(value: float | int | str) -> float:
    """Seconds in a duration: a number of seconds or `500ms`, `30s`, `5m`, `1h`."""
    if isinstance(value, bool):
        raise ValueError(f"a duration must be a number of seconds or text like 30s, got {value}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    match = DURATION_RE.match(value)
    if not match:
        raise ValueError(f'a duration is a number of seconds or 500ms, 30s, 5m, 1h; got "{value}"')
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _check_duration(value: float | str | None) -> float | str | None:
    if value is None or (isinstance(value, str) and is_reference(value)):
        return value
    parse_duration(value)
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


DurationValue = Annotated[float | str, Field(union_mode="left_to_right")]


class RetryPolicy(Model):
    attempts: int = Field(default=1, ge=1)
    delay: DurationValue = 0.0
    backoff: float = Field(default=2.0, ge=1.0)
    max_delay: DurationValue | None = None
    jitter: bool = False
    on: tuple[str, ...] = ("STEP_FAILED", "TIMEOUT")

    _durations = field_validator("delay", "max_delay")(_check_duration)


class InputSpec(Model):
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    default: Any = None
    required: bool = False
    enum: tuple[Any, ...] | None = None
    description: str | None = None
    secret: bool = False


class Defaults(Model):
    timeout: DurationValue | None = None
    retry: RetryPolicy | None = None
    shell: Literal["bash", "sh", "python"] | None = None

    _durations = field_validator("timeout")(_check_duration)


class Execution(Model):
    max_workers: int | str | None = None
    max_processes: int | str | None = None
    parallel: bool | str = True
    timeout: DurationValue | None = None

    _durations = field_validator("timeout")(_check_duration)


EnvValue = str | int | float | bool


class StepBase(Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    depends_on: tuple[str, ...] | None = None
    when: bool | str | None = None
    timeout: DurationValue | None = None
    retry: RetryPolicy | None = None
    on_failure: Literal["stop", "continue"] = "stop"
    env: dict[str, EnvValue] = Field(default_factory=dict)

    _durations = field_validator("timeout")(_check_duration)


class RunStep(StepBase):
    kind: Literal["run"] = "run"
    run: str | tuple[str | int | float, ...]
    shell: Literal["bash", "sh", "python"] | None = None
    cwd: str | None = None
    stdin: str | None = None


class GlobSource(Model):
    glob: str


class FileSource(Model):
    file: str
    format: Literal["lines", "jsonl", "json"] = "lines"


class RangeSource(Model):
    range: tuple[int] | tuple[int, int] | tuple[int, int, int]


def _over_shape(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("glob", "file", "range"):
            if key in value:
                return f"<{key}>"
        return "<source>"
    if isinstance(value, str):
        return "<reference>"
    if isinstance(value, GlobSource | FileSource | RangeSource):
        return f"<{type(value).__name__[:-6].lower()}>"
    return "<list>"


OverValue = Annotated[
    Annotated[tuple[Any, ...], Tag("<list>")]
    | Annotated[str, Tag("<reference>")]
    | Annotated[GlobSource, Tag("<glob>")]
    | Annotated[FileSource, Tag("<file>")]
    | Annotated[RangeSource, Tag("<range>")],
    Discriminator(_over_shape),
]


class ForEachStep(StepBase):
    kind: Literal["for_each"]
    over: OverValue
    as_: str = Field(default="item", alias="as", pattern=NAME_PATTERN)
    index_as: str = Field(default="index", pattern=NAME_PATTERN)
    parallelism: int | str = 1
    steps: tuple[Step, ...]
    on_item_failure: Literal["stop", "finish", "continue"] = "stop"
    tolerate: int | str = 0
    delay: DurationValue | None = None
    collect: Literal["all", "none"] = "all"
    shard: bool = False

    _durations = field_validator("delay")(_check_duration)

    @field_validator("parallelism")
    @classmethod
    def _check_parallelism(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"parallelism must be an integer >= 0, got {value}")
        elif value != "all" and not is_reference(value):
            raise ValueError(f'parallelism must be an integer >= 0 or "all", got "{value}"')
        return value

    @field_validator("tolerate")
    @classmethod
    def _check_tolerate(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"tolerate must be a count >= 0, got {value}")
        elif not re.fullmatch(r"\d+(\.\d+)?%", value.strip()) or float(value.strip()[:-1]) > 100:
            raise ValueError(f'tolerate must be a count or a percentage like "10%", got "{value}"')
        return value


class ValueStep(StepBase):
    kind: Literal["value"]
    value: Any


def _step_kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "run")
        return f"<{kind}>" if kind in STEP_KINDS else "<unknown>"
    if isinstance(value, StepBase):
        return f"<{value.kind}>"  # type: ignore[attr-defined]
    return "<unknown>"


Step = Annotated[
    Annotated[RunStep, Tag("<run>")]
    | Annotated[ForEachStep, Tag("<for_each>")]
    | Annotated[ValueStep, Tag("<value>")],
    Discriminator(_step_kind),
]

ForEachStep.model_rebuild()


class Drawer(Model):
    schema_: str | None = Field(default=None, alias="$schema")
    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    execution: Execution = Field(default_factory=Execution)
    steps: tuple[Step, ...]
    outputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs")
    @classmethod
    def _check_input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        for name in value:
            if not re.match(ID_PATTERN, name):
                raise ValueError(f'input name "{name}" must match [A-Za-z_][A-Za-z0-9_-]*')
        return value


AnyStep = RunStep | ForEachStep | ValueStep


def body_of(step: AnyStep) -> tuple[AnyStep, ...]:
    """The nested step list of a container step (empty for leaf kinds)."""
    if isinstance(step, ForEachStep):
        return step.steps
    return ()
