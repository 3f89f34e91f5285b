"""Set, read and remove values in YAML or JSON text at RFC 6901 JSON Pointers, byte-exactly.

ruamel.yaml composes the text only to learn where each node is; an edit splices new text in
at those positions instead of re-dumping the document, so every byte outside the edited span
stays: comments, blank lines, indentation, quoting, key order, anchors, tags, CRLF, a BOM.

    >>> set_value("retries: 1  # per step\\nname: x\\n", "/retries", 3)
    'retries: 3  # per step\\nname: x\\n'
    >>> set_value("steps:\\n  - id: a\\n    run: make\\n", "/steps/0/parallelism", 4)
    'steps:\\n  - id: a\\n    run: make\\n    parallelism: 4\\n'
    >>> set_value("name: 'x'\\n", "/name", "yes")  # quoting kept; YAML 1.1 readers see a bool
    "name: 'yes'\\n"
    >>> set_value("a: 1\\n", "/env/MODE", "on")  # missing mappings are created
    'a: 1\\nenv:\\n  MODE: "on"\\n'
    >>> set_value('{\\n  "tags": ["a"]\\n}\\n', "/tags/-", "b")
    '{\\n  "tags": ["a", "b"]\\n}\\n'
    >>> unset_value("a: 1  # gone with a\\n# stays\\nb: 2\\n", "/a")
    '# stays\\nb: 2\\n'
    >>> get_value("base: &b {k: 1}\\nuse: {<<: *b}\\n", "/use/k"), get_text("a: 'q'\\n", "/a")
    (1, "'q'")

Rules: a pointer may not go through an alias (`*name`): set the alias itself to replace it
locally, or edit the anchored value, whose aliases follow by YAML's meaning. A key that only
comes through a merge key (`<<`) is written into the local mapping. A tag stays only when the
new value has the same type. Strings a YAML 1.1 or 1.2 reader would take for something else
are quoted; new lists and maps are written in flow style (compact JSON in JSON files).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.resolver import implicit_resolvers

_CORE = "tag:yaml.org,2002:"
_BOM = "\ufeff"
# Between two tokens: white space and comments (a "#" only starts one after white space).
_GAP = re.compile(r"(?:[ \t\r\n]+|(?<![^ \t\r\n])#[^\r\n]*)*")
_SPACES = re.compile(r"[ \t]*")
_PROPERTY = re.compile(r"[&!][^ \t\r\n,\[\]{}]*")
_ALIAS = re.compile(r"\*[^ \t\r\n,\[\]{}]+")
_BLOCK_HEADER = re.compile(r"[|>][0-9+-]*")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_PRINTABLE = "\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff"
_ALL_PRINTABLE = re.compile(f"[{_PRINTABLE}]*")
_DOUBLE_ESCAPED = re.compile(f'["\\\\]|[^{_PRINTABLE}]')
_JSON_ESCAPED = re.compile(f'[^{_PRINTABLE}\\t\\n"\\\\]')
_ESCAPES = {
    "\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
    "\r": "\\r", "\x1b": "\\e", '"': '\\"', "\\": "\\\\",
}  # fmt: skip
_IMPLICIT = [regexp for _versions, _tag, regexp, _first in implicit_resolvers]
_ITEM_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")
_KEY_SEPARATOR = re.compile(r"[ \t]*:[ \t]*")


class EditError(ValueError):
    """The edit cannot be made; the message says what was found and where."""


def set_value(text: str, pointer: str, value: object) -> str:
    """The text with `value` at `pointer` (`-` appends to a list; missing mappings are made)."""
    doc = _Document(text)
    return doc.apply(doc.set(_tokens(pointer), value))


def unset_value(text: str, pointer: str) -> str:
    """The text without the key or list item at `pointer` and its line(s)."""
    doc = _Document(text)
    return doc.apply(doc.unset(_tokens(pointer)))


def get_value(text: str, pointer: str) -> object:
    """The plain data (dict, list, str, int, float, bool, None) at `pointer`."""
    doc = _Document(text)
    return doc.value(doc.locate(_tokens(pointer)))


def get_text(text: str, pointer: str) -> str:
    """The value at `pointer` as written: its exact source slice (anchor, tag or alias too)."""
    doc = _Document(text)
    occurrence = doc.locate(_tokens(pointer))
    return doc.text[occurrence.start : occurrence.end]


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise EditError(f'invalid JSON Pointer "{pointer}": it must be empty or start with "/"')
    if re.search(r"~(?![01])", pointer):
        raise EditError(f'invalid JSON Pointer "{pointer}": "~" must be followed by 0 or 1')
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _pointer(tokens: list[str]) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens) or "/"


@dataclass(eq=False, slots=True)
class _Occurrence:
    """Where one node is written: an alias `*x` is its own occurrence of the node it names."""

    node: Any
    lead: int  # just after the ":", "-", "[" or "," that introduces it
    start: int  # its first character: an anchor, a tag, the alias or the content
    props: list[tuple[int, int]]  # anchor and tag spans
    content: int
    end: int  # block collections end with their last child; block scalars with their last line
    alias: bool = False
    flow: bool = False  # a flow collection: `[...]`, `{...}` (every JSON collection)
    in_flow: bool = False
    entries: list[tuple[_Occurrence, _Occurrence]] = field(default_factory=list)
    items: list[_Occurrence] = field(default_factory=list)


@dataclass(frozen=True)
class _Splice:
    start: int
    end: int
    text: str


class _PlainConstructor(SafeConstructor):
    """ruamel's safe constructor, except that unknown tags and timestamps give plain values."""

    def construct_unknown(self, _suffix: str, node: Any) -> Any:
        if isinstance(node, ScalarNode):
            return node.value
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        self.flatten_mapping(node)
        return {
            self.construct_object(key, deep=True): self.construct_object(value, deep=True)
            for key, value in node.value
        }

    def construct_text(self, node: Any) -> Any:
        return node.value


_PlainConstructor.add_multi_constructor("", _PlainConstructor.construct_unknown)
_PlainConstructor.add_constructor(_CORE + "timestamp", _PlainConstructor.construct_text)
_PlainConstructor.add_constructor(_CORE + "binary", _PlainConstructor.construct_text)


def _compose(text: str) -> tuple[Any, YAML]:
    """The root node of the single document (None when there is none) and its composer."""
    failure: YAMLError | None = None
    for pure in (False, True):  # the C composer (ruamel.yaml.clib) when it reads the text
        yaml = YAML(typ="safe", pure=pure)
        yaml.Constructor = _PlainConstructor
        try:
            nodes = list(yaml.compose_all(text))
        except YAMLError as exc:
            failure = exc
            continue
        if len(nodes) > 1:
            raise EditError(
                f"the text holds {len(nodes)} YAML documents; only a single document can be edited"
            )
        return (nodes[0] if nodes else None), yaml
    raise EditError(f"the text is not valid YAML or JSON: {failure}")


class _Document:
    """One YAML or JSON text with the occurrences of its nodes, and the splices that edit it."""

    def __init__(self, text: str) -> None:
        self.bom = _BOM if text.startswith(_BOM) else ""
        self.text = text = text[len(self.bom) :]
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.json = text.lstrip()[:1] in ("{", "[") and _is_json(text)
        self.definitions: dict[int, _Occurrence] = {}
        self.anchors: list[tuple[str, int]] = []  # (name, where `&name` is)
        self.aliases: list[tuple[str, int]] = []  # (name, where `*name` is)
        root, self.yaml = _compose(text)
        self.root = None if root is None else self._occurrence(root, root.start_mark.index, False)

    # --- reading positions -------------------------------------------------------------------

    def _occurrence(self, node: Any, lead: int, in_flow: bool) -> _Occurrence:
        text = self.text
        empty = isinstance(node, ScalarNode) and node.value == "" and not node.style
        start = _skip(_GAP, text, lead)
        if text.startswith("*", start):
            end = _skip(_ALIAS, text, start)
            self.aliases.append((text[start + 1 : end], start))
            return _Occurrence(node, lead, start, [], start, end, alias=True, in_flow=in_flow)
        if empty:  # nothing written, or only an anchor or tag on the same line
            start = _skip(_SPACES, text, lead)
            start = start if text.startswith(("&", "!"), start) else lead
        props: list[tuple[int, int]] = []
        content = start
        while text.startswith(("&", "!"), content):
            match = _PROPERTY.match(text, content)
            assert match is not None
            props.append(match.span())
            if text[content] == "&":
                self.anchors.append((text[content + 1 : match.end()], content))
            content = _skip(_SPACES if empty else _GAP, text, match.end())
        if empty:
            content = props[-1][1] if props else start
        occurrence = _Occurrence(node, lead, start, props, content, content, in_flow=in_flow)
        self.definitions.setdefault(id(node), occurrence)
        if isinstance(node, ScalarNode):
            if node.style in ("|", ">"):
                occurrence.end = self._line_end(
                    content + len(text[content : node.end_mark.index].rstrip())
                )
            elif not empty:
                occurrence.end = node.end_mark.index
        elif isinstance(node, SequenceNode):
            self._sequence(occurrence, in_flow)
        else:
            self._mapping(occurrence, in_flow)
        return occurrence

    def _after(self, position: int, indicator: str | None) -> int:
        """Just past `indicator` when it is the next token after `position`, else `position`."""
        found = _skip(_GAP, self.text, position)
        if indicator is None or not self.text.startswith(indicator, found):
            return position
        if indicator == "?" and self.text[found + 1 : found + 2] not in (" ", "\t", "\r", "\n"):
            return position  # a plain key that starts with "?"
        return found + 1

    def _sequence(self, occurrence: _Occurrence, in_flow: bool) -> None:
        flow = self.text.startswith("[", occurrence.content)
        occurrence.flow = flow
        position, indicator = (occurrence.content + 1, None) if flow else (occurrence.content, "-")
        for child in occurrence.node.value:
            item = self._occurrence(child, self._after(position, indicator), in_flow or flow)
            occurrence.items.append(item)
            position, indicator = item.end, ("," if flow else "-")
        occurrence.end = occurrence.node.end_mark.index if flow else occurrence.items[-1].end

    def _mapping(self, occurrence: _Occurrence, in_flow: bool) -> None:
        braces = self.text.startswith("{", occurrence.content)
        occurrence.flow = flow = braces or occurrence.node.flow_style is True
        position, indicator = (
            (occurrence.content + 1, None) if braces else (occurrence.content, "?")
        )
        for key_node, value_node in occurrence.node.value:
            key = self._occurrence(key_node, self._after(position, indicator), in_flow or flow)
            value = self._occurrence(value_node, self._after(key.end, ":"), in_flow or flow)
            occurrence.entries.append((key, value))
            position, indicator = value.end, ("," if flow else "?")
        if braces:
            occurrence.end = occurrence.node.end_mark.index
        else:  # a block mapping, or a single pair in a flow list: never empty
            occurrence.end = occurrence.entries[-1][1].end

    def _line_start(self, position: int) -> int:
        return self.text.rfind("\n", 0, position) + 1

    def _line_end(self, position: int) -> int:
        """Where the line holding `position` ends, before its line break."""
        found = self.text.find("\n", position)
        if found == -1:
            return len(self.text)
        return found - 1 if found > position and self.text[found - 1] == "\r" else found

    def _next_line(self, position: int) -> int:
        """The start of the line after the one holding `position` (or the end of the text)."""
        found = self.text.find("\n", position)
        return len(self.text) if found == -1 else found + 1

    def _line(self, position: int) -> int:
        return self.text.count("\n", 0, position) + 1

    def _column(self, position: int) -> int:
        return position - self._line_start(position)

    # --- finding -----------------------------------------------------------------------------

    def _local(self, occurrence: _Occurrence, token: str) -> int | None:
        """The index of the entry whose key is written as `token`, in this mapping only."""
        for index, (key, _value) in enumerate(occurrence.entries):
            if isinstance(key.node, ScalarNode) and key.node.value == token:
                return index
        return None

    def _merged(self, occurrence: _Occurrence, token: str) -> _Occurrence | None:
        """The value a merge key (`<<`) brings for `token`, if any (the first source wins)."""
        for key, value in occurrence.entries:
            if str(key.node.tag) != _CORE + "merge":
                continue
            sources = value.items if isinstance(value.node, SequenceNode) else [value]
            for source in sources:
                source = self.definitions.get(id(source.node), source)
                if isinstance(source.node, MappingNode):
                    index = self._local(source, token)
                    found = source.entries[index][1] if index is not None else None
                    found = found or self._merged(source, token)
                    if found is not None:
                        return found
        return None

    def _index(self, occurrence: _Occurrence, token: str, where: str) -> int:
        count = len(occurrence.items)
        if not _INDEX.fullmatch(token):
            raise EditError(
                f"{where} is a list (line {self._line(occurrence.start)}):"
                f' "{token}" is not an index (0 to {count - 1}, or "-" to append)'
            )
        if int(token) >= count:
            raise EditError(
                f"{where} (line {self._line(occurrence.start)}) has {count} item(s): "
                f"no item {token}"
            )
        return int(token)

    def _not_a_container(self, occurrence: _Occurrence, where: str) -> EditError:
        shown = self.text[occurrence.start : occurrence.end][:40] or "empty"
        return EditError(
            f"{where} is a scalar ({shown}, line {self._line(occurrence.start)}),"
            " not a mapping or list"
        )

    def _through_alias(self, occurrence: _Occurrence, where: str) -> EditError:
        name = self.text[occurrence.start + 1 : occurrence.end]
        target = self.definitions[id(occurrence.node)]
        return EditError(
            f"{where} is the alias *{name} (line {self._line(occurrence.start)}) of the value at"
            f" line {self._line(target.start)}; set {where} itself to replace the alias, or edit"
            " the anchored value"
        )

    def locate(self, tokens: list[str]) -> _Occurrence:
        """The occurrence at `tokens`, reading through aliases and merge keys."""
        occurrence = self._root()
        for depth, token in enumerate(tokens):
            where = _pointer(tokens[:depth])
            occurrence = self.definitions.get(id(occurrence.node), occurrence)
            if isinstance(occurrence.node, MappingNode):
                index = self._local(occurrence, token)
                found = occurrence.entries[index][1] if index is not None else None
                found = found or self._merged(occurrence, token)
                if found is None:
                    raise EditError(
                        f"nothing at {_pointer(tokens[: depth + 1])}: the mapping at line"
                        f' {self._line(occurrence.start)} has no key "{token}"'
                    )
                occurrence = found
            elif isinstance(occurrence.node, SequenceNode):
                occurrence = occurrence.items[self._index(occurrence, token, where)]
            else:
                raise self._not_a_container(occurrence, where)
        return occurrence

    def _root(self) -> _Occurrence:
        if self.root is None:
            raise EditError("the text holds no document")
        return self.root

    def value(self, occurrence: _Occurrence) -> object:
        if self.json:
            return json.loads(self.text[occurrence.start : occurrence.end])
        return self.yaml.constructor.construct_document(occurrence.node)

    # --- editing -----------------------------------------------------------------------------

    def apply(self, splice: _Splice) -> str:
        """The edited text; refused when it would leave an alias without its anchor."""
        inside = range(splice.start, splice.end)
        lost = {name for name, at in self.anchors if at in inside and f"&{name}" not in splice.text}
        for name, at in self.aliases:
            if name in lost and at not in inside:
                raise EditError(
                    f"the edit removes the anchor &{name}, which the alias *{name} at line"
                    f" {self._line(at)} still uses"
                )
        return self.bom + self.text[: splice.start] + splice.text + self.text[splice.end :]

    def set(self, tokens: list[str], value: object) -> _Splice:
        if self.root is None:
            return self._set_empty(tokens, value)
        occurrence = self.root
        for depth, token in enumerate(tokens):
            where = _pointer(tokens[:depth])
            if occurrence.alias:
                raise self._through_alias(occurrence, where)
            rest = tokens[depth + 1 :]
            if isinstance(occurrence.node, MappingNode):
                index = self._local(occurrence, token)
                if index is None:
                    inherited = self._merged(occurrence, token)
                    if rest and inherited is not None:
                        raise EditError(
                            f"{_pointer(tokens[: depth + 1])} comes from a merge key (<<), from"
                            f" line {self._line(inherited.start)}; set it whole, or edit it there"
                        )
                    return self._add_entry(occurrence, token, rest, value)
                occurrence = occurrence.entries[index][1]
            elif isinstance(occurrence.node, SequenceNode):
                if token == "-":
                    return self._append(occurrence, _nest(rest, value))
                occurrence = occurrence.items[self._index(occurrence, token, where)]
            elif str(occurrence.node.tag) == _CORE + "null":
                return self.replace(occurrence, _nest(tokens[depth:], value))
            else:
                raise self._not_a_container(occurrence, where)
        return self.replace(occurrence, value)

    def unset(self, tokens: list[str]) -> _Splice:
        if not tokens:
            raise EditError("cannot unset the whole document")
        occurrence = self._root()
        for depth in range(len(tokens) - 1):
            index = self._existing(occurrence, tokens, depth)
            if isinstance(occurrence.node, MappingNode):
                occurrence = occurrence.entries[index][1]
            else:
                occurrence = occurrence.items[index]
        return self._remove(occurrence, self._existing(occurrence, tokens, len(tokens) - 1))

    def _existing(self, occurrence: _Occurrence, tokens: list[str], depth: int) -> int:
        """The index of the local entry or item `tokens[depth]` names in `occurrence`."""
        token, where, here = tokens[depth], _pointer(tokens[:depth]), _pointer(tokens[: depth + 1])
        if occurrence.alias:
            raise self._through_alias(occurrence, where)
        if isinstance(occurrence.node, SequenceNode):
            if token == "-":
                raise EditError(f'nothing at {here}: "-" names no item')
            return self._index(occurrence, token, where)
        if not isinstance(occurrence.node, MappingNode):
            raise self._not_a_container(occurrence, where)
        index = self._local(occurrence, token)
        if index is not None:
            return index
        line = self._line(occurrence.start)
        inherited = self._merged(occurrence, token)
        if inherited is not None:
            raise EditError(
                f"{here} comes from a merge key (<<), from line {self._line(inherited.start)},"
                f" not from the mapping at line {line}"
            )
        raise EditError(f'nothing at {here}: the mapping at line {line} has no key "{token}"')

    def replace(self, occurrence: _Occurrence, value: object) -> _Splice:
        """Write `value` over one occurrence, keeping its anchor, and its tag when it fits."""
        text = self.text
        if self.json:
            return _Splice(occurrence.start, occurrence.end, self._json(value))
        if occurrence.alias:
            return _Splice(occurrence.start, occurrence.end, _yaml(value, None, occurrence.in_flow))
        node = occurrence.node
        kept = [
            text[start:end]
            for start, end in occurrence.props
            if text[start] == "&" or _tag_fits(str(node.tag), node, value)
        ]
        changed = len(kept) != len(occurrence.props)
        if isinstance(node, ScalarNode):
            new = self._scalar(occurrence, value)
        else:
            new = _yaml(value, None, occurrence.in_flow)
        head_end = occurrence.props[-1][1] if occurrence.props else occurrence.lead
        gap = text[head_end : occurrence.content]
        if not isinstance(node, ScalarNode) and not occurrence.flow and "\n" in gap:
            # A block collection starts on the next line: the new value goes up beside its key.
            # Comments before the content stay; the last line's own comment goes with its value.
            comments = gap[: gap.rfind("\n")].rstrip(" \t\r")
            end = self._line_end(occurrence.end)
            if not changed:
                return _Splice(head_end, end, " " + new + comments)
            return _Splice(occurrence.lead, end, " " + " ".join([*kept, new]) + comments)
        if changed:
            return _Splice(occurrence.start, occurrence.end, " ".join([*kept, new]))
        if occurrence.content == occurrence.end:  # an empty value right after its ":" or "-"
            new = " " + new
        return _Splice(occurrence.content, occurrence.end, new)

    def _scalar(self, occurrence: _Occurrence, value: object) -> str:
        """`value` in the style of the scalar it replaces, where the value allows that style."""
        node = occurrence.node
        if node.style not in ("|", ">"):
            return _yaml(value, node.style if isinstance(value, str) else None, occurrence.in_flow)
        header = _BLOCK_HEADER.match(self.text, occurrence.content)
        assert header is not None
        comment = self.text[header.end() : self._line_end(header.end())]
        comment = comment if comment.strip() else ""
        if isinstance(value, str):
            first = self._next_line(occurrence.content)
            body = self.text[first : occurrence.end]
            indents = [
                len(line) - len(line.lstrip(" ")) for line in body.splitlines() if line.strip()
            ]
            line_start = self._line_start(occurrence.content)
            margin = _skip(_SPACES, self.text, line_start) - line_start
            indent = indents[0] if indents else margin + 2
            block = _block_scalar(value, node.style, indent, self.newline)
            if block is not None:
                chomp, lines = block
                at_end = occurrence.end == len(self.text) and chomp == ""
                return str(node.style) + chomp + comment + lines + (self.newline if at_end else "")
        return _yaml(value, None, occurrence.in_flow) + comment

    def _add_entry(
        self, occurrence: _Occurrence, key: str, rest: list[str], value: object
    ) -> _Splice:
        """Insert `key` (with the mappings `rest` names) after the last entry of a mapping."""
        if occurrence.flow or self.json:
            if self.json:
                entry_key, new = self._json(key), self._json(_nest(rest, value))
            else:
                entry_key, new = (
                    self._key(occurrence, key, True),
                    _yaml(_nest(rest, value), None, True),
                )
            separator = ": " if not self.json else self._separators()[1]
            if occurrence.entries:
                last_key, last_value = occurrence.entries[-1]
                between = self.text[last_key.end : last_value.start]
                if last_value.end > last_value.start and _KEY_SEPARATOR.fullmatch(between):
                    separator = between
            spans = [(k.start, v.end) for k, v in occurrence.entries]
            return self._add_flow(occurrence, spans, entry_key + separator + new)
        last_key, last_value = occurrence.entries[-1]
        at = self._line_end(last_value.end)
        lines = self._block_entry(occurrence, key, rest, value, self._column(last_key.start))
        return _Splice(at, at, self.newline + lines)

    def _block_entry(
        self, occurrence: _Occurrence, key: str, rest: list[str], value: object, indent: int
    ) -> str:
        head = " " * indent + self._key(occurrence, key, False) + ":"
        if rest and rest[0] != "-":
            unit = self._indent_unit()
            return (
                head
                + self.newline
                + self._block_entry(occurrence, rest[0], rest[1:], value, indent + unit)
            )
        return head + " " + _yaml(_nest(rest, value), None, False)

    def _key(self, occurrence: _Occurrence, key: str, in_flow: bool) -> str:
        """A new key, quoted like its siblings when they are quoted."""
        styles = [k.node.style for k, _v in occurrence.entries if isinstance(k.node, ScalarNode)]
        style = styles[-1] if styles and styles[-1] in ("'", '"') else None
        return _yaml(key, style, in_flow)

    def _append(self, occurrence: _Occurrence, value: object) -> _Splice:
        """Add `value` after the last item of a list."""
        new = (
            self._json(value)
            if self.json
            else _yaml(value, None, occurrence.flow or occurrence.in_flow)
        )
        if occurrence.flow:
            return self._add_flow(
                occurrence, [(item.start, item.end) for item in occurrence.items], new
            )
        last = occurrence.items[-1]
        dash = last.lead - 1
        spacing = self.text[last.lead : last.start]
        spacing = spacing if spacing and spacing.strip(" ") == "" else " "
        at = self._line_end(last.end)
        return _Splice(at, at, self.newline + " " * self._column(dash) + "-" + spacing + new)

    def _add_flow(
        self, occurrence: _Occurrence, spans: list[tuple[int, int]], entry: str
    ) -> _Splice:
        """Add an entry to a flow collection with the separators and layout it already uses."""
        text = self.text
        if not text.startswith(("{", "["), occurrence.content):
            raise EditError(
                f"cannot add to the single-pair mapping at line {self._line(occurrence.start)}"
            )
        opening, closing = occurrence.content, occurrence.end - 1
        if not spans:
            inner = text[opening + 1 : closing]
            if "\n" not in inner:
                return _Splice(opening + 1, closing, entry)
            line = text[self._line_start(opening) : opening]
            indent = line[: len(line) - len(line.lstrip(" \t"))] + self._indent_text()
            return _Splice(opening + 1, opening + 1, self.newline + indent + entry)
        last_start, last_end = spans[-1]
        comma = _skip(_GAP, text, last_end)
        trailing = text.startswith(",", comma) and comma < closing
        line_start = self._line_start(last_start)
        if line_start > opening and not text[line_start:last_start].strip():
            separator = "," + self.newline + text[line_start:last_start]
        else:
            separator = ", " if not self.json else self._separators()[0]
            if len(spans) > 1:
                between = text[spans[-2][1] : last_start]
                separator = between if _ITEM_SEPARATOR.fullmatch(between) else separator
        if trailing:
            return _Splice(comma + 1, comma + 1, separator[1:] + entry + ",")
        return _Splice(last_end, last_end, separator + entry)

    def _remove(self, occurrence: _Occurrence, index: int) -> _Splice:
        """Remove one entry or item with its line(s), or its separating comma in flow style."""
        text = self.text
        mapping = isinstance(occurrence.node, MappingNode)
        count = len(occurrence.entries if mapping else occurrence.items)
        if occurrence.flow and not text.startswith(("{", "["), occurrence.content):
            raise EditError(
                f"cannot remove from the single-pair mapping at line {self._line(occurrence.start)}"
            )
        if count == 1:
            if occurrence.flow:
                return _Splice(occurrence.content + 1, occurrence.end - 1, "")
            return self.replace(occurrence, {} if mapping else [])
        spans = (
            [(k.start, v.end) for k, v in occurrence.entries]
            if mapping
            else [(item.start, item.end) for item in occurrence.items]
        )
        start, end = spans[index]
        if occurrence.flow:
            if index + 1 < count:
                return _Splice(start, spans[index + 1][0], "")
            return _Splice(spans[index - 1][1], end, "")
        if not mapping:
            start = occurrence.items[index].lead - 1  # the dash
        line_start = self._line_start(start)
        after = self._next_line(end)
        if text[line_start:start].strip():  # shares its line with a dash
            following = _skip(_SPACES, text, after)
            if text[following : following + 1] in ("#", "\r", "\n", ""):  # keep comment lines
                dash_end = line_start + len(text[line_start:start].rstrip())
                return _Splice(dash_end, self._line_end(end), "")
            return _Splice(start, following, "")  # the next entry moves up beside the dash
        if after == len(text) and not text.endswith("\n"):  # the last line: take its line break
            line_start -= 2 if text[line_start - 2 : line_start] == "\r\n" else 1
        return _Splice(line_start, after, "")

    def _set_empty(self, tokens: list[str], value: object) -> _Splice:
        """Set a value in a text that holds no document yet (empty, or comments only)."""
        end = len(self.text)
        prefix = "" if not self.text or self.text.endswith("\n") else self.newline
        if not tokens:
            return _Splice(end, end, prefix + _yaml(value, None, False) + self.newline)
        if tokens[0] == "-":
            return _Splice(
                end,
                end,
                prefix + "- " + _yaml(_nest(tokens[1:], value), None, False) + self.newline,
            )
        empty = _Occurrence(None, 0, 0, [], 0, 0)
        return _Splice(
            end,
            end,
            prefix + self._block_entry(empty, tokens[0], tokens[1:], value, 0) + self.newline,
        )

    # --- file style --------------------------------------------------------------------------

    def _json(self, value: object) -> str:
        try:
            written = json.dumps(
                value, ensure_ascii=False, allow_nan=False, separators=self._separators()
            )
        except (TypeError, ValueError) as exc:
            raise EditError(f"cannot write {value!r} as JSON: {exc}") from None
        return _JSON_ESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", written)

    def _separators(self) -> tuple[str, str]:
        """The JSON item and key separators the file uses on one line (", " and ": " by default)."""
        item, key = ", ", ": "
        found_item = found_key = False
        pending = [self.root] if self.root is not None else []
        while pending and not (found_item and found_key):
            occurrence = pending.pop()
            pairs = [(k.start, v.end) for k, v in occurrence.entries] or [
                (item.start, item.end) for item in occurrence.items
            ]
            for (_, left), (right, _) in itertools.pairwise(pairs):
                between = self.text[left:right]
                if not found_item and _ITEM_SEPARATOR.fullmatch(between):
                    item, found_item = between, True
            for k, v in occurrence.entries:
                between = self.text[k.end : v.start]
                if not found_key and _KEY_SEPARATOR.fullmatch(between):
                    key, found_key = between, True
            pending.extend(v for _k, v in reversed(occurrence.entries))
            pending.extend(reversed(occurrence.items))
        if not found_item and key == ":":  # compact keys: compact items too
            item = ","
        return item, key

    def _indent_unit(self) -> int:
        """How far the file indents a nested block mapping (2 when nothing shows it)."""
        pending = [self.root] if self.root is not None else []
        while pending:
            occurrence = pending.pop()
            for key, value in occurrence.entries:
                nested = value.entries and not value.flow and not value.alias
                if nested and self._line(value.content) > self._line(key.start):
                    return self._column(value.content) - self._column(key.start)
                pending.append(value)
            pending.extend(occurrence.items)
        return 2

    def _indent_text(self) -> str:
        """One level of indentation in a JSON or flow text (its first indented line shows it)."""
        match = re.search(r"\n([ \t]+)\S", self.text)
        return match.group(1) if match else "  "


def _skip(pattern: re.Pattern[str], text: str, position: int) -> int:
    """Where a run of `pattern` (which may be empty) starting at `position` ends."""
    match = pattern.match(text, position)
    assert match is not None
    return match.end()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _nest(tokens: list[str], value: object) -> object:
    """The value to write where `tokens` do not exist yet: "-" makes a list, a key a mapping."""
    for token in reversed(tokens):
        value = [value] if token == "-" else {token: value}
    return value


def _tag_fits(tag: str, node: Any, value: object) -> bool:
    """Whether an explicit tag still describes `value` (custom tags: same kind of node)."""
    if tag.startswith(_CORE):
        kinds = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str"}
        kind = (
            "map"
            if isinstance(value, dict)
            else "seq"
            if isinstance(value, list | tuple)
            else kinds.get(type(value))
        )
        return tag == _CORE + str(kind)
    if isinstance(node, ScalarNode):
        return isinstance(value, str)
    if isinstance(node, SequenceNode):
        return isinstance(value, list | tuple)
    return isinstance(value, dict)


def _yaml(value: object, style: str | None, in_flow: bool) -> str:
    """`value` as YAML text: scalars plain when safe, lists and maps in flow style."""
    if isinstance(value, dict):
        pairs = (
            f"{_yaml(key, None, True)}: {_yaml(item, None, True)}" for key, item in value.items()
        )
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(item, None, True) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    if not isinstance(value, str):
        raise EditError(f"cannot write a value of type {type(value).__name__}")
    if style == "'" and "\n" not in value and _ALL_PRINTABLE.fullmatch(value):
        return "'" + value.replace("'", "''") + "'"
    if style not in ("'", '"') and _plain(value, in_flow):
        return value
    return '"' + _DOUBLE_ESCAPED.sub(_escape, value) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return (
        f"\\x{code:02X}"
        if code <= 0xFF
        else f"\\u{code:04X}"
        if code <= 0xFFFF
        else f"\\U{code:08X}"
    )


def _plain(text: str, in_flow: bool) -> bool:
    """Whether `text` reads back as this string, unquoted, in YAML 1.1 and 1.2 alike."""
    if not text or not _ALL_PRINTABLE.fullmatch(text) or text[0] == " " or text[-1] == " ":
        return False
    if text[0] in "?:,[]{}#&*!|>'\"%@`" or (text[0] == "-" and text[1:2] in ("", " ")):
        return False
    if text.startswith(("---", "...")) or ": " in text or " #" in text or text.endswith(":"):
        return False
    if in_flow and any(char in text for char in ",[]{}:#"):
        return False
    return not any(regexp.match(text) for regexp in _IMPLICIT)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    written = repr(value)
    mantissa, exponent, power = written.partition("e")
    if exponent and "." not in mantissa:  # 1e+20 is a string to YAML 1.1 readers
        return f"{mantissa}.0e{power}"
    return written


def _block_scalar(value: str, style: str, indent: int, newline: str) -> tuple[str, str] | None:
    """A `|` or `>` body for `value` (chomping indicator, lines), or None when it cannot be one."""
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    if (
        "\n" not in value
        or trailing > 1
        or not body.strip()
        or not _ALL_PRINTABLE.fullmatch(body.replace("\n", ""))
    ):
        return None
    lines = body.split("\n")
    first = next(line for line in lines if line)
    if first[0] in " \t" or any(line and not line.strip() for line in lines):
        return None
    written: list[str] = []
    previous: str | None = None
    empty = 0
    for line in lines:
        if not line:
            empty += 1
            continue
        normal = previous is not None and previous[0] not in " \t" and line[0] not in " \t"
        if style == ">" and normal:  # a single break between text lines folds into a space
            written.append("")
        written.extend([""] * empty)
        written.append(line)
        previous, empty = line, 0
    prefix = " " * indent
    return ("-" if trailing == 0 else ""), "".join(
        newline + (prefix + line if line else "") for line in written
    )
