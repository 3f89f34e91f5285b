"""Drawer references in shell strings: values travel in environment variables, never as code.

A light bash lexer tracks quoting, substitutions, comments, here-documents and arithmetic, so
each `${...}` becomes `"$DRAWER_REF_n"` (bare) or `${DRAWER_REF_n}` (quoted) in the script. A
reference where bash evaluates a value (EVALUATING: arithmetic, a variable name, code) is an
error instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

ARITH_HINT = "compute it as an expression instead, e.g. ${n * 2}, and use the result"
NAME_HINT = "write the variable's name out, and pass the value as data: x=${item}"
CODE_HINT = "write the code out in the script, and pass the value to it as data (an argument)"
PYTHON_HINT = "read os.environ or use argv form"

Kind = Literal["arithmetic", "name", "code"]
HINTS: dict[Kind, str] = {"arithmetic": ARITH_HINT, "name": NAME_HINT, "code": CODE_HINT}


@dataclass(frozen=True)
class Evaluating:
    """A bash context that evaluates the contents of a value placed in it: as arithmetic (where
    `a[$(cmd)]` runs cmd), as a variable name (whose subscript is arithmetic) or as code.

    `where` names it in messages; `examples` put `${item}` there, and each one runs the
    command inside an item like `a[$(touch pwned)]` when the value is pasted in as
    `"$DRAWER_REF_1"` (tests/test_shell.py runs them in bash).
    """

    where: str
    kind: Kind
    examples: tuple[str, ...]
    # Whether a reference inside a command substitution there (`$(cmd ${item})`) is refused
    # too. Not for a variable's value: `n=$(wc -l < ${path})` stores wc's output, not the path.
    substitutions: bool = True
    hint: str | None = None  # instead of HINTS[kind]
    # Whether a variable read there (`$y`) has its value evaluated. Not in `[[ ]]`, where only
    # the operands of -eq and the like, and of -v, are (_Lexer._test_operands): `[[ $y == x ]]`
    # compares y's value as text.
    reads: bool = True


# Every context where `validate` refuses a reference, in one table (README lists them). The
# keys are what the lexer asks for; an entry whose `where` has {name} is a variable whose
# value bash evaluates later, and a reference that flows into it is refused where it flows in.
EVALUATING: dict[str, Evaluating] = {
    "$(( ))": Evaluating("$(( ))", "arithmetic", ("echo $(( ${item} ))",)),
    "(( ))": Evaluating(
        "(( ))", "arithmetic", ("(( ${item} ))", "for ((i = 0; i < ${item}; i++)); do :; done")
    ),
    "$[ ]": Evaluating("$[ ]", "arithmetic", ("echo $[ ${item} ]",)),
    "[[ ]]": Evaluating("[[ ]]", "arithmetic", ("[[ ${item} -eq 1 ]]",), reads=False),
    "let": Evaluating("let", "arithmetic", ("let x=${item}",)),
    "subscript": Evaluating(
        "an array subscript",
        "arithmetic",
        ("a[${item}]=1", "a=([${item}]=1)", "echo $${a[${item}]}"),
    ),
    "offset": Evaluating(
        "a substring offset",
        "arithmetic",
        ("x=abc; echo $${x:${item}}", "x=abc; echo $${x:0:${item}}"),
    ),
    "declare -i": Evaluating(
        "the value of declare -i",
        "arithmetic",
        ("declare -i n=${item}", "typeset -i n=${item}", "f() { local -i n=${item}; }; f"),
        substitutions=False,
    ),
    "integer": Evaluating(
        "an assignment to {name}, an integer",
        "arithmetic",
        (
            "declare -i n; n=${item}",
            "declare -i n; n+=${item}",
            "declare -i n; read n <<< ${item}",
            "declare -i n; printf -v n %s ${item}",
            "declare -i n; for n in ${item}; do :; done",
            "OPTIND=${item}",
            "RANDOM=${item}",
        ),
        substitutions=False,
    ),
    "arithmetic variable": Evaluating(
        "an assignment to {name}, read by arithmetic",
        "arithmetic",
        (
            "y=${item}; echo $(( y + 1 ))",
            "read y <<< ${item}; (( $y ))",
            "y=${item}; [[ y -gt 1 ]]",
            "y=${item}; [[ -v $y ]]",
        ),
        substitutions=False,
    ),
    "name": Evaluating(
        "a variable name ({command})",
        "name",
        (
            "read ${item} <<< x",
            "printf -v ${item} %s x",
            "[ -v ${item} ]",
            "test -v ${item}",
            "a=(1); unset ${item}",
            "declare ${item}=1",
            "f() { local ${item}=1; }; f",
            "sleep 0 & wait -p ${item} -n",
            "command read ${item} <<< x",
        ),
    ),
    "declare -n": Evaluating(
        "the value of declare -n", "name", ("declare -n r=${item}; echo $r",), substitutions=False
    ),
    "nameref": Evaluating(
        "an assignment to {name}, a nameref",
        "name",
        ("declare -n r; r=${item}; echo $r", "declare -n r; for r in ${item}; do echo $r; done"),
        substitutions=False,
    ),
    "indirect": Evaluating(
        "an assignment to {name}, read by $${{!{name}}}",
        "name",
        ("y=${item}; echo $${!y}",),
        substitutions=False,
    ),
    "code variable": Evaluating(
        "an assignment to {name}, run as code",
        "code",
        (
            'y=${item}; eval "echo $y"',
            'y=${item}; bash -c "echo $y"',
            'y=${item}; trap "echo $${y}" EXIT',
        ),
        substitutions=False,
    ),
    "name variable": Evaluating(
        "an assignment to {name}, used as a variable name",
        "name",
        ('y=${item}; read "$y" <<< x', 'y=${item}; printf -v "$y" %s x', 'y=${item}; [ -v "$y" ]'),
        substitutions=False,
    ),
    "prompt variable": Evaluating(
        "an assignment to {name}, read by $${{{name}@P}}",
        "code",
        ("y=${item}; echo $${y@P}",),
        substitutions=False,
    ),
    "prompt": Evaluating(
        "an assignment to {name}, which bash expands",
        "code",
        ("PS4=${item}; set -x; :",),
        substitutions=False,
    ),
    "startup file": Evaluating(
        "an assignment to {name}, which a child shell expands",
        "code",
        ("BASH_ENV=${item} bash -c 'true; true'", "export ENV=${item}; sh -i -c true"),
        substitutions=False,
    ),
    "code": Evaluating(
        "code ({command})",
        "code",
        (
            "eval ${item}",
            "trap ${item} EXIT",
            "mapfile -C ${item} -c 1 x <<< x",
            "compgen -W ${item}",
            "compgen -C ${item} x",
            "bash -c ${item}",
            "sh -ec ${item}",
            "exec bash -c ${item}",
            "env LC_ALL=C sh -c ${item}",
            "nohup bash -c ${item} > /dev/null 2>&1",
            "setsid sh -c ${item}",
        ),
    ),
    "stdin script": Evaluating(
        "a script that {command} reads from stdin",
        "code",
        ("bash <<EOF\necho ${item}\nEOF", "bash <<< ${item}", "sh -s x <<-EOF\n\t${item}\nEOF"),
    ),
    ">&": Evaluating(
        "the file of >&",
        "code",
        ("echo >&${item}",),
        hint="write &>${item} (or >${item} 2>&1) to send both outputs to a file",
    ),
}


@dataclass(frozen=True)
class _Ctx:
    """The evaluating context a reference is in: how messages name it, and what bash does."""

    where: str
    kind: Kind
    hint: str
    substitutions: bool
    reads: bool

    @property
    def reads_values(self) -> bool:
        """Whether a variable read here has its value evaluated as arithmetic."""
        return self.kind == "arithmetic" and self.reads

    @property
    def read_as(self) -> str | None:
        """The EVALUATING key of a variable read here (`eval "$y"`), None when its value is
        not evaluated."""
        if not self.reads:
            return None
        return {"arithmetic": "arithmetic variable", "code": "code variable"}.get(
            self.kind, "name variable"
        )


def _ctx(key: str, name: str = "", command: str = "") -> _Ctx:
    entry = EVALUATING[key]
    where = entry.where.format(name=name, command=command)
    return _Ctx(
        where, entry.kind, entry.hint or HINTS[entry.kind], entry.substitutions, entry.reads
    )


def _into_substitution(ctx: _Ctx | None) -> _Ctx | None:
    """The context inside a command substitution `$(...)` or `...` in `ctx`. A variable read
    in there is the command's data (`$(( $(wc -l < $f) ))`): only the output is evaluated."""
    if ctx is None or not ctx.substitutions:
        return None
    return dataclasses.replace(ctx, reads=False)


@dataclass(frozen=True)
class _Builtin:
    """What a command does with its words; values are EVALUATING keys (None: plain data)."""

    takes: str = ""  # option letters whose argument is the next word (or the rest of the word)
    options: dict[str, str] = field(default_factory=dict)  # option letter: what its argument is
    operands: str | None = None  # what every operand is (for NAME=VALUE, the NAME part)
    first: str | None = None  # what the first operand is
    assigns: bool = False  # operands are NAME=VALUE (declare): -i and -n make VALUE evaluated
    sets: str = ""  # option letters whose argument names a variable it sets (printf -v)
    sets_operands: bool = False  # its operands name variables it sets (read)
    test: bool = False  # `[` and `test`: the word after -v is a variable name
    shell: bool = False  # with -c, the first operand is code
    data_with: str = ""  # option letters that make the operands plain data (unset -f NAME)


# -f and -F name functions, -p only prints: bash evaluates no subscript then.
_DECLARE = _Builtin(operands="name", assigns=True, data_with="fFp")
_MAPFILE = _Builtin(takes="dnOsuCc", options={"C": "code"}, sets_operands=True)
_COMPGEN = _Builtin(takes="oAGWFCXPS", options={"W": "code", "C": "code"})
_TEST = _Builtin(test=True)
_SHELL = _Builtin(takes="oO", shell=True)
# Only the words that bash evaluates; verified with bash 5.2 (tests/test_shell.py). bash checks
# the names given to export, readonly, mapfile and getopts, and reads numbers (read -n, shift,
# exit, ulimit, [ -eq ]) without evaluating them, so those are plain data.
_BUILTINS: dict[str, _Builtin] = {
    "declare": _DECLARE,
    "typeset": _DECLARE,
    "local": _DECLARE,
    "export": _Builtin(assigns=True),
    "readonly": _Builtin(assigns=True),
    "read": _Builtin(takes="adinNptu", operands="name", sets="a", sets_operands=True),
    "printf": _Builtin(takes="v", options={"v": "name"}, sets="v"),
    "wait": _Builtin(takes="p", options={"p": "name"}, sets="p"),
    "mapfile": _MAPFILE,
    "readarray": _MAPFILE,
    "unset": _Builtin(operands="name", data_with="f"),
    "let": _Builtin(operands="let"),
    "eval": _Builtin(operands="code"),
    "trap": _Builtin(first="code"),
    "compgen": _COMPGEN,
    "complete": _COMPGEN,
    "test": _TEST,
    "[": _TEST,
    "bash": _SHELL,
    "sh": _SHELL,
    "dash": _SHELL,
    "zsh": _SHELL,
    "ksh": _SHELL,
}
# Words after which the next word is the command run (with no option of their own between).
_PREFIXES = frozenset({"builtin", "command", "exec", "env", "nohup", "setsid", "sudo"})
# bash's own variables whose value it evaluates (EVALUATING keys).
SPECIAL_VARIABLES: dict[str, str] = {
    **dict.fromkeys(("RANDOM", "SRANDOM", "OPTIND", "HISTCMD", "SECONDS"), "integer"),
    "PS4": "prompt",  # under set -x; PS1 and the like only in an interactive shell
    **dict.fromkeys(("BASH_ENV", "ENV"), "startup file"),
}


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
_TEST_ARITHMETIC = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
# In an operand of one: `$y`, `$${y}` (the value pasted in), or a bare `y` (read by arithmetic).
_OPERAND_NAME = re.compile(
    r"\$(?:\$\{)?([A-Za-z_][A-Za-z0-9_]*)|(?<![\w#$])([A-Za-z_][A-Za-z0-9_]*)"
)
_DOLLAR_NAME = re.compile(r"\$(?:\$\{)?([A-Za-z_][A-Za-z0-9_]*)\}?")
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
    ctx: _Ctx | None  # a shell's script (`bash <<EOF`), else None


def compile_shell(
    script: str, is_drawer_ref: Callable[[str], bool]
) -> tuple[ShellTemplate, list[ShellIssue]]:
    """Split a bash/sh script into literal text and drawer references, with context checks.

    `$${` becomes a literal `${`. References that are errors or warnings stay literal text.
    """
    lexer = _Lexer(script, is_drawer_ref, SPECIAL_VARIABLES)
    lexer.run()
    if lexer.found:
        # Variables whose value bash evaluates (declare -i n, $${!y}, $(( y ))) may be set
        # before they are declared or read: a second pass knows them all from the start.
        lexer = _Lexer(script, is_drawer_ref, {**lexer.found, **SPECIAL_VARIABLES})
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


def _without_substitutions(text: str) -> str:
    """`text` with each command substitution (`$(...)`, `...`) blanked: what a command reads
    there is its data, not an operand."""
    out: list[str] = []
    depth = 0
    backquoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("$(", i):
            depth += 1
            out.append("  ")
            i += 2
            continue
        inside = depth > 0 or backquoted or c == "`"
        if c == "`" and not depth:
            backquoted = not backquoted
        elif depth and c in "()":
            depth += 1 if c == "(" else -1
        out.append(" " if inside else c)
        i += 1
    return "".join(out)


def _shell_var_hint(content: str) -> str:
    name = _NAME.match(content)
    if name is None:
        return f"for a shell variable write $${{{content}}}"
    return f"for a shell variable write ${name.group()} or $${{{content}}}"


class _Lexer:
    """One pass over a script; each scanning method takes a start offset and returns the end."""

    def __init__(
        self, script: str, is_drawer_ref: Callable[[str], bool], evaluated: dict[str, str]
    ) -> None:
        self.s = script
        self.is_ref = is_drawer_ref
        # Shell variables whose value bash evaluates, with the EVALUATING key saying how:
        # `evaluated` as known at the start, `found` as this pass finds them.
        self.evaluated = evaluated
        self.found: dict[str, str] = {}
        self.end = len(script)
        self.done = 0
        self.parts: list[str | ShellRef] = []
        self.refs: list[ShellRef] = []
        self.issues: list[ShellIssue] = []
        self.pending: list[_Heredoc] = []

    def run(self) -> None:
        self._cmd(0, "", None)

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

    def _cmd(self, pos: int, stop: str, ctx: _Ctx | None) -> int:
        """Unquoted text up to `stop`: "" (end), ")" or "`" (substitution) or "]]". `ctx` is the
        enclosing evaluating context, None when none; each word of each simple command is
        looked up in `_BUILTINS` by `_Simple`, which may name a context of its own."""
        s = self.s
        depth = case_depth = 0
        compound = -1  # the depth of an `a=( ... )` compound assignment, -1 outside one
        word_start = cmd_start = True
        simple = _Simple(self)
        while pos < self.end:
            c = s[pos]
            if stop == "]]" and word_start and s.startswith("]]", pos):
                return pos + 2
            if word_start and (c not in _BREAK or s.startswith("((", pos)):
                word_start, was_cmd, cmd_start = False, cmd_start, False
                if c == "#":
                    pos = self._literal_until(pos, s.find("\n", pos, self.end), "#")
                    continue
                word = m.group() if (m := _WORD.match(s, pos, self.end)) else ""
                if compound >= 0 and c == "[":
                    pos = self._nested(pos + 1, "]", _ctx("subscript"))
                    continue
                if was_cmd:
                    if s.startswith("((", pos):
                        pos = self._nested(pos + 2, "))", _ctx("(( ))"))
                        continue
                    if sub := _SUBSCRIPT.match(s, pos, self.end):
                        pos, cmd_start = self._nested(sub.end(), "]", _ctx("subscript")), True
                        simple.assignment(sub.group()[:-1])
                        continue
                    if word == "[[":
                        end = self._cmd(pos + 2, "]]", _ctx("[[ ]]"))
                        self._test_operands(s[pos + 2 : end - 2])
                        pos = end
                        continue
                    case_depth += (word == "case") - (word == "esac")
                    name, eq, _ = word.partition("=")
                    name = name.removesuffix("+")
                    cmd_start = word in _KEYWORDS or word in _PREFIXES
                    if word in ("for", "select"):
                        simple.loop()
                    elif eq and name.isidentifier():
                        cmd_start = True
                        simple.assignment(name)
                    elif not cmd_start:
                        simple.command(word)
                elif compound < 0:
                    simple.word(word)
            here = simple.here or ctx
            if c == "=" and not word_start:
                simple.equals()
            elif c in " \t<>":
                word_start = True
                if compound < 0:
                    simple.end_word()
                if c in "<>" and not (s.startswith("<<", pos) and s[pos + 2 : pos + 3] != "<"):
                    simple.redirect(None)  # the next word is a file (or a here-string)
                if s.startswith((">&", "<&"), pos):
                    if c == ">" and not (pos and s[pos - 1] in "0123456789}"):
                        simple.redirect(">&")  # `>&word`: bash expands the file name twice
                    pos += 2
                    continue
                if s.startswith("<<", pos) and not here:
                    script = simple.reads_script()
                    if s.startswith("<<<", pos):
                        simple.redirect(script)
                    doc = None if script is None else _ctx(script, command=simple.name)
                    pos = self._heredoc_start(pos, doc)
                    continue
            elif s.startswith("&>", pos):
                word_start = True
                simple.redirect(None)
                pos += 2
                continue
            elif c in "\n;&|":
                word_start = cmd_start = True
                simple = _Simple(self)
                if c == "\n" and self.pending:
                    pos = self._heredoc_bodies(pos + 1)
                    continue
            elif c == "(":
                depth += 1
                if pos and s[pos - 1] == "=" and simple.assigning:
                    compound, word_start = depth, True
                else:
                    word_start = cmd_start = True
                    simple = _Simple(self)
            elif c == ")":
                if depth == 0 and stop == ")" and case_depth == 0:
                    return pos + (stop == ")")
                if depth == compound:
                    compound, word_start = -1, True
                    simple.end_word()
                else:
                    word_start = cmd_start = True
                    simple = _Simple(self)
                depth = max(depth - 1, 0)
            elif c == "`":
                if stop == "`":
                    return pos + 1
                pos = self._cmd(pos + 1, "`", _into_substitution(here))
                continue
            elif c == "'":
                pos = self._single_quotes(pos)
                continue
            elif s.startswith("$'", pos):
                pos = self._ansi_quotes(pos)
                continue
            elif c == '"':
                pos = self._expanding(pos + 1, here, '"')
                continue
            elif c == "\\":
                pos += 2
                continue
            elif c == "$":
                pos = self._dollar(pos, False, here)
                continue
            pos += 1
        return pos

    def _expanding(self, pos: int, ctx: _Ctx | None, close: str) -> int:
        """Double-quoted text up to `close` ('"'), or an unquoted here-document body (close="")."""
        s = self.s
        while pos < self.end:
            c = s[pos]
            if c == close:
                return pos + 1
            if c == "\\":
                pos += 2
            elif c == "$":
                pos = self._dollar(pos, True, ctx)
            elif c == "`":
                pos = self._cmd(pos + 1, "`", _into_substitution(ctx))
            else:
                pos += 1
        return pos

    def _nested(self, pos: int, close: str, ctx: _Ctx | None, quoted: bool = False) -> int:
        """Text up to the balancing `close`: arithmetic, a subscript or a `$${...}` word."""
        s = self.s
        opener = {")": "(", "]": "[", "}": "{"}[close[0]]
        arithmetic = ctx is not None and ctx.reads_values
        depth = 0
        while pos < self.end:
            c = s[pos]
            if c == close[0] and depth == 0:
                return pos + (len(close) if s.startswith(close, pos) else 1)
            depth += (c == opener) - (c == close[0])
            if c == "\\":
                pos += 2
            elif c == "$":
                pos = self._dollar(pos, quoted, ctx)
            elif c == '"':
                pos = self._expanding(pos + 1, ctx, '"')
            elif c == "'" and not quoted:
                pos = self._single_quotes(pos)
            elif c == "`":
                pos = self._cmd(pos + 1, "`", _into_substitution(ctx))
            elif arithmetic and (name := _NAME.match(s, pos, self.end)):
                if not (s[pos - 1].isalnum() or s[pos - 1] in "_#"):
                    self.reads(name.group(), "arithmetic variable")  # $(( y + 1 ))
                pos = name.end()
            else:
                pos += 1
        return pos

    def _test_operands(self, text: str) -> None:
        """In `[[ ]]`: the variables whose value bash evaluates, as the operands of an
        arithmetic comparison (`[[ $y -gt 1 ]]`, `[[ y -gt 1 ]]`) or of -v (`[[ -v $y ]]`)."""
        words = [word.strip("()!") for word in _without_substitutions(text).split()]
        for i, word in enumerate(words):
            next_word = words[i + 1] if i + 1 < len(words) else ""
            if word in _TEST_ARITHMETIC:
                operands = [words[i - 1]] if i else []
                operands += [next_word]
                for operand in operands:
                    for found in _OPERAND_NAME.finditer(operand):
                        self.reads(found.group(1) or found.group(2), "arithmetic variable")
            elif word == "-v" and (name := _DOLLAR_NAME.fullmatch(next_word.strip('"'))):
                self.reads(name.group(1), "arithmetic variable")

    def reads(self, name: str, key: str) -> None:
        """Bash evaluates the value of shell variable `name` as EVALUATING[key] says."""
        self.found.setdefault(name, key)

    def _dollar(self, pos: int, quoted: bool, ctx: _Ctx | None) -> int:
        s = self.s
        if s.startswith("$${", pos):
            self._emit(pos, pos + 3, "${")
            return self._param(pos + 3, quoted, ctx)
        if s.startswith("$$", pos):
            return pos + 2
        if s.startswith("${", pos):
            return self._ref(pos, quoted, ctx)
        if s.startswith("$((", pos):
            return self._nested(pos + 3, "))", _ctx("$(( ))"))
        if s.startswith("$(", pos):
            return self._cmd(pos + 2, ")", _into_substitution(ctx))
        if s.startswith("$[", pos):
            return self._nested(pos + 2, "]", _ctx("$[ ]"))
        if ctx is not None and (key := ctx.read_as) and (name := _NAME.match(s, pos + 1)):
            self.reads(name.group(), key)  # (( $y )), [[ $y -eq 1 ]], eval "$y", read $y
            return name.end()
        return pos + 1

    def _param(self, pos: int, quoted: bool, ctx: _Ctx | None) -> int:
        """A shell parameter expansion written `$${...}`; subscripts and offsets are arithmetic."""
        s = self.s
        if param := _PARAM.match(s, pos, self.end):
            pos, text = param.end(), param.group()
            if text.startswith("!") and text[1:].isidentifier():
                self.reads(text[1:], "indirect")  # $${!y}
            elif text.isidentifier() and ctx is not None and (key := ctx.read_as):
                self.reads(text, key)
        if s.startswith("[", pos):
            pos = self._nested(pos + 1, "]", _ctx("subscript"))
        if param and param.group().isidentifier() and s.startswith("@P", pos):
            self.reads(param.group(), "prompt variable")  # $${y@P}
        if s.startswith(":", pos) and not s.startswith(_DEFAULT_OPS, pos):
            return self._nested(pos + 1, "}", _ctx("offset"))
        return self._nested(pos, "}", ctx, quoted)

    def _ref(self, pos: int, quoted: bool, ctx: _Ctx | None) -> int:
        close = _match_brace(self.s, pos + 2, self.end)
        if close < 0:
            self.issues.append(ShellIssue(pos, "error", "unterminated ${", "close it with }"))
            return self.end
        content = self.s[pos + 2 : close]
        if not self.is_ref(content):
            message = f"${{{content}}} is not a drawer reference"
            self.issues.append(ShellIssue(pos, "error", message, _shell_var_hint(content)))
        elif ctx is not None:
            message = f"${{{content}}} inside {ctx.where}: bash evaluates variable contents there"
            self.issues.append(ShellIssue(pos, "error", message, ctx.hint))
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

    def _heredoc_start(self, pos: int, ctx: _Ctx | None) -> int:
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
            self.pending.append(_Heredoc("".join(delimiter), strip_tabs, quoted, ctx))
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
                self._expanding(pos, doc.ctx, "")
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


class _Simple:
    """The words of one simple command as the lexer meets them: what each one is to bash."""

    def __init__(self, lexer: _Lexer) -> None:
        self.lexer = lexer
        self.name = ""  # the command
        self.spec: _Builtin | None = None
        self.letters = ""  # the option letters given
        self.options_done = False
        self.operands = 0
        self.after: str | None = None  # what the next word is (an option's argument)
        self.after_sets = False  # the next word names a variable the command sets
        self.after_redirect = False  # the next word is a redirection's target
        self.test_name = False  # `[ -v`: the next word is a variable name
        self.command_ctx: _Ctx | None = None  # every later word: it sets an evaluated variable
        self.word_ctx: _Ctx | None = None  # the current word
        self.value_ctx: _Ctx | None = None  # the current word after its first `=`
        self.assigning: str | None = None  # the variable the current word assigns to
        self.in_value = False  # past the `=` of NAME=VALUE

    @property
    def here(self) -> _Ctx | None:
        """The context of the text being read, None when bash takes it as data."""
        return self.word_ctx or self.command_ctx

    def end_word(self) -> None:
        self.word_ctx = self.value_ctx = self.assigning = None
        self.in_value = False

    def equals(self) -> None:
        """The first `=` of a NAME=VALUE word: what follows is the value."""
        if self.assigning is not None and not self.in_value:
            self.word_ctx, self.in_value = self.value_ctx, True

    def redirect(self, key: str | None) -> None:
        self.after, self.after_redirect = key, True

    def reads_script(self) -> str | None:
        """The EVALUATING key for a shell that reads its script from stdin (`bash <<EOF`)."""
        spec = self.spec
        if spec is None or not spec.shell or "c" in self.letters:
            return None
        return "stdin script" if "s" in self.letters or not self.operands else None

    def loop(self) -> None:
        """`for NAME in WORDS` and `select`: NAME is set from the words."""
        self.after_sets = True

    def _evaluated(self, name: str) -> _Ctx | None:
        key = self.lexer.evaluated.get(name)
        return None if key is None else _ctx(key, name=name, command=self.name)

    def assignment(self, name: str) -> None:
        """`NAME=VALUE` before a command (or alone), or `NAME[...]=VALUE`."""
        self.assigning, self.value_ctx = name, self._evaluated(name)

    def _sets(self, word: str) -> None:
        if (name := _NAME.match(word)) and (ctx := self._evaluated(name.group())):
            self.command_ctx = ctx

    def _argument(self, word: str) -> bool:
        """The word is an option's argument, a redirection's target or a loop's variable."""
        if self.after is None and not self.after_sets and not self.after_redirect:
            return False
        if self.after is not None:
            self.word_ctx = _ctx(self.after, command=self.name)
        if self.after_sets:
            self._sets(word)
        self.after, self.after_sets, self.after_redirect = None, False, False
        return True

    def command(self, word: str) -> None:
        if not self._argument(word):
            self.name, self.spec = word, _BUILTINS.get(word)

    def word(self, word: str) -> None:
        spec = self.spec
        if self._argument(word) or spec is None:
            return
        if spec.test:
            if self.test_name:
                self.word_ctx = _ctx("name", command=self.name)  # [ -v NAME ]
            self.test_name = word == "-v"
            return
        if not self.options_done and not self.operands and word[:1] in ("-", "+") and word[1:]:
            self._option(spec, word)
            return
        self.operands += 1
        key = spec.first if self.operands == 1 and spec.first else spec.operands
        if spec.shell:
            key = "code" if self.operands == 1 and "c" in self.letters else None
        if set(spec.data_with) & set(self.letters):
            key = None
        self.word_ctx = None if key is None else _ctx(key, command=self.name)
        if spec.sets_operands:
            self._sets(word)
        if spec.assigns and (name := _NAME.match(word)):
            self._declares(spec, name.group(), "=" in word)

    def _option(self, spec: _Builtin, word: str) -> None:
        if word == "--":
            self.options_done = True
            return
        if word[0] == "+":
            return
        for i, letter in enumerate(word[1:], 2):
            self.letters += letter
            if letter in spec.takes:
                self.after, self.after_sets = spec.options.get(letter), letter in spec.sets
                if word[i:]:  # -vNAME
                    self._argument(word[i:])
                return

    def _declares(self, spec: _Builtin, name: str, valued: bool) -> None:
        """`declare -i n`, `declare -n r=...`, `local x=...`: NAME=VALUE operands."""
        self.assigning, self.value_ctx = name, self._evaluated(name)
        if spec is not _DECLARE:
            return
        if "n" in self.letters:
            if not valued:  # `r=...` then names r's target; with one, it assigns to the target
                self.lexer.reads(name, "nameref")
            self.value_ctx = _ctx("declare -n", name=name)
        if "i" in self.letters:
            self.lexer.reads(name, "integer")
            self.value_ctx = _ctx("declare -i", name=name)
