"""Read drawer files (YAML or JSON) into plain data with source positions, and format problems.

Every problem points at ``file:line:col`` and is shown with its source line and a caret, so the
parser keeps, next to the data, where each key and value starts in the text.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

PathKey = tuple[str | int, ...]

_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks ruamel counts (YAML 1.2)
_TAB_SIZE = 4
_MAX_EXPANDED = 1_000_000  # values a document may hold once its aliases are expanded
_MAX_DEPTH = 1000  # far past any real drawer file, far below where a composer's stack overflows
_FLOW = re.compile(r"[\[\]{}]")
_BLOCK_INDENT = re.compile(r"^[ \t?-]+", re.MULTILINE)  # indentation and compact "- " / "? "
_CORE = "tag:yaml.org,2002:"
_BOOLS = {  # YAML 1.2 booleans, and the 1.1 spellings a `%YAML 1.1` directive turns on
    "true": True, "false": False,
    "yes": True, "no": False, "on": True, "off": False, "y": True, "n": False,
}  # fmt: skip
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_TOKEN_NAMES = {
    "'<stream end>'": "end of file",
    "end of stream": "end of file",
    "<block end>": "end of block",
    "'<block mapping start>'": "a new mapping",
    "'<block sequence start>'": "a new list",
    "'<document start>'": "the start of a new document",
    "'?'": "a new key",
}
_YAML_HINTS = {
    "mapping values are not allowed": 'quote a value that contains ": ", or check the indentation',
    "end of block": "check the indentation of this line",
    "could not find expected ':'": 'a key may be missing its ":", or a quote is not closed',
    "undefined alias": "define the anchor (&name) before using the alias (*name)",
}


@dataclass(frozen=True)
class Position:
    """A place in the text; both numbers are 1-based and columns count characters."""

    line: int
    col: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a drawer file, with where it is and how to fix it."""

    message: str
    position: Position | None
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"
    code: str = "INVALID_DRAWER"


class ParseError(Exception):
    """The text could not be read; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class _Scalar:
    """A scalar's decoded value, style and character range in the text (for `in_scalar`)."""

    value: str
    style: str | None  # None (plain), "'", '"', "|" or ">"
    start: int  # index of its first character, node properties (&anchor, !tag) included
    end: int  # index just past it


@dataclass(frozen=True)
class _Loc:
    """Where a value starts, and the locations inside it."""

    start: Position
    scalar: _Scalar | None = None
    keys: Mapping[str, tuple[Position, _Loc]] = field(default_factory=dict)
    items: Sequence[_Loc] = ()


class _Lines:
    """The text split into lines, to turn character indexes into positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(match.end() for match in _BREAK.finditer(text))]

    def position(self, index: int) -> Position:
        row = bisect_right(self.starts, index) - 1
        return Position(row + 1, index - self.starts[row] + 1)

    def line(self, number: int) -> str:
        """The text of 1-based line `number`, without its line break."""
        start = self.starts[number - 1]
        match = _BREAK.search(self.text, start)
        return self.text[start : match.start() if match else len(self.text)]


class SourceMap:
    """Where each key and value of a parsed document starts."""

    def __init__(self, root: _Loc | None, lines: _Lines) -> None:
        self._root = root
        self._lines = lines

    def _find(self, path: PathKey) -> _Loc | None:
        loc = self._root
        for step in path:
            if loc is None:
                return None
            if isinstance(step, str):
                entry = loc.keys.get(step)
                loc = entry[1] if entry else None
            else:
                loc = loc.items[step] if 0 <= step < len(loc.items) else None
        return loc

    def key(self, path: PathKey) -> Position | None:
        """Position of the mapping key at `path` (e.g. the `over` of ("steps", 1, "over"))."""
        if not path or not isinstance(path[-1], str):
            return None
        parent = self._find(path[:-1])
        entry = parent.keys.get(path[-1]) if parent else None
        return entry[0] if entry else None

    def text(self, path: PathKey) -> str | None:
        """The scalar at `path` as written in the file: a plain YAML scalar's source text
        (`true`, `1e3`, `0x10`, `~`), a JSON number or literal's, a quoted string's value;
        None for a list, a mapping or a path not in the file."""
        loc = self._find(path)
        return loc.scalar.value if loc is not None and loc.scalar is not None else None

    def value(self, path: PathKey) -> Position | None:
        """Position of the value at `path`; for an alias, where the alias is used."""
        loc = self._find(path)
        return loc.start if loc else None

    def nearest(self, path: PathKey) -> Position:
        """Position of the value at the longest prefix of `path` that exists."""
        for length in range(len(path), -1, -1):
            found = self.value(path[:length])
            if found:
                return found
        return Position(1, 1)

    def in_scalar(self, path: PathKey, offset: int) -> Position | None:
        """Position of character `offset` of the scalar value at `path`; None if unknown.

        Exact for single-line plain and quoted scalars and for literal blocks; escapes and
        folding are matched best effort."""
        loc = self._find(path)
        scalar = loc.scalar if loc else None
        if scalar is None or not 0 <= offset < len(scalar.value):
            return None
        chars = _scalar_chars(self._lines, scalar)
        index = _align(scalar.value, chars, scalar.style, offset) if chars else None
        return None if index is None else self._lines.position(index)


@dataclass(frozen=True)
class ParsedDocument:
    """A drawer file read into plain data, with the positions of its parts."""

    data: Any  # plain dicts (str keys) / lists / str / int / float / bool / None
    source: SourceMap
    text: str  # the text parsed: the input without a leading BOM
    filename: str  # as given, for messages
    is_json: bool


def parse_document(text: str, filename: str) -> ParsedDocument:
    """Parse YAML or JSON text (JSON when the filename ends in .json, or the text starts with `{`
    after whitespace/BOM) into data and positions; raises ParseError for malformed text.

    Text that starts with `{` but is not valid JSON is read as YAML unless the name ends in .json.
    Empty text gives data None."""
    text = text.removeprefix("\ufeff")
    lines = _Lines(text)
    is_json = filename.lower().endswith(".json")
    try:
        if not text.strip():
            return ParsedDocument(None, SourceMap(None, lines), text, filename, is_json)
        if is_json or text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                if is_json:
                    raise ParseError([_json_problem(exc, lines)]) from None
            else:
                source = SourceMap(_scan_json(lines), lines)
                return ParsedDocument(data, source, text, filename, True)
        data, root = _load_yaml(lines)
    except RecursionError:
        raise ParseError([Problem("the document is nested too deeply", None)]) from None
    return ParsedDocument(data, SourceMap(root, lines), text, filename, False)


def format_problem(problem: Problem, doc_text: str | None, filename: str) -> str:
    """`file:line:col: error: message` then the source line, a caret line, and `  hint: ...`."""
    position = problem.position
    where = f"{filename}:{position.line}:{position.col}" if position else filename
    out = [f"{where}: {problem.severity}: {problem.message}"]
    if position and doc_text is not None:
        lines = _Lines(doc_text.removeprefix("\ufeff"))
        if 1 <= position.line <= len(lines.starts):
            line = lines.line(position.line)
            number = str(position.line)
            pad = _width(line[: position.col - 1].expandtabs(_TAB_SIZE))
            out.append(f"  {number} | {line.expandtabs(_TAB_SIZE)}".rstrip())
            out.append(f"  {' ' * len(number)} | {' ' * pad}^")
    if problem.hint:
        out.append(f"  hint: {problem.hint}")
    return "\n".join(out)


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, for "did you mean"; None if none is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _width(text: str) -> int:
    """Columns `text` takes in a terminal (wide characters count twice)."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


# --- YAML -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AliasRef:
    """An alias in the node graph: the node it names and where the alias itself is."""

    target: Any
    mark: Any


class _Composer(Composer):
    """A composer that records where aliases are used (ruamel returns the anchored node)."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # legal YAML: the later anchor wins

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            mark = self.parser.peek_event().start_mark
            return _AliasRef(super().compose_node(parent, index), mark)
        return super().compose_node(parent, index)


def _mark_position(mark: Any) -> Position:
    return Position(int(mark.line) + 1, int(mark.column) + 1)


_MAY_HOLD_ALIAS = re.compile(r"(?:^|[\s,\[{:-])\*[^\s,\[\]{}]")


def _check_depth(lines: _Lines) -> None:
    """Refuse text that may nest deeper than `_MAX_DEPTH` before a composer sees it: the C one
    overflows its stack (a segfault) long before Python's recursion limit would stop it."""
    depth = 0
    deep: re.Match[str] | None = None
    for match in _FLOW.finditer(lines.text):
        depth = depth + 1 if match.group() in "[{" else max(depth - 1, 0)
        if depth > _MAX_DEPTH:
            deep = match
            break
    else:
        deep = next(
            (m for m in _BLOCK_INDENT.finditer(lines.text) if m.end() - m.start() > _MAX_DEPTH),
            None,
        )
    if deep is None:
        return
    raise ParseError(
        [
            Problem(
                f"the document is nested too deeply (more than {_MAX_DEPTH} levels)",
                lines.position(deep.start()),
                hint="flatten the structure, or read the data from a file at run time",
            )
        ]
    )


def _load_yaml(lines: _Lines) -> tuple[Any, _Loc | None]:
    """Compose the YAML text and build data and locations from its single document."""
    _check_depth(lines)
    # The C composer is about ten times faster. Only the pure one can say where an alias
    # was used, and its error messages are the ones worded for people: it composes text that
    # may hold an alias, and any text the C composer refuses.
    if _MAY_HOLD_ALIAS.search(lines.text) is None:
        try:
            nodes = list(YAML(typ="safe", pure=False).compose_all(lines.text))
        except Exception:  # the pure composer below reports it properly
            nodes = None
        if nodes is not None:
            return _build(nodes)
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _Composer
    try:
        nodes = list(yaml.compose_all(lines.text))
    except MarkedYAMLError as exc:
        raise ParseError([_yaml_problem(exc, lines)]) from None
    except ReaderError as exc:
        message = f"{exc.reason}: U+{exc.character:04X}"
        raise ParseError([Problem(message, lines.position(exc.position))]) from None
    return _build(nodes)


def _build(nodes: list[Any]) -> tuple[Any, _Loc | None]:
    if not nodes:
        return None, None
    if len(nodes) > 1:
        message = f"the file holds {len(nodes)} YAML documents; a drawer file is one document"
        raise ParseError([Problem(message, _mark_position(nodes[1].start_mark))])
    builder = _YamlBuilder()
    data, root = builder.build(nodes[0])
    if builder.problems:
        raise ParseError(builder.problems)
    return data, root


def _yaml_problem(exc: MarkedYAMLError, lines: _Lines) -> Problem:
    """A one-line problem for a YAML syntax error, with a hint for the usual causes."""
    mark = exc.problem_mark or exc.context_mark
    message = str(exc.problem or exc.context or "invalid YAML")
    message = re.sub(r"\('(.+?)',\)", r"'\1'", message)  # ruamel shows some tokens as tuples
    for token, name in _TOKEN_NAMES.items():
        message = message.replace(token, name)
    position = _mark_position(mark) if mark else None
    if mark and not lines.text[mark.index :].strip():  # at the end: point after the last text
        position = lines.position(len(lines.text.rstrip()))
    if exc.problem and exc.context and exc.context_mark and position:
        started = _mark_position(exc.context_mark)
        if started.line < position.line:
            message += f" ({exc.context} on line {started.line})"
    hint = next((text for key, text in _YAML_HINTS.items() if key in message), None)
    if position and position.line <= len(lines.starts):
        line = lines.line(position.line)
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "'\\t'" in message and len(indent) >= position.col:
            message = "a tab is used for indentation"
        if "\t" in indent:
            hint = "YAML indentation must use spaces, not tabs"
    return Problem(message, position, hint)


class _YamlBuilder:
    """Turns a composed node graph into plain data and locations, collecting problems."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._built: dict[int, tuple[Any, _Loc]] = {}
        self._open: set[int] = set()
        self._sizes: dict[int, int] = {}  # id of a built list or dict -> values once expanded
        self._bomb_reported = False

    def _problem(self, message: str, position: Position, hint: str | None = None) -> None:
        self.problems.append(Problem(message, position, hint))

    def build(self, node: Any) -> tuple[Any, _Loc]:
        if isinstance(node, _AliasRef):
            start = _mark_position(node.mark)
            if id(node.target) in self._open:
                self._problem("an alias cannot refer to a collection that contains it", start)
                return None, _Loc(start)
            data, loc = self.build(node.target)
            if self._expanded_size(data) > _MAX_EXPANDED and not self._bomb_reported:
                self._bomb_reported = True
                self._problem(
                    f"aliases expand to more than {_MAX_EXPANDED:,} values",
                    start,
                    "an alias copies its anchor's value; repeat less, or read the data from a file",
                )
                return None, _Loc(start)
            return data, replace(loc, start=start)
        if id(node) not in self._built:
            self._open.add(id(node))
            self._built[id(node)] = self._build_node(node)
            self._open.discard(id(node))
        return self._built[id(node)]

    def _expanded_size(self, data: Any) -> int:
        """How many values `data` holds with shared (aliased) parts counted each time they appear,
        computed once per shared list or dict."""
        if not isinstance(data, (list, dict)):
            return 1
        if id(data) not in self._sizes:
            items = data.values() if isinstance(data, dict) else data
            self._sizes[id(data)] = 1 + sum(self._expanded_size(item) for item in items)
        return self._sizes[id(data)]

    def _build_node(self, node: Any) -> tuple[Any, _Loc]:
        start = _mark_position(node.start_mark)
        tag = str(node.tag)
        if isinstance(node, ScalarNode):
            scalar = _Scalar(
                node.value, node.style or None, node.start_mark.index, node.end_mark.index
            )
            return self._scalar_value(node.value, tag, start), _Loc(start, scalar=scalar)
        self._check_tag(tag, "seq" if isinstance(node, SequenceNode) else "map", start)
        if isinstance(node, SequenceNode):
            built = [self.build(item) for item in node.value]
            return [data for data, _ in built], _Loc(start, items=[loc for _, loc in built])
        assert isinstance(node, MappingNode)
        return self._mapping(node, start)

    def _check_tag(self, tag: str, expected: str, start: Position) -> None:
        if tag != _CORE + expected:
            shown = tag.replace(_CORE, "!!")
            self._problem(f'unsupported tag "{shown}"', start, "drawer files use plain YAML")

    def _scalar_value(self, text: str, tag: str, start: Position) -> Any:
        kind = tag.removeprefix(_CORE)
        try:
            if kind == "null":
                return None
            if kind == "bool":
                return _BOOLS[text.lower()]
            if kind == "int":
                return _to_int(text)
            if kind == "float":
                return _to_float(text)
        except (KeyError, ValueError):
            self._problem(f'"{text}" is not a valid {kind}', start)
            return text
        if kind not in ("str", "timestamp", "value", "merge"):
            self._check_tag(tag, "str", start)
        return text

    def _mapping(self, node: Any, start: Position) -> tuple[Any, _Loc]:
        entries: dict[str, tuple[Any, Position, _Loc]] = {}
        merged: list[tuple[dict[str, Any], Mapping[str, tuple[Position, _Loc]]]] = []
        merge_at: Position | None = None
        for key_node, value_node in node.value:
            alias = isinstance(key_node, _AliasRef)
            key = key_node.target if alias else key_node
            key_pos = _mark_position(key_node.mark if alias else key.start_mark)
            if not isinstance(key, ScalarNode):
                self._problem("a mapping key must be a plain value, not a list or mapping", key_pos)
                continue
            data, loc = self.build(value_node)
            if isinstance(value_node, ScalarNode) and value_node.start_mark.index == (
                value_node.end_mark.index
            ):  # an empty value: point just after the key, not at the next line
                loc = replace(loc, start=key_pos if alias else _mark_position(key.end_mark))
            is_merge = str(key.tag) == _CORE + "merge"
            if is_merge:
                first = merge_at
            else:
                first = entries[key.value][1] if key.value in entries else None
            if first:
                self._problem(f'duplicate key "{key.value}" (first at line {first.line})', key_pos)
            elif is_merge:
                merge_at = key_pos
                merged.extend(self._merge_sources(data, loc))
            else:
                entries[key.value] = (data, key_pos, loc)
        values: dict[str, Any] = {}
        keys: dict[str, tuple[Position, _Loc]] = {}
        for source_data, source_keys in merged:  # the first source to hold a key wins
            for name, value in source_data.items():
                if name not in values:
                    values[name], keys[name] = value, source_keys[name]
        for name, (value, key_pos, loc) in entries.items():  # explicit keys beat merged ones
            values[name], keys[name] = value, (key_pos, loc)
        return values, _Loc(start, keys=keys)

    def _merge_sources(
        self, data: Any, loc: _Loc
    ) -> list[tuple[dict[str, Any], Mapping[str, tuple[Position, _Loc]]]]:
        """The mappings a `<<` value merges: one mapping or a list of them."""
        if isinstance(data, dict):
            return [(data, loc.keys)]
        if isinstance(data, list) and all(isinstance(item, dict) for item in data):
            return [(item, item_loc.keys) for item, item_loc in zip(data, loc.items, strict=True)]
        self._problem("a merge (<<) needs a mapping or a list of mappings", loc.start)
        return []


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    base = {"0x": 16, "0o": 8, "0b": 2}.get(digits[:2].lower(), 10)
    return sign * int(digits[2:] if base != 10 else digits, base)


def _to_float(text: str) -> float:
    digits = text.replace("_", "").lower()
    if digits.lstrip("+-") in (".inf", ".nan"):
        return float(digits.replace(".", ""))
    return float(digits)


# --- JSON -------------------------------------------------------------------------------------


def _json_problem(exc: json.JSONDecodeError, lines: _Lines) -> Problem:
    """A problem for malformed JSON, noticing the common trailing comma."""
    before = exc.doc[: exc.pos].rstrip()
    trailing = before.endswith(",") and exc.doc[exc.pos : exc.pos + 1] in ("}", "]")
    hint = "JSON does not allow a comma after the last item" if trailing else None
    return Problem(exc.msg[:1].lower() + exc.msg[1:], lines.position(exc.pos), hint)


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def _scan_json(lines: _Lines) -> _Loc:
    """Locations of every value of JSON text that json.loads accepted; duplicate keys raise."""
    text = lines.text
    decoder = json.JSONDecoder()
    problems: list[Problem] = []

    def value(index: int) -> tuple[_Loc, int]:
        index = _skip_space(text, index)
        start = lines.position(index)
        if text[index] not in "{[":
            decoded, end = decoder.raw_decode(text, index)
            if isinstance(decoded, str):
                return _Loc(start, scalar=_Scalar(decoded, '"', index, end)), end
            return _Loc(start, scalar=_Scalar(text[index:end], None, index, end)), end
        closing = "}" if text[index] == "{" else "]"
        keys: dict[str, tuple[Position, _Loc]] = {}
        items: list[_Loc] = []
        index = _skip_space(text, index + 1)
        while text[index] != closing:
            if closing == "]":
                loc, index = value(index)
                items.append(loc)
            else:
                key_pos = lines.position(index)
                key, index = decoder.raw_decode(text, index)
                loc, index = value(_skip_space(text, index) + 1)
                if key in keys:
                    message = f'duplicate key "{key}" (first at line {keys[key][0].line})'
                    problems.append(Problem(message, key_pos))
                else:
                    keys[key] = (key_pos, loc)
            index = _skip_space(text, index)
            index = _skip_space(text, index + 1) if text[index] == "," else index
        return _Loc(start, keys=keys, items=items), index + 1

    root, _ = value(0)
    if problems:
        raise ParseError(problems)
    return root


# --- characters inside scalars ----------------------------------------------------------------


def _scalar_chars(lines: _Lines, scalar: _Scalar) -> list[tuple[str, int]]:
    """The source characters of a scalar's content, each with its index in the text."""
    text = lines.text
    index = scalar.start
    while index < scalar.end and text[index] in "&!":  # skip node properties
        while index < scalar.end and text[index] not in " \t\r\n":
            index += 1
        index = _skip_space(text, index)
    if scalar.style in ("'", '"'):
        return [(text[i], i) for i in range(index + 1, scalar.end - 1)]
    if scalar.style is None:
        return [(text[i], i) for i in range(index, scalar.end)]
    header = lines.position(index).line
    end = lines.position(scalar.end)
    last = end.line if end.col > 1 else end.line - 1
    numbers = range(header + 1, min(last, len(lines.starts)) + 1)
    first = next((lines.line(n) for n in numbers if lines.line(n).strip()), None)
    value_first = next((line for line in scalar.value.split("\n") if line.strip()), None)
    if first is None or value_first is None:
        return []
    indent = _indent(first) - _indent(value_first)  # explicit indentation indicators too
    chars: list[tuple[str, int]] = []
    for number in numbers:
        line, line_start = lines.line(number), lines.starts[number - 1]
        if line.strip() and _indent(line) < indent:
            break
        if line.strip():
            chars.extend((line[i], line_start + i) for i in range(indent, len(line)))
        chars.append(("\n", line_start + len(line)))
    return chars


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _align(value: str, chars: list[tuple[str, int]], style: str | None, offset: int) -> int | None:
    """Index in the text of `value[offset]`, walking the decoded value along its source:
    escapes decode, folded line breaks match spaces, other source whitespace is skipped."""
    done = pos = 0
    while pos < len(chars):
        char, index = chars[pos]
        width, decoded = 1, char
        if style == '"' and char == "\\":
            escape = _escape(chars, pos)
            if escape is None:
                return None
            width, decoded = escape
        elif style == "'" and char == "'":
            width = 2
        if decoded and value.startswith(decoded, done):
            if offset < done + len(decoded):
                return index
            done += len(decoded)
        elif decoded.isspace() and done < len(value) and value[done].isspace():
            if offset == done:
                return index
            done += 1
        elif decoded and not decoded.isspace():
            return None
        pos += width
    return None


def _escape(chars: list[tuple[str, int]], pos: int) -> tuple[int, str] | None:
    """(source width, decoded text) of the double-quoted escape starting at chars[pos]."""
    code = chars[pos + 1][0] if pos + 1 < len(chars) else ""
    if code in ("\r", "\n"):  # an escaped line break joins the lines
        crlf = code == "\r" and pos + 2 < len(chars) and chars[pos + 2][0] == "\n"
        return (3 if crlf else 2), ""
    if code in _HEX_ESCAPES:
        size = _HEX_ESCAPES[code]
        digits = "".join(char for char, _ in chars[pos + 2 : pos + 2 + size])
        try:
            return 2 + size, chr(int(digits, 16))
        except ValueError:
            return None
    return (2, _ESCAPES[code]) if code in _ESCAPES else None
