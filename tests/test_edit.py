"""drawer.edit: whole-file byte comparisons, errors, and properties on generated and real files."""

from __future__ import annotations

import doctest
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

import drawer.edit
from drawer.edit import EditError, get_text, get_value, set_value, unset_value

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

STEPS = """\
# build steps
name: demo   # shown in reports

steps:
  - id: lint
    run: ruff check .  # fast

  # the slow one
  - id: test
    run: 'pytest -q'
    when: "true"
    script: |
      echo one
      echo two

    parallelism: 2
"""


def test_module_examples_hold() -> None:
    assert doctest.testmod(drawer.edit).failed == 0


# --- whole files, before and after ------------------------------------------------------------

REPLACED = [
    pytest.param(
        STEPS,
        "/steps/0/run",
        "ruff format",
        STEPS.replace("ruff check .", "ruff format"),
        id="plain",
    ),
    pytest.param(
        STEPS, "/steps/1/run", "it's", STEPS.replace("'pytest -q'", "'it''s'"), id="single-quoted"
    ),
    pytest.param(STEPS, "/steps/1/when", "on", STEPS.replace('"true"', '"on"'), id="double-quoted"),
    pytest.param(
        STEPS,
        "/steps/1/parallelism",
        10,
        STEPS.replace("parallelism: 2", "parallelism: 10"),
        id="int",
    ),
    pytest.param("a: x\n", "/a", "yes", 'a: "yes"\n', id="yaml-1.1-bool-quoted"),
    pytest.param("a: x\n", "/a", "0755", 'a: "0755"\n', id="octal-quoted"),
    pytest.param("a: x\n", "/a", "12:30", 'a: "12:30"\n', id="sexagesimal-quoted"),
    pytest.param("a: x\n", "/a", "true", 'a: "true"\n', id="bool-string-quoted"),
    pytest.param("a: x\n", "/a", "1.5", 'a: "1.5"\n', id="number-string-quoted"),
    pytest.param("a: x\n", "/a", 1e20, "a: 1.0e+20\n", id="float-readable-by-1.1"),
    pytest.param("a: x\n", "/a", None, "a: null\n", id="null"),
    pytest.param("a: 'x'\n", "/a", 3, "a: 3\n", id="quotes-dropped-for-number"),
    pytest.param("a: x\n", "/a", "line\nbreak", 'a: "line\\nbreak"\n', id="newline-escaped"),
    pytest.param(
        "a: x  # keep\n",
        "/a",
        [1, "b c", {"k": "v"}],
        "a: [1, b c, {k: v}]  # keep\n",
        id="list-in-flow-style",
    ),
    pytest.param("a: {x: 1, y: 'q'}\n", "/a/y", "r", "a: {x: 1, y: 'r'}\n", id="flow-mapping"),
    pytest.param("a: [1, two, 3]\n", "/a/1", "a, b", 'a: [1, "a, b", 3]\n', id="flow-sequence"),
    pytest.param("a:  # empty\nb: 1\n", "/a", 5, "a: 5  # empty\nb: 1\n", id="empty-value"),
    pytest.param("- x\n-\n- y\n", "/1", "z", "- x\n- z\n- y\n", id="empty-item"),
    pytest.param(
        "base: &b 1\nuse: *b\n",
        "/base",
        2,
        "base: &b 2\nuse: *b\n",
        id="anchor-kept-aliases-follow",
    ),
    pytest.param(
        "base: &b 1\nuse: *b\n", "/use", 3, "base: &b 1\nuse: 3\n", id="alias-replaced-locally"
    ),
    pytest.param(
        "d: &d\n  retries: 1\njob:\n  <<: *d\n  run: go\n",
        "/job/retries",
        3,
        "d: &d\n  retries: 1\njob:\n  <<: *d\n  run: go\n  retries: 3\n",
        id="merge-key-written-locally",
    ),
    pytest.param("a: !Ref x\n", "/a", "z", "a: !Ref z\n", id="custom-tag-kept-for-string"),
    pytest.param("a: !Ref x\n", "/a", 1, "a: 1\n", id="custom-tag-dropped-for-number"),
    pytest.param("a: !!int 1\n", "/a", 2, "a: !!int 2\n", id="core-tag-kept"),
    pytest.param("a: &x !!int 1\n", "/a", "s", "a: &x s\n", id="core-tag-dropped-anchor-kept"),
    pytest.param(
        "a:  # the list\n  - 1\n  - 2\nb: 1\n",
        "/a",
        [],
        "a: []  # the list\nb: 1\n",
        id="block-list-replaced",
    ),
    pytest.param(
        "run: |\n  echo 1\n  echo 2\n\nnext: 1\n",
        "/run",
        "make\nmake install\n",
        "run: |\n  make\n  make install\n\nnext: 1\n",
        id="literal-block",
    ),
    pytest.param(
        "run: |-  # script\n    a\n    b\nnext: 1\n",
        "/run",
        "c\nd",
        "run: |-  # script\n    c\n    d\nnext: 1\n",
        id="literal-strip",
    ),
    pytest.param(
        "run: |\n  a\n  b\nnext: 1\n",
        "/run",
        "one line",
        "run: one line\nnext: 1\n",
        id="block-to-line",
    ),
    pytest.param(
        "t: >\n  some\n  text\n",
        "/t",
        "one\ntwo\n\n  deep\n",
        "t: >\n  one\n\n  two\n\n    deep\n",
        id="folded-block",
    ),
    pytest.param(
        "a: !!map  # m\n  x: 1\nb: 2\n",
        "/a",
        [1],
        "a: [1]  # m\nb: 2\n",
        id="block-map-tag-dropped",
    ),
    pytest.param("a: !Sub [x, y]\n", "/a", ["z"], "a: !Sub [z]\n", id="custom-tag-on-list-kept"),
    pytest.param("a: !T {x: 1}\n", "/a", {"k": 2}, "a: !T {k: 2}\n", id="custom-tag-on-map-kept"),
    pytest.param(
        "a: |\n  x\n  y\n",
        "/a",
        " lead\nline\n",
        'a: " lead\\nline\\n"\n',
        id="block-needs-indicator",
    ),
    pytest.param("a: |\n  x\n  y\n", "/a", "x\n\n", 'a: "x\\n\\n"\n', id="block-would-keep"),
    pytest.param("a: |-\n  x", "/a", "y\nz\n", "a: |\n  y\n  z\n", id="block-at-end-of-text"),
    pytest.param("a: x\n", "/a", math.nan, "a: .nan\n", id="nan"),
    pytest.param("a: x\n", "/a", -math.inf, "a: -.inf\n", id="minus-infinity"),
    pytest.param("a: x\n", "/a", "\x00\x85\u2028💡", 'a: "\\0\\x85\\u2028💡"\n', id="escapes"),
    pytest.param("{a: 1}\n", "/a", "b c", "{a: b c}\n", id="yaml-flow-document"),
    pytest.param("?x: 1\n", "/?x", 2, "?x: 2\n", id="plain-key-starting-with-question-mark"),
    pytest.param("a: 1\n", "", [1], "[1]\n", id="whole-document"),
    pytest.param("a: 1\r\nb: 'x'\r\n", "/b", "y", "a: 1\r\nb: 'y'\r\n", id="crlf"),
    pytest.param("\ufeffa: 1\nb: 2\n", "/b", 3, "\ufeffa: 1\nb: 3\n", id="bom"),
    pytest.param(
        '{\n  "a": "x",\n  "b": [1, 2]\n}\n',
        "/a",
        {"k": [1]},
        '{\n  "a": {"k": [1]},\n  "b": [1, 2]\n}\n',
        id="json",
    ),
    pytest.param(
        '{"a":"x","b":[1,2]}', "/b", [3, "y"], '{"a":"x","b":[3,"y"]}', id="json-compact-separators"
    ),
]


@pytest.mark.parametrize(("before", "pointer", "value", "after"), REPLACED)
def test_set_replaces_only_the_value(before: str, pointer: str, value: object, after: str) -> None:
    assert set_value(before, pointer, value) == after


INSERTED = [
    pytest.param(
        STEPS,
        "/steps/1/timeout",
        "5m",
        STEPS + "    timeout: 5m\n",
        id="sequence-item-mapping-indented-4",
    ),
    pytest.param(
        STEPS,
        "/steps/0/retries",
        2,
        STEPS.replace("ruff check .  # fast\n", "ruff check .  # fast\n    retries: 2\n"),
        id="before-blank-line-and-comment-of-next-item",
    ),
    pytest.param(
        "steps:\n- id: a\n  run: x\n\nname: n\n",
        "/steps/0/kind",
        "run",
        "steps:\n- id: a\n  run: x\n  kind: run\n\nname: n\n",
        id="sequence-not-indented",
    ),
    pytest.param(
        "a:\n    b: 1\n    c:\n        d: 2\n# end\n",
        "/a/e",
        True,
        "a:\n    b: 1\n    c:\n        d: 2\n    e: true\n# end\n",
        id="indent-4-after-nested-block",
    ),
    pytest.param(
        "a:\n  b: 1\n",
        "/x/w/z",
        "q",
        "a:\n  b: 1\nx:\n  w:\n    z: q\n",
        id="missing-mappings-created",
    ),
    pytest.param(
        "a:\n    b: 1\n", "/c/d", 1, "a:\n    b: 1\nc:\n    d: 1\n", id="created-with-file-indent"
    ),
    pytest.param(
        "a: 1\r\nb:\r\n  c: 2\r\n", "/b/d", 3, "a: 1\r\nb:\r\n  c: 2\r\n  d: 3\r\n", id="crlf"
    ),
    pytest.param("\ufeffa: 1\n", "/b", 2, "\ufeffa: 1\nb: 2\n", id="bom"),
    pytest.param("a: 1", "/b", 2, "a: 1\nb: 2", id="no-final-newline"),
    pytest.param(
        "a:\n  x: 1\n", "/a/on", "off", 'a:\n  x: 1\n  "on": "off"\n', id="ambiguous-key-quoted"
    ),
    pytest.param(
        'a:\n  "x": 1\n', "/a/y", 2, 'a:\n  "x": 1\n  "y": 2\n', id="key-quoted-like-siblings"
    ),
    pytest.param("a: {x: 1, y: 2}\n", "/a/z", 3, "a: {x: 1, y: 2, z: 3}\n", id="flow-mapping"),
    pytest.param("a: {x: 1,}\n", "/a/z", 3, "a: {x: 1, z: 3,}\n", id="flow-trailing-comma"),
    pytest.param("a: {}\n", "/a/k", "v", "a: {k: v}\n", id="empty-flow-mapping"),
    pytest.param("a:\nb: 1\n", "/a/k", "v", "a: {k: v}\nb: 1\n", id="null-becomes-mapping"),
    pytest.param("", "/a", 1, "a: 1\n", id="empty-text"),
    pytest.param(
        "# only a comment", "/-", {"k": 1}, "# only a comment\n- {k: 1}\n", id="comments-only"
    ),
    pytest.param("", "", "x", "x\n", id="empty-text-whole-document"),
    pytest.param(
        '{\n  "a": 1,\n  "b": {\n    "c": 2\n  }\n}\n',
        "/b/d",
        [1, 2],
        '{\n  "a": 1,\n  "b": {\n    "c": 2,\n    "d": [1, 2]\n  }\n}\n',
        id="json-indent-2",
    ),
    pytest.param(
        '{\n    "a": 1\n}',
        "/z",
        {"k": None},
        '{\n    "a": 1,\n    "z": {"k": null}\n}',
        id="json-indent-4",
    ),
    pytest.param('{"a": 1, "b": {}}', "/b/c", "d", '{"a": 1, "b": {"c": "d"}}', id="json-one-line"),
    pytest.param('{"a":1}', "/b", [1, 2], '{"a":1,"b":[1,2]}', id="json-one-line-compact"),
    pytest.param(
        '{\n  "a": {\n  }\n}',
        "/a/b",
        1,
        '{\n  "a": {\n    "b": 1\n  }\n}',
        id="json-empty-multiline",
    ),
]


@pytest.mark.parametrize(("before", "pointer", "value", "after"), INSERTED)
def test_set_inserts_a_key_beside_its_siblings(
    before: str, pointer: str, value: object, after: str
) -> None:
    assert set_value(before, pointer, value) == after


APPENDED = [
    pytest.param("l:\n- a\n- b\nn: 1\n", "c", "l:\n- a\n- b\n- c\nn: 1\n", id="block"),
    pytest.param(
        "l:\n    -   a  # first\nn: 1\n",
        "b",
        "l:\n    -   a  # first\n    -   b\nn: 1\n",
        id="block-spacing",
    ),
    pytest.param(
        "l:\n  - x: 1\n    y: 2\n",
        {"x": 3},
        "l:\n  - x: 1\n    y: 2\n  - {x: 3}\n",
        id="mapping-item",
    ),
    pytest.param("l: [a, b]\n", "c d", "l: [a, b, c d]\n", id="flow"),
    pytest.param("l: []\n", "yes", 'l: ["yes"]\n', id="empty-flow"),
    pytest.param(
        '{"l": [\n    1,\n    2\n]}', 3, '{"l": [\n    1,\n    2,\n    3\n]}', id="json-multiline"
    ),
    pytest.param('{"l":[1,2]}', 3, '{"l":[1,2,3]}', id="json-compact"),
]


@pytest.mark.parametrize(("before", "value", "after"), APPENDED)
def test_set_dash_appends_to_a_list(before: str, value: object, after: str) -> None:
    assert set_value(before, "/l/-", value) == after


REMOVED = [
    pytest.param(
        "a: 1  # about a\n# about b\nb: 2\n\nc: 3\n",
        "/b",
        "a: 1  # about a\n# about b\n\nc: 3\n",
        id="own-line-comment-stays",
    ),
    pytest.param(
        "a:\n  x: 1\n  y:\n    - 2\n  # tail\nb: 1\n",
        "/a/y",
        "a:\n  x: 1\n  # tail\nb: 1\n",
        id="block-value",
    ),
    pytest.param("a:\n  x: 1\nb: 1\n", "/a/x", "a: {}\nb: 1\n", id="last-key-leaves-empty-mapping"),
    pytest.param("- id: a\n  run: x\n", "/0/id", "- run: x\n", id="first-key-of-item"),
    pytest.param(
        "- id: a  # c\n  # about run\n  run: x\n",
        "/0/id",
        "-\n  # about run\n  run: x\n",
        id="first-key-of-item-before-a-comment",
    ),
    pytest.param("l:\n  - a\n  - b\n  - c\n", "/l/1", "l:\n  - a\n  - c\n", id="list-item"),
    pytest.param("a: 1\r\nb: 2\r\nc: 3\r\n", "/b", "a: 1\r\nc: 3\r\n", id="crlf"),
    pytest.param("a: 1\nb: 2", "/b", "a: 1", id="last-line-without-newline"),
    pytest.param("a: {x: 1, y: 2, z: 3}\n", "/a/y", "a: {x: 1, z: 3}\n", id="flow-middle"),
    pytest.param("a: [1, 2, 3]\n", "/a/2", "a: [1, 2]\n", id="flow-last"),
    pytest.param('{\n  "a": 1,\n  "b": 2\n}\n', "/a", '{\n  "b": 2\n}\n', id="json-first"),
    pytest.param('{\n  "a": 1,\n  "b": 2\n}\n', "/b", '{\n  "a": 1\n}\n', id="json-last"),
    pytest.param('{"a": {"b": 1}}', "/a/b", '{"a": {}}', id="json-only"),
]


@pytest.mark.parametrize(("before", "pointer", "after"), REMOVED)
def test_unset_removes_the_entry_and_its_lines(before: str, pointer: str, after: str) -> None:
    assert unset_value(before, pointer) == after


def test_get_reads_values_and_their_source_text() -> None:
    text = "base: &b {k: 1, t: 2020-01-02}\nuse:\n  <<: *b\n  k: 2\nq: 'x'  # c\ns: |\n  a\n"
    assert get_value(text, "/use") == {"k": 2, "t": "2020-01-02"}
    assert get_value(text, "/use/t") == "2020-01-02"
    assert get_value(text, "") == {
        "base": {"k": 1, "t": "2020-01-02"},
        "use": {"k": 2, "t": "2020-01-02"},
        "q": "x",
        "s": "a\n",
    }
    assert get_text(text, "/q") == "'x'"
    assert get_text(text, "/base") == "&b {k: 1, t: 2020-01-02}"
    assert get_text(text, "/s") == "|\n  a"
    assert get_value('{"a": [1, 2.5, "\\/"]}', "/a") == [1, 2.5, "/"]
    assert get_text('{"a": [1, 2.5]}', "/a/1") == "2.5"
    assert get_value("a/b: 1\nc~d: 2\n", "/a~1b") == 1
    assert get_value("a/b: 1\nc~d: 2\n", "/c~0d") == 2
    assert get_value("a: !Sub [x, !Ref y]\nb: !Thing {<<: {k: 1}, j: 2}\n", "") == {
        "a": ["x", "y"],
        "b": {"k": 1, "j": 2},
    }
    assert get_text("a: *x\n".replace("*x", "&x 1\nb: *x"), "/b") == "*x"


ERRORS = [
    pytest.param(
        set_value, "a: 1\n---\nb: 2\n---\nc: 3\n", "/a", "holds 3 YAML documents", id="documents"
    ),
    pytest.param(
        set_value, "a: text\n", "/a/b", "/a is a scalar (text, line 1)", id="through-scalar"
    ),
    pytest.param(
        set_value, "l: [1, 2]\n", "/l/5", "has 2 item(s): no item 5", id="index-out-of-range"
    ),
    pytest.param(set_value, "l: [1, 2]\n", "/l/01", '"01" is not an index', id="not-an-index"),
    pytest.param(
        set_value,
        "a: &a {k: 1}\nb: *a\n",
        "/b/k",
        "/b is the alias *a (line 2)",
        id="through-alias",
    ),
    pytest.param(set_value, "a: 1\n", "a", 'must be empty or start with "/"', id="pointer-syntax"),
    pytest.param(
        set_value, "a: 1\n", "/a~2", '"~" must be followed by 0 or 1', id="pointer-escape"
    ),
    pytest.param(set_value, "a: [\n", "/a", "not valid YAML or JSON", id="invalid-text"),
    pytest.param(
        unset_value,
        "a:\n  b: 1\n",
        "/a/c",
        'nothing at /a/c: the mapping at line 2 has no key "c"',
        id="unset-missing",
    ),
    pytest.param(
        unset_value,
        "d: &d {k: 1}\ne:\n  <<: *d\n",
        "/e/k",
        "comes from a merge key",
        id="unset-merged",
    ),
    pytest.param(unset_value, "a: 1\n", "", "cannot unset the whole document", id="unset-root"),
    pytest.param(get_value, "a: 1\n", "/b", 'no key "b"', id="get-missing"),
    pytest.param(
        get_value, "a: 1\n", "/a/b", "/a is a scalar (1, line 1)", id="get-through-scalar"
    ),
    pytest.param(get_value, "# nothing\n", "/a", "holds no document", id="get-empty"),
    pytest.param(
        set_value,
        "d: &d {e: {x: 1}}\nj:\n  <<: *d\n",
        "/j/e/y",
        "/j/e comes from a merge key",
        id="through-merge",
    ),
    pytest.param(set_value, "l: [a: 1]\n", "/l/0/b", "single-pair mapping", id="single-pair"),
    pytest.param(
        unset_value, "l: [a: 1, b]\n", "/l/0/a", "single-pair mapping", id="unset-single-pair"
    ),
    pytest.param(
        unset_value, "a: &a {k: 1}\nb: *a\n", "/b/k", "/b is the alias *a", id="unset-through-alias"
    ),
    pytest.param(unset_value, "l: [1]\n", "/l/-", '"-" names no item', id="unset-dash"),
    pytest.param(unset_value, "a: x\n", "/a/b", "/a is a scalar", id="unset-through-scalar"),
    pytest.param(
        unset_value,
        "a: &x 1\nb: *x\n",
        "/a",
        "removes the anchor &x, which the alias *x at line 2",
        id="anchor-still-used",
    ),
]


@pytest.mark.parametrize(("function", "text", "pointer", "message"), ERRORS)
def test_errors_say_what_and_where(function: Any, text: str, pointer: str, message: str) -> None:
    arguments = (text, pointer, 1) if function is set_value else (text, pointer)
    with pytest.raises(EditError) as caught:
        function(*arguments)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_values_a_file_cannot_hold_are_refused() -> None:
    with pytest.raises(EditError, match="JSON"):
        set_value('{"a": 1}', "/a", math.inf)
    with pytest.raises(EditError, match="type set"):
        set_value("a: 1\n", "/a", {1, 2})


# --- properties -------------------------------------------------------------------------------


class _PlainLoader(SafeConstructor):
    """The oracle: ruamel's safe constructor with unknown tags and timestamps read as text."""

    def construct_unknown(self, _suffix: str, node: Any) -> Any:
        if isinstance(node, ScalarNode):
            return node.value
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        return {
            self.construct_object(k, deep=True): self.construct_object(v, deep=True)
            for k, v in node.value
        }

    def construct_text(self, node: Any) -> Any:
        return node.value


_PlainLoader.add_multi_constructor("", _PlainLoader.construct_unknown)
_PlainLoader.add_constructor("tag:yaml.org,2002:timestamp", _PlainLoader.construct_text)
_PlainLoader.add_constructor("tag:yaml.org,2002:binary", _PlainLoader.construct_text)


@dataclass(frozen=True)
class _Leaf:
    """A value reached by a pointer: its node, plain value, and whether an edit may reach it."""

    node: Any
    value: Any
    editable: bool  # no alias or merge key on the way (the leaf itself may be an alias)
    alias: bool
    line: int  # 0-based line where the node (for an alias: the anchored node) is written


@dataclass(frozen=True)
class _Tree:
    leaves: dict[str, _Leaf]
    mappings: dict[str, Any]  # editable block or flow mappings by pointer
    sequences: dict[str, Any]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


@functools.lru_cache(maxsize=64)
def _tree(text: str) -> _Tree:
    """Every leaf, mapping and list of a one-document text, found by walking the composed nodes."""
    for pure in (False, True):  # libyaml (YAML 1.1) refuses a few YAML 1.2 texts
        yaml = YAML(typ="safe", pure=pure)
        yaml.Constructor = _PlainLoader
        try:
            nodes = list(yaml.compose_all(text.removeprefix("\ufeff")))
            break
        except YAMLError:
            if pure:
                raise
    assert len(nodes) == 1
    seen: set[int] = set()
    leaves: dict[str, _Leaf] = {}
    mappings: dict[str, Any] = {}
    sequences: dict[str, Any] = {}

    def entries(node: Any, depth: int = 0) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        local: dict[str, Any] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                for source in value.value if isinstance(value, SequenceNode) else [value]:
                    for name, child in entries(source, depth + 1).items():
                        merged.setdefault(name, child)
            elif isinstance(key, ScalarNode):
                local[key.value] = value
        return {**merged, **local}

    def visit(node: Any, pointer: str, editable: bool, depth: int) -> None:
        alias = id(node) in seen
        seen.add(id(node))
        if depth > 30:
            return
        children: dict[str, Any] = {}
        if isinstance(node, MappingNode):
            for key, _value in node.value:  # keys are written before values: mark them seen
                seen.add(id(key))
            children = entries(node)
            if editable and not alias:
                mappings[pointer] = node
            local = {key.value for key, _v in node.value if isinstance(key, ScalarNode)}
            for name, child in children.items():
                visit(
                    child,
                    f"{pointer}/{_escape(name)}",
                    editable and not alias and name in local,
                    depth + 1,
                )
        elif isinstance(node, SequenceNode):
            if editable and not alias:
                sequences[pointer] = node
            for index, child in enumerate(node.value):
                visit(child, f"{pointer}/{index}", editable and not alias, depth + 1)
        if not children and not (isinstance(node, SequenceNode) and node.value):
            value = yaml.constructor.construct_document(node)
            leaves[pointer] = _Leaf(node, value, editable, alias, node.start_mark.line)

    visit(nodes[0], "", True, 0)
    return _Tree(leaves, mappings, sequences)


def _same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


@dataclass(frozen=True)
class _AliasAt:
    """An alias in a composed graph, where it is written."""

    line: int


def _alias_line(text: str, pointer: str) -> int:
    """The line (0-based) of the alias `*x` written at `pointer` (a path of local keys)."""

    class Recording(Composer):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.parser.check_event(AliasEvent):
                line = self.parser.peek_event().start_mark.line
                super().compose_node(parent, index)
                return _AliasAt(line)
            return super().compose_node(parent, index)

    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = Recording
    node = yaml.compose(text.removeprefix("\ufeff"))
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, MappingNode):
            node = next(v for k, v in node.value if isinstance(k, ScalarNode) and k.value == token)
        else:
            node = node.value[int(token)]
    assert isinstance(node, _AliasAt)
    return node.line


def _changed_lines(before: str, after: str) -> tuple[range, list[str]]:
    """The old lines that differ (as a range) and the new lines that stand in their place."""
    old, new = before.splitlines(), after.splitlines()
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return range(head, len(old) - tail), new[head : len(new) - tail]


def _check_set(before: str, pointer: str, value: object, target: str) -> None:
    """set_value writes `value` at `target`, keeps every other value and every other line."""
    old = _tree(before)
    is_json = before.lstrip("\ufeff")[:1] in "{[" and _is_json(before)
    if is_json and isinstance(value, float) and math.isinf(value):
        with pytest.raises(EditError, match="JSON"):
            set_value(before, pointer, value)
        return
    after = set_value(before, pointer, value)
    new = _tree(after)
    assert _same(new.leaves[target].value, value), (target, after)
    if is_json:
        assert json.loads(after.removeprefix("\ufeff")) is not None
    if "\r\n" in before and "\n" not in before.replace("\r\n", ""):
        assert "\n" not in after.replace("\r\n", ""), after  # CRLF stays CRLF
    replaced = old.leaves.get(target)
    for path, leaf in old.leaves.items():
        related = path == target or path.startswith(target + "/") or target.startswith(path + "/")
        if related or (replaced is not None and leaf.node is replaced.node):
            continue  # the edited value, or the same node seen through an alias
        assert path in new.leaves and _same(new.leaves[path].value, leaf.value), (path, after)
    for path in new.leaves.keys() - old.leaves.keys():
        assert new.leaves[path].node is new.leaves[target].node, (path, after)
    changed, written = _changed_lines(before, after)
    if replaced is not None:
        first = last = replaced.line
        if replaced.alias:
            first = last = _alias_line(before, target)
        else:
            last = replaced.node.end_mark.line
        assert not changed or (changed.start >= first and changed.stop <= last + 1), (
            changed,
            after,
        )
        return
    parent = target.rsplit("/", 1)[0]
    container = old.mappings.get(parent) or old.sequences[parent]
    if container.flow_style:  # within the brackets
        span = range(container.start_mark.line, container.end_mark.line + 1)
        assert changed.start >= span.start and changed.stop <= span.stop, (changed, after)
        return
    assert len(changed) == 0, after  # whole new lines, nothing else touched
    if isinstance(container, MappingNode):
        column = container.value[-1][0].start_mark.column  # the last key's
    elif before.removeprefix("\ufeff")[container.start_mark.index] == "-":  # the first dash
        column = container.start_mark.column
    else:  # a tagged list: the dash before its last item
        mark = container.value[-1].start_mark
        head = before.removeprefix("\ufeff").splitlines()[mark.line][: mark.column].rstrip()
        column = len(head) - 1
    assert written and written[0].startswith(" " * column) and written[0][column] != " ", after


def _is_json(text: str) -> bool:
    try:
        json.loads(text.removeprefix("\ufeff"))
    except ValueError:
        return False
    return True


TRICKY = [
    "", " ", "yes", "No", "on", "OFF", "y", "~", "null", "Null", "true", "False", "0755", "0o17",
    "0x1F", "12:30", "1_000", "1e3", ".5", ".inf", "-.inf", ".nan", "2024-01-02", "<<", "=", "-",
    "- x", "? x", ": x", "a: b", "a #b", "#c", "x:", "[a]", "{a}", "a, b", "*x", "&x", "!x", "|",
    ">", "'", '"', "%x", "@x", "`x", "---", "...", "tab\there", "two\nlines", "end\n", "\\", "é",
    "💡", "\u2028", "\x85", "\x7f", "\x00", "\ufeff", " lead", "trail ", "plain text", "C:\\path",
]  # fmt: skip

VALUES = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)

KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=4).map(lambda name: "k" + name)


@st.composite
def _scalar(draw: st.DrawFn, column: int, unit: int, anchors: list[str]) -> list[str]:
    """A scalar in some style (maybe anchored, maybe an alias): its text, then its own lines."""
    if anchors and draw(st.integers(0, 9)) == 0:
        return ["*" + draw(st.sampled_from(anchors))]
    anchor = ""
    if draw(st.integers(0, 9)) == 0:
        anchors.append(f"a{len(anchors)}")
        anchor = f"&{anchors[-1]} "
    kind = draw(
        st.sampled_from(["plain", "single", "double", "int", "float", "bool", "null", "block"])
    )
    words = st.text(alphabet="abc xyz-_./é'\"#:", min_size=1, max_size=12)
    if kind == "plain":
        return [anchor + "s" + draw(st.text(alphabet="abcxyz0123_./-", max_size=8))]
    if kind == "single":
        return [anchor + "'" + draw(words).replace("'", "''") + "'"]
    if kind == "double":
        return [
            anchor
            + json.dumps(
                draw(st.text(alphabet='ab\t\n\\"é💡', max_size=6) | words), ensure_ascii=False
            )
        ]
    if kind == "int":
        return [anchor + str(draw(st.integers(-1000, 1000)))]
    if kind == "float":
        return [anchor + draw(st.sampled_from(["1.5", "-0.25", "3.0e+2", ".inf"]))]
    if kind == "bool":
        return [anchor + draw(st.sampled_from(["true", "false", "True"]))]
    if kind == "null":
        return [(anchor + draw(st.sampled_from(["null", "~", ""]))).rstrip()]
    lines = draw(
        st.lists(
            st.text(alphabet="abc xyz", min_size=1, max_size=8).map(str.strip).filter(bool),
            min_size=1,
            max_size=3,
        )
    )
    chomp = draw(st.sampled_from(["", "-"]))
    return [anchor + "|" + chomp] + [" " * (column + unit) + line for line in lines]


@st.composite
def _mapping(
    draw: st.DrawFn, column: int, unit: int, indent_lists: bool, depth: int, anchors: list[str]
) -> list[str]:
    """A block mapping at `column`, with blank lines, comments and nested values."""
    lines: list[str] = []
    for key in draw(st.lists(KEYS, min_size=1, max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            lines.append("")
        if draw(st.integers(0, 5)) == 0:
            lines.append(" " * column + "# about " + key)
        kind = (
            draw(st.sampled_from(["scalar", "scalar", "mapping", "list", "flow"]))
            if depth < 3
            else "scalar"
        )
        if kind == "mapping":
            lines.append(" " * column + key + ":")
            lines.extend(draw(_mapping(column + unit, unit, indent_lists, depth + 1, anchors)))
        elif kind == "list":
            lines.append(" " * column + key + ":")
            lines.extend(
                draw(
                    _sequence(
                        column + (unit if indent_lists else 0),
                        unit,
                        indent_lists,
                        depth + 1,
                        anchors,
                    )
                )
            )
        elif kind == "flow":
            items = draw(
                st.lists(st.sampled_from(["1", "sx", "'q'", '"d"', "true", "null"]), max_size=3)
            )
            if draw(st.booleans()):
                lines.append(" " * column + key + ": [" + ", ".join(items) + "]")
            else:
                pairs = [f"f{index}: {item}" for index, item in enumerate(items)]
                lines.append(" " * column + key + ": {" + ", ".join(pairs) + "}")
        else:
            scalar = draw(_scalar(column, unit, anchors))
            comment = (
                "  # note" if draw(st.integers(0, 3)) == 0 and not scalar[0].startswith("|") else ""
            )
            lines.append(f"{' ' * column}{key}: {scalar[0]}".rstrip() + comment)
            lines.extend(scalar[1:])
    return lines


@st.composite
def _sequence(
    draw: st.DrawFn, column: int, unit: int, indent_lists: bool, depth: int, anchors: list[str]
) -> list[str]:
    """A block list at `column`: scalars, or mappings whose first key sits beside the dash."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 3 and draw(st.booleans()):
            item = draw(_mapping(column + 2, unit, indent_lists, depth + 1, anchors))
            first = next(
                index
                for index, line in enumerate(item)
                if line.startswith(" " * (column + 2)) and line.strip()[:1] != "#"
            )
            lines.extend(item[:first])
            lines.append(" " * column + "- " + item[first][column + 2 :])
            lines.extend(item[first + 1 :])
        else:
            scalar = draw(_scalar(column + 2, unit, anchors))
            lines.append(f"{' ' * column}- {scalar[0]}".rstrip())
            lines.extend(scalar[1:])
    return lines


@st.composite
def _documents(draw: st.DrawFn) -> str:
    unit = draw(st.sampled_from([2, 4]))
    lines = draw(_mapping(0, unit, draw(st.booleans()), 0, []))
    if draw(st.booleans()):
        lines.insert(0, "# generated")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return draw(st.sampled_from(["", "\ufeff"])) + newline.join(lines) + newline


def _edit_at_random(data: st.DataObject, text: str) -> None:
    """Draw an edit (replace a leaf, add a key, append an item) and check it."""
    tree = _tree(text)
    leaves = sorted(path for path, leaf in tree.leaves.items() if leaf.editable and path)
    kinds = [
        kind
        for kind, where in (("replace", leaves), ("add", tree.mappings), ("append", tree.sequences))
        if where
    ]
    kind = data.draw(st.sampled_from(kinds))
    value = data.draw(VALUES)
    if kind == "replace":
        pointer = data.draw(st.sampled_from(leaves))
        _check_set(text, pointer, value, pointer)
    elif kind == "add":
        parent = data.draw(st.sampled_from(sorted(tree.mappings)))
        key = data.draw(KEYS.map(lambda name: "new" + name))
        _check_set(text, f"{parent}/{key}", value, f"{parent}/{key}")
    else:
        parent = data.draw(st.sampled_from(sorted(tree.sequences)))
        _check_set(text, parent + "/-", value, f"{parent}/{len(tree.sequences[parent].value)}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_documents(), data=st.data())
def test_set_on_generated_documents_changes_only_its_value(text: str, data: st.DataObject) -> None:
    _edit_at_random(data, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_documents(), data=st.data())
def test_unset_on_generated_documents_removes_only_its_entry(
    text: str, data: st.DataObject
) -> None:
    tree = _tree(text)
    keys = sorted(path for path, leaf in tree.leaves.items() if leaf.editable and path)
    keys = [path for path in keys if path.rsplit("/", 1)[0] in tree.mappings]
    if not keys:
        return
    pointer = data.draw(st.sampled_from(keys))
    anchors = {leaf.node for path, leaf in tree.leaves.items() if leaf.alias}
    if tree.leaves[pointer].node in anchors and not tree.leaves[pointer].alias:
        with pytest.raises(EditError, match="removes the anchor"):
            unset_value(text, pointer)
        return
    after = unset_value(text, pointer)
    new = _tree(after)
    parent = pointer.rsplit("/", 1)[0]
    assert pointer not in new.leaves
    for path, leaf in tree.leaves.items():
        if path != pointer and path != parent:
            assert _same(new.leaves[path].value, leaf.value), (path, after)
    changed, written = _changed_lines(text, after)
    old_lines = text.splitlines()[changed.start : changed.stop]
    new_lines = [line for line in written if line not in old_lines]
    assert len(new_lines) <= 1, after  # lines go; a line shared with a dash or key may change

    def comments(text: str) -> list[str]:
        return [
            line
            for line in text.removeprefix("\ufeff").splitlines()
            if line.lstrip().startswith("#")
        ]

    assert comments(text) == comments(after)  # own-line comments stay


def _corpus_files() -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {CORPUS}"))]
    files = [
        path for path in sorted(CORPUS.glob("*/*")) if path.suffix in (".yaml", ".yml", ".json")
    ]
    return [pytest.param(path, id=path.name) for path in files]


@pytest.mark.parametrize("path", _corpus_files())
def test_set_on_real_files_changes_only_its_value(path: Path) -> None:
    text = path.read_bytes().decode("utf-8")
    documents = len(list(YAML(typ="safe", pure=True).compose_all(text.removeprefix("\ufeff"))))
    if documents > 1:
        with pytest.raises(EditError, match=f"holds {documents} YAML documents"):
            set_value(text, "/x", 1)
        return
    run = settings(max_examples=25, deadline=None, derandomize=True, database=None)(
        given(data=st.data())(_edit_at_random)
    )
    run(text=text)
