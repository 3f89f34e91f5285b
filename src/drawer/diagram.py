"""The step graph of a drawer file as Mermaid, Graphviz DOT or a text tree (`drawer FILE graph`).

Every step is one node however often it runs: a loop body is drawn once, so the graph's size
follows the file, never the item count. Node ids come from the step ids (made safe for Mermaid)
and are the same in every rendering, so a graph coloured by run statuses matches the plain one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from drawer import paths
from drawer.graph import dependencies
from drawer.model import (
    AnyStep,
    Drawer,
    DrawerStep,
    FileSource,
    ForEachStep,
    GlobSource,
    OverValue,
    ParallelStep,
    RangeSource,
    RepeatStep,
    SwitchStep,
    child_lists,
)
from drawer.records import CANCELLED, FAILED, OK, SKIPPED

FORMATS = ("mermaid", "dot", "text")

STATUS_STYLES = {
    OK: "fill:#dafbe1,stroke:#1a7f37",
    FAILED: "fill:#ffebe9,stroke:#cf222e",
    SKIPPED: "fill:#f6f8fa,stroke:#8c959f,color:#57606a",
    CANCELLED: "fill:#fff8c5,stroke:#9a6700",
}
# A definition that ran many times (a loop body) takes the colour of its worst execution.
STATUS_RANK = (FAILED, CANCELLED, OK, SKIPPED)
"""Statuses from worst to least: the one a node shows when its executions differ."""


def worse(status: str, known: str | None) -> bool:
    """True when `status` should replace `known` as a node's colour."""
    if status not in STATUS_RANK:
        return False
    return known is None or STATUS_RANK.index(status) < STATUS_RANK.index(known)


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")
_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}

Edge = tuple["Box", "Box"]


@dataclass(frozen=True)
class Box:
    """A step, or a list of steps drawn as a box of its own (a branch group, a switch case)."""

    node_id: str
    path: str
    label: str
    line: str
    step: AnyStep | None
    children: tuple[Box, ...] = ()
    edges: tuple[Edge, ...] = ()

    @property
    def is_cluster(self) -> bool:
        """Drawn as a subgraph: a container step or a list box (even an empty one)."""
        return self.step is None or isinstance(
            self.step, ForEachStep | RepeatStep | ParallelStep | SwitchStep
        )

    def walk(self) -> Iterator[Box]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True)
class Diagram:
    """The boxes of a drawer's top-level list, and that list's dependency edges."""

    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]

    def walk(self) -> Iterator[Box]:
        for box in self.boxes:
            yield from box.walk()

    def all_edges(self) -> Iterator[Edge]:
        """Every dependency edge, outer lists first, each list's in file order."""
        yield from self.edges
        for box in self.walk():
            yield from box.edges

    def node_ids(self) -> dict[str, str]:
        """Definition path (`lint.ruff`, `route.0`, `block.g1`) -> node id."""
        return {box.path: box.node_id for box in self.walk()}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _over(over: OverValue) -> str:
    if isinstance(over, GlobSource):
        return f"glob {over.glob}"
    if isinstance(over, FileSource):
        return f"file {over.file} ({over.format})"
    if isinstance(over, RangeSource):
        return f"range({', '.join(str(bound) for bound in over.range)})"
    if isinstance(over, str):
        return over
    return f"{len(over)} items"


def _details(step: AnyStep) -> str:
    """The kind and, for loops and calls, the parameters that shape the run, briefly."""
    if isinstance(step, ForEachStep):
        parts = [f"for_each over {_over(step.over)}"]
        if step.parallelism != 1:
            parts.append(f"parallelism {step.parallelism}")
        return ", ".join(parts)
    if isinstance(step, RepeatStep):
        parts = [f"repeat until {_scalar(step.until)}", f"max_iterations {step.max_iterations}"]
        if step.parallelism != 1:
            parts.append(f"parallelism {step.parallelism}")
        return ", ".join(parts)
    if isinstance(step, ParallelStep) and step.max_parallelism != "all":
        return f"parallel, max_parallelism {step.max_parallelism}"
    if isinstance(step, DrawerStep):
        return f"drawer {step.drawer}"
    return step.kind


def _label(step: AnyStep) -> str:
    """Id, kind when not `run` (with the called file for `drawer`), and the display name."""
    text = step.id
    if isinstance(step, DrawerStep):
        text += f" (drawer {step.drawer})"
    elif step.kind != "run":
        text += f" ({step.kind})"
    return f"{text}: {step.name}" if step.name else text


class _Builder:
    """Walks the model once, giving each box a node id no other box has."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def node_id(self, name: str) -> str:
        base = "s_" + _UNSAFE_ID.sub("_", name)
        node_id, number = base, 1
        while node_id in self.taken:
            number += 1
            node_id = f"{base}_{number}"
        self.taken.add(node_id)
        return node_id

    def step_list(self, steps: Sequence[AnyStep], prefix: str) -> tuple[list[Box], list[Edge]]:
        deps = dependencies(steps)
        boxes: dict[str, Box] = {}
        previous: tuple[str, ...] = ()
        for step in steps:
            waits_for = deps[step.id]
            shown = "" if waits_for == previous else f"  ← {', '.join(waits_for) or '(none)'}"
            boxes[step.id] = self.step_box(step, _join(prefix, step.id), shown)
            previous = (step.id,)
        edges = [(boxes[dep], boxes[step.id]) for step in steps for dep in deps[step.id]]
        return list(boxes.values()), edges

    def step_box(self, step: AnyStep, path: str, shown_deps: str) -> Box:
        node_id = self.node_id(step.id)
        children: list[Box] = []
        edges: list[Edge] = []
        for number, nested in enumerate(child_lists(step, path)):
            if isinstance(step, SwitchStep):
                is_case = number < len(step.cases)
                title = f"when {_scalar(step.cases[number].when)}" if is_case else "default"
                name = f"{step.id}__{number if is_case else 'default'}"
                children.append(self.list_box(name, nested.prefix, title, nested.steps))
            elif nested.group is not None:
                title = f"{nested.group} (group)"
                children.append(self.list_box(nested.group, nested.prefix, title, nested.steps))
            else:
                boxes, list_edges = self.step_list(nested.steps, nested.prefix)
                children.extend(boxes)
                edges.extend(list_edges)
        name = f": {step.name}" if step.name else ""
        line = f"{step.id} ({_details(step)}){name}{shown_deps}"
        return Box(node_id, path, _label(step), line, step, tuple(children), tuple(edges))

    def list_box(self, name: str, path: str, title: str, steps: Sequence[AnyStep]) -> Box:
        node_id = self.node_id(name)
        boxes, edges = self.step_list(steps, path)
        return Box(node_id, path, title, title, None, tuple(boxes), tuple(edges))


def build_diagram(model: Drawer) -> Diagram:
    """The drawer's boxes and edges, with node ids fixed by the file alone."""
    boxes, edges = _Builder().step_list(model.steps, "")
    return Diagram(tuple(boxes), tuple(edges))


def definition_path(step_path: str) -> str | None:
    """`lint[3].ruff` -> `lint.ruff`; None for an iteration's own record (`lint[3]`)."""
    if paths.is_iteration(step_path):
        return None
    return paths.definition_path(step_path)


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def _mermaid_lines(diagram: Diagram) -> list[str]:
    lines = ["flowchart TD"]

    def emit(box: Box, depth: int) -> None:
        pad = "    " * depth
        label = f'"{_mermaid_text(box.label)}"'
        if box.is_cluster:
            lines.append(f"{pad}subgraph {box.node_id} [{label}]")
            for child in box.children:
                emit(child, depth + 1)
            lines.append(f"{pad}end")
        elif isinstance(box.step, DrawerStep):
            lines.append(f"{pad}{box.node_id}[[{label}]]")
        else:
            lines.append(f"{pad}{box.node_id}[{label}]")

    for box in diagram.boxes:
        emit(box, 1)
    lines.extend(
        f"    {source.node_id} --> {target.node_id}" for source, target in diagram.all_edges()
    )
    return lines


def render_mermaid(model: Drawer) -> str:
    """A Mermaid flowchart: containers as subgraphs, edges into a container drawn to it."""
    return "\n".join(_mermaid_lines(build_diagram(model))) + "\n"


def render_status_mermaid(model: Drawer, statuses: Mapping[str, str]) -> str:
    """The Mermaid flowchart with each node coloured by its status in a run.

    `statuses` maps step paths to statuses as a run document names them; every iteration of a
    loop body (`lint[3].ruff`) counts towards the body's one node, the worst status winning.
    """
    diagram = build_diagram(model)
    node_ids = diagram.node_ids()
    worst: dict[str, str] = {}
    for step_path, status in statuses.items():
        path = definition_path(step_path)
        if path not in node_ids:
            continue
        if worse(status, worst.get(node_ids[path])):
            worst[node_ids[path]] = status
    lines = _mermaid_lines(diagram)
    lines.extend(f"    classDef {status} {style}" for status, style in STATUS_STYLES.items())
    for status in STATUS_STYLES:
        coloured = [box.node_id for box in diagram.walk() if worst.get(box.node_id) == status]
        if coloured:
            lines.append(f"    class {','.join(coloured)} {status}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _leaves(box: Box) -> list[Box]:
    return [inner for inner in box.walk() if not inner.is_cluster]


def _dot_end(box: Box, last: bool) -> tuple[str, str | None]:
    """The node an edge really touches, and the cluster it is clipped to (`compound=true`)."""
    if not box.is_cluster:
        return box.node_id, None
    leaves = _leaves(box)
    node = (leaves[-1] if last else leaves[0]).node_id if leaves else box.node_id
    return node, f"cluster_{box.node_id}"


def render_dot(model: Drawer, title: str) -> str:
    """A Graphviz digraph: containers as `cluster_` subgraphs, edges clipped at their border."""
    diagram = build_diagram(model)
    edges = list(diagram.all_edges())
    lines = [f"digraph {_dot_text(title)} {{"]
    if any(source.is_cluster or target.is_cluster for source, target in edges):
        lines.append("    compound=true;")
    lines.append("    node [shape=box];")

    def emit(box: Box, depth: int) -> None:
        pad = "    " * depth
        if not box.is_cluster:
            extra = ", peripheries=2" if isinstance(box.step, DrawerStep) else ""
            lines.append(f"{pad}{box.node_id} [label={_dot_text(box.label)}{extra}];")
            return
        lines.append(f"{pad}subgraph cluster_{box.node_id} {{")
        lines.append(f"{pad}    label={_dot_text(box.label)};")
        if not _leaves(box):
            # An empty body still needs a node for edges to be clipped to its cluster.
            lines.append(f"{pad}    {box.node_id} [shape=point, style=invis];")
        for child in box.children:
            emit(child, depth + 1)
        lines.append(f"{pad}}}")

    for box in diagram.boxes:
        emit(box, 1)
    for source, target in edges:
        tail, tail_cluster = _dot_end(source, last=True)
        head, head_cluster = _dot_end(target, last=False)
        clip = [f"ltail={tail_cluster}"] if tail_cluster else []
        clip += [f"lhead={head_cluster}"] if head_cluster else []
        attributes = f" [{', '.join(clip)}]" if clip else ""
        lines.append(f"    {tail} -> {head}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_text(model: Drawer, title: str) -> str:
    """An indented tree for a terminal; `← a, b` where a step does not just follow the one above."""
    lines = [title]

    def emit(boxes: Sequence[Box], indent: str) -> None:
        for number, box in enumerate(boxes):
            last = number == len(boxes) - 1
            lines.append(f"{indent}{'└─' if last else '├─'} {box.line}")
            emit(box.children, indent + ("   " if last else "│  "))

    emit(build_diagram(model).boxes, "")
    return "\n".join(lines) + "\n"


def render(model: Drawer, fmt: str, title: str) -> str:
    """The graph in one of FORMATS; `title` (the drawer's name) heads the dot and text forms."""
    if fmt == "mermaid":
        return render_mermaid(model)
    if fmt == "dot":
        return render_dot(model, title)
    if fmt == "text":
        return render_text(model, title)
    raise ValueError(f"unknown graph format {fmt!r}; formats: {', '.join(FORMATS)}")
