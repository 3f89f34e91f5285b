"""Tests for drawer.source: data, positions, parse errors and problem formatting."""

from __future__ import annotations

import math

import pytest

from drawer.source import (
    ParsedDocument,
    ParseError,
    Position,
    Problem,
    format_problem,
    parse_document,
    suggest,
)

WORKFLOW = """\
version: 1
steps:
  - name: lint
    parallelsm: 8
    run: |
      echo start
      make \\
        ${target} all
  - {name: test, over: [a, "b"]}
env:
"""


def parse(text: str, filename: str = "drawer.yaml") -> ParsedDocument:
    return parse_document(text, filename)


def problems(text: str, filename: str = "drawer.yaml") -> list[Problem]:
    with pytest.raises(ParseError) as info:
        parse_document(text, filename)
    return info.value.problems


def test_yaml_data() -> None:
    doc = parse(WORKFLOW)
    assert doc.data == {
        "version": 1,
        "steps": [
            {
                "name": "lint",
                "parallelsm": 8,
                "run": "echo start\nmake \\\n  ${target} all\n",
            },
            {"name": "test", "over": ["a", "b"]},
        ],
        "env": None,
    }
    assert not doc.is_json
    assert doc.filename == "drawer.yaml"


def test_block_positions_at_several_depths() -> None:
    source = parse(WORKFLOW).source
    assert source.key(("version",)) == Position(1, 1)
    assert source.value(("version",)) == Position(1, 10)
    assert source.key(("steps",)) == Position(2, 1)
    assert source.value(("steps",)) == Position(3, 3)
    assert source.value(("steps", 0)) == Position(3, 5)
    assert source.key(("steps", 0, "parallelsm")) == Position(4, 5)
    assert source.value(("steps", 0, "parallelsm")) == Position(4, 17)
    assert source.value(("steps", 0, "run")) == Position(5, 10)


def test_flow_positions() -> None:
    source = parse(WORKFLOW).source
    assert source.value(("steps", 1)) == Position(9, 5)
    assert source.key(("steps", 1, "over")) == Position(9, 18)
    assert source.value(("steps", 1, "over")) == Position(9, 24)
    assert source.value(("steps", 1, "over", 0)) == Position(9, 25)
    assert source.value(("steps", 1, "over", 1)) == Position(9, 28)


def test_empty_value_points_after_its_key() -> None:
    assert parse(WORKFLOW).source.value(("env",)) == Position(10, 4)


def test_missing_paths() -> None:
    source = parse(WORKFLOW).source
    assert source.key(("nope",)) is None
    assert source.value(("steps", 5)) is None
    assert source.value(("version", "x")) is None
    assert source.key(("steps", 0)) is None
    assert source.key(()) is None
    assert source.nearest(("steps", 1, "over", 7)) == Position(9, 24)
    assert source.nearest(("steps", 0, "missing", "deeper")) == Position(3, 5)
    assert source.nearest(()) == Position(1, 1)
    assert parse("# nothing\n").source.nearest(("a",)) == Position(1, 1)


def test_in_block_scalar() -> None:
    doc = parse(WORKFLOW)
    run = doc.data["steps"][0]["run"]
    assert doc.source.in_scalar(("steps", 0, "run"), run.index("${")) == Position(8, 9)
    assert doc.source.in_scalar(("steps", 0, "run"), 0) == Position(6, 7)
    assert doc.source.in_scalar(("steps", 0, "run"), len(run)) is None
    assert doc.source.in_scalar(("steps", 0, "run"), -1) is None
    assert doc.source.in_scalar(("steps", 0), 0) is None


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("k: say ${x}", 8),
        ("k: 'say ${x}'", 9),
        ("k: 'it''s ${x}'", 11),
        ('k: "say ${x}"', 9),
        ('k: "a\\tb\\u00e9 ${x}"', 16),
        ("k: &anchor !!str say ${x}", 22),
        ("k: [one, 'say ${x}']", 15),
    ],
)
def test_in_one_line_scalar(line: str, column: int) -> None:
    doc = parse(line + "\n")
    path = ("k", 1) if isinstance(doc.data["k"], list) else ("k",)
    value = doc.data["k"][1] if len(path) == 2 else doc.data["k"]
    assert doc.source.in_scalar(path, value.index("$")) == Position(1, column)


def test_in_folded_and_indented_blocks() -> None:
    doc = parse("a: >-\n  one\n\n  two ${x}\n    more\n  end\nb: |2\n    y\n   z ${y}\n")
    assert doc.data == {"a": "one\ntwo ${x}\n  more\nend", "b": "  y\n z ${y}\n"}
    assert doc.source.in_scalar(("a",), doc.data["a"].index("$")) == Position(4, 7)
    assert doc.source.in_scalar(("a",), doc.data["a"].index("end")) == Position(6, 3)
    assert doc.source.in_scalar(("b",), doc.data["b"].index("$")) == Position(9, 6)


def test_in_multi_line_flow_scalars() -> None:
    doc = parse('k: plain\n  more ${a}\nj: "dq \\\n   cont ${b}"\n')
    assert doc.data == {"k": "plain more ${a}", "j": "dq cont ${b}"}
    assert doc.source.in_scalar(("k",), doc.data["k"].index("$")) == Position(2, 8)
    assert doc.source.in_scalar(("j",), doc.data["j"].index("$")) == Position(4, 9)


def test_bom_and_crlf() -> None:
    text = "\ufeffa:\r\n  run: |\r\n    one\r\n    two ${x}\r\nb: 'q ${y}'\r\n"
    doc = parse(text)
    assert doc.text == text[1:]
    assert doc.data == {"a": {"run": "one\ntwo ${x}\n"}, "b": "q ${y}"}
    assert doc.source.key(("a",)) == Position(1, 1)
    assert doc.source.value(("b",)) == Position(5, 4)
    assert doc.source.in_scalar(("a", "run"), 8) == Position(4, 9)
    assert doc.source.in_scalar(("b",), 2) == Position(5, 7)
    shown = format_problem(Problem("bad", Position(5, 4)), text, "f.yaml")
    assert shown == "f.yaml:5:4: error: bad\n  5 | b: 'q ${y}'\n    |    ^"


def test_scalar_types() -> None:
    doc = parse(
        "i: 12\nneg: -3\nhex: 0x1F\noct: 0o17\nlead: 0777\nsep: 1_000\nf: 1.5\nexp: 1e3\n"
        "inf: .inf\nninf: -.Inf\nnan: .nan\nt: true\nfa: False\nn: null\ntilde: ~\n"
        "yes: yes\ndate: 2001-12-14\nq: '12'\nforced: !!str 12\nfl: !!float 3\n"
    )
    data = doc.data
    ints = [data[k] for k in ("i", "neg", "hex", "oct", "lead", "sep")]
    assert ints == [12, -3, 31, 15, 777, 1000]
    assert [data[k] for k in ("f", "exp", "inf", "ninf")] == [1.5, 1000.0, math.inf, -math.inf]
    assert math.isnan(data["nan"])
    assert [data[k] for k in ("t", "fa", "n", "tilde")] == [True, False, None, None]
    assert [data[k] for k in ("yes", "date", "q", "forced", "fl")] == [
        "yes",
        "2001-12-14",
        "12",
        "12",
        3.0,
    ]
    assert type(data["fl"]) is float


def test_keys_are_strings() -> None:
    assert parse("1: a\ntrue: b\n").data == {"1": "a", "true": "b"}


def test_empty_documents() -> None:
    for text in ("", "  \n", "# only a comment\n", "---\n", "\ufeff"):
        assert parse(text).data is None
    assert parse("", "drawer.json").data is None


def test_aliases_and_merge_keys() -> None:
    doc = parse(
        "base: &base {image: alpine, retries: 2}\n"
        "extra: &extra\n  shell: sh\n  image: debian\n"
        "step:\n  <<: *base\n  retries: 5\n"
        "multi:\n  <<: [*extra, *base]\n"
        "copy: *base\n"
    )
    assert doc.data["step"] == {"image": "alpine", "retries": 5}
    assert doc.data["multi"] == {"shell": "sh", "image": "debian", "retries": 2}
    assert doc.data["copy"] is doc.data["base"]
    source = doc.source
    assert source.value(("copy",)) == Position(10, 7)
    assert source.value(("copy", "image")) == Position(1, 21)
    assert source.key(("step", "image")) == Position(1, 14)
    assert source.key(("step", "retries")) == Position(7, 3)
    assert source.value(("multi", "shell")) == Position(3, 10)
    assert source.value(("multi", "image")) == Position(4, 10)


def test_alias_problems() -> None:
    found = problems("a: &x [*x]\nb: *missing\n")
    assert [(p.message, p.position) for p in found] == [
        ("found undefined alias 'missing'", Position(2, 4)),
    ]
    found = problems("a: &x [1, *x]\nm:\n  <<: 3\n")
    assert [(p.message, p.position) for p in found] == [
        ("an alias cannot refer to a collection that contains it", Position(1, 11)),
        ("a merge (<<) needs a mapping or a list of mappings", Position(3, 7)),
    ]


def test_duplicate_keys_all_reported() -> None:
    found = problems("a: 1\nb: 2\na: 3\nc:\n  x: 1\n  x: 2\nb: 4\n")
    assert [(p.message, p.position) for p in found] == [
        ('duplicate key "a" (first at line 1)', Position(3, 1)),
        ('duplicate key "x" (first at line 5)', Position(6, 3)),
        ('duplicate key "b" (first at line 2)', Position(7, 1)),
    ]


def test_tags_and_bad_typed_values() -> None:
    found = problems("a: !custom 1\nb: !!int x\nc: !!set {a}\n? [k]\n: v\n")
    assert [(p.message, p.position) for p in found] == [
        ('unsupported tag "!custom"', Position(1, 4)),
        ('"x" is not a valid int', Position(2, 4)),
        ('unsupported tag "!!set"', Position(3, 4)),
        ("a mapping key must be a plain value, not a list or mapping", Position(4, 3)),
    ]


def test_multiple_documents() -> None:
    [problem] = problems("a: 1\n---\nb: 2\n")
    assert problem.message == "the file holds 2 YAML documents; a drawer file is one document"
    assert problem.position == Position(3, 1)


@pytest.mark.parametrize(
    ("text", "message", "position", "hint"),
    [
        (
            "a: b: c\n",
            "mapping values are not allowed here",
            Position(1, 5),
            'quote a value that contains ": ", or check the indentation',
        ),
        (
            "a: [1, 2\n\n",
            "expected ',' or ']', but got end of file",
            Position(1, 9),
            None,
        ),
        (
            "steps:\n  - a\n b: 1\n",
            "expected end of block, but found a new mapping"
            " (while parsing a block mapping on line 1)",
            Position(3, 2),
            "check the indentation of this line",
        ),
        (
            "a:\n\tb: 1\n",
            "a tab is used for indentation",
            Position(2, 1),
            "YAML indentation must use spaces, not tabs",
        ),
        ("a: \x07\n", "special characters are not allowed: U+0007", Position(1, 4), None),
    ],
)
def test_malformed_yaml(text: str, message: str, position: Position, hint: str | None) -> None:
    [problem] = problems(text)
    assert (problem.message, problem.position, problem.hint) == (message, position, hint)


JSON_LAYOUTS = {
    "two": '{\n  "a": {\n    "b": [1, "x ${y}"]\n  }\n}\n',
    "four": '{\n    "a": {\n        "b": [1, "x ${y}"]\n    }\n}\n',
    "tab": '{\n\t"a": {\n\t\t"b": [1, "x ${y}"]\n\t}\n}\n',
    "line": '{"a": {"b": [1, "x ${y}"]}}',
}


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("two", [(2, 3), (2, 8), (3, 5), (3, 11), (3, 14), (3, 17)]),
        ("four", [(2, 5), (2, 10), (3, 9), (3, 15), (3, 18), (3, 21)]),
        ("tab", [(2, 2), (2, 7), (3, 3), (3, 9), (3, 12), (3, 15)]),
        ("line", [(1, 2), (1, 7), (1, 8), (1, 14), (1, 17), (1, 20)]),
    ],
)
def test_json_positions(layout: str, expected: list[tuple[int, int]]) -> None:
    doc = parse(JSON_LAYOUTS[layout], "drawer.json")
    assert doc.is_json
    assert doc.data == {"a": {"b": [1, "x ${y}"]}}
    source = doc.source
    found = [
        source.key(("a",)),
        source.value(("a",)),
        source.key(("a", "b")),
        source.value(("a", "b", 0)),
        source.value(("a", "b", 1)),
        source.in_scalar(("a", "b", 1), 2),
    ]
    assert found == [Position(line, col) for line, col in expected]


def test_json_detection() -> None:
    assert parse('\ufeff \n {"a": 1}', "drawer.yaml").is_json
    assert parse('{"a": 1}', "Drawer.JSON").is_json
    yaml_flow = parse("{a: 1, b: [x]}", "drawer.yaml")
    assert not yaml_flow.is_json
    assert yaml_flow.data == {"a": 1, "b": ["x"]}


def test_json_escapes_and_crlf() -> None:
    doc = parse('{\r\n  "k": "\\u00e9\\t${x}",\r\n  "n": 1.5\r\n}', "drawer.json")
    assert doc.data == {"k": "é\t${x}", "n": 1.5}
    assert doc.source.in_scalar(("k",), 2) == Position(2, 17)
    assert doc.source.value(("n",)) == Position(3, 8)


def test_malformed_json() -> None:
    [problem] = problems('{\n  "a": 1\n  "b": 2\n}', "drawer.json")
    assert (problem.message, problem.position) == ("expecting ',' delimiter", Position(3, 3))
    [problem] = problems('{\n  "a": [1, 2,],\n}', "drawer.json")
    assert problem.position == Position(2, 14)
    assert problem.hint == "JSON does not allow a comma after the last item"


def test_json_duplicate_keys() -> None:
    found = problems('{"a": 1,\n "b": {"c": 2, "c": 3},\n "a": 4}', "drawer.json")
    assert [(p.message, p.position) for p in found] == [
        ('duplicate key "c" (first at line 2)', Position(2, 16)),
        ('duplicate key "a" (first at line 1)', Position(3, 2)),
    ]


def test_too_deep() -> None:
    [problem] = problems("[" * 5000 + "]" * 5000, "drawer.json")
    assert problem.message == "the document is nested too deeply"


def test_format_problem_with_caret_and_hint() -> None:
    doc = parse(WORKFLOW)
    problem = Problem(
        'unknown key "parallelsm" in step "lint"',
        doc.source.key(("steps", 0, "parallelsm")),
        hint='did you mean "parallelism"?',
    )
    assert format_problem(problem, doc.text, "drawer.yaml") == (
        'drawer.yaml:4:5: error: unknown key "parallelsm" in step "lint"\n'
        "  4 |     parallelsm: 8\n"
        "    |     ^\n"
        '  hint: did you mean "parallelism"?'
    )


def test_format_problem_variants() -> None:
    assert format_problem(Problem("empty file", None), "", "d.yaml") == "d.yaml: error: empty file"
    warning = Problem("slow", Position(1, 1), severity="warning")
    assert format_problem(warning, None, "d.yaml") == "d.yaml:1:1: warning: slow"
    text = "\n" * 11 + "\tkey:\tvalue\n"
    shown = format_problem(Problem("bad", Position(12, 6)), text, "d.yaml")
    assert shown == "d.yaml:12:6: error: bad\n  12 |     key:    value\n     |         ^"
    wide = format_problem(Problem("bad", Position(1, 5)), "名前: x", "d.yaml")
    assert wide.splitlines()[2] == "    |       ^"
    past_end = format_problem(Problem("bad", Position(9, 1)), "a: 1\n", "d.yaml")
    assert past_end == "d.yaml:9:1: error: bad"


def test_suggest() -> None:
    keys = ["parallelism", "run", "over", "needs"]
    assert suggest("parallelsm", keys) == "parallelism"
    assert suggest("need", iter(keys)) == "needs"
    assert suggest("zzz", keys) is None
    assert suggest("x", []) is None


def test_parse_error_message() -> None:
    error = ParseError([Problem("one", None), Problem("two", Position(1, 1))])
    assert str(error) == "one; two"


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 30_000 + "]" * 30_000 + "\n",
        "a:\n" + "".join(" " * i + "-\n" for i in range(0, 2400, 2)),
    ],
)
def test_deep_nesting_is_refused_before_composing(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(text, "deep.yaml")
    assert "nested too deeply" in caught.value.problems[0].message
    assert caught.value.problems[0].position is not None


def _alias_bomb(levels: int) -> str:
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_the_alias_past_the_budget() -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(_alias_bomb(9), "bomb.yaml")
    problem = caught.value.problems[0]
    assert "aliases expand to more than" in problem.message
    assert problem.position == Position(8, 10)
