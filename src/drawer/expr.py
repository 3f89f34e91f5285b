"""CEL expressions: `when`, `until`, switch cases and every `${...}` that is not a plain path.

Each expression is compiled once and given only the names it uses: converting a context
with a large step output on every call is what makes CEL slow, not the evaluation.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from drawer.records import holds_surrogate, replace_surrogates
from drawer.refs import RefError, plain

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")
_STEP_LITERAL = re.compile(
    r"""(?<![.\w])steps\s*\[\s*(['"])((?:(?!\1).)*)\1\s*\]|(?<![.\w])steps\.([A-Za-z_]\w*)"""
)
_INPUT_FIELD = re.compile(
    r"(?<![.\w])inputs\.([A-Za-z_][A-Za-z0-9_]*)|(?<![.\w])inputs\s*\[\s*'([^']*)'\s*\]"
)
# Variables bound by comprehension macros: `list.map(r, r.x)` reads r, which is no name of ours.
_MACRO_VARIABLE = re.compile(r"\.(?:map|filter|all|exists|exists_one)\(\s*([A-Za-z_]\w*)\s*,")


# The functions the CEL library provides (operators, written `_+_` or `@in`, are not listed).
KNOWN_FUNCTIONS = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
    "string", "bytes", "bool", "timestamp", "duration", "type", "dyn", "getDate",
    "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours",
    "getMilliseconds", "getMinutes", "getMonth", "getSeconds",
})  # fmt: skip


class ExprError(RefError):
    """An expression that does not compile, or fails when evaluated (EXPR_ERROR)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message, code="EXPR_ERROR")
        self.offset = offset


@dataclass(frozen=True)
class Compiled:
    """A compiled expression and the names it reads."""

    text: str
    program: Any
    names: tuple[str, ...]
    step_ids: tuple[str, ...]
    input_names: tuple[str, ...]
    unknown_functions: tuple[str, ...]


@cache
def _cel() -> Any:
    """The CEL extension module alone: the `cel` package's __init__ also imports its
    interactive shell (prompt_toolkit), 165 ms that drawer never needs."""
    spec = importlib.util.find_spec("cel")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the CEL library (common-expression-language) is not installed")
    folder = spec.submodule_search_locations[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "cel" + suffix)
        if os.path.exists(path):
            extension = importlib.util.spec_from_file_location("cel.cel", path)
            if extension is not None and extension.loader is not None:
                module = importlib.util.module_from_spec(extension)
                extension.loader.exec_module(module)
                return module
    import cel  # an unusual layout: fall back to the package

    return cel


@cache
def compile_expression(text: str) -> Compiled:
    """Compile once per distinct expression; syntax errors carry the offset in `text`."""
    try:
        program = _cel().compile(text)
    except ValueError as error:
        message = str(error)
        match = _POSITION.search(message)
        if match:
            line, col, detail = int(match.group(1)), int(match.group(2)), match.group(3)
            detail = detail.split(" expecting ")[0]
            lines = text.split("\n")
            offset = sum(len(row) + 1 for row in lines[: line - 1]) + col - 1
            raise ExprError(f"${{{text}}}: {detail.strip()}", offset) from None
        raise ExprError(f"${{{text}}}: {message}") from None
    bound = {match.group(1) for match in _MACRO_VARIABLE.finditer(text)}
    names = tuple(name for name in program.references()["variables"] if name not in bound)
    steps = tuple(match.group(2) or match.group(3) for match in _STEP_LITERAL.finditer(text))
    inputs = tuple(match.group(1) or match.group(2) for match in _INPUT_FIELD.finditer(text))
    functions = program.references()["functions"]
    unknown = tuple(
        name for name in functions if name.isidentifier() and name not in KNOWN_FUNCTIONS
    )
    return Compiled(text, program, names, steps, inputs, unknown)


def evaluate(text: str, lookup: Callable[[str], Any]) -> Any:
    """The value of an expression; `lookup(name)` gives the value of each name it uses."""
    compiled = compile_expression(text)
    variables: dict[str, Any] = {}
    for name in compiled.names:
        if name == "steps":
            variables[name] = {
                step_id: plain(lookup("steps")[step_id])
                for step_id in compiled.step_ids
                if step_id in lookup("steps")
            }
        elif name == "env":
            variables[name] = dict(lookup("env"))
        else:
            try:
                variables[name] = plain(lookup(name))
            except RefError:
                raise ExprError(f"${{{text}}}: {name} is not available here") from None
    try:
        try:
            return compiled.program.execute(variables)
        except ValueError:
            if not holds_surrogate(variables):
                raise
        # CEL strings are Unicode: an undecodable byte (a lone surrogate) reads as U+FFFD.
        return compiled.program.execute(replace_surrogates(variables))
    except KeyError as error:
        raise ExprError(f"${{{text}}}: no key {error}") from None
    except (TypeError, RuntimeError, ValueError, LookupError, ArithmeticError) as error:
        raise ExprError(f"${{{text}}}: {error}".split("\n")[0]) from None
