"""Drawer references in shell strings: values travel in environment variables, never as code.

A light bash lexer tracks quoting, substitutions, comments, here-documents and arithmetic, so
each `${...}` becomes `"$DRAWER_REF_n"` (bare) or `${DRAWER_REF_n}` (quoted) in the script.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ARITH_HINT = "compute it as an expression instead, e.g. ${n * 2}, and use the result"
PYTHON_HINT = "read os.environ or use argv form"

_BREAK = frozenset(" \t\n;&|()<>")
_WORD = re.compile(r"[^\s;&|()<>'\"\\$`]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBSCRIPT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[")
_PARAM = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "for", "time", "!", "{"}
)
_QUOTE_HINT = "close the quotes around it: 'a'\"{}\"'b'"
_LITERAL_PLACES = {
    "'": ("inside single quotes", _QUOTE_HINT),
    "$'": ("inside $'...' quotes", _QUOTE_HINT),
    "#": ("inside a comment", "move it out of the comment"),
    "<<": ("inside a quoted here-document", "unquote the delimiter (<<EOF) to substitute it"),
}
_DEFAULT_OPS = (":-", ":=", ":+", ":?")
# A parameter expansion: a parameter, a subscript, then the end or an operator (`:-`, `#`,
# `%`, `/`, `^`, `,`, `@`, `:` for an offset).
_PARAMETER_EXPANSION = re.compile(_PARAM.pattern + r"(?:\[[^\]]*\])?(?:$|[-:=+?#%/^,@])")


@dataclass(frozen=True)
class ShellRef:
    """An active reference: its value arrives in `DRAWER_REF_<number>`."""

    number: int
    content: str
    start: int
    end: int
    quoted: bool


@dataclass(frozen=True)
class ShellIssue:
    """A problem with a `${...}` (or construct) at `offset` in the original script."""

    offset: int
    severity: Literal["error", "warning"]
    message: str
    hint: str | None


@dataclass(frozen=True)
class ShellTemplate:
    """A script split into literal text and active references, in order."""

    parts: tuple[str | ShellRef, ...]
    refs: tuple[ShellRef, ...]


@dataclass(frozen=True)
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    quoted: bool


def compile_shell(
    script: str, is_drawer_ref: Callable[[str], bool]
) -> tuple[ShellTemplate, list[ShellIssue]]:
    """Split a bash/sh script into literal text and drawer references, with context checks.

    `$${` becomes a literal `${`. References that are errors or warnings stay literal text.
    """
    lexer = _Lexer(script, is_drawer_ref)
    lexer.run()
    return lexer.template(), lexer.issues


def render_shell(template: ShellTemplate, as_file: frozenset[int] = frozenset()) -> str:
    """The script to execute: refs become "$DRAWER_REF_n" (bare) or ${DRAWER_REF_n} (quoted).

    Refs numbered in `as_file` are read from `DRAWER_REF_n_FILE` into the (unexported) shell
    variable first, on the script's first line; `$(cat ...; printf x)` then `%x` keeps the
    value's trailing newlines, which a bare `$(cat ...)` strips.
    """
    out: list[str] = []
    for n in sorted(as_file):
        var = f"DRAWER_REF_{n}"
        out.append(f'{var}="$(cat "${var}_FILE"; printf x)"; {var}="${{{var}%x}}"; ')
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        n = part.number
        expr = f"${{DRAWER_REF_{n}}}" if part.quoted else f"$DRAWER_REF_{n}"
        out.append(expr if part.quoted else f'"{expr}"')
    return "".join(out)


def find_python_refs(script: str) -> list[ShellIssue]:
    """For shell: python — every ${...} (not $${) is an error: read os.environ or use argv form."""
    issues: list[ShellIssue] = []
    i = 0
    while (i := script.find("$", i)) >= 0:
        if script.startswith("$$", i):
            i += 2
            continue
        if script.startswith("${", i):
            close = _match_brace(script, i + 2, len(script))
            if close < 0:
                issues.append(ShellIssue(i, "error", "unterminated ${", None))
                break
            message = f"${{{script[i + 2 : close]}}} in a python script is not substituted"
            issues.append(ShellIssue(i, "error", message, PYTHON_HINT))
        i += 1
    return issues


def _match_brace(s: str, start: int, end: int) -> int:
    """Index of the `}` closing a `${` whose content begins at `start`, or -1."""
    depth = 1
    i = start
    while i < end:
        c = s[i]
        if c in "'\"":
            i = s.find(c, i + 1, end)
            if i < 0:
                return -1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def is_shell_parameter(content: str) -> bool:
    """Whether `${CONTENT}` reads as a shell parameter expansion (`${HOME}`, `${1}`, `${#a[@]}`,
    `${x%.txt}`), not as an expression (`${1 + n}`, `${(a + b) * 2}`, `${size(s)}`)."""
    return _PARAMETER_EXPANSION.match(content) is not None


def _shell_var_hint(content: str) -> str:
    name = _NAME.match(content)
    if name is None:
        return f"for a shell variable write $${{{content}}}"
    return f"for a shell variable write ${name.group()} or $${{{content}}}"


class _Lexer:
    """One pass over a script; each scanning method takes a start offset and returns the end."""

    def __init__(self, script: str, is_drawer_ref: Callable[[str], bool]) -> None:
        self.s = script
        self.is_ref = is_drawer_ref
        self.end = len(script)
        self.done = 0
        self.parts: list[str | ShellRef] = []
        self.refs: list[ShellRef] = []
        self.issues: list[ShellIssue] = []
        self.pending: list[_Heredoc] = []

    def run(self) -> None:
        self._cmd(0, "", "")

    def template(self) -> ShellTemplate:
        merged: list[str | ShellRef] = []
        for part in [*self.parts, self.s[self.done :]]:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part:
                merged.append(part)
        return ShellTemplate(tuple(merged), tuple(self.refs))

    def _emit(self, start: int, end: int, replacement: str | ShellRef) -> None:
        self.parts += [self.s[self.done : start], replacement]
        self.done = end

    def _cmd(self, pos: int, stop: str, arith: str) -> int:
        """Unquoted text up to `stop`: "" (end), ")" or "`" (substitution), "]]", or ";" (end of
        a simple command). `arith` names the enclosing arithmetic context, "" when none."""
        s = self.s
        depth = case_depth = 0
        word_start = cmd_start = True
        while pos < self.end:
            c = s[pos]
            if stop == "]]" and word_start and s.startswith("]]", pos):
                return pos + 2
            if word_start and (c not in _BREAK or s.startswith("((", pos)):
                word_start, was_cmd, cmd_start = False, cmd_start, False
                if c == "#":
                    pos = self._literal_until(pos, s.find("\n", pos, self.end), "#")
                    continue
                if was_cmd:
                    if s.startswith("((", pos):
                        pos = self._nested(pos + 2, "))", "(( ))")
                        continue
                    if sub := _SUBSCRIPT.match(s, pos, self.end):
                        pos, cmd_start = self._nested(sub.end(), "]", "an array subscript"), True
                        continue
                    word = m.group() if (m := _WORD.match(s, pos, self.end)) else ""
                    if word == "[[":
                        pos = self._cmd(pos + 2, "]]", "[[ ]]")
                        continue
                    if word == "let":
                        pos = self._cmd(pos + 3, ";", "let")
                        continue
                    case_depth += (word == "case") - (word == "esac")
                    name, eq, _ = word.partition("=")
                    cmd_start = word in _KEYWORDS or bool(eq and name.isidentifier())
            if c in " \t<>":
                word_start = True
                if s.startswith("<<", pos) and not arith:
                    pos = self._heredoc_start(pos)
                    continue
            elif c in "\n;&|":
                if stop == ";":
                    return pos
                word_start = cmd_start = True
                if c == "\n" and self.pending:
                    pos = self._heredoc_bodies(pos + 1)
                    continue
            elif c == "(":
                depth += 1
                word_start = cmd_start = True
            elif c == ")":
                if depth == 0 and (stop == ";" or (stop == ")" and case_depth == 0)):
                    return pos + (stop == ")")
                depth = max(depth - 1, 0)
                word_start = cmd_start = True
            elif c == "`":
                if stop == "`":
                    return pos + 1
                pos = self._cmd(pos + 1, "`", arith)
                continue
            elif c == "'":
                pos = self._single_quotes(pos)
                continue
            elif s.startswith("$'", pos):
                pos = self._ansi_quotes(pos)
                continue
            elif c == '"':
                pos = self._expanding(pos + 1, arith, '"')
                continue
            elif c == "\\":
                pos += 2
                continue
            elif c == "$":
                pos = self._dollar(pos, False, arith)
                continue
            pos += 1
        return pos

    def _expanding(self, pos: int, arith: str, close: str) -> int:
        """Double-quoted text up to `close` ('"'), or an unquoted here-document body (close="")."""
        s = self.s
        while pos < self.end:
            c = s[pos]
            if c == close:
                return pos + 1
            if c == "\\":
                pos += 2
            elif c == "$":
                pos = self._dollar(pos, True, arith)
            elif c == "`":
                pos = self._cmd(pos + 1, "`", arith)
            else:
                pos += 1
        return pos

    def _nested(self, pos: int, close: str, arith: str, quoted: bool = False) -> int:
        """Text up to the balancing `close`: arithmetic, a subscript or a `$${...}` word."""
        s = self.s
        opener = {")": "(", "]": "[", "}": "{"}[close[0]]
        depth = 0
        while pos < self.end:
            c = s[pos]
            if c == close[0] and depth == 0:
                return pos + (len(close) if s.startswith(close, pos) else 1)
            depth += (c == opener) - (c == close[0])
            if c == "\\":
                pos += 2
            elif c == "$":
                pos = self._dollar(pos, quoted, arith)
            elif c == '"':
                pos = self._expanding(pos + 1, arith, '"')
            elif c == "'" and not quoted:
                pos = self._single_quotes(pos)
            elif c == "`":
                pos = self._cmd(pos + 1, "`", arith)
            else:
                pos += 1
        return pos

    def _dollar(self, pos: int, quoted: bool, arith: str) -> int:
        s = self.s
        if s.startswith("$${", pos):
            self._emit(pos, pos + 3, "${")
            return self._param(pos + 3, quoted, arith)
        if s.startswith("$$", pos):
            return pos + 2
        if s.startswith("${", pos):
            return self._ref(pos, quoted, arith)
        if s.startswith("$((", pos):
            return self._nested(pos + 3, "))", "$(( ))")
        if s.startswith("$(", pos):
            return self._cmd(pos + 2, ")", arith)
        if s.startswith("$[", pos):
            return self._nested(pos + 2, "]", "$[ ]")
        return pos + 1

    def _param(self, pos: int, quoted: bool, arith: str) -> int:
        """A shell parameter expansion written `$${...}`; subscripts and offsets are arithmetic."""
        s = self.s
        if name := _PARAM.match(s, pos, self.end):
            pos = name.end()
        if s.startswith("[", pos):
            pos = self._nested(pos + 1, "]", "an array subscript")
        if s.startswith(":", pos) and not s.startswith(_DEFAULT_OPS, pos):
            return self._nested(pos + 1, "}", "a substring offset")
        return self._nested(pos, "}", arith, quoted)

    def _ref(self, pos: int, quoted: bool, arith: str) -> int:
        close = _match_brace(self.s, pos + 2, self.end)
        if close < 0:
            self.issues.append(ShellIssue(pos, "error", "unterminated ${", "close it with }"))
            return self.end
        content = self.s[pos + 2 : close]
        if not self.is_ref(content):
            message = f"${{{content}}} is not a drawer reference"
            self.issues.append(ShellIssue(pos, "error", message, _shell_var_hint(content)))
        elif arith:
            message = f"${{{content}}} inside {arith}: bash evaluates variable contents there"
            self.issues.append(ShellIssue(pos, "error", message, ARITH_HINT))
        else:
            ref = ShellRef(len(self.refs) + 1, content, pos, close + 1, quoted)
            self.refs.append(ref)
            self._emit(pos, close + 1, ref)
        return close + 1

    def _single_quotes(self, pos: int) -> int:
        end = self.s.find("'", pos + 1, self.end)
        return self._literal_until(pos + 1, end, "'") + 1

    def _ansi_quotes(self, pos: int) -> int:
        end = pos + 2
        while end < self.end and self.s[end] != "'":
            end += 2 if self.s[end] == "\\" else 1
        return self._literal_until(pos + 2, end, "$'") + 1

    def _literal_until(self, pos: int, end: int, where: str) -> int:
        """Literal text up to `end` (-1: to the end): drawer references there only warn."""
        end = self.end if end < 0 else end
        s = self.s
        while (i := s.find("$", pos, end)) >= 0:
            if s.startswith("$${", i):
                self._emit(i, i + 3, "${")
                pos = i + 3
            elif s.startswith("${", i):
                close = s.find("}", i, end)
                if close >= 0 and self.is_ref(content := s[i + 2 : close]):
                    self._warn_literal(i, f"${{{content}}}", where)
                pos = i + 2
            else:
                pos = i + (2 if s.startswith("$$", i) else 1)
        return end

    def _warn_literal(self, offset: int, ref: str, where: str) -> None:
        place, hint = _LITERAL_PLACES[where]
        message = f"{ref} {place} stays literal text"
        self.issues.append(
            ShellIssue(offset, "warning", message, f"{hint.format(ref)}, or write ${ref}")
        )

    def _heredoc_start(self, pos: int) -> int:
        """Record the here-document opened by `<<WORD` / `<<-WORD`; `<<<` is a here-string."""
        s = self.s
        if s.startswith("<<<", pos):
            return pos + 3
        pos += 2
        strip_tabs = s.startswith("-", pos)
        if strip_tabs:
            pos += 1
        while pos < self.end and s[pos] in " \t":
            pos += 1
        delimiter: list[str] = []
        quoted = False
        while pos < self.end and s[pos] not in _BREAK:
            c = s[pos]
            if c in "'\"":
                close = s.find(c, pos + 1, self.end)
                close = self.end if close < 0 else close
                delimiter.append(s[pos + 1 : close])
                quoted, pos = True, close + 1
            elif c == "\\":
                delimiter.append(s[pos + 1 : pos + 2])
                quoted, pos = True, pos + 2
            else:
                delimiter.append(c)
                pos += 1
        if delimiter:
            self.pending.append(_Heredoc("".join(delimiter), strip_tabs, quoted))
        return pos

    def _heredoc_bodies(self, pos: int) -> int:
        """Scan the bodies of the here-documents opened on the line that ends before `pos`."""
        docs, self.pending = self.pending, []
        for doc in docs:
            body_end, after = self._heredoc_end(pos, doc)
            if doc.quoted:
                self._literal_until(pos, body_end, "<<")
            else:
                saved, self.end = self.end, body_end
                self._expanding(pos, "", "")
                self.end = saved
            pos = after
        return pos

    def _heredoc_end(self, pos: int, doc: _Heredoc) -> tuple[int, int]:
        """Where the body ends and where the line after its delimiter starts (else the end)."""
        while pos < self.end:
            newline = self.s.find("\n", pos, self.end)
            line_end = self.end if newline < 0 else newline
            line = self.s[pos:line_end]
            if (line.lstrip("\t") if doc.strip_tabs else line) == doc.delimiter:
                return pos, min(line_end + 1, self.end)
            pos = line_end + 1
        return self.end, self.end
