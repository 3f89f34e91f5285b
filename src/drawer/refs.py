"""`${...}` references: finding them in strings, plain paths, resolution and interpolation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drawer.records import json_text

ROOT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
SEGMENT_RE = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*|\d+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


class RefError(Exception):
    """A reference that could not be resolved (REF_UNRESOLVED) or a malformed one."""

    def __init__(self, message: str, code: str = "REF_UNRESOLVED") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Ref:
    """One `${...}` in a string: its text, where it sits, and its path when it is a plain path."""

    content: str
    start: int
    end: int
    path: tuple[str, ...] | None

    @property
    def root(self) -> str:
        match = ROOT_RE.match(self.content.strip())
        return match.group(0) if match else ""

    @property
    def text(self) -> str:
        return "${" + self.content + "}"


@dataclass(frozen=True)
class Template:
    """A string split into literal text and references."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(part for part in self.parts if isinstance(part, Ref))

    @property
    def single_ref(self) -> Ref | None:
        """The reference when the whole string is exactly one reference (it keeps its type)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Ref):
            return self.parts[0]
        return None


def parse_plain_path(content: str) -> tuple[str, ...] | None:
    """`a.output.x[0]["k"]` -> ("a", "output", "x", "0", "k"); None when it is not a plain path."""
    text = content.strip()
    match = ROOT_RE.match(text)
    if not match:
        return None
    path = [match.group(0)]
    pos = match.end()
    while pos < len(text):
        seg = SEGMENT_RE.match(text, pos)
        if not seg:
            return None
        name, index, quoted = seg.groups()
        if name is not None:
            path.append(name)
        elif index is not None:
            path.append(index)
        else:
            path.append(json.loads(f'"{quoted}"'))
        pos = seg.end()
    return tuple(path)


def find_closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose content starts at `start`, or -1."""
    depth = 0
    quote = ""
    pos = start
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    return -1


_TEMPLATE_CACHE: dict[str, Template] = {}


def parse_template(text: str) -> Template:
    """Split a string into text and `${...}` references; `$${` is a literal `${`."""
    cached = _TEMPLATE_CACHE.get(text)
    if cached is not None:
        return cached
    parts: list[str | Ref] = []
    literal: list[str] = []
    pos = 0
    while True:
        found = text.find("${", pos)
        if found < 0:
            literal.append(text[pos:])
            break
        if found > 0 and text[found - 1] == "$":
            literal.append(text[pos : found - 1] + "${")
            pos = found + 2
            continue
        close = find_closing_brace(text, found + 2)
        if close < 0:
            raise RefError(
                f"unterminated reference starting at {text[found : found + 20]!r}",
                code="INVALID_DRAWER",
            )
        literal.append(text[pos:found])
        if any(literal):
            parts.append("".join(literal))
        literal = []
        content = text[found + 2 : close]
        parts.append(Ref(content, found, close + 1, parse_plain_path(content)))
        pos = close + 1
    if any(literal):
        parts.append("".join(literal))
    template = Template(tuple(parts))
    if len(_TEMPLATE_CACHE) < 10_000:
        _TEMPLATE_CACHE[text] = template
    return template


def has_refs(text: str) -> bool:
    return "${" in text and bool(parse_template(text).refs)


def to_text(value: Any) -> str:
    """How a value reads as text (inside a longer string, or passed to a command: an argument,
    an environment variable, stdin): strings as they are, null as empty text (an unset
    optional input is empty, as an unset shell variable is), the rest as compact JSON that is
    always valid UTF-8 (a lone surrogate inside is a `\\uXXXX` escape, as in every record)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json_text(plain(value))


def plain(value: Any) -> Any:
    """Turn records and other lazy objects into plain JSON data."""
    as_json = getattr(value, "as_json", None)
    if as_json is not None:
        return plain(as_json())
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


Lookup = Callable[[str], Any]


def _describe_keys(mapping: Mapping[Any, Any], shown: int = 12) -> str:
    keys = sorted(str(key) for key in mapping)
    if not keys:
        return "it has no keys"
    if len(keys) > shown:
        return f"it has {len(keys)} keys, such as {', '.join(keys[:shown])}"
    return f"keys: {', '.join(keys)}"


def walk_path(value: Any, path: tuple[str, ...], ref_text: str) -> Any:
    """Follow a plain path's segments (RFC 6901 semantics) through dicts, lists and records."""
    current = value
    for depth, segment in enumerate(path):
        as_json = getattr(current, "as_json", None)
        if as_json is not None:
            current = as_json()
        where = ".".join(path[:depth]) or "the value"
        if isinstance(current, Mapping):
            if segment in ("lines", "json") and "exit_code" in current and current["lines"] is None:
                raise RefError(
                    f"{ref_text}: the command printed more than 64 MiB; its {segment} "
                    "are not kept (write the output to a file instead)",
                    code="OUTPUT_TOO_LARGE",
                )
            if (
                segment in ("stdout", "stderr")
                and "exit_code" in current
                and current.get(f"{segment}_truncated")
            ):
                raise RefError(
                    f"{ref_text}: only the tail of its {segment} is kept (the command printed "
                    "more than 64 MiB, or the record comes from an earlier run); write the "
                    "output to a file instead",
                    code="OUTPUT_TOO_LARGE",
                )
            if segment not in current:
                raise RefError(
                    f"{ref_text}: {where} has no key {segment!r} ({_describe_keys(current)})"
                )
            current = current[segment]
        elif isinstance(current, list | tuple):
            if not segment.isdigit() or int(segment) >= len(current):
                raise RefError(
                    f"{ref_text}: {where} is a list of {len(current)}; no index {segment!r}"
                )
            current = current[int(segment)]
        elif current is None:
            raise RefError(f"{ref_text}: {where} is null (was the step skipped?)")
        else:
            raise RefError(f"{ref_text}: {where} is a {type(current).__name__}, not a map or list")
    return current


def resolve_ref(ref: Ref, lookup: Lookup) -> Any:
    """The value of one reference; `lookup(root)` gives the value of a root name."""
    if ref.path is None:
        from drawer.expr import evaluate

        return evaluate(ref.content, lookup)
    root_value = lookup(ref.path[0])
    return plain(walk_path(root_value, ref.path[1:], ref.text))


def interpolate(text: str, lookup: Lookup) -> Any:
    """Resolve every reference in a string: one whole reference keeps its type, else text."""
    if "${" not in text:
        return text
    template = parse_template(text)
    single = template.single_ref
    if single is not None:
        return resolve_ref(single, lookup)
    return "".join(
        part if isinstance(part, str) else to_text(resolve_ref(part, lookup))
        for part in template.parts
    )


def interpolate_deep(value: Any, lookup: Lookup) -> Any:
    """Resolve references in every string of a nested value."""
    if isinstance(value, str):
        return interpolate(value, lookup)
    if isinstance(value, dict):
        return {key: interpolate_deep(item, lookup) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [interpolate_deep(item, lookup) for item in value]
    return value
