"""Drawer file text -> validated model, with every problem located at file:line:col."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drawer.model import STEP_KINDS, AnyStep, Drawer, child_lists
from drawer.source import (
    ParsedDocument,
    ParseError,
    PathKey,
    Problem,
    format_problem,
    parse_document,
    suggest,
)


class InvalidDrawer(Exception):
    """The file cannot run: every problem found, with positions."""

    def __init__(self, problems: list[Problem], text: str | None, path: Path):
        super().__init__(f"{path}: {len(problems)} problem(s)")
        self.problems = problems
        self.text = text
        self.path = path

    def __str__(self) -> str:
        return "\n".join(
            format_problem(problem, self.text, str(self.path)) for problem in self.problems
        )


@dataclass(frozen=True)
class LoadedDrawer:
    """A drawer file that passed validation, with its source for later messages."""

    model: Drawer
    document: ParsedDocument
    path: Path
    warnings: tuple[Problem, ...]

    @property
    def name(self) -> str:
        return self.model.name or self.path.stem


def _strip_tags(loc: tuple[int | str, ...]) -> PathKey:
    return tuple(part for part in loc if not (isinstance(part, str) and part.startswith("<")))


def _model_fields(model: type[Any]) -> list[str]:
    fields: list[str] = []
    for name, info in model.model_fields.items():
        fields.append(info.alias or name)
    return fields


def _owner_model(loc: tuple[int | str, ...]) -> type[Any] | None:
    """The pydantic model that owns the last key in `loc` (for did-you-mean)."""
    from drawer import model as m

    tags = [part for part in loc[:-1] if isinstance(part, str) and part.startswith("<")]
    names: dict[str, type[Any]] = {
        **{f"<{kind}>": model for kind, model in m.STEP_MODELS.items()},
        "<group>": m.BranchGroup, "<glob>": m.GlobSource, "<file>": m.FileSource,
        "<range>": m.RangeSource,
    }  # fmt: skip
    if tags and tags[-1] in names and loc[-2] == tags[-1]:
        return names[tags[-1]]
    stripped = _strip_tags(loc[:-1])
    if not stripped:
        return m.Drawer
    parent = stripped[-1]
    by_key: dict[str | int, type[Any]] = {
        "execution": m.Execution, "defaults": m.Defaults, "retry": m.RetryPolicy,
    }  # fmt: skip
    if len(stripped) >= 2 and stripped[-2] == "cases":
        return m.SwitchCase
    if len(stripped) >= 2 and stripped[-2] == "inputs":
        return m.InputSpec
    return by_key.get(parent)


def _key_hint(key: str, owner: type[Any] | None) -> str | None:
    """Did you mean: a key of the owner, else a key of another step kind, naming the kinds."""
    from drawer import model as m

    if owner is None:
        return None
    guess = suggest(key, _model_fields(owner))
    if guess is not None:
        return f'did you mean "{guess}"?'
    kinds = m.STEP_MODELS
    this = next((kind for kind, model in kinds.items() if model is owner), None)
    if this is None:
        return None
    keys = {name for model in kinds.values() for name in _model_fields(model)}
    guess = key if key in keys else suggest(key, keys)
    if guess is None:
        return None
    having = [kind for kind, model in kinds.items() if guess in _model_fields(model)]
    which = " and ".join(having)
    if guess == key:
        kind = f"kind: {having[0]}" if len(having) == 1 else "its kind"
        return f'"{key}" belongs to {which} steps, not to {this} steps: set {kind}'
    return f'did you mean "{guess}"? (a key of {which} steps, not of {this} steps)'


def _step_label(data: Any, path: PathKey) -> str:
    node = data
    label = ""
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            label = f' in step "{node["id"]}"'
    return label


def _pydantic_problems(error: ValidationError, doc: ParsedDocument) -> list[Problem]:
    problems: list[Problem] = []
    for item in error.errors():
        loc = item["loc"]
        path = _strip_tags(loc)
        label = _step_label(doc.data, path)
        kind = item["type"]
        if kind == "union_tag_invalid" and item.get("ctx", {}).get("tag") == "<unknown>":
            continue  # an unknown kind: reported by _kind_problems with a suggestion
        if kind == "extra_forbidden":
            key = str(path[-1])
            problems.append(
                Problem(
                    f'unknown key "{key}"{label}',
                    doc.source.key(path) or doc.source.nearest(path),
                    hint=_key_hint(key, _owner_model(loc)),
                )
            )
            continue
        if kind == "union_tag_invalid" and item.get("ctx", {}).get("tag") == "<source>":
            over = path
            problems.append(
                Problem(
                    f"over must be a list, a ${{...}} reference, or a source{label}",
                    doc.source.value(over) or doc.source.nearest(over),
                    hint="write {glob: PATTERN}, {file: PATH, format: lines|jsonl|json} "
                    "or {range: [START, STOP, STEP]}",
                )
            )
            continue
        keys = [str(part) for part in path if isinstance(part, str)]
        where = keys[-1] if keys else "the file"
        message = item["msg"]
        if kind == "missing":
            problems.append(
                Problem(
                    f'missing required key "{path[-1]}"{label}',
                    doc.source.nearest(path[:-1]),
                )
            )
            continue
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if kind == "string_pattern_mismatch" and where in ("id", "as", "index_as"):
            message = (
                f'{where} "{item["input"]}" must start with a letter or _ and hold only '
                "letters, digits, _" + (" and -" if where == "id" else "")
            )
        # Our own messages already name the field; a step-level check has no field at all.
        elif not message.startswith(where) and path and isinstance(path[-1], str):
            message = f"{where}: {message}"
        written = doc.source.text(path) if kind == "string_type" else None
        problems.append(
            Problem(
                f"{message}{label}",
                doc.source.value(path) or doc.source.nearest(path),
                hint=f"quote it to mean the text: '{written}'" if written is not None else None,
            )
        )
    return problems


def _kind_problems(doc: ParsedDocument) -> list[Problem]:
    """Unknown `kind` values, found before pydantic so the message can be specific."""
    problems: list[Problem] = []

    def visit(steps: Any, path: PathKey) -> None:
        if not isinstance(steps, list):
            return
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            here = (*path, index)
            kind = step.get("kind", "run")
            if kind not in STEP_KINDS:
                guess = suggest(str(kind), STEP_KINDS)
                problems.append(
                    Problem(
                        f"unknown kind {kind!r}",
                        doc.source.value((*here, "kind")),
                        hint=f'did you mean "{guess}"?'
                        if guess
                        else f"kinds: {', '.join(STEP_KINDS)}",
                    )
                )
            visit(step.get("steps"), (*here, "steps"))
            visit(step.get("branches"), (*here, "branches"))
            visit(step.get("default"), (*here, "default"))
            cases = step.get("cases")
            if isinstance(cases, list):
                for number, case in enumerate(cases):
                    if isinstance(case, dict):
                        visit(case.get("steps"), (*here, "cases", number, "steps"))

    if isinstance(doc.data, dict):
        visit(doc.data.get("steps"), ("steps",))
    return problems


class _AsWritten:
    """The fields whose value is text, holding the text as written in the file.

    YAML (and JSON) read an unquoted `true`, `1e3`, `0x10`, `010` or `~` as a boolean, a number
    or null; in an argv list, an env value or a string input's default that would pass
    `1000.0` for `1e3` or `1` for `true`. There, a scalar is taken as the text it is written
    as. Everywhere else (`value:`, `over:`, `outputs:`, counts) it stays data."""

    def __init__(self, doc: ParsedDocument) -> None:
        self.source = doc.source

    def text(self, value: Any, path: PathKey, keep_null: bool) -> Any:
        """`value` as written, when it is a scalar YAML/JSON read as something else."""
        if isinstance(value, str | list | dict) or (value is None and keep_null):
            return value
        written = self.source.text(path)
        return value if written is None else written

    def drawer(self, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        self.env(data, ())
        inputs = data.get("inputs")
        if isinstance(inputs, dict):
            data["inputs"] = {
                name: self.input_spec(spec, ("inputs", name)) for name, spec in inputs.items()
            }
        if "steps" in data:
            data["steps"] = self.steps(data["steps"], ("steps",))
        return data

    def env(self, owner: dict[str, Any], path: PathKey) -> None:
        env = owner.get("env")
        if isinstance(env, dict):  # a null value stays an error: an env value is text
            where = (*path, "env")
            owner["env"] = {k: self.text(v, (*where, k), True) for k, v in env.items()}

    def input_spec(self, spec: Any, path: PathKey) -> Any:
        if not isinstance(spec, dict) or spec.get("type", "string") != "string":
            return spec
        spec = dict(spec)
        if "default" in spec:  # a null default stays null: no default
            spec["default"] = self.text(spec["default"], (*path, "default"), True)
        if isinstance(spec.get("enum"), list):
            spec["enum"] = [
                self.text(option, (*path, "enum", index), True)
                for index, option in enumerate(spec["enum"])
            ]
        return spec

    def steps(self, steps: Any, path: PathKey) -> Any:
        if not isinstance(steps, list):
            return steps
        return [self.step(step, (*path, index)) for index, step in enumerate(steps)]

    def step(self, step: Any, path: PathKey) -> Any:
        """A step, or a parallel branch group (`{id, steps}`)."""
        if not isinstance(step, dict):
            return step
        step = dict(step)
        run = step.get("run")
        if isinstance(run, list):  # every argument is text, `null` included
            step["run"] = [self.text(arg, (*path, "run", i), False) for i, arg in enumerate(run)]
        self.env(step, path)
        for key in ("steps", "branches", "default"):
            if key in step:
                step[key] = self.steps(step[key], (*path, key))
        cases = step.get("cases")
        if isinstance(cases, list):
            step["cases"] = [
                {**case, "steps": self.steps(case["steps"], (*path, "cases", index, "steps"))}
                if isinstance(case, dict) and "steps" in case
                else case
                for index, case in enumerate(cases)
            ]
        return step


def _line_of(problem: Problem) -> tuple[int, int]:
    position = problem.position
    return (position.line, position.col) if position else (0, 0)


MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest drawer file drawer reads. Parsing and checking cost about 45 bytes of memory
per line (8 MiB of blank lines: 380 MB, 3 s); real drawer files are a few KiB, and data
belongs in a `{file: ...}` source."""


def size_problem(size: int) -> Problem | None:
    """A file over MAX_FILE_BYTES, refused before it is parsed."""
    if size <= MAX_FILE_BYTES:
        return None
    return Problem(
        f"the file is {size / 2**20:.1f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB drawer"
        " files may have",
        None,
        hint="move data into a file the loop reads: over: {file: items.jsonl, format: jsonl}",
    )


def load_text(text: str, path: Path, chain: tuple[Path, ...] = ()) -> LoadedDrawer:
    """Parse, type-check and validate a drawer file; raise InvalidDrawer with all problems."""
    from drawer.validate import check_drawer

    if len(text) > MAX_FILE_BYTES // 4:  # a character is at most 4 bytes
        too_large = size_problem(len(text.encode("utf-8", "surrogatepass")))
        if too_large is not None:
            raise InvalidDrawer([too_large], None, path)
    try:
        doc = parse_document(text, str(path))
    except ParseError as error:
        raise InvalidDrawer(error.problems, text.removeprefix("\ufeff"), path) from None
    if doc.data is None:
        problem = Problem("the file is empty", None, hint="add steps:")
        raise InvalidDrawer([problem], doc.text, path)
    if not isinstance(doc.data, dict):
        raise InvalidDrawer(
            [Problem("a drawer file is a mapping with a steps: list", doc.source.nearest(()))],
            doc.text,
            path,
        )
    doc = replace(doc, data=_AsWritten(doc).drawer(doc.data))
    kind_problems = _kind_problems(doc)
    try:
        model = Drawer.model_validate(doc.data)
    except ValidationError as error:
        problems = kind_problems + [
            problem
            for problem in _pydantic_problems(error, doc)
            if not any(problem.position == known.position for known in kind_problems)
        ]
        raise InvalidDrawer(sorted(problems, key=_line_of), doc.text, path) from None
    if kind_problems:
        raise InvalidDrawer(kind_problems, doc.text, path)
    problems = check_drawer(model, doc, path, chain)
    errors = [problem for problem in problems if problem.severity == "error"]
    if errors:
        raise InvalidDrawer(problems, doc.text, path)
    return LoadedDrawer(model, doc, path, tuple(problems))


def load_drawer(path: Path, chain: tuple[Path, ...] = ()) -> LoadedDrawer:
    """Read and validate a drawer file from disk; `chain` holds the files calling it."""
    return load_text(read_drawer_text(path), path, chain)


def read_drawer_text(path: Path) -> str:
    """A drawer file's text, for every reader (run, validate, `set`, the Action): refused
    (InvalidDrawer) past MAX_FILE_BYTES before a byte is read, or when it is not UTF-8.
    OSError when it cannot be read."""
    with suppress(OSError):  # a file that cannot be read is reported by reading it
        too_large = size_problem(path.stat().st_size)
        if too_large is not None:
            raise InvalidDrawer([too_large], None, path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidDrawer(
            [Problem(f"the file is not UTF-8 text ({error.reason})", None)], None, path
        ) from None


def iter_steps(model: Drawer) -> list[tuple[AnyStep, PathKey]]:
    """Every step in the file with its document path, depth first."""
    found: list[tuple[AnyStep, PathKey]] = []

    def visit(steps: tuple[AnyStep, ...], path: PathKey, offset: int = 0) -> None:
        for index, step in enumerate(steps):
            here = (*path, offset + index)
            found.append((step, here))
            for nested in child_lists(step, step.id):
                visit(nested.steps, (*here, *nested.keys), nested.offset)

    visit(model.steps, ("steps",))
    return found
