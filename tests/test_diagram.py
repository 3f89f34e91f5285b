"""`drawer FILE graph`: the step graph as Mermaid, DOT and a text tree, and coloured by status."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drawer.diagram import (
    build_diagram,
    definition_path,
    render,
    render_dot,
    render_mermaid,
    render_status_mermaid,
    render_text,
)
from drawer.model import Drawer
from tests.conftest import load, run_cli

LINT = """\
    name: lint-python
    steps:
      - id: files
        run: git ls-files
      - id: lint
        kind: for_each
        over: ${files.output.lines}
        as: path
        parallelism: 8
        steps:
          - id: ruff
            run: [ruff, check, "${path}"]
      - id: summary
        kind: value
        value: ${lint.output.failed}
"""

LINT_TEXT = """\
lint-python
├─ files (run)
├─ lint (for_each over ${files.output.lines}, parallelism 8)
│  └─ ruff (run)
└─ summary (value)
"""

LINT_MERMAID = """\
flowchart TD
    s_files["files"]
    subgraph s_lint ["lint (for_each)"]
        s_ruff["ruff"]
    end
    s_summary["summary (value)"]
    s_files --> s_lint
    s_lint --> s_summary
"""

LINT_DOT = """\
digraph "lint-python" {
    compound=true;
    node [shape=box];
    s_files [label="files"];
    subgraph cluster_s_lint {
        label="lint (for_each)";
        s_ruff [label="ruff"];
    }
    s_summary [label="summary (value)"];
    s_files -> s_ruff [lhead=cluster_s_lint];
    s_ruff -> s_summary [ltail=cluster_s_lint];
}
"""

EVERY_KIND = """\
    name: every-kind
    inputs:
      mode: {type: string, default: slow}
    steps:
      - id: emit-ids
        name: 'List "ids" <fast> & #1'
        run: echo a
      - id: each
        kind: for_each
        over: {range: [0, 4]}
        parallelism: all
        steps:
          - {id: inner-a, run: echo a}
          - {id: inner-b, run: echo b, depends_on: []}
      - id: block
        kind: parallel
        max_parallelism: 2
        depends_on: [emit-ids]
        branches:
          - {id: b1, run: echo 1}
          - id: grp
            steps:
              - {id: g-one, run: echo x}
              - {id: g-two, kind: wait, duration: 1s}
          - id: nested
            kind: for_each
            over: [1, 2]
            steps:
              - {id: deep, run: echo d}
      - id: tries
        kind: repeat
        max_iterations: 3
        parallelism: 2
        until: ${probe.output.exit_code == 0}
        steps:
          - {id: probe, run: "true"}
      - id: route
        kind: switch
        cases:
          - when: ${inputs.mode == "fast"}
            steps:
              - {id: quick, kind: value, value: 1}
          - when: true
            steps: []
        default:
          - {id: slow, kind: value, value: 2}
      - id: call
        kind: drawer
        drawer: ./other.yaml
      - id: end
        kind: wait
        duration: 1s
        depends_on: [each, block]
"""

EVERY_KIND_TEXT = """\
every-kind
├─ emit-ids (run): List "ids" <fast> & #1
├─ each (for_each over range(0, 4), parallelism all)
│  ├─ inner-a (run)
│  └─ inner-b (run)  ← (none)
├─ block (parallel, max_parallelism 2)  ← emit-ids
│  ├─ b1 (run)
│  ├─ grp (group)
│  │  ├─ g-one (run)
│  │  └─ g-two (wait)
│  └─ nested (for_each over 2 items)
│     └─ deep (run)
├─ tries (repeat until ${probe.output.exit_code == 0}, max_iterations 3, parallelism 2)
│  └─ probe (run)
├─ route (switch)
│  ├─ when ${inputs.mode == "fast"}
│  │  └─ quick (value)
│  ├─ when true
│  └─ default
│     └─ slow (value)
├─ call (drawer ./other.yaml)
└─ end (wait)  ← each, block
"""

EVERY_KIND_MERMAID = """\
flowchart TD
    s_emit_ids["emit-ids: List #quot;ids#quot; #lt;fast#gt; #amp; #35;1"]
    subgraph s_each ["each (for_each)"]
        s_inner_a["inner-a"]
        s_inner_b["inner-b"]
    end
    subgraph s_block ["block (parallel)"]
        s_b1["b1"]
        subgraph s_grp ["grp (group)"]
            s_g_one["g-one"]
            s_g_two["g-two (wait)"]
        end
        subgraph s_nested ["nested (for_each)"]
            s_deep["deep"]
        end
    end
    subgraph s_tries ["tries (repeat)"]
        s_probe["probe"]
    end
    subgraph s_route ["route (switch)"]
        subgraph s_route__0 ["when ${inputs.mode == #quot;fast#quot;}"]
            s_quick["quick (value)"]
        end
        subgraph s_route__1 ["when true"]
        end
        subgraph s_route__default ["default"]
            s_slow["slow (value)"]
        end
    end
    s_call[["call (drawer ./other.yaml)"]]
    s_end["end (wait)"]
    s_emit_ids --> s_each
    s_emit_ids --> s_block
    s_block --> s_tries
    s_tries --> s_route
    s_route --> s_call
    s_each --> s_end
    s_block --> s_end
    s_g_one --> s_g_two
"""


@pytest.fixture
def every_kind(tmp_path: Path) -> Drawer:
    (tmp_path / "other.yaml").write_text("steps:\n  - {id: hello, run: echo hi}\n")
    return load(tmp_path, EVERY_KIND).model


@pytest.mark.parametrize(
    ("fmt", "expected"), [("text", LINT_TEXT), ("mermaid", LINT_MERMAID), ("dot", LINT_DOT)]
)
def test_small_drawer_in_each_format(tmp_path: Path, fmt: str, expected: str) -> None:
    loaded = load(tmp_path, LINT)
    assert render(loaded.model, fmt, loaded.name) == expected


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats: mermaid, dot, text"):
        render(load(tmp_path, LINT).model, "svg", "x")


def test_every_kind_as_a_text_tree(every_kind: Drawer) -> None:
    assert render_text(every_kind, "every-kind") == EVERY_KIND_TEXT


def test_every_kind_as_mermaid_subgraphs(every_kind: Drawer) -> None:
    assert render_mermaid(every_kind) == EVERY_KIND_MERMAID


def test_every_kind_as_dot_clusters(every_kind: Drawer) -> None:
    lines = render_dot(every_kind, "every-kind").splitlines()
    assert lines[:3] == ['digraph "every-kind" {', "    compound=true;", "    node [shape=box];"]
    nested = [
        "        subgraph cluster_s_grp {",
        '            label="grp (group)";',
        '            s_g_one [label="g-one"];',
    ]
    assert lines[lines.index(nested[0]) : lines.index(nested[0]) + 3] == nested
    assert '    s_emit_ids [label="emit-ids: List \\"ids\\" <fast> & #1"];' in lines
    # An empty case still has a node, so edges can be clipped to its cluster.
    assert "            s_route__1 [shape=point, style=invis];" in lines
    assert '    s_call [label="call (drawer ./other.yaml)", peripheries=2];' in lines
    # Container to container: from the last node of one to the first of the other, clipped.
    assert "    s_deep -> s_probe [ltail=cluster_s_block, lhead=cluster_s_tries];" in lines
    assert "    s_slow -> s_call [ltail=cluster_s_route];" in lines
    assert "    s_g_one -> s_g_two;" in lines
    assert lines[-1] == "}"


LOOP = "kind: for_each, steps: [{id: body, run: x}]"


@pytest.mark.parametrize(
    ("step", "shown"),
    [
        (f"{LOOP}, over: {{glob: 'src/**/*.py'}}", "for_each over glob src/**/*.py"),
        (f"{LOOP}, over: {{file: urls.txt, format: jsonl}}", "for_each over file urls.txt (jsonl)"),
        (f"{LOOP}, over: {{range: [10]}}", "for_each over range(10)"),
        (f"{LOOP}, over: [a, b, c]", "for_each over 3 items"),
        (f"{LOOP}, over: '${{inputs.names}}'", "for_each over ${inputs.names}"),
        (
            "kind: repeat, until: true, max_iterations: 2, steps: [{id: body, run: x}]",
            "repeat until true, max_iterations 2",
        ),
    ],
)
def test_text_tree_shows_loop_parameters_briefly(tmp_path: Path, step: str, shown: str) -> None:
    text = f"""\
        inputs:
          names: {{type: array, default: []}}
        steps:
          - {{id: walk, {step}}}
        """
    lines = render_text(load(tmp_path, text).model, "d").splitlines()
    assert lines == ["d", f"└─ walk ({shown})", "   └─ body (run)"]


def test_dot_without_clusters_is_not_compound(tmp_path: Path) -> None:
    model = load(tmp_path, "steps:\n  - {id: a, run: x}\n  - {id: b, run: y}\n").model
    assert render_dot(model, "d") == (
        'digraph "d" {\n'
        "    node [shape=box];\n"
        '    s_a [label="a"];\n'
        '    s_b [label="b"];\n'
        "    s_a -> s_b;\n"
        "}\n"
    )


def test_mermaid_ids_are_safe_unique_and_keep_the_id_as_label(tmp_path: Path) -> None:
    model = load(
        tmp_path,
        """\
        steps:
          - {id: emit-ids, run: x}
          - {id: emit_ids, run: y, name: Emit}
          - {id: end, run: z, depends_on: [emit-ids]}
        """,
    ).model
    assert build_diagram(model).node_ids() == {
        "emit-ids": "s_emit_ids",
        "emit_ids": "s_emit_ids_2",
        "end": "s_end",
    }
    assert render_mermaid(model) == (
        "flowchart TD\n"
        '    s_emit_ids["emit-ids"]\n'
        '    s_emit_ids_2["emit_ids: Emit"]\n'
        '    s_end["end"]\n'
        "    s_emit_ids --> s_emit_ids_2\n"
        "    s_emit_ids --> s_end\n"
    )


def test_status_mermaid_defines_every_class_and_uses_the_needed_ones(tmp_path: Path) -> None:
    model = load(tmp_path, LINT).model
    coloured = render_status_mermaid(model, {"files": "ok", "lint[0].ruff": "ok"})
    assert coloured.count("classDef ") == 4
    assert coloured.endswith("    class s_files,s_ruff ok\n")


def test_status_mermaid_colours_the_same_nodes(every_kind: Drawer) -> None:
    statuses = {
        "emit-ids": "ok",
        "each": "failed",
        "each[0]": "ok",  # an iteration's own record: the loop's status speaks for it
        "each[0].inner-a": "ok",
        "each[1].inner-a": "failed",  # the worst iteration colours the body's one node
        "each[2].inner-a": "ok",
        "each[0].inner-b": "ok",
        "each[1].inner-b": "cancelled",
        "block.grp": "ok",
        "block.nested[1].deep": "skipped",
        "tries#2.probe": "ok",
        "route.default.slow": "ok",
        "call.hello": "ok",  # inside the called file: not drawn
        "end": "running",
    }
    coloured = render_status_mermaid(every_kind, statuses)
    plain = render_mermaid(every_kind)
    assert coloured.startswith(plain)
    assert coloured[len(plain) :] == (
        "    classDef ok fill:#dafbe1,stroke:#1a7f37\n"
        "    classDef failed fill:#ffebe9,stroke:#cf222e\n"
        "    classDef skipped fill:#f6f8fa,stroke:#8c959f,color:#57606a\n"
        "    classDef cancelled fill:#fff8c5,stroke:#9a6700\n"
        "    class s_emit_ids,s_grp,s_probe,s_slow ok\n"
        "    class s_each,s_inner_a failed\n"
        "    class s_deep skipped\n"
        "    class s_inner_b cancelled\n"
    )


@pytest.mark.parametrize(
    ("step_path", "expected"),
    [
        ("lint", "lint"),
        ("lint[3].ruff", "lint.ruff"),
        ("tries#2.probe", "tries.probe"),
        ("outer[1].inner[0].leaf", "outer.inner.leaf"),
        ("route.default.x", "route.default.x"),
        ("block.b1", "block.b1"),
        ("lint[3]", None),
        ("tries#2", None),
    ],
)
def test_definition_path(step_path: str, expected: str | None) -> None:
    assert definition_path(step_path) == expected


def test_cli_graph_prints_each_format(tmp_path: Path) -> None:
    (tmp_path / "lint.yaml").write_text(textwrap.dedent(LINT))
    for args, expected in (
        ((), LINT_TEXT),
        (("--format", "mermaid"), LINT_MERMAID),
        (("--format", "dot"), LINT_DOT),
        (("--format", "text"), LINT_TEXT),
    ):
        result = run_cli("lint.yaml", "graph", *args, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


def test_cli_graph_refuses_an_invalid_file_and_an_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("steps:\n  - {id: a, run: x, depends_on: [b]}\n")
    result = run_cli("bad.yaml", "graph", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert 'unknown step "b" in depends_on' in result.stderr
    (tmp_path / "lint.yaml").write_text(textwrap.dedent(LINT))
    result = run_cli("lint.yaml", "graph", "--format", "bogus", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert "bogus" in result.stderr


def test_cli_help_lists_graph(tmp_path: Path) -> None:
    assert "graph      print the step graph" in run_cli("--help", cwd=tmp_path).stdout
