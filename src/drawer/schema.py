"""The drawer file format as a draft-07 JSON Schema, for editors (`drawer schema`).

pydantic writes JSON Schema 2020-12; yaml-language-server and SchemaStore support draft-07
best, so `to_draft7` converts it. The models' field validators are invisible to pydantic's
generator, so the rules they enforce (durations, `${...}` references, reserved ids) are added
here as patterns, field by field. Counts and `tolerate` write their own (drawer.counts).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from drawer.counts import REFERENCE_PATTERN
from drawer.model import (
    CEL_RESERVED,
    DURATION_RE,
    ID_PATTERN,
    RESERVED_IDS,
    BranchGroup,
    Defaults,
    Drawer,
    DrawerStep,
    Execution,
    ForEachStep,
    ParallelStep,
    RepeatStep,
    RetryPolicy,
    RunStep,
    SwitchStep,
    ValueStep,
    WaitStep,
)

SCHEMA_ID = "https://raw.githubusercontent.com/drawer-dev/drawer/main/schema/drawer.schema.json"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

_STEP_MODELS: tuple[type[BaseModel], ...] = (
    RunStep, ForEachStep, ParallelStep, RepeatStep, SwitchStep, DrawerStep, ValueStep, WaitStep,
)  # fmt: skip
_DURATION_FIELDS = ("timeout", "delay", "max_delay", "duration")
_DURATION_MODELS: tuple[type[BaseModel], ...] = (RetryPolicy, Defaults, Execution, *_STEP_MODELS)
_ID_MODELS: tuple[type[BaseModel], ...] = (*_STEP_MODELS, BranchGroup)

# Keywords that hold one subschema, a list of them, or a map of names to them.
_SUBSCHEMA = ("additionalItems", "additionalProperties", "contains", "else", "if", "items",
              "not", "propertyNames", "then")  # fmt: skip
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SUBSCHEMA_MAPS = ("definitions", "dependencies", "patternProperties", "properties")
# 2019-09 / 2020-12 / OpenAPI keywords draft-07 does not know. `discriminator` is OpenAPI's:
# draft-07 validators ignore it, but its mapping would still point into `$defs`, and
# `oneOf` already decides which step kind a mapping is, so it goes.
_DROPPED = frozenset({"discriminator", "deprecated", "unevaluatedProperties", "unevaluatedItems"})


def to_draft7(node: Any) -> Any:
    """A 2020-12 schema as draft-07: `definitions`, tuple `items`, `$ref` without siblings."""
    if isinstance(node, list):
        return [to_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "$defs":
            key = "definitions"
        if key == "$ref" and isinstance(value, str):
            converted[key] = value.replace("#/$defs/", "#/definitions/", 1)
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            converted[key] = {name: to_draft7(sub) for name, sub in value.items()}
        elif key in (*_SUBSCHEMA, *_SUBSCHEMA_LISTS, "prefixItems"):
            converted[key] = to_draft7(value)
        else:
            converted[key] = value  # data (const, enum, default, examples) stays as written
    if "prefixItems" in converted:
        prefix = converted.pop("prefixItems")
        rest = converted.pop("items", None)
        converted["items"] = prefix
        if rest is not None:
            converted["additionalItems"] = rest
        elif converted.get("maxItems") == len(prefix):
            converted["additionalItems"] = False
    if "$ref" in converted and len(converted) > 1:
        # draft-07 ignores every keyword beside `$ref`; allOf keeps them in force.
        converted = {"allOf": [{"$ref": converted.pop("$ref")}], **converted}
    return converted


def _duration(nullable: bool) -> dict[str, Any]:
    shapes: list[dict[str, Any]] = [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": f"{DURATION_RE.pattern}|{REFERENCE_PATTERN}"},
    ]
    if nullable:
        shapes.append({"type": "null"})
    return {
        "anyOf": shapes,
        "description": "seconds, or text with a unit (500ms, 30s, 5m, 1h), or a ${...} reference",
    }


def _replace(definition: dict[str, Any], field: str, schema: dict[str, Any]) -> None:
    """Swap one property's schema, keeping pydantic's title and default."""
    old = definition["properties"][field]  # a KeyError here: model.py renamed the field
    kept = {key: old[key] for key in ("title", "default") if key in old}
    definition["properties"][field] = {**schema, **kept}


def _add_field_rules(definitions: dict[str, Any]) -> None:
    """What the models' validators check, as schema keywords."""
    reserved = {"not": {"enum": sorted(RESERVED_IDS | CEL_RESERVED)}}
    for model in _DURATION_MODELS:
        definition = definitions[model.__name__]
        for field in _DURATION_FIELDS:
            if field in model.model_fields:
                nullable = {"type": "null"} in definition["properties"][field]["anyOf"]
                _replace(definition, field, _duration(nullable))
    for model in _ID_MODELS:
        properties = definitions[model.__name__]["properties"]
        properties["id"] = {**properties["id"], **reserved}
    for model in (ForEachStep, RepeatStep):
        properties = definitions[model.__name__]["properties"]
        for field in ("as", "index_as"):
            if field in properties:
                properties[field] = {**properties[field], **reserved}
    # validate's check_loop: text in `over` is a reference, never items.
    over = definitions["ForEachStep"]["properties"]["over"]["oneOf"]
    over[over.index({"type": "string"})]["pattern"] = REFERENCE_PATTERN
    # WaitStep._one_of: exactly one of duration and until, null counting as absent.
    definitions["WaitStep"]["oneOf"] = [
        {"required": ["duration"], "properties": {"duration": {"not": {"type": "null"}}}},
        {"required": ["until"], "properties": {"until": {"type": "string"}}},
    ]
    # check_drawer refuses a secret default of 1 to 3 characters.
    definitions["InputSpec"]["if"] = {
        "properties": {"secret": {"const": True}},
        "required": ["secret"],
    }
    definitions["InputSpec"]["then"] = {
        "properties": {"default": {"not": {"type": "string", "minLength": 1, "maxLength": 3}}}
    }


def drawer_schema() -> dict[str, Any]:
    """The draft-07 JSON Schema of a drawer file."""
    schema: dict[str, Any] = to_draft7(Drawer.model_json_schema(by_alias=True))
    _add_field_rules(schema["definitions"])
    schema["properties"]["inputs"]["propertyNames"] = {"pattern": ID_PATTERN}
    schema.update(
        {
            "$schema": DRAFT_07,
            "$id": SCHEMA_ID,
            "title": "drawer file",
            "description": "A drawer workflow: inputs, environment, defaults and a list of "
            "steps (run, for_each, parallel, repeat, switch, drawer, value, wait). "
            "A step without kind is a run step.",
        }
    )
    return schema


def schema_text() -> str:
    """`drawer_schema()` as stable text: indent 2, sorted keys, a trailing newline."""
    return json.dumps(drawer_schema(), indent=2, sort_keys=True) + "\n"
