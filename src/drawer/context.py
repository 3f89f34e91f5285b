"""Run-wide state (budgets, secrets, environment) and the scopes references are resolved in."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from drawer.events import Emitter
from drawer.loader import LoadedDrawer
from drawer.records import ErrorInfo, StepRecord
from drawer.refs import RefError, to_text

if TYPE_CHECKING:
    from drawer.resume import Previous
    from drawer.shard import Shard

MASK = "***"


class Masker:
    """Replaces every secret value (and each line of a multi-line one) with ***."""

    def __init__(self, secrets: list[str]) -> None:
        pieces = set()
        for secret in secrets:
            pieces.add(secret)
            pieces.update(line for line in secret.splitlines() if len(line) >= 4)
        self.secrets = sorted(pieces, key=len, reverse=True)
        self.encoded = [
            secret.encode("utf-8", "surrogateescape")
            for secret in self.secrets
            if _encodable(secret)
        ]
        self.longest = max(map(len, self.encoded), default=0)
        """The longest secret in bytes: a stream cut into pieces holds back this many bytes
        before a cut, so that no piece ends inside a secret."""

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def data(self, data: bytes) -> bytes:
        """`text` for bytes not yet decoded (a piece of a command's output)."""
        for secret in self.encoded:
            if secret in data:
                data = data.replace(secret, MASK.encode())
        return data

    def value(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    def error(self, error: ErrorInfo | None) -> ErrorInfo | None:
        if error is None or not self.secrets:
            return error
        return ErrorInfo(
            error.code, self.text(error.message), error.step_path, self.error(error.cause)
        )


def _encodable(text: str) -> bool:
    """False for a lone surrogate from a `\\ud800` escape: no bytes stand for it."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


class Interrupt:
    """Which signal (if any) cancelled the run."""

    signal: int | None = None
    reason: str | None = None
    """Why, when it was not a signal from outside (drawer's own output was closed)."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt of a step kind produced."""

    output: Any = None
    error: ErrorInfo | None = None


@dataclass
class RunContext:
    """Everything shared by the steps of one run."""

    loaded: LoadedDrawer
    run_id: str
    inputs: dict[str, Any]
    masker: Masker
    emit: Emitter
    process_limiter: trio.CapacityLimiter
    base_env: dict[str, str]
    workdir: Path
    tmpdir: Path
    grace: float = 5.0
    kill_now: trio.Event = field(default_factory=trio.Event)
    max_workers: int | None = None
    serial: bool = False
    subdrawers: dict[Path, LoadedDrawer] = field(default_factory=dict)
    """Sub-drawer files already loaded in this run, by resolved path."""
    partial: dict[str, Any] = field(default_factory=dict)
    """Outputs of steps still running, by path: kept when a step is cancelled or times out."""
    previous: Previous | None = None
    """The run being resumed, when this run resumes one."""
    commit: Callable[[], Awaitable[None]] | None = None
    """Makes the records so far durable; a loop slot awaits it before its next item."""
    shard: Shard | None = None
    """With `run --shard I/N`: the sharded loop, this shard, and the deferred steps."""
    interrupt: Interrupt = field(default_factory=Interrupt)
    """Set (before the run is cancelled) by a signal or drawer's own output closing."""
    deadline: float = math.inf
    """When `execution.timeout` ends the run, on trio's clock."""

    def not_started(self, path: str, within: str) -> ErrorInfo:
        """Why a step of a cancelled list (`within` names the list) never started: the run's
        signal or timeout, else the enclosing step or iteration being cancelled."""
        code, why = self._run_cancelled() or ("CANCELLED", f"{within or 'the run'} was cancelled")
        return ErrorInfo(code, f"{path} never started: {why}", path)

    def cut_short(self, path: str) -> ErrorInfo:
        """Why a step that was running ended cancelled: the run's signal or timeout (its
        code, RUN_TIMEOUT for the timeout, as for the steps it left unstarted), else an
        enclosing step's cancellation."""
        cause = self._run_cancelled()
        if cause is None:
            return ErrorInfo("CANCELLED", f"{path} was cancelled", path)
        return ErrorInfo(cause[0], f"{path} was cut short: {cause[1]}", path)

    def _run_cancelled(self) -> tuple[str, str] | None:
        """The code and reason when the whole run is being cancelled, else None."""
        interrupt = self.interrupt
        if interrupt.reason is not None:
            return "CANCELLED", interrupt.reason
        if interrupt.signal is not None:
            return "CANCELLED", f"the run was cancelled by signal {interrupt.signal}"
        if trio.current_time() >= self.deadline:
            return "RUN_TIMEOUT", "the run exceeded its timeout"
        return None

    @property
    def info(self) -> dict[str, dict[str, str]]:
        return {
            "run": {"id": self.run_id},
            "drawer": {"dir": str(self.loaded.path.parent.resolve()), "name": self.loaded.name},
        }


class StepsView(Mapping[str, Any]):
    """The `steps` root: every step visible from a scope, as `{status, output, error}`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __getitem__(self, key: str) -> Any:
        record = self.scope.find_record(key)
        if record is None:
            raise KeyError(key)
        return record.view()

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        scope: Scope | None = self.scope
        while scope is not None:
            seen.update(scope.records)
            seen.update(scope.exported)
            scope = scope.parent
        return iter(sorted(seen))

    def __len__(self) -> int:
        return len(list(iter(self)))


class Scope:
    """One step list's records plus the loop variables of its iteration, chained outward."""

    __slots__ = ("ctx", "env", "exported", "loop", "parent", "records", "vars")

    def __init__(
        self,
        ctx: RunContext,
        parent: Scope | None = None,
        variables: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        loop: tuple[Any, int] | None = None,
    ):
        self.ctx = ctx
        self.parent = parent
        self.records: dict[str, StepRecord] = {}
        # Single-step branches of a finished parallel step, referable by their own ids.
        self.exported: dict[str, StepRecord] = {}
        self.vars: dict[str, Any] = variables or {}
        self.env: dict[str, str] = env if env is not None else (parent.env if parent else {})
        self.loop = loop

    def child(
        self,
        variables: dict[str, Any],
        env: dict[str, str] | None = None,
        loop: tuple[Any, int] | None = None,
    ) -> Scope:
        """A nested scope: an iteration (with its loop item and index) or a step's body."""
        return Scope(self.ctx, self, variables, env, loop)

    def find_record(self, step_id: str) -> StepRecord | None:
        scope: Scope | None = self
        while scope is not None:
            record = scope.records.get(step_id) or scope.exported.get(step_id)
            if record is not None:
                return record
            scope = scope.parent
        return None

    def lookup(self, root: str) -> Any:
        """The value of a reference root, innermost first."""
        scope: Scope | None = self
        while scope is not None:
            if root in scope.vars:
                return scope.vars[root]
            record = scope.records.get(root) or scope.exported.get(root)
            if record is not None:
                return record.view()
            scope = scope.parent
        ctx = self.ctx
        if root == "inputs":
            return ctx.inputs
        if root == "env":
            return EnvView(ctx.base_env)
        if root == "steps":
            return StepsView(self)
        if root in ("run", "drawer"):
            return ctx.info[root]
        raise RefError(f"{root} is not available here (has the step run?)")

    def loop_env(self) -> dict[str, str]:
        """DRAWER_ITEM, DRAWER_INDEX and DRAWER_VAR_<NAME> for the loops around this scope."""
        chain: list[Scope] = []
        scope: Scope | None = self
        while scope is not None:
            chain.append(scope)
            scope = scope.parent
        env: dict[str, str] = {}
        for outer in reversed(chain):
            for name, value in outer.vars.items():
                env["DRAWER_VAR_" + name.upper()] = to_text(value)
            if outer.loop is not None:
                env["DRAWER_ITEM"] = to_text(outer.loop[0])
                env["DRAWER_INDEX"] = str(outer.loop[1])
        return env


class EnvView(Mapping[str, str]):
    """The `env` root: an unset variable is a clear error, not null."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def __getitem__(self, key: str) -> str:
        return self.env[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)
