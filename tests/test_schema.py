"""The draft-07 schema: committed as generated, a valid draft-07 schema, and in step with
the loader on real examples, broken drawers and edge cases."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped, unused-ignore]
from ruamel.yaml import YAML

from drawer.loader import InvalidDrawer, load_text
from drawer.schema import SCHEMA_ID, drawer_schema, schema_text, to_draft7
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "schema" / "drawer.schema.json"
EXAMPLES = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("examples/lib/*.yaml")])
VALIDATOR = Draft7Validator(drawer_schema())

# Every draft-07 keyword, from the draft-07 meta-schema itself.
DRAFT7_KEYWORDS = frozenset(Draft7Validator.META_SCHEMA["properties"])
SUBSCHEMA = ("additionalItems", "additionalProperties", "contains", "else", "if", "not",
             "propertyNames", "then", "items")  # fmt: skip
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SUBSCHEMA_MAPS = ("definitions", "dependencies", "patternProperties", "properties")

SUB_DRAWER = "steps:\n  - id: inner\n    run: 'true'\n"

# One step of every kind, every source of `over`, both shapes of a parallel branch.
VALID: dict[str, Any] = {
    "$schema": SCHEMA_ID,
    "version": 1,
    "name": "everything",
    "inputs": {
        "n": {"type": "integer", "default": 2},
        "token": {"type": "string", "required": True, "secret": True},
    },
    "env": {"LC_ALL": "C.UTF-8", "DEPTH": 1},
    "defaults": {"timeout": "10m", "retry": {"attempts": 2, "delay": "1s"}, "shell": "sh"},
    "execution": {"max_workers": 4, "parallel": True, "timeout": "1h"},
    "steps": [
        {"id": "files", "run": "ls"},
        {
            "id": "each",
            "kind": "for_each",
            "over": "${files.output.lines}",
            "as": "path",
            "parallelism": 8,
            "tolerate": "10%",
            "steps": [{"id": "show", "run": ["echo", "${path}", 3]}],
        },
        {
            "id": "both",
            "kind": "parallel",
            "branches": [
                {"id": "group", "steps": [{"id": "one", "run": "true"}]},
                {"id": "two", "kind": "value", "value": [1, 2]},
            ],
        },
        {
            "id": "poll",
            "kind": "repeat",
            "until": True,
            "max_iterations": 5,
            "delay": 0.5,
            "steps": [{"id": "probe", "run": "echo ok"}],
        },
        {
            "id": "route",
            "kind": "switch",
            "cases": [{"when": True, "steps": [{"id": "yes", "kind": "value", "value": 1}]}],
            "default": [{"id": "no", "kind": "value", "value": 0}],
        },
        {"id": "pause", "kind": "wait", "duration": "500ms"},
        {"id": "sub", "kind": "drawer", "drawer": "sub.yaml", "retry": {"attempts": 3}},
        {"id": "globbed", "kind": "for_each", "over": {"glob": "*.csv"}, "steps": []},
        {"id": "ranged", "kind": "for_each", "over": {"range": [0, 10, 2]}, "steps": []},
        {
            "id": "lines",
            "kind": "for_each",
            "over": {"file": "list.txt", "format": "jsonl"},
            "steps": [],
        },
    ],
    "outputs": {"files": "${files.output.lines}"},
}

_DELETE = object()


def edited(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """VALID with each (path, value) set, or deleted when the value is _DELETE."""
    drawer = copy.deepcopy(VALID)
    for path, value in edits:
        parent: Any = drawer
        for key in path[:-1]:
            parent = parent[key]
        if value is _DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return drawer


def loader_accepts(drawer: dict[str, Any], tmp_path: Path) -> bool:
    (tmp_path / "sub.yaml").write_text(SUB_DRAWER, encoding="utf-8")
    try:
        load_text(json.dumps(drawer), tmp_path / "drawer.json")
    except InvalidDrawer:
        return False
    return True


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_bytes() == schema_text().encode("utf-8"), (
        "schema/drawer.schema.json is stale; regenerate it with\n"
        "  python -c \"from drawer.schema import schema_text; print(schema_text(), end='')\""
        " > schema/drawer.schema.json"
    )


def test_schema_text_is_stable_json() -> None:
    text = schema_text()
    assert text == schema_text()
    assert text.endswith("}\n")
    assert json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n" == text


def test_is_a_draft7_schema() -> None:
    schema = drawer_schema()
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"] and schema["description"]


def walk(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its location, following only schema positions."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key in SUBSCHEMA:
        if key in schema:
            value = schema[key]
            items = value if isinstance(value, list) else [value]
            for number, item in enumerate(items):
                yield from walk(item, f"{where}/{key}/{number}")
    for key in SUBSCHEMA_LISTS:
        for number, item in enumerate(schema.get(key, [])):
            yield from walk(item, f"{where}/{key}/{number}")
    for key in SUBSCHEMA_MAPS:
        for name, item in schema.get(key, {}).items():
            yield from walk(item, f"{where}/{key}/{name}")


def test_uses_only_draft7_keywords_and_plain_refs() -> None:
    schema = drawer_schema()
    definitions = schema["definitions"]
    for where, node in walk(schema):
        assert set(node) <= DRAFT7_KEYWORDS, f"{where}: {sorted(set(node) - DRAFT7_KEYWORDS)}"
        if "$ref" in node:
            assert set(node) == {"$ref"}, f"{where}: $ref with siblings {sorted(node)}"
            prefix, name = node["$ref"].rsplit("/", 1)
            assert prefix == "#/definitions" and name in definitions, where


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_examples_validate(path: Path) -> None:
    drawer = YAML(typ="safe").load(path)
    errors = [
        f"{list(error.absolute_path)}: {error.message}" for error in VALIDATOR.iter_errors(drawer)
    ]
    assert errors == []


def test_examples_were_found() -> None:
    assert len(EXAMPLES) >= 10
    assert any(path.parent.name == "lib" for path in EXAMPLES)


def test_the_base_drawer_is_valid_for_schema_and_loader(tmp_path: Path) -> None:
    assert list(VALIDATOR.iter_errors(VALID)) == []
    assert loader_accepts(VALID, tmp_path)


# (label, broken drawer, whether the loader refuses it too).
BROKEN: list[tuple[str, dict[str, Any], bool]] = [
    ("unknown top-level key", edited((("stepz",), [])), True),
    ("no steps", edited((("steps",), _DELETE)), True),
    ("steps not a list", edited((("steps",), {"id": "a", "run": "x"})), True),
    ("version 2", edited((("version",), 2)), True),
    ("unknown step key", edited((("steps", 0, "comand"), "ls")), True),
    ("step without id", edited((("steps", 0, "id"), _DELETE)), True),
    ("bad id pattern", edited((("steps", 0, "id"), "1st")), True),
    ("reserved id", edited((("steps", 0, "id"), "inputs")), True),
    ("CEL word as id", edited((("steps", 0, "id"), "in")), True),
    ("unknown kind", edited((("steps", 0, "kind"), "shell")), True),
    ("run step without run", edited((("steps", 0, "run"), _DELETE)), True),
    ("run as a number", edited((("steps", 0, "run"), 5)), True),
    ("key of another kind", edited((("steps", 0, "value"), 1)), True),
    ("for_each without over", edited((("steps", 1, "over"), _DELETE)), True),
    ("for_each without steps", edited((("steps", 1, "steps"), _DELETE)), True),
    ("over plain text", edited((("steps", 1, "over"), "a b c")), True),
    ("over an unknown source", edited((("steps", 1, "over"), {"url": "x"})), True),
    ("over two sources", edited((("steps", 7, "over", "file"), "x")), True),
    ("range of four", edited((("steps", 8, "over", "range"), [0, 1, 2, 3])), True),
    ("range of text", edited((("steps", 8, "over", "range"), ["a", "z"])), True),
    ("file format csv", edited((("steps", 9, "over", "format"), "csv")), True),
    ("loop name reserved", edited((("steps", 1, "as"), "env")), True),
    ("loop name with dash", edited((("steps", 1, "index_as"), "my-index")), True),
    ("on_failure maybe", edited((("steps", 0, "on_failure"), "maybe")), True),
    ("retry attempts 0", edited((("steps", 6, "retry", "attempts"), 0)), True),
    ("retry unknown key", edited((("defaults", "retry", "tries"), 2)), True),
    ("retry backoff below 1", edited((("defaults", "retry", "backoff"), 0.5)), True),
    ("parallelism true", edited((("steps", 1, "parallelism"), True)), True),
    ("parallelism as text", edited((("steps", 1, "parallelism"), "3")), True),
    ("parallelism negative", edited((("steps", 1, "parallelism"), -1)), True),
    ("parallelism fraction", edited((("steps", 1, "parallelism"), 2.5)), True),
    ("max_parallelism any", edited((("steps", 2, "max_parallelism"), "any")), True),
    ("tolerate over 100%", edited((("steps", 1, "tolerate"), "100.5%")), True),
    ("tolerate reference", edited((("steps", 1, "tolerate"), "${inputs.n}")), True),
    ("max_iterations 0", edited((("steps", 3, "max_iterations"), 0)), True),
    ("max_iterations text", edited((("steps", 3, "max_iterations"), "five")), True),
    ("repeat without until", edited((("steps", 3, "until"), _DELETE)), True),
    ("duration in words", edited((("defaults", "timeout"), "5 minutes")), True),
    ("duration negative", edited((("steps", 3, "delay"), -1)), True),
    ("duration empty", edited((("execution", "timeout"), "")), True),
    ("duration true", edited((("steps", 5, "duration"), True)), True),
    ("max_workers negative", edited((("execution", "max_workers"), -1)), True),
    ("max_workers 0", edited((("execution", "max_workers"), 0)), True),
    ("max_workers true", edited((("execution", "max_workers"), True)), True),
    ("max_processes all", edited((("execution", "max_processes"), "all")), True),
    ("parallel no", edited((("execution", "parallel"), "no")), True),
    ("parallel 0", edited((("execution", "parallel"), 0)), True),
    ("tolerate true", edited((("steps", 1, "tolerate"), True)), True),
    ("attempts true", edited((("steps", 6, "retry", "attempts"), True)), True),
    ("shard yes", edited((("steps", 1, "shard"), "yes")), True),
    ("when 1", edited((("steps", 0, "when"), 1)), True),
    ("range of booleans", edited((("steps", 8, "over", "range"), [True, 3])), True),
    ("wait with both", edited((("steps", 5, "until"), "2026-01-31T12:00:00Z")), True),
    ("wait with neither", edited((("steps", 5, "duration"), _DELETE)), True),
    ("wait with null only", edited((("steps", 5, "duration"), None)), True),
    ("inputs type float", edited((("inputs", "n", "type"), "float")), True),
    ("input name with a dot", edited((("inputs", "n.x"), {})), True),
    ("input unknown key", edited((("inputs", "n", "optional"), True)), True),
    ("secret default too short", edited((("inputs", "token", "default"), "abc")), True),
    ("env value null", edited((("env", "EMPTY"), None)), True),
    ("shell zsh", edited((("defaults", "shell"), "zsh")), True),
    ("switch case without when", edited((("steps", 4, "cases", 0, "when"), _DELETE)), True),
    ("switch case extra key", edited((("steps", 4, "cases", 0, "id"), "c")), True),
    ("parallel without branches", edited((("steps", 2, "branches"), [])), True),
    ("branch group extra key", edited((("steps", 2, "branches", 0, "run"), "x")), True),
    ("drawer step without drawer", edited((("steps", 6, "drawer"), _DELETE)), True),
    ("value step without value", edited((("steps", 4, "default", 0, "value"), _DELETE)), True),
    ("depends_on a string", edited((("steps", 1, "depends_on"), "files")), True),
    ("outputs a list", edited((("outputs",), ["x"])), True),
    ("execution unknown key", edited((("execution", "workers"), 2)), True),
]


@pytest.mark.parametrize(
    ("drawer", "loader_refuses"),
    [pytest.param(drawer, refuses, id=label) for label, drawer, refuses in BROKEN],
)
def test_broken_drawers_are_rejected(
    drawer: dict[str, Any], loader_refuses: bool, tmp_path: Path
) -> None:
    assert not VALIDATOR.is_valid(drawer)
    if loader_refuses:
        assert not loader_accepts(drawer, tmp_path)


EDGE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("kind run spelt out", edited((("steps", 0, "kind"), "run"))),
    ("parallelism reference", edited((("steps", 1, "parallelism"), "${inputs.n}"))),
    ("parallelism all", edited((("steps", 1, "parallelism"), "all"))),
    ("parallelism 0", edited((("steps", 1, "parallelism"), 0))),
    ("max_workers auto", edited((("execution", "max_workers"), "auto"))),
    ("max_processes auto", edited((("execution", "max_processes"), "auto"))),
    ("max_workers reference", edited((("execution", "max_workers"), "${inputs.n}"))),
    ("parallel false", edited((("execution", "parallel"), False))),
    ("max_parallelism reference", edited((("steps", 2, "max_parallelism"), " ${inputs.n} "))),
    ("max_iterations reference", edited((("steps", 3, "max_iterations"), "${inputs.n}"))),
    ("tolerate 100%", edited((("steps", 1, "tolerate"), "100%"))),
    ("tolerate a count", edited((("steps", 1, "tolerate"), 2))),
    ("duration seconds", edited((("defaults", "timeout"), 30))),
    ("duration with space", edited((("defaults", "timeout"), "1.5 m"))),
    ("duration reference", edited((("execution", "timeout"), "${inputs.n}"))),
    (
        "wait until with null duration",
        edited((("steps", 5, "duration"), None), (("steps", 5, "until"), "2026-01-31T12:00:00Z")),
    ),
    ("over a list", edited((("steps", 1, "over"), ["a", {"b": 1}]))),
    ("range of one", edited((("steps", 8, "over", "range"), [5]))),
    ("parallel as a reference", edited((("execution", "parallel"), "${inputs.n > 1}"))),
    ("when null", edited((("steps", 0, "when"), None))),
    ("secret default long enough", edited((("inputs", "token", "default"), "abcd"))),
    ("secret default empty", edited((("inputs", "token", "default"), ""))),
    ("short default not secret", edited((("inputs", "s"), {"default": "ab"}))),
    ("minimal", {"steps": [{"id": "only", "run": "true"}]}),
    ("argv of unquoted scalars", {"steps": [{"id": "a", "run": ["x", True, 1e3, 16, None]}]}),
]


@pytest.mark.parametrize("drawer", [pytest.param(drawer, id=label) for label, drawer in EDGE_CASES])
def test_edge_cases_are_accepted(drawer: dict[str, Any], tmp_path: Path) -> None:
    errors = [error.message for error in VALIDATOR.iter_errors(drawer)]
    assert errors == []
    assert loader_accepts(drawer, tmp_path)


def test_a_json_drawer_file_validates(tmp_path: Path) -> None:
    text = json.dumps({"$schema": SCHEMA_ID, "steps": [{"id": "hello", "run": ["echo", "hi"]}]})
    path = tmp_path / "hello.json"
    path.write_text(text, encoding="utf-8")
    assert VALIDATOR.is_valid(json.loads(path.read_text(encoding="utf-8")))
    assert load_text(text, path).model.steps[0].id == "hello"


def test_to_draft7_converts_2020_12_constructs() -> None:
    source = {
        "$defs": {"Pair": {"prefixItems": [{"type": "integer"}, {"$ref": "#/$defs/Name"}]}},
        "properties": {
            "closed": {"prefixItems": [{"type": "string"}], "minItems": 1, "maxItems": 1},
            "open": {"prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
            "named": {"$ref": "#/$defs/Name", "description": "a name", "default": "x"},
            "pick": {
                "oneOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B"}],
                "discriminator": {"propertyName": "kind", "mapping": {"a": "#/$defs/A"}},
            },
            "$defs": {"const": "#/$defs/not-a-ref"},
        },
    }
    assert to_draft7(source) == {
        "definitions": {"Pair": {"items": [{"type": "integer"}, {"$ref": "#/definitions/Name"}]}},
        "properties": {
            "closed": {
                "items": [{"type": "string"}],
                "additionalItems": False,
                "minItems": 1,
                "maxItems": 1,
            },
            "open": {"items": [{"type": "string"}], "additionalItems": {"type": "integer"}},
            "named": {
                "allOf": [{"$ref": "#/definitions/Name"}],
                "description": "a name",
                "default": "x",
            },
            "pick": {"oneOf": [{"$ref": "#/definitions/A"}, {"$ref": "#/definitions/B"}]},
            "$defs": {"const": "#/$defs/not-a-ref"},
        },
    }


def test_drawer_schema_prints_the_committed_schema() -> None:
    printed = run_cli("schema", cwd=ROOT)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (ROOT / "schema" / "drawer.schema.json").read_text()
    extra = run_cli("schema", "extra", cwd=ROOT)
    assert extra.returncode == 2 and "takes no arguments" in extra.stderr


def test_every_step_kind_has_its_model() -> None:
    from drawer.model import STEP_KINDS, STEP_MODELS

    assert tuple(STEP_MODELS) == STEP_KINDS
