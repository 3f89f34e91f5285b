"""Resume (SPEC 3.5): which steps and iterations a new run takes from an earlier one.

A step is reused when the earlier run recorded it `ok`, its definition (scheduling fields
aside) is unchanged, its recorded output holds no masked secret, and every step it depends
on in its list was reused too, so nothing downstream of work that runs again keeps a stale
result (GitHub's "re-run failed jobs" re-runs their dependants the same way). A `for_each`
is never reused whole: its items are matched to the earlier run's iterations by identity
(the item's canonical-JSON hash and its occurrence among equal items), and each matched
iteration reuses what it can, so a reordered or extended source still skips finished items.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drawer.context import MASK
from drawer.loader import LoadedDrawer, load_drawer
from drawer.model import (
    AnyStep,
    DrawerStep,
    ForEachStep,
    ParallelStep,
    SwitchStep,
    child_lists,
)
from drawer.paths import definition_path
from drawer.records import OK, SKIPPED, StepRecord, json_text

SCHEDULING_FIELDS = frozenset(
    {
        "name", "description", "depends_on", "timeout", "retry", "on_failure", "parallelism",
        "max_parallelism", "delay", "on_item_failure", "on_branch_failure", "tolerate",
        "shard", "executor", "dask",
    }
)  # fmt: skip
"""Fields that say when and how often a step runs, not what it does: editing them keeps
the step's earlier result."""
_NESTED_FIELDS = ("steps", "branches", "cases", "default")
DRAWER_WIDE = ""
"""The definitions key of what every step depends on: the drawer's env and default shell."""


def _digest(value: Any) -> str:
    text = json_text(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _own_fields(step: AnyStep) -> dict[str, Any]:
    data = step.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for name in (*SCHEDULING_FIELDS, *_NESTED_FIELDS):
        data.pop(name, None)
    if isinstance(step, ForEachStep):
        data.pop("over", None)  # items are matched one by one instead
    if isinstance(step, SwitchStep):
        data["cases"] = [case.when for case in step.cases]
        data["default"] = step.default is not None
    if isinstance(step, ParallelStep):
        data["branches"] = [branch.id for branch in step.branches]
    return data


def definitions(loaded: LoadedDrawer) -> dict[str, str]:
    """Every step's definition hash, by definition path; a container's covers its body, a
    `drawer` step's the file it calls. Key "" holds what every step depends on."""
    model = loaded.model
    drawer_wide = _digest({"env": model.env, "shell": model.defaults.shell})
    hashes: dict[str, str] = {DRAWER_WIDE: drawer_wide}

    def walk(steps: Sequence[AnyStep], prefix: str, directory: Path, chain: frozenset[Path]) -> str:
        tree: list[str] = []
        for step in steps:
            path = f"{prefix}.{step.id}" if prefix else step.id
            parts: list[Any] = [drawer_wide, _own_fields(step)]
            for nested in child_lists(step, path):
                parts.append(walk(nested.steps, nested.prefix, directory, chain))
            if isinstance(step, DrawerStep):
                parts.append(called(step, path, directory, chain))
            hashes[path] = _digest(parts)
            tree.append(hashes[path])
        return _digest(tree)

    def called(step: DrawerStep, path: str, directory: Path, chain: frozenset[Path]) -> Any:
        target = (directory / step.drawer).resolve()
        if target in chain:
            return "cycle"
        try:
            child = load_drawer(target)
        except Exception as error:  # an unloadable file fails the step when it runs
            return f"unloadable: {type(error).__name__}"
        outer = child.model.model_dump(mode="json", by_alias=True, exclude={"steps"})
        inner = walk(child.model.steps, path, target.parent, chain | {target})
        return [outer, inner]

    walk(model.steps, "", loaded.path.parent, frozenset({loaded.path.resolve()}))
    return hashes


def changed_steps(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The steps whose own definition changed: a changed step none of whose nested steps
    changed (a changed body names the step in it, not the loop around it)."""
    if old.get(DRAWER_WIDE) != new.get(DRAWER_WIDE):
        return ["(the drawer's env or default shell)"]
    differing = [path for path in new if path and path in old and old[path] != new[path]]
    return [
        path
        for path in differing
        if not any(other.startswith(path + ".") for other in differing if other != path)
    ]


@dataclass(frozen=True)
class Reused:
    """An earlier record taken over by this run."""

    record: StepRecord
    old_path: str


@dataclass(frozen=True)
class LoopMatches:
    """The earlier run's iterations of one loop: old index by item identity, and its total."""

    old_path: str
    by_identity: dict[str, int]
    total: int | None
    bare: frozenset[int] = frozenset()
    """Old indices of iterations that ended ok with no step records (from a run document
    of a `collect: none` loop, which keeps `{index, item, status, error}` only)."""


class Previous:
    """The run being resumed, as this run walks its own step paths."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        run_id: str,
        old_definitions: dict[str, str],
        new_definitions: dict[str, str],
    ) -> None:
        self.connection = connection
        self.run_id = run_id
        self.old_definitions = old_definitions
        self.new_definitions = new_definitions
        self.aliases: dict[str, str] = {}
        """This run's iteration paths -> the earlier run's, for the items that matched."""
        self.reused: set[str] = set()
        """Step paths of this run whose earlier record stands (dependants may be reused)."""

    def old_path(self, path: str) -> str | None:
        """The earlier run's path for a step of this run; None when it had no such step
        (inside an iteration whose item it never saw, or inside a repeat)."""
        bracket = path.rfind("]")
        if path.rfind("#") > bracket:
            return None
        if bracket < 0:
            return path
        old = self.aliases.get(path[: bracket + 1])
        return None if old is None else old + path[bracket + 1 :]

    def unchanged(self, path: str) -> bool:
        key = definition_path(path)
        new = self.new_definitions.get(key)
        return new is not None and self.old_definitions.get(key) == new

    def _row(self, old: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.connection.execute(
            "SELECT status, attempt, started_at, ended_at, output, error FROM steps"
            " WHERE run_id = ? AND path = ? AND kind != 'iteration'",
            (self.run_id, old),
        ).fetchone()
        return row

    def reuse(self, step: AnyStep, path: str, after: Sequence[str]) -> Reused | None:
        """The earlier record of this step when it may stand in for running it."""
        if isinstance(step, ForEachStep) or not all(dep in self.reused for dep in after):
            return None
        old = self.old_path(path)
        if old is None or not self.unchanged(path):
            return None
        row = self._row(old)
        if row is None:
            return None
        status, attempts, started_at, ended_at, output, error = row
        if status != OK or error is not None or (output is not None and MASK in output):
            return None
        record = StepRecord()
        record.status = OK
        record.attempts = attempts
        record.started_at = started_at
        record.ended_at = ended_at
        record.output = json.loads(output) if output is not None else None
        self.reused.add(path)
        return Reused(record, old)

    def skipped_again(self, path: str, record: StepRecord) -> None:
        """A step skipped by its `when` in both runs counts as reused for its dependants."""
        if record.status != SKIPPED or record.error is not None or not self.unchanged(path):
            return
        old = self.old_path(path)
        row = self._row(old) if old is not None else None
        if row is not None and row[0] == SKIPPED and row[5] is None:
            self.reused.add(path)

    def loop(self, path: str) -> LoopMatches | None:
        """The earlier run's iterations of the loop at `path`, by item identity."""
        old = self.old_path(path)
        if old is None:
            return None
        rows = self.connection.execute(
            "SELECT item_hash, row_number() OVER (PARTITION BY item_hash ORDER BY item_index)"
            " - 1, item_index, status = 'ok' AND NOT EXISTS (SELECT 1 FROM steps AS child"
            " WHERE child.run_id = it.run_id AND child.path > it.path || '.'"
            " AND child.path < it.path || '/') FROM steps AS it"
            " WHERE run_id = ? AND path >= ? AND path < ? AND parent_path = ?"
            " AND kind = 'iteration' AND item_hash IS NOT NULL",
            (self.run_id, old + "[", old + "\\", old),
        ).fetchall()
        row = self._row(old)
        total = None
        if row is not None and row[4] is not None:
            output = json.loads(row[4])  # null for a loop that failed before it had items
            total = output.get("total") if isinstance(output, dict) else None
        by_identity = {f"{digest}#{occurrence}": index for digest, occurrence, index, _ in rows}
        bare = frozenset(index for _, _, index, is_bare in rows if is_bare)
        return LoopMatches(old, by_identity, total, bare)

    def iteration_done(self, path: str, body: Sequence[AnyStep]) -> bool:
        """Forget an iteration's alias and reuse marks; True when all its steps were reused."""
        self.aliases.pop(path, None)
        complete = True
        for step in body:
            step_path = f"{path}.{step.id}"
            if step_path in self.reused:
                self.reused.discard(step_path)
            else:
                complete = False
        return complete
