"""The drawer file format as pydantic models (frozen, unknown keys forbidden)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drawer.counts import (
    ATTEMPTS,
    CHUNK_SIZE,
    MAX_ITERATIONS,
    MAX_PARALLELISM,
    MAX_PROCESSES,
    MAX_WORKERS,
    PARALLEL,
    PARALLELISM,
    TOLERATE,
    is_reference,
    shown,
)

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

DASK_INSTALL = 'pip install "drawer[dask]"'
"""What `executor: dask` needs installed (validate and the executor both say it)."""
STEP_KINDS = ("run", "for_each", "parallel", "repeat", "switch", "drawer", "value", "wait")
RESERVED_IDS = frozenset({"inputs", "env", "steps", "run", "drawer"})
CEL_RESERVED = frozenset(
    {
        "in", "if", "null", "true", "false", "as", "break", "const", "continue", "else", "for",
        "function", "import", "let", "loop", "package", "namespace", "return", "var", "void",
        "while",
    }
)  # fmt: skip


def parse_duration(value: float | int | str) -> float:
    """Seconds in a duration: a number of seconds or `500ms`, `30s`, `5m`, `1h`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"a duration must be a number of seconds or text like 30s, got {shown(value)}"
        )
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


# pydantic's lax mode reads `true` as 1 and 1 or "yes" as true; a drawer file means neither.
def _duration_type(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, bool) else value


def _flag(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"{info.field_name} must be true or false, got {shown(value)}")
    return value


def _condition(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, bool | str):
        raise ValueError(
            f"{info.field_name} must be true, false or an expression, got {shown(value)}"
        )
    return value


def _version(value: Any) -> Any:
    if value != 1 or isinstance(value, bool):
        raise ValueError(f"version must be 1, got {shown(value)}")
    return value


DurationValue = Annotated[
    float | str, Field(union_mode="left_to_right"), BeforeValidator(_duration_type)
]
Flag = Annotated[bool, BeforeValidator(_flag)]
Condition = Annotated[bool | str, BeforeValidator(_condition)]


class RetryPolicy(Model):
    attempts: Annotated[int, ATTEMPTS] = 1
    delay: DurationValue = 0.0
    backoff: float = Field(default=2.0, ge=1.0, strict=True)
    max_delay: DurationValue | None = None
    jitter: Flag = False
    on: tuple[str, ...] = ("STEP_FAILED", "TIMEOUT")

    _durations = field_validator("delay", "max_delay")(_check_duration)


class InputSpec(Model):
    type: Literal["string", "integer", "number", "boolean", "array", "object"] = "string"
    default: Any = None
    required: Flag = False
    enum: tuple[Any, ...] | None = None
    description: str | None = None
    secret: Flag = False


class Defaults(Model):
    timeout: DurationValue | None = None
    retry: RetryPolicy | None = None
    shell: Literal["bash", "sh", "python"] | None = None

    _durations = field_validator("timeout")(_check_duration)


class Execution(Model):
    max_workers: Annotated[int | str, MAX_WORKERS] | None = None
    max_processes: Annotated[int | str, MAX_PROCESSES] | None = None
    parallel: Annotated[bool | str, PARALLEL] = True
    timeout: DurationValue | None = None

    _durations = field_validator("timeout")(_check_duration)


EnvValue = str | int | float | bool


class StepBase(Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    depends_on: tuple[str, ...] | None = None
    when: Condition | None = None
    timeout: DurationValue | None = None
    retry: RetryPolicy | None = None
    on_failure: Literal["stop", "continue"] = "stop"
    env: dict[str, EnvValue] = Field(default_factory=dict)

    _durations = field_validator("timeout")(_check_duration)


class RunStep(StepBase):
    kind: Literal["run"] = "run"
    run: str | tuple[str | int | float | bool | None, ...]
    """A shell string, or argv: the loader has made every element the text as written
    (`true`, `1e3`, `~` unquoted), so the schema takes any scalar there, as the loader does."""
    shell: Literal["bash", "sh", "python"] | None = None
    cwd: str | None = None
    stdin: str | None = None


class GlobSource(Model):
    glob: str


class FileSource(Model):
    file: str
    format: Literal["lines", "jsonl", "json"] = "lines"


class RangeSource(Model):
    range: tuple[StrictInt] | tuple[StrictInt, StrictInt] | tuple[StrictInt, StrictInt, StrictInt]


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


class DaskOptions(Model):
    """Where a `for_each` with `executor: dask` sends its items, and how many per task."""

    address: str | None = None
    """A scheduler address (`tcp://host:8786`); none starts a LocalCluster for the run."""
    chunk_size: Annotated[int, CHUNK_SIZE] = 100


class ForEachStep(StepBase):
    kind: Literal["for_each"]
    over: OverValue
    as_: str = Field(default="item", alias="as", pattern=NAME_PATTERN)
    index_as: str = Field(default="index", pattern=NAME_PATTERN)
    parallelism: Annotated[int | str, PARALLELISM] = 1
    steps: tuple[Step, ...]
    on_item_failure: Literal["stop", "finish", "continue"] = "stop"
    tolerate: Annotated[int | str, TOLERATE] = 0
    delay: DurationValue | None = None
    collect: Literal["all", "none"] = "all"
    shard: Flag = False
    executor: Literal["local", "dask"] = "local"
    dask: DaskOptions | None = None

    _durations = field_validator("delay")(_check_duration)


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
    max_parallelism: Annotated[int | str, MAX_PARALLELISM] = "all"
    delay: DurationValue | None = None
    on_branch_failure: Literal["stop", "finish", "continue"] = "stop"
    tolerate: Annotated[int | str, TOLERATE] = 0

    _durations = field_validator("delay")(_check_duration)


class RepeatStep(StepBase):
    kind: Literal["repeat"]
    steps: tuple[Step, ...]
    until: Condition
    max_iterations: Annotated[int | str, MAX_ITERATIONS]
    delay: DurationValue | None = None
    index_as: str = Field(default="index", pattern=NAME_PATTERN)
    parallelism: Annotated[int | str, PARALLELISM] = 1
    on_item_failure: Literal["continue", "stop"] = "continue"
    on_exhausted: Literal["fail", "ok"] = "fail"

    _durations = field_validator("delay")(_check_duration)


class SwitchCase(Model):
    when: Condition
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

STEP_MODELS: dict[str, type[StepBase]] = {
    "run": RunStep, "for_each": ForEachStep, "parallel": ParallelStep, "repeat": RepeatStep,
    "switch": SwitchStep, "drawer": DrawerStep, "value": ValueStep, "wait": WaitStep,
}  # fmt: skip
"""The model of each step kind, in STEP_KINDS order."""


class Drawer(Model):
    schema_: str | None = Field(default=None, alias="$schema")
    version: Annotated[Literal[1], BeforeValidator(_version)] = 1
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
