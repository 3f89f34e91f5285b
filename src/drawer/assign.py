"""`set`, `get` and `unset` on a drawer file: paths, value typing, validation, atomic writes.

The text edits themselves are `drawer.edit`'s; this module decides what to edit and whether
the result may be written (SPEC 4).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drawer.loader import InvalidDrawer, iter_steps, load_text
from drawer.source import Problem, parse_document, suggest

# A plain scalar as YAML 1.2's core schema reads it.
_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$|0o[0-7]+$|0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}
# Fields whose schema allows only strings: `set build.run=true` writes the text "true".
STRING_FIELDS = frozenset(
    {
        "id",
        "name",
        "description",
        "cwd",
        "stdin",
        "drawer",
        "as",
        "index_as",
        "shell",
        "kind",
        "glob",
        "file",
        "format",
        "run",
    }
)


class AssignError(Exception):
    """An assignment that cannot be applied (exit 2): bad syntax, path, value or result."""


@dataclass(frozen=True)
class Assignment:
    path: str
    raw: str
    is_json: bool


def parse_assignment(text: str) -> Assignment:
    """`PATH=VALUE` or `PATH:=JSON`."""
    match = re.match(r"^([^=]+?)(:?)=(.*)$", text, re.DOTALL)
    if match is None or not match.group(1).strip():
        raise AssignError(f'expected PATH=VALUE or PATH:=JSON, got "{text}"')
    return Assignment(match.group(1).strip(), match.group(3), bool(match.group(2)))


def yaml_scalar(text: str) -> Any:
    """How YAML 1.2 reads a plain scalar: 10 integer, 1.5 number, true/false, null, else text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    stripped = text.strip()
    if _INT.match(stripped):
        return int(stripped.replace("_", ""), 0)
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    if lowered == ".nan":
        return float("nan")
    if _FLOAT.match(stripped) and any(ch.isdigit() for ch in stripped):
        return float(stripped.replace("_", ""))
    return text


def typed_value(assignment: Assignment, pointer: str, as_string: bool) -> Any:
    if assignment.is_json:
        try:
            return json.loads(assignment.raw)
        except ValueError as error:
            raise AssignError(f"{assignment.path}:= takes JSON: {error}") from None
    last = pointer.rsplit("/", 1)[-1]
    if as_string or last in STRING_FIELDS or pointer.split("/")[-2:-1] == ["run"]:
        return assignment.raw
    return yaml_scalar(assignment.raw)


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def to_pointer(path: str, text: str, filename: str) -> str:
    """`STEP_ID.field.sub`, a document path (`execution.max_workers`) or a `/pointer`."""
    if path.startswith("/"):
        return path
    words = path.split(".")
    try:
        document = parse_document(text, filename)
    except Exception as error:  # any parse failure: the file cannot be searched
        raise AssignError(f"{filename} cannot be read: {error}") from None
    data = document.data if isinstance(document.data, dict) else {}
    step_paths = _step_paths(data)
    head, rest = words[0], words[1:]
    if head in step_paths:
        base: tuple[str | int, ...] = step_paths[head]
    elif head in data or not step_paths or head in _DOCUMENT_KEYS:
        base, rest = (head,), rest
    else:
        guess = suggest(head, list(step_paths) + list(_DOCUMENT_KEYS))
        hint = f'; did you mean "{guess}"?' if guess else ""
        raise AssignError(f'no step "{head}"{hint}')
    parts = [str(part) for part in base] + rest
    return "/" + "/".join(_escape(part) for part in parts)


_DOCUMENT_KEYS = (
    "version",
    "name",
    "description",
    "inputs",
    "env",
    "defaults",
    "execution",
    "steps",
    "outputs",
    "$schema",
)


def _step_paths(data: dict[str, Any]) -> dict[str, tuple[str | int, ...]]:
    """Every step id in the file (nested included) -> its document path. Structural, so it
    also works on a file that does not validate (a `set` may be repairing it)."""
    return _walk_ids(data.get("steps"), ("steps",))


def _walk_ids(steps: Any, path: tuple[str | int, ...]) -> dict[str, tuple[str | int, ...]]:
    found: dict[str, tuple[str | int, ...]] = {}
    if not isinstance(steps, list):
        return found
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        here = (*path, index)
        if isinstance(step.get("id"), str):
            found.setdefault(step["id"], here)
        for key in ("steps", "branches", "default"):
            found.update(_walk_ids(step.get(key), (*here, key)))
        for number, case in enumerate(step.get("cases") or []):
            if isinstance(case, dict):
                found.update(_walk_ids(case.get("steps"), (*here, "cases", number, "steps")))
    return found


def _error_keys(problems: Sequence[Problem]) -> set[str]:
    return {problem.message for problem in problems if problem.severity == "error"}


def _problems_of(text: str, path: Path) -> list[Problem]:
    try:
        return list(load_text(text, path).warnings)
    except InvalidDrawer as invalid:
        return invalid.problems


def apply_assignments(text: str, path: Path, assignments: Sequence[str], as_string: bool) -> str:
    """Every assignment applied to the text, all or none; the result may not add an error."""
    from drawer.edit import EditError, set_value

    new_text = text
    for item in assignments:
        assignment = parse_assignment(item)
        pointer = to_pointer(assignment.path, new_text, str(path))
        value = typed_value(assignment, pointer, as_string)
        try:
            new_text = set_value(new_text, pointer, value)
        except EditError as error:
            raise AssignError(f"{assignment.path}: {error}") from None
    check_no_new_errors(text, new_text, path)
    return new_text


def remove_path(text: str, path: Path, target: str) -> str:
    from drawer.edit import EditError, unset_value

    pointer = to_pointer(target, text, str(path))
    try:
        new_text = unset_value(text, pointer)
    except EditError as error:
        raise AssignError(f"{target}: {error}") from None
    check_no_new_errors(text, new_text, path)
    return new_text


def read_path(text: str, path: Path, target: str) -> str:
    """The value at a path as written in the file (JSON for lists and maps)."""
    from drawer.edit import EditError, get_text, get_value

    pointer = to_pointer(target, text, str(path))
    try:
        value = get_value(text, pointer)
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        return get_text(text, pointer)
    except EditError as error:
        raise AssignError(f"{target}: {error}") from None


def check_no_new_errors(before: str, after: str, path: Path) -> None:
    """The edit must not add a validation error; errors the file already had are tolerated."""
    after_errors = _error_keys(_problems_of(after, path))
    if not after_errors:
        return
    added = after_errors - _error_keys(_problems_of(before, path))
    if added:
        raise AssignError("; ".join(sorted(added)) + " (nothing was written)")


def unified_diff(before: str, after: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path.name}",
            tofile=f"b/{path.name}",
        )
    )


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same directory, flushed, then renamed over the target; the
    file's mode is kept and a symlink is followed (its target is what changes)."""
    target = path.resolve()
    mode = target.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def effective_value(loaded: Any, target: str) -> str:
    """The value at a path after defaults (model defaults, `defaults:` for run and drawer
    steps), as JSON."""
    pointer = to_pointer(target, loaded.document.text, str(loaded.path))
    data = loaded.model.model_dump(mode="json", by_alias=True)
    defaults = loaded.model.defaults
    for step, path in iter_steps(loaded.model):
        if step.kind not in ("run", "drawer"):
            continue
        node: Any = data
        for part in path:
            node = node[part]
        if node.get("timeout") is None and defaults.timeout is not None:
            node["timeout"] = defaults.timeout
        if defaults.retry is not None:
            merged = defaults.retry.model_dump(mode="json")
            if step.retry is not None:
                merged.update(step.retry.model_dump(mode="json", exclude_unset=True))
            node["retry"] = merged
    value: Any = data
    for segment in pointer.split("/")[1:]:
        key = segment.replace("~1", "/").replace("~0", "~")
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise AssignError(f"{target}: not in the drawer")
    return json.dumps(value, ensure_ascii=False)
