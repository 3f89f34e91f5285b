"""The drawer file format as pydantic models (frozen, unknown keys forbidden)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

STEP_KINDS = ("run", "for_each", "parallel", "repeat", "switch", "drawer", "value", "wait")
RESERVED_IDS = frozenset({"inputs", "env", "steps", "run", "drawer"})
CEL_RESERVED = frozenset(
    {
        "in", "if", "null", "true", "false", "as", "break", "const", "continue", "else", "for",
        "function", "import", "let", "loop", "package", "namespace", "return", "var", "void",
        "while",
    }
)  # fmt: skip


_ITERATION_MARK = re.compile(r"\[\d+\]|#\d+")


def definition_path(path: str) -> str:
    """A step path without its iteration numbers: `lint[3].ruff` -> `lint.ruff`, the path
    of the step's definition in the file."""
    return _ITERATION_MARK.sub("", path) if ("[" in path or "#" in path) else path


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


def _check_count_or_all(name: str, value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value}")
    elif value != "all" and not is_reference(value):
        raise ValueError(f'{name} must be an integer >= 0 or "all", got "{value}"')
    return value


def _check_tolerate(value: int | str) -> int | str:
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"tolerate must be a count >= 0, got {value}")
    elif not re.fullmatch(r"\d+(\.\d+)?%", value.strip()) or float(value.strip()[:-1]) > 100:
        raise ValueError(f'tolerate must be a count or a percentage like "10%", got "{value}"')
    return value


class DaskOptions(Model):
    """Where a `for_each` with `executor: dask` sends its items, and how many per task."""

    address: str | None = None
    """A scheduler address (`tcp://host:8786`); none starts a LocalCluster for the run."""
    chunk_size: int = Field(default=100, ge=1)


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
    executor: Literal["local", "dask"] = "local"
    dask: DaskOptions | None = None

    _durations = field_validator("delay")(_check_duration)

    @field_validator("parallelism")
    @classmethod
    def _check_parallelism(cls, value: int | str) -> int | str:
        return _check_count_or_all("parallelism", value)

    _tolerate = field_validator("tolerate")(_check_tolerate)


class BranchGroup(Model):
    """A parallel branch that runs several steps as a list: exactly `id` and `steps`."""

    id: str = Field(pattern=ID_PATTERN)
    steps: tuple[Step, ...]


def _branch_shape(value: Any) -> str:
    if isinstance(value, dict):
        return "<group>" if "steps" in value and "kind" not in value else _step_kind(value)
    if isinstance(value, BranchGroup):
        return "<group>"
    return _step_kind(value)


class ParallelStep(StepBase):
    kind: Literal["parallel"]
    branches: tuple[Branch, ...] = Field(min_length=1)
    max_parallelism: int | str = "all"
    delay: DurationValue | None = None
    on_branch_failure: Literal["stop", "finish", "continue"] = "stop"
    tolerate: int | str = 0

    _durations = field_validator("delay")(_check_duration)
    _tolerate = field_validator("tolerate")(_check_tolerate)

    @field_validator("max_parallelism")
    @classmethod
    def _check_max_parallelism(cls, value: int | str) -> int | str:
        return _check_count_or_all("max_parallelism", value)


class RepeatStep(StepBase):
    kind: Literal["repeat"]
    steps: tuple[Step, ...]
    until: bool | str
    max_iterations: int | str
    delay: DurationValue | None = None
    index_as: str = Field(default="index", pattern=NAME_PATTERN)
    parallelism: int | str = 1
    on_item_failure: Literal["continue", "stop"] = "continue"
    on_exhausted: Literal["fail", "ok"] = "fail"

    _durations = field_validator("delay")(_check_duration)

    @field_validator("parallelism")
    @classmethod
    def _check_parallelism(cls, value: int | str) -> int | str:
        return _check_count_or_all("parallelism", value)

    @field_validator("max_iterations")
    @classmethod
    def _check_max_iterations(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"max_iterations must be an integer >= 1, got {value}")
        if isinstance(value, str) and not is_reference(value):
            raise ValueError(f'max_iterations must be an integer >= 1, got "{value}"')
        return value


class SwitchCase(Model):
    when: bool | str
    steps: tuple[Step, ...]


class SwitchStep(StepBase):
    kind: Literal["switch"]
    cases: tuple[SwitchCase, ...] = ()
    default: tuple[Step, ...] | None = None


class DrawerStep(StepBase):
    kind: Literal["drawer"]
    drawer: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class WaitStep(StepBase):
    kind: Literal["wait"]
    duration: DurationValue | None = None
    until: str | None = None

    _durations = field_validator("duration")(_check_duration)

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait step takes exactly one of duration: or until:")
        if self.until is not None and not is_reference(self.until):
            try:
                datetime.fromisoformat(self.until.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f'until must be an RFC 3339 time like 2026-01-31T12:00:00Z, got "{self.until}"'
                ) from None
        return self


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
    | Annotated[ParallelStep, Tag("<parallel>")]
    | Annotated[RepeatStep, Tag("<repeat>")]
    | Annotated[SwitchStep, Tag("<switch>")]
    | Annotated[DrawerStep, Tag("<drawer>")]
    | Annotated[ValueStep, Tag("<value>")]
    | Annotated[WaitStep, Tag("<wait>")],
    Discriminator(_step_kind),
]

Branch = Annotated[
    Annotated[BranchGroup, Tag("<group>")]
    | Annotated[RunStep, Tag("<run>")]
    | Annotated[ForEachStep, Tag("<for_each>")]
    | Annotated[ParallelStep, Tag("<parallel>")]
    | Annotated[RepeatStep, Tag("<repeat>")]
    | Annotated[SwitchStep, Tag("<switch>")]
    | Annotated[DrawerStep, Tag("<drawer>")]
    | Annotated[ValueStep, Tag("<value>")]
    | Annotated[WaitStep, Tag("<wait>")],
    Discriminator(_branch_shape),
]

for _model in (ForEachStep, BranchGroup, ParallelStep, RepeatStep, SwitchCase, SwitchStep):
    _model.model_rebuild()


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


AnyStep = (
    RunStep | ForEachStep | ParallelStep | RepeatStep | SwitchStep | DrawerStep | ValueStep
    | WaitStep
)  # fmt: skip


@dataclass(frozen=True)
class StepList:
    """A nested list of steps: where it sits in the document and its step-path prefix."""

    steps: tuple[AnyStep, ...]
    keys: tuple[str | int, ...]
    prefix: str
    group: str | None = None
    offset: int = 0

    def step_keys(self, index: int) -> tuple[str | int, ...]:
        """The document path (below the owning step) of the list's index-th step."""
        return (*self.keys, self.offset + index)


def child_lists(step: AnyStep, path: str) -> list[StepList]:
    """Every step list nested directly in a step (loop bodies, branches, cases)."""
    if isinstance(step, ForEachStep | RepeatStep):
        return [StepList(step.steps, ("steps",), path)]
    if isinstance(step, SwitchStep):
        lists = [
            StepList(case.steps, ("cases", index, "steps"), f"{path}.{index}")
            for index, case in enumerate(step.cases)
        ]
        if step.default is not None:
            lists.append(StepList(step.default, ("default",), f"{path}.default"))
        return lists
    if isinstance(step, ParallelStep):
        lists = []
        for index, branch in enumerate(step.branches):
            if isinstance(branch, BranchGroup):
                lists.append(
                    StepList(
                        branch.steps,
                        ("branches", index, "steps"),
                        f"{path}.{branch.id}",
                        group=branch.id,
                    )
                )
            else:
                lists.append(StepList((branch,), ("branches",), path, offset=index))
        return lists
    return []
