"""Checks beyond the schema: ids, dependencies, cycles and what each reference may see."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drawer.counts import is_reference
from drawer.expr import KNOWN_FUNCTIONS, ExprError, compile_expression
from drawer.graph import ancestors, dependencies, find_cycle, is_chain
from drawer.inputs import InputError, check_type, env_name
from drawer.model import (
    CEL_RESERVED,
    DASK_INSTALL,
    RESERVED_IDS,
    AnyStep,
    Drawer,
    DrawerStep,
    ForEachStep,
    ParallelStep,
    RepeatStep,
    RunStep,
    StepList,
    SwitchStep,
    WaitStep,
    child_lists,
)
from drawer.refs import ROOT_RE, Ref, RefError, parse_plain_path, parse_template, to_text
from drawer.shell import ShellIssue, compile_shell, find_python_refs, is_shell_parameter
from drawer.source import ParsedDocument, PathKey, Position, Problem, suggest

RUN_FIELDS = {"id": None, "dir": None, "name": None}
STEP_FIELDS = ("output", "status", "error")
CONDITIONS = frozenset({"when", "until"})
SHELL_OPERATORS = (":-", ":=", ":+", ":?", "##", "%%", "//", "^^", ",,")
# Keys whose strings are not references (structure, or the body checked in its own scope).
NOT_TEMPLATES = frozenset({"id", "kind", "depends_on", "name", "steps", "as", "index_as"})
STRUCTURE = NOT_TEMPLATES | {"run", "until", "branches", "cases", "default", "drawer"}


def dask_installed() -> bool:
    """Whether the dask extra is installed: found, not imported (that takes a second)."""
    return all(importlib.util.find_spec(name) is not None for name in ("dask", "distributed"))


class Visible:
    """The step ids a step may reference: its list's ancestors of it, plus what its container
    sees. Answered on demand: materialising the set per step is quadratic in a long list."""

    def __init__(
        self,
        outer: Visible | None = None,
        ancestry: Ancestry | None = None,
        step: str | None = None,
        extra: frozenset[str] = frozenset(),
    ) -> None:
        self.outer = outer
        self.ancestry = ancestry
        self.step = step
        self.extra = extra

    def __contains__(self, name: object) -> bool:
        if name in self.extra:
            return True
        if (
            self.ancestry is not None
            and self.step is not None
            and isinstance(name, str)
            and self.ancestry.precedes(name, self.step)
        ):
            return True
        return self.outer is not None and name in self.outer


class Ancestry:
    """ "Must `a` finish before `b` starts?" for one step list; a chain is answered by file
    position, a DAG by ancestor bit sets (bit i: the step at position i), computed once for
    the list: 5,000 steps chained by depends_on cost 3 MB, where a Python set per step
    cost 600 MB. Past BITSET_STEPS, each question walks the graph instead."""

    BITSET_STEPS = 20_000

    def __init__(self, steps: Sequence[AnyStep]) -> None:
        self.deps = dependencies(steps)
        self.chain = is_chain(steps)
        self.position = {step.id: index for index, step in enumerate(steps)}
        self.bits: dict[str, int] | None = None

    def precedes(self, before: str, step: str) -> bool:
        if before not in self.position:
            return False
        if self.chain:
            return self.position[before] < self.position[step]
        if before in self.deps.get(step, ()):
            return True
        if len(self.position) > self.BITSET_STEPS:
            return before in ancestors(self.deps, step)
        if self.bits is None:
            self.bits = self._ancestor_bits()
        return bool(self.bits.get(step, 0) >> self.position[before] & 1)

    def _ancestor_bits(self) -> dict[str, int]:
        """Every step's ancestors as one integer, in one depth-first pass (no recursion);
        an edge that closes a cycle is left out (the cycle is reported on its own)."""
        deps, position = self.deps, self.position
        bits: dict[str, int] = {}
        for root in deps:
            if root in bits:
                continue
            stack = [(root, iter(deps[root]))]
            bits[root] = -1  # on the stack
            while stack:
                node, pending = stack[-1]
                child = next((dep for dep in pending if dep in deps), None)
                if child is None:
                    stack.pop()
                    total = 0
                    for dep in deps[node]:
                        if dep in deps and bits.get(dep, -1) >= 0:
                            total |= bits[dep] | 1 << position[dep]
                    bits[node] = total
                elif child not in bits:
                    bits[child] = -1
                    stack.append((child, iter(deps[child])))
        return bits


@dataclass(frozen=True)
class Scope:
    """What a step may see: referable step ids and loop names."""

    steps: Visible
    loops: frozenset[str]


@dataclass
class StepInfo:
    """Where a step sits: its document path, the container (loop body, branch, case) that
    holds it, and the parallel step that exports it when it is a single-step branch."""

    path: PathKey
    container: str | None
    export_via: str | None = None


_CEL_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _paths_read(expression: str, name: str) -> list[tuple[str, ...]]:
    """The field paths an expression selects on `name` (`a.output.stdout` -> (output, stdout)),
    string literals left out."""
    code = _CEL_STRING.sub("''", expression)
    pattern = rf"(?<![\w.]){re.escape(name)}((?:\s*\.\s*[A-Za-z_]\w*)+)"
    return [
        tuple(part.strip() for part in match.group(1).split(".")[1:])
        for match in re.finditer(pattern, code)
    ]


def loop_names(step: AnyStep) -> dict[str, str]:
    """The names a step binds for its body, by key: `as` and `index_as`."""
    if isinstance(step, ForEachStep):
        return {"as": step.as_, "index_as": step.index_as}
    if isinstance(step, RepeatStep):
        return {"index_as": step.index_as}
    return {}


@dataclass
class Checker:
    model: Drawer
    doc: ParsedDocument
    path: Path
    chain: tuple[Path, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    where: dict[str, StepInfo] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    owners: dict[str, AnyStep] = field(default_factory=dict)

    def error(self, message: str, position: Position | None, hint: str | None = None) -> None:
        self.problems.append(Problem(message, position, hint=hint))

    def warn(self, message: str, position: Position | None, hint: str | None = None) -> None:
        self.problems.append(Problem(message, position, hint=hint, severity="warning"))

    def at(self, path: PathKey) -> Position:
        return self.doc.source.value(path) or self.doc.source.nearest(path)

    # ids -----------------------------------------------------------------------------------

    def register(self, name: str, path: PathKey, info: StepInfo, loops: frozenset[str]) -> None:
        id_at = self.doc.source.value((*path, "id")) or self.at(path)
        if name in self.where:
            first = self.doc.source.value((*self.where[name].path, "id"))
            line = f" (first at line {first.line})" if first else ""
            self.error(
                f'duplicate step id "{name}"{line}',
                id_at,
                hint="step ids are unique in the whole drawer, nested steps included",
            )
        else:
            self.where[name] = info
        if name in RESERVED_IDS or name in CEL_RESERVED:
            self.error(
                f'"{name}" is a reserved name and cannot be a step id',
                id_at,
                hint="choose another id",
            )
        elif name in loops:
            self.error(f'step id "{name}" is already a loop name in scope', id_at)

    def collect_ids(
        self,
        steps: Sequence[AnyStep],
        path: PathKey,
        container: str | None,
        loops: frozenset[str],
        export_via: str | None = None,
        offset: int = 0,
    ) -> None:
        for index, step in enumerate(steps):
            here = (*path, offset + index)
            self.register(step.id, here, StepInfo(here, container, export_via), loops)
            names = loop_names(step)
            raw = self.node(here)
            for key, name in names.items():
                # Commands see every loop name as DRAWER_VAR_<NAME>: `item` and `Item` clash.
                clash = next((loop for loop in loops if loop.upper() == name.upper()), None)
                if clash is not None:
                    what = (
                        f'loop name "{name}"'
                        if key in raw
                        else f'the default {key} "{name}" of "{step.id}"'
                    )
                    used = (
                        ""
                        if clash == name
                        else f' (as "{clash}": both are DRAWER_VAR_{name.upper()})'
                    )
                    self.error(
                        f"{what} is already used by an enclosing loop{used}",
                        self.at((*here, key)),
                        hint=f"a nested loop's names must differ from its parents': "
                        f"set {key}: to another name",
                    )
                if name in RESERVED_IDS or name in CEL_RESERVED:
                    self.error(f'"{name}" is a reserved name', self.at((*here, key)))
            if len({name.upper() for name in names.values()}) < len(names):
                self.error(
                    f'as "{names["as"]}" and index_as "{names["index_as"]}" are both '
                    f"DRAWER_VAR_{names['as'].upper()}",
                    self.at((*here, "as")),
                )
            inner_loops = loops | set(names.values())
            for number, nested in enumerate(child_lists(step, step.id)):
                key = self.container_key(step, nested, number)
                self.parents[key] = container
                self.labels[key] = nested.group or step.id
                self.owners[key] = step
                if nested.group is not None:
                    group_path = (*here, *nested.keys[:-1])
                    self.register(nested.group, group_path, StepInfo(group_path, container), loops)
                exported = step.id if isinstance(step, ParallelStep) and not nested.group else None
                self.collect_ids(
                    nested.steps, (*here, *nested.keys), key, inner_loops, exported, nested.offset
                )

    @staticmethod
    def container_key(step: AnyStep, nested: StepList, number: int) -> str:
        """Loop bodies are their step's id; each branch and case is a container of its own."""
        if isinstance(step, ForEachStep | RepeatStep):
            return step.id
        return nested.group or f"{step.id}#{number}"

    # lists and references ------------------------------------------------------------------

    def check_list(
        self, steps: Sequence[AnyStep], path: PathKey, outer: Scope, offset: int = 0
    ) -> None:
        ids = {step.id for step in steps}
        for index, step in enumerate(steps):
            for position, dep in enumerate(step.depends_on or ()):
                if dep in ids and dep != step.id:
                    continue
                at = self.at((*path, offset + index, "depends_on", position))
                if dep == step.id:
                    self.error(f'step "{step.id}" depends on itself', at)
                elif dep in self.where:
                    self.error(
                        f'"{dep}" in depends_on of "{step.id}" is not a sibling step',
                        at,
                        hint="depends_on names steps of the same list",
                    )
                else:
                    guess = suggest(dep, sorted(ids - {step.id}))
                    self.error(
                        f'unknown step "{dep}" in depends_on of "{step.id}"',
                        at,
                        hint=f'did you mean "{guess}"?' if guess else None,
                    )
        ancestry = Ancestry(steps)
        deps = ancestry.deps
        cycle = find_cycle(deps) if len(ids) == len(steps) else None
        if cycle:
            first = next(i for i, step in enumerate(steps) if step.id == cycle[0])
            self.error(
                f"dependency cycle: {' -> '.join(cycle)}",
                self.at((*path, offset + first, "depends_on")),
                hint="remove one of these depends_on entries",
            )
        for index, step in enumerate(steps):
            here = (*path, offset + index)
            visible = Visible(outer.steps, ancestry, step.id)
            self.check_step(step, here, Scope(visible, outer.loops))
            inner_loops = outer.loops | set(loop_names(step).values())
            for nested in child_lists(step, step.id):
                inner = Scope(visible, inner_loops)
                self.check_list(nested.steps, (*here, *nested.keys), inner, nested.offset)
            if isinstance(step, RepeatStep):
                body = Visible(visible, extra=frozenset(body_step.id for body_step in step.steps))
                self.check_condition(
                    step.until, (*here, "until"), Scope(body, inner_loops), step.id
                )

    def check_condition(
        self, condition: bool | str, path: PathKey, scope: Scope, owner: str
    ) -> None:
        if isinstance(condition, str):
            if "${" in condition:
                self.check_template(condition, path, scope, owner)
            else:
                self.check_expression(condition, path, 0, scope, owner)

    def check_step(self, step: AnyStep, path: PathKey, scope: Scope) -> None:
        raw = self.node(path)
        if isinstance(step, RunStep) and isinstance(step.run, str):
            self.check_shell(step, path, scope)
        for key_path, text in strings_in(raw, path, skip=STRUCTURE):
            if key_path[-1] in CONDITIONS and "${" not in text:
                self.check_expression(text, key_path, 0, scope, step.id)
            else:
                self.check_template(text, key_path, scope, step.id)
        if isinstance(step, RunStep) and not isinstance(step.run, str):
            for position, arg in enumerate(step.run):
                if isinstance(arg, str):
                    self.check_template(arg, (*path, "run", position), scope, step.id)
        if isinstance(step, WaitStep) and step.until is not None:
            self.check_template(step.until, (*path, "until"), scope, step.id)
        if isinstance(step, SwitchStep):
            for index, case in enumerate(step.cases):
                self.check_condition(case.when, (*path, "cases", index, "when"), scope, step.id)
        if isinstance(step, DrawerStep):
            self.check_subdrawer(step, path)
        if isinstance(step, ForEachStep):
            self.check_loop(step, path)
        for key in ("parallelism", "max_parallelism"):
            if getattr(step, key, None) == 0:
                self.warn(
                    f'{key} 0 in "{step.id}" runs one at a time',
                    self.at((*path, key)),
                    hint='use "all" for no limit',
                )

    def check_loop(self, step: ForEachStep, path: PathKey) -> None:
        """What a loop's `over`, executor and sharding allow."""
        if isinstance(step.over, str) and not is_reference(step.over):
            self.error(
                f'"{step.id}": over is text, not a list, a ${{...}} reference or a source',
                self.at((*path, "over")),
                hint=self.over_hint(step.over),
            )
        if step.executor == "dask" and not dask_installed():
            self.error(
                f'"{step.id}": executor: dask needs Dask, which is not installed',
                self.at((*path, "executor")),
                hint=f"install the extra: {DASK_INSTALL}",
            )
        if step.executor == "dask" and step.delay is not None:
            self.error(
                f'"{step.id}": delay cannot be used with executor: dask',
                self.at((*path, "delay")),
                hint="workers on different machines cannot share one pace; remove delay,"
                " or run the loop with executor: local",
            )
        if step.shard and len(path) > 2:
            self.error(
                f'"{step.id}" is marked shard: true but is not a top-level step',
                self.at((*path, "shard")),
                hint="only a top-level for_each can be sharded across machines",
            )

    def over_hint(self, text: str) -> str:
        """What the author of `over: TEXT` probably meant."""
        if any(mark in text for mark in "*?["):
            return f'to loop over files, write over: {{glob: "{text}"}}'
        root = ROOT_RE.match(text.strip())
        if root and "." in text and (root.group(0) in self.where or root.group(0) == "inputs"):
            return f'a reference is written over: "${{{text.strip()}}}"'
        return (
            "write a list ([a, b, c]), a ${...} reference, or a source: {glob: PATTERN}, "
            "{file: PATH} or {range: [START, STOP]}"
        )

    def check_subdrawer(self, step: DrawerStep, path: PathKey) -> None:
        """The called file: found, valid, not part of a cycle, and given the inputs it takes."""
        from drawer.loader import InvalidDrawer, load_drawer

        at = self.at((*path, "drawer"))
        target = (self.path.parent / step.drawer).resolve()
        chain = (*self.chain, self.path.resolve())
        if target in chain:
            names = [item.name for item in chain[chain.index(target) :]] + [target.name]
            self.error(
                f"sub-drawer cycle: {' -> '.join(names)}",
                at,
                hint="a drawer cannot call itself, directly or through others",
            )
            return
        if not target.is_file():
            self.error(
                f'sub-drawer "{step.drawer}" not found (looked at {target})',
                at,
                hint="the path is relative to the calling file",
            )
            return
        try:
            child = load_drawer(target, chain)
        except InvalidDrawer as invalid:
            errors = [problem for problem in invalid.problems if problem.severity == "error"]
            first = errors[0] if errors else invalid.problems[0]
            where = f":{first.position.line}:{first.position.col}" if first.position else ""
            self.error(
                f'sub-drawer "{step.drawer}" is invalid ({len(errors)} error(s)); first: '
                f"{target.name}{where}: {first.message}",
                at,
                hint=f"run: drawer {step.drawer} validate",
            )
            return
        for name in step.inputs:
            if name not in child.model.inputs:
                guess = suggest(name, list(child.model.inputs))
                self.error(
                    f'sub-drawer "{step.drawer}" has no input "{name}"',
                    self.doc.source.key((*path, "inputs", name)) or at,
                    hint=f'did you mean "{guess}"?' if guess else None,
                )
        for name, value in step.inputs.items():
            spec = child.model.inputs.get(name)
            if spec is not None and spec.type == "string":
                self.check_text_as_written(value, (*path, "inputs", name), f'input "{name}"')
        for name, spec in child.model.inputs.items():
            if spec.required and spec.default is None and name not in step.inputs:
                self.error(
                    f'sub-drawer "{step.drawer}" needs input "{name}"',
                    at,
                    hint=f'add it under inputs: of step "{step.id}"',
                )

    def check_text_as_written(self, value: Any, path: PathKey, what: str) -> None:
        """A text value given as an unquoted scalar that YAML reads as another text (`1.10` as
        1.1, `0x10` as 16, `True` as true) is refused: the file cannot mean the number."""
        written = self.doc.source.text(path)
        if not isinstance(value, int | float) or written is None or written == to_text(value):
            return
        self.error(
            f"{what} is text, but {written} reads as {to_text(value)}",
            self.at(path),
            hint=f"quote it to pass the text as written: '{written}'",
        )

    def check_shell(self, step: RunStep, path: PathKey, scope: Scope) -> None:
        assert isinstance(step.run, str)
        run_path = (*path, "run")
        script = step.run
        template = self.parse(script, run_path)
        if template is None:
            return
        single = template.single_ref
        if single is not None and not script.replace(single.text, "").strip():
            self.error(
                f'the run of "{step.id}" is nothing but a reference',
                self.at(run_path),
                hint="a command must be written out; pass data as ${...} arguments",
            )
            return
        shell = step.shell or self.model.defaults.shell
        if shell == "python":
            self.add_shell_issues(find_python_refs(script), run_path)
            return

        def is_drawer_ref(content: str) -> bool:
            if any(op in content for op in SHELL_OPERATORS):
                return False
            path = parse_plain_path(content)
            if path is not None and len(path) > 1:
                return True
            root = ROOT_RE.match(content.strip())
            if root is not None and self.is_root(root.group(0), scope):
                return True
            # `${1 + inputs.n}`, `${(a + b) * 2}`: an expression that is no shell expansion
            return not is_shell_parameter(content)

        compiled, issues = compile_shell(script, is_drawer_ref)
        self.add_shell_issues(issues, run_path)
        for shell_ref in compiled.refs:
            ref = next((r for r in template.refs if r.start == shell_ref.start), None)
            if ref is not None:
                self.check_ref(ref, run_path, scope, step.id)

    def add_shell_issues(self, issues: list[ShellIssue], run_path: PathKey) -> None:
        for issue in issues:
            position = self.in_scalar(run_path, issue.offset)
            self.problems.append(
                Problem(issue.message, position, hint=issue.hint, severity=issue.severity)
            )

    def is_root(self, root: str, scope: Scope) -> bool:
        return root in RESERVED_IDS or root in scope.loops or root in self.where

    def parse(self, text: str, path: PathKey) -> Any:
        try:
            return parse_template(text)
        except RefError as error:
            self.error(str(error), self.at(path), hint="close it with } or write $${ for a literal")
            return None

    def in_scalar(self, path: PathKey, offset: int) -> Position:
        return self.doc.source.in_scalar(path, offset) or self.at(path)

    def check_template(self, text: str, path: PathKey, scope: Scope, owner: str | None) -> None:
        template = self.parse(text, path)
        if template is not None:
            for ref in template.refs:
                self.check_ref(ref, path, scope, owner)

    def check_ref(self, ref: Ref, path: PathKey, scope: Scope, owner: str | None) -> None:
        at = self.in_scalar(path, ref.start)
        if ref.path is None:
            self.check_expression(ref.content, path, ref.start + 2, scope, owner)
            return
        root, rest = ref.path[0], ref.path[1:]
        if root == "inputs":
            if rest and rest[0] not in self.model.inputs:
                guess = suggest(rest[0], list(self.model.inputs))
                self.error(
                    f'{ref.text}: no input "{rest[0]}"',
                    at,
                    hint=f'did you mean "{guess}"?' if guess else "declare it under inputs:",
                )
            return
        if root == "steps":
            if not rest:
                return
            root, rest = rest[0], rest[1:]
        elif root in ("env", "run", "drawer") or root in scope.loops:
            if root in ("run", "drawer") and rest and rest[0] not in RUN_FIELDS:
                self.error(f"{ref.text}: {root} has id, dir and name", at)
            return
        self.check_step_ref(ref, root, rest, at, scope, owner)

    def check_expression(
        self, text: str, path: PathKey, offset: int, scope: Scope, owner: str | None
    ) -> None:
        """A CEL expression: its syntax, and every name, step and input it reads."""
        try:
            compiled = compile_expression(text)
        except ExprError as error:
            self.error(
                str(error),
                self.in_scalar(path, offset + (error.offset or 0)),
                hint="expressions are CEL: e.g. ${inputs.count * 2}, "
                "${size(steps['emit-ids'].output.lines)}, x.status == 'ok'",
            )
            return
        at = self.in_scalar(path, offset)
        ref = Ref(text, offset, offset + len(text), None)
        for name in compiled.names:
            if name not in RESERVED_IDS and name not in scope.loops:
                self.check_step_ref(ref, name, (), at, scope, owner)
                for fields in _paths_read(text, name) if name in self.where else ():
                    if fields[0] not in STEP_FIELDS:
                        self.check_step_ref(ref, name, fields, at, scope, owner)
        for step_id in compiled.step_ids:
            self.check_step_ref(ref, step_id, (), at, scope, owner)
        for name in compiled.unknown_functions:
            self.error(
                f"${{{text}}}: unknown function {name}()",
                at,
                hint="CEL here has: " + ", ".join(sorted(KNOWN_FUNCTIONS)[:12]) + ", ...",
            )
        for name in compiled.input_names:
            if name not in self.model.inputs:
                guess = suggest(name, list(self.model.inputs))
                self.error(
                    f'${{{text}}}: no input "{name}"',
                    at,
                    hint=f'did you mean "{guess}"?' if guess else "declare it under inputs:",
                )

    def check_step_ref(
        self,
        ref: Ref,
        root: str,
        rest: tuple[str, ...],
        at: Position,
        scope: Scope,
        owner: str | None,
    ) -> None:
        if rest and rest[0] not in STEP_FIELDS:
            field = suggest(rest[0], STEP_FIELDS)  # `outptu`: a typo, not an output's name
            meant = (field, *rest[1:]) if field else ("output", *rest)
            self.error(
                f"{ref.text}: a step has output, status and error",
                at,
                hint=f"{'did you mean' if field else 'write'} ${{{root}.{'.'.join(meant)}}}"
                + ("?" if field else ""),
            )
            return
        info = self.where.get(root)
        if root in scope.steps or (info is not None and info.export_via in scope.steps):
            return
        if info is None:
            names = sorted(set(self.where) | scope.loops | {"inputs", "env", "run", "drawer"})
            guess = suggest(root, names)
            self.error(
                f'{ref.text}: unknown name "{root}"',
                at,
                hint=f'did you mean "{guess}"?' if guess else None,
            )
        elif root == owner:
            self.error(f'{ref.text}: step "{root}" refers to itself', at)
        elif info.container is not None and (owner is None or not self.inside(owner, root)):
            label = self.labels.get(info.container, info.container)
            hint = self.outside_hint(root, info, owner)
            self.error(
                f'{ref.text}: "{root}" is inside "{label}" and cannot be referenced from '
                "outside it",
                at,
                hint=hint,
            )
        elif owner is not None and info.container == self.where[owner].container:
            self.error(
                f'{ref.text}: step "{root}" may not have finished before "{owner}" starts',
                at,
                hint=f'add "{root}" to the depends_on of "{owner}"',
            )
        else:
            self.error(
                f'{ref.text}: step "{root}" may not have finished here',
                at,
                hint="a step may reference the steps it depends on",
            )

    def outside_hint(self, root: str, info: StepInfo, owner: str | None) -> str:
        """How to reach a step of a container from outside it: through the container."""
        container = self.owners.get(info.container or "")
        if container is None:
            return "reference the step that contains it"
        if isinstance(container, ParallelStep):
            if info.export_via is None:
                group = self.labels[info.container or ""]
                return f"after the parallel step: ${{{container.id}.output.{group}.output.{root}}}"
            if owner is not None and self.within(owner, container.id):
                return "a branch never sees a sibling branch's steps: run it before the parallel"
            return f'add "{container.id}" to depends_on, then ${{{root}.output}} works'
        if isinstance(container, SwitchStep):
            return f"after the switch: ${{{container.id}.output.steps.{root}.output}}"
        return f"use the loop's output: ${{{container.id}.output.results}}"

    def within(self, step_id: str, container_step: str) -> bool:
        """True when a step sits (at any depth) in a list nested in `container_step`."""
        current = self.where[step_id].container if step_id in self.where else None
        while current is not None:
            if self.owners[current].id == container_step:
                return True
            current = self.parents.get(current)
        return False

    def inside(self, owner: str, target: str) -> bool:
        """True when the container holding `target` also encloses `owner`."""
        container = self.where[target].container
        current = self.where[owner].container if owner in self.where else None
        while current is not None:
            if current == container:
                return True
            current = self.parents.get(current)
        return False

    def node(self, path: PathKey) -> Any:
        node: Any = self.doc.data
        for part in path:
            node = node[part]
        return node


def strings_in(
    value: Any,
    path: PathKey,
    skip: frozenset[str] | set[str] = frozenset(),
    seen: set[int] | None = None,
) -> Iterator[tuple[PathKey, str]]:
    """Every string inside a value with its document path, skipping some top-level keys.

    A list or dict that appears more than once (a YAML alias) is walked once, at its first
    path: its strings are the same text in the file each time."""
    if isinstance(value, str):
        yield path, value
        return
    if not isinstance(value, (dict, list)):
        return
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from strings_in(item, (*path, key), seen=seen)
    else:
        for index, item in enumerate(value):
            yield from strings_in(item, (*path, index), seen=seen)


def check_drawer(
    model: Drawer, doc: ParsedDocument, path: Path, chain: tuple[Path, ...] = ()
) -> list[Problem]:
    """Every semantic problem of a schema-valid drawer, errors and warnings."""
    checker = Checker(model, doc, path, chain)
    checker.collect_ids(model.steps, ("steps",), None, frozenset())
    top = Scope(Visible(), frozenset())
    for key in ("env", "execution", "defaults"):
        for key_path, text in strings_in(doc.data.get(key), (key,)):
            checker.check_template(text, key_path, top, None)
    variables: dict[str, str] = {}
    for name, spec in model.inputs.items():
        first = variables.setdefault(env_name(name), name)
        if first != name:
            checker.error(
                f'inputs "{first}" and "{name}" would both be set by {env_name(name)}',
                checker.doc.source.key(("inputs", name)) or checker.at(("inputs", name)),
                hint="rename one: input names must differ in more than case and - or _",
            )
        if spec.default is not None:
            try:
                check_type(name, spec, spec.default)
            except InputError as error:  # a run would refuse it before anything starts
                checker.error(str(error), checker.at(("inputs", name, "default")))
        if spec.secret and isinstance(spec.default, str) and 0 < len(spec.default) < 4:
            checker.error(
                f'the default of secret input "{name}" is shorter than 4 characters',
                checker.at(("inputs", name, "default")),
            )
    checker.check_list(model.steps, ("steps",), top)
    everything = Scope(Visible(extra=frozenset(step.id for step in model.steps)), frozenset())
    for key_path, text in strings_in(doc.data.get("outputs"), ("outputs",)):
        checker.check_template(text, key_path, everything, None)
    return sorted(
        checker.problems,
        key=lambda problem: (
            (problem.position.line, problem.position.col) if problem.position else (0, 0)
        ),
    )
