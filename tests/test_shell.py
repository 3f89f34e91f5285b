"""Tests for drawer.shell: references in shell strings become environment variables."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drawer.shell import (
    ARITH_HINT,
    EVALUATING,
    HINTS,
    PYTHON_HINT,
    SPECIAL_VARIABLES,
    ShellIssue,
    ShellRef,
    ShellTemplate,
    compile_shell,
    find_python_refs,
    is_shell_parameter,
    render_shell,
)
from tests.conftest import run_cli

PAYLOAD = "$(touch pwned); echo hacked"
SHELLS = [["bash", "-e", "-o", "pipefail", "-c"], ["sh", "-c"]]


def is_ref(content: str) -> bool:
    """A drawer reference for these tests: a known root and no shell operators."""
    root = content.split(".")[0].split("[")[0]
    ops = (":-", ":=", ":+", ":?", "%", "#", "/", "^", ",")
    return root in {"item", "inputs", "index", "path", "n"} and not any(op in content for op in ops)


def compile_(script: str) -> tuple[ShellTemplate, list[ShellIssue]]:
    return compile_shell(script, is_ref)


def render(script: str, as_file: Iterable[int] = ()) -> str:
    template, issues = compile_(script)
    assert issues == []
    return render_shell(template, frozenset(as_file))


def issues_of(script: str) -> list[tuple[int, str]]:
    return [(issue.offset, issue.severity) for issue in compile_(script)[1]]


def run(argv: list[str], script: str, cwd: Path, env: dict[str, str]) -> str:
    full_env = {"PATH": os.environ["PATH"], **env}
    proc = subprocess.run(
        [*argv, script], cwd=cwd, env=full_env, capture_output=True, text=True, check=True
    )
    return proc.stdout


# --- active references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo ${item}", 'echo "$DRAWER_REF_1"'),
        ('echo "${item}"', 'echo "${DRAWER_REF_1}"'),
        ('echo "x${item}y"', 'echo "x${DRAWER_REF_1}y"'),
        ("echo a${item}b", 'echo a"$DRAWER_REF_1"b'),
        ("x=${item}", 'x="$DRAWER_REF_1"'),
        ("cat > ${path}", 'cat > "$DRAWER_REF_1"'),
        ('grep "${inputs.pattern}" file', 'grep "${DRAWER_REF_1}" file'),
        ('echo "$(printf %s ${item})"', 'echo "$(printf %s "$DRAWER_REF_1")"'),
        ('echo "$(printf %s "${item}")"', 'echo "$(printf %s "${DRAWER_REF_1}")"'),
        ("echo $(echo $(echo ${item}))", 'echo $(echo $(echo "$DRAWER_REF_1"))'),
        ('echo $(echo ")" ${item})', 'echo $(echo ")" "$DRAWER_REF_1")'),
        ("echo $(echo '(' ${item})", "echo $(echo '(' \"$DRAWER_REF_1\")"),
        ("echo $( (echo a) ; echo ${item})", 'echo $( (echo a) ; echo "$DRAWER_REF_1")'),
        ('echo "$(echo ")")${item}"', 'echo "$(echo ")")${DRAWER_REF_1}"'),
        ("echo `echo ${item}`", 'echo `echo "$DRAWER_REF_1"`'),
        ('echo "`echo ${item}`"', 'echo "`echo "$DRAWER_REF_1"`"'),
        ("x=$(case a in a) echo ${item};; esac)", 'x=$(case a in a) echo "$DRAWER_REF_1";; esac)'),
        ("cat <<< ${item}", 'cat <<< "$DRAWER_REF_1"'),
        ("echo [[ ${item} ]]", 'echo [[ "$DRAWER_REF_1" ]]'),
        ("echo ${inputs['a}b']}", 'echo "$DRAWER_REF_1"'),
        ("echo ${n} ${item}", 'echo "$DRAWER_REF_1" "$DRAWER_REF_2"'),
        ('echo "\\\\${item}"', 'echo "\\\\${DRAWER_REF_1}"'),
        ("echo \\\\${item}", 'echo \\\\"$DRAWER_REF_1"'),
        ("echo $$${item}", 'echo $$"$DRAWER_REF_1"'),
    ],
)
def test_active_references(script: str, expected: str) -> None:
    assert render(script) == expected


def test_template_parts_and_refs() -> None:
    template, _ = compile_('cp ${path} "${item}.bak"')
    first = ShellRef(number=1, content="path", start=3, end=10, quoted=False)
    second = ShellRef(number=2, content="item", start=12, end=19, quoted=True)
    assert template.refs == (first, second)
    assert template.parts == ("cp ", first, ' "', second, '.bak"')


def test_script_without_references_is_one_part() -> None:
    template, issues = compile_("echo $HOME $1 $$ ${#}x")
    assert template.parts == ("echo $HOME $1 $$ ${#}x",)
    assert [i.offset for i in issues] == [17]


# --- literal text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo $HOME $PATH", "echo $HOME $PATH"),
        ("echo $${HOME}", "echo ${HOME}"),
        ('f=x.py; echo "$${f%.py}"', 'f=x.py; echo "${f%.py}"'),
        ("echo $${VAR:-x}", "echo ${VAR:-x}"),
        ("echo '$${item}'", "echo '${item}'"),
        ("echo \\${item}", "echo \\${item}"),
        ('echo "\\${item}"', 'echo "\\${item}"'),
        ("echo a#${item}", 'echo a#"$DRAWER_REF_1"'),
        ("echo $${v:-${item}}", 'echo ${v:-"$DRAWER_REF_1"}'),
        ('echo "$${v:-${item}}"', 'echo "${v:-${DRAWER_REF_1}}"'),
        ("echo $${#item}", "echo ${#item}"),
    ],
)
def test_literal_text(script: str, expected: str) -> None:
    assert render(script) == expected


@pytest.mark.parametrize(
    ("script", "offset", "hint_start"),
    [
        ("echo '${item}'", 6, "close the quotes around it: 'a'\"${item}\"'b'"),
        ("echo 'a ${item} b' c", 8, "close the quotes around it"),
        ("echo $'${item}\\''", 7, "close the quotes around it"),
        ("# uses ${item}\necho", 7, "move it out of the comment"),
        ("echo x # ${item}", 9, "move it out of the comment"),
        ("cat <<'EOF'\n${item}\nEOF", 12, "unquote the delimiter"),
        ('cat <<"EOF"\n${item}\nEOF', 12, "unquote the delimiter"),
        ("cat <<\\EOF\n${item}\nEOF", 11, "unquote the delimiter"),
    ],
)
def test_literal_contexts_warn(script: str, offset: int, hint_start: str) -> None:
    template, issues = compile_(script)
    assert render_shell(template) == script
    assert template.refs == ()
    [issue] = issues
    assert (issue.offset, issue.severity) == (offset, "warning")
    assert "stays literal text" in issue.message
    assert issue.hint is not None
    assert issue.hint.startswith(hint_start)
    assert issue.hint.endswith("or write $${item}")


def test_literal_context_ignores_shell_variables() -> None:
    assert compile_("echo '${HOME}' # ${PATH}")[1] == []


def test_comment_ends_at_newline() -> None:
    template, issues = compile_("# ${item}\necho ${item}")
    assert render_shell(template) == '# ${item}\necho "$DRAWER_REF_1"'
    assert [(i.offset, i.severity) for i in issues] == [(2, "warning")]


# --- here-documents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("cat <<EOF\n${item}\nEOF", "cat <<EOF\n${DRAWER_REF_1}\nEOF"),
        ("cat <<EOF\n\"${item}\" 'x'\nEOF", "cat <<EOF\n\"${DRAWER_REF_1}\" 'x'\nEOF"),
        ("cat <<EOF\n$(echo ${item})\nEOF", 'cat <<EOF\n$(echo "$DRAWER_REF_1")\nEOF'),
        (
            "cat <<-EOF\n\t${item}\n\tEOF\necho ${n}",
            'cat <<-EOF\n\t${DRAWER_REF_1}\n\tEOF\necho "$DRAWER_REF_2"',
        ),
        (
            "cat <<EOF\nEOFX ${item}\nEOF\n${n}",
            'cat <<EOF\nEOFX ${DRAWER_REF_1}\nEOF\n"$DRAWER_REF_2"',
        ),
        (
            "cat <<EOF; echo ${n}\n${item}\nEOF",
            'cat <<EOF; echo "$DRAWER_REF_1"\n${DRAWER_REF_2}\nEOF',
        ),
        ("cat <<EOF # c\n${item}\nEOF", "cat <<EOF # c\n${DRAWER_REF_1}\nEOF"),
        ("x=$(cat <<EOF\n${item}\nEOF\n)", "x=$(cat <<EOF\n${DRAWER_REF_1}\nEOF\n)"),
        ("cat <<EOF\n${item}", "cat <<EOF\n${DRAWER_REF_1}"),
        ("echo $((1 << 2)) ${item}", 'echo $((1 << 2)) "$DRAWER_REF_1"'),
    ],
)
def test_heredocs(script: str, expected: str) -> None:
    assert render(script) == expected


def test_several_heredocs_on_one_line() -> None:
    script = "cat <<A <<'B' <<C\n${item}\nA\n${n}\nB\n${path}\nC\necho ${index}"
    template, issues = compile_(script)
    assert render_shell(template) == (
        "cat <<A <<'B' <<C\n${DRAWER_REF_1}\nA\n${n}\nB\n${DRAWER_REF_2}\nC\necho \"$DRAWER_REF_3\""
    )
    assert [r.content for r in template.refs] == ["item", "path", "index"]
    assert [(i.offset, i.severity) for i in issues] == [(script.index("${n}"), "warning")]


# --- arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "where"),
    [
        ("echo $((${n} + 1))", "$(( ))"),
        ("echo $(( (${n}) * 2 ))", "$(( ))"),
        ("(( ${n} > 1 ))", "(( ))"),
        ("x=1; (( ${n} ))", "(( ))"),
        ("for ((i = 0; i < ${n}; i++)); do :; done", "(( ))"),
        ("[[ ${n} -eq 1 ]]", "[[ ]]"),
        ('if [[ "${n}" == 1 ]]; then :; fi', "[[ ]]"),
        ("[[ -n $(echo ${n}) ]]", "[[ ]]"),
        ("let x=${n}", "let"),
        ('let "x = ${n}"', "let"),
        ("a[${n}]=1", "an array subscript"),
        ("echo $${arr[${n}]}", "an array subscript"),
        ("echo $${v:${n}:2}", "a substring offset"),
        ("echo $[${n} + 1]", "$[ ]"),
    ],
)
def test_arithmetic_is_an_error(script: str, where: str) -> None:
    template, issues = compile_(script)
    assert template.refs == ()
    assert render_shell(template) == script.replace("$${", "${")
    [issue] = issues
    assert (issue.offset, issue.severity, issue.hint) == (script.index("${n}"), "error", ARITH_HINT)
    assert issue.message == f"${{n}} inside {where}: bash evaluates variable contents there"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("let x=1; echo ${item}", 'let x=1; echo "$DRAWER_REF_1"'),
        ("let x=1 && echo ${item}", 'let x=1 && echo "$DRAWER_REF_1"'),
        ("[[ -n x ]] && echo ${item}", '[[ -n x ]] && echo "$DRAWER_REF_1"'),
        ('[[ $x == "]]" ]] && echo ${item}', '[[ $x == "]]" ]] && echo "$DRAWER_REF_1"'),
        ("(( 1 )) || echo ${item}", '(( 1 )) || echo "$DRAWER_REF_1"'),
        ("echo $((1)) ${item}", 'echo $((1)) "$DRAWER_REF_1"'),
        ("letter ${item}", 'letter "$DRAWER_REF_1"'),
        ("echo let ${item}", 'echo let "$DRAWER_REF_1"'),
        ("x=$(let y=1) ${item}", 'x=$(let y=1) "$DRAWER_REF_1"'),
    ],
)
def test_arithmetic_contexts_end(script: str, expected: str) -> None:
    assert render(script) == expected


# --- every context where bash evaluates a value (issue 12 item 6) ------------------------------

# Carried in an item, it runs `touch pwned` wherever bash evaluates it as arithmetic, as a
# variable name (the subscript is arithmetic) or as code.
EVALUATED_PAYLOAD = "a[$(touch pwned)]"
EVALUATING_EXAMPLES = [
    pytest.param(key, example, id=example)
    for key, entry in EVALUATING.items()
    for example in entry.examples
]


def pasted(script: str) -> str:
    """The script as bash would run it had drawer not refused it: each ${item} as a quoted
    variable, exactly as render_shell writes a reference."""
    return script.replace("${item}", '"$DRAWER_REF_1"').replace("$${", "${")


def runs_payload(script: str, cwd: Path) -> bool:
    """Whether bash, given the payload as the reference's value, ran `touch pwned`."""
    pwned = cwd / "pwned"
    pwned.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], "DRAWER_REF_1": EVALUATED_PAYLOAD}
    subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return pwned.exists()


@pytest.mark.parametrize(("key", "example"), EVALUATING_EXAMPLES)
def test_each_evaluating_context_runs_an_item_in_bash_and_is_refused(
    tmp_path: Path, key: str, example: str
) -> None:
    assert runs_payload(pasted(example), tmp_path), "bash did not evaluate it: not an example"
    template, issues = compile_(example)
    assert template.refs == ()
    [issue] = issues
    entry = EVALUATING[key]
    assert (issue.offset, issue.severity, issue.hint) == (
        example.index("${item}"),
        "error",
        entry.hint or HINTS[entry.kind],
    )
    where = issue.message.removeprefix("${item} inside ").removesuffix(
        ": bash evaluates variable contents there"
    )
    fixed, _, _ = entry.where.partition("{")
    assert where.startswith(fixed) and where != issue.message


def test_the_arithmetic_hint_is_the_one_for_arithmetic() -> None:
    assert HINTS["arithmetic"] == ARITH_HINT
    assert {entry.kind for entry in EVALUATING.values()} == set(HINTS)


def test_validate_and_run_refuse_each_evaluating_context_at_its_line_and_column(
    tmp_path: Path,
) -> None:
    """Every example in one drawer: exit 2 with file:line:col and the hint, and nothing runs."""
    lines = [
        "steps:",
        "  - id: each",
        "    kind: for_each",
        f"    over: [{json.dumps(EVALUATED_PAYLOAD)}]",
        "    steps:",
    ]
    expected = []
    for number, (key, example) in enumerate(
        (key, example) for key, entry in EVALUATING.items() for example in entry.examples
    ):
        lines += [f"      - id: s{number}", "        run: |", "          echo first line"]
        offset = example.index("${item}")
        line = len(lines) + 1 + example.count("\n", 0, offset)
        column = 11 + offset - (example.rfind("\n", 0, offset) + 1)
        lines += [f"          {text}" for text in example.split("\n")]
        entry = EVALUATING[key]
        expected.append((line, column, entry.hint or HINTS[entry.kind]))
    (tmp_path / "d.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    checked = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert checked.returncode == 2, checked.stderr
    assert "Traceback" not in checked.stderr
    for line, column, hint in expected:
        at = f"d.yaml:{line}:{column}: error: ${{item}} inside "
        [after] = [part for part in checked.stderr.split(at)[1:]]
        assert after.split("\n  hint: ")[1].startswith(hint + "\n"), (line, after)
    ran = run_cli("d.yaml", "run", cwd=tmp_path)
    assert ran.returncode == 2
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("name", "key"), SPECIAL_VARIABLES.items())
def test_bashs_own_evaluated_variables_run_an_item_and_are_refused(
    tmp_path: Path, name: str, key: str
) -> None:
    """As a command's prefix, in this shell, and exported to child shells."""
    script = (
        f"f() {{ :; }}; {name}=${{item}} f; export {name}=${{item}}; set -x; :; "
        "bash -c 'true; true'; sh -i -c true"
    )
    assert runs_payload(pasted(script), tmp_path)
    assigned = f"{name}=${{item}}"
    [issue] = compile_(assigned)[1]
    where = EVALUATING[key].where.format(name=name)
    assert issue.message == f"${{item}} inside {where}: bash evaluates variable contents there"


SAFE_USES = [
    'echo "${item}"',
    "x=${item}",
    'declare x="${item}"',
    "declare -r x=${item}",
    "declare -a a=(${item})",
    "export x=${item}",
    "f() { local x=${item}; }; f",
    "readonly x=${item}",
    "n=1; n+=${item}",
    "args=(); args+=(${item})",
    "printf -v x %s ${item}",
    "read x <<< ${item}",
    "[ ${item} -eq 1 ]",
    "test ${item} = x",
    "echo >&2 ${item}",
    "echo ${item} 2>&1",
    "echo hi &> ${item}",
    "mapfile -t lines < ${item}",
    "getopts ab opt ${item}",
    "bash -c 'echo \"$1\"' _ ${item}",
    "sh -e ${item}",
    "f=${item}; trap 'rm -f \"$f\"' EXIT",
    'for f in ${item}; do echo "$f"; done',
    "declare -i n=1; m=${item}",
    "case ${item} in a) ;; esac",
    # Functions' names and a variable only printed: no subscript is evaluated.
    "a=(1); unset -f ${item}; declare -f ${item}; declare -F ${item}; typeset -fp ${item}",
    "a=(1); f() { local -p ${item}; }; f; declare -p ${item} || true",
    # [[ ]] compares a variable's value as text, except beside -eq and the like, or -v.
    'b=${item}; [[ "$b" == main || $b = x* ]] && echo "$b"',
    'f=${item}; [[ -f $f || -n "$${f}" || -v f ]] && cat "$f"',
    'x=${item}; echo "$${x}" "$${#x}" "$${!z}"',
    "eval 'echo hi'; echo ${item}",
    "compgen -W 'a b' -- ${item}",
    'declare -n r=x; x=${item}; echo "$r"',
    # A nameref with a target assigns to the target.
    'f() { local -n out=$1; out=${item}; }; f x; echo "$x"',
    "declare -n r=x; for r in ${item}; do :; done",
    "n=${item}; echo $(( 1 + 2 ))",
    "exec 3>${item}",
    "x=${item} env",
    "cat <<EOF | grep -c x\n${item}\nEOF",
    "bash -c 'read -r v; echo \"$v\"' <<< ${item}",
    "bash /dev/null <<EOF\n${item}\nEOF",
    # A command's output is not the reference: fan-out.yaml's checksum, a count.
    "sum=$(printf '%s' ${item} | cksum | cut -d' ' -f1); echo $((sum % 10))",
    "f() { local -i count=$(grep -c x ${item}); }; f",
    # A variable a command reads in a substitution is its data: only the output is evaluated.
    'f=${item}; n=$(( $(wc -l < "$f") + 1 )); (( $(grep -c x "$f") >= 0 )); a[$(wc -c < $f)]=1',
    'f=${item}; [[ $(wc -l < "$f") -ge 0 && `wc -c < "$f"` -ge 0 ]]',
]


@pytest.mark.parametrize("script", SAFE_USES)
def test_a_value_used_as_data_is_accepted_and_stays_data(tmp_path: Path, script: str) -> None:
    template, issues = compile_(script)
    assert issues == []
    assert not runs_payload(render_shell(template), tmp_path)


# --- invalid references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "message", "hint"),
    [
        ("echo ${HOME}", "${HOME} is not a drawer reference", "$HOME or $${HOME}"),
        ('echo "${VAR:-x}"', "${VAR:-x} is not a drawer reference", "$VAR or $${VAR:-x}"),
        ("echo ${f%.py}", "${f%.py} is not a drawer reference", "$f or $${f%.py}"),
        ("echo ${item:-x}", "${item:-x} is not a drawer reference", "$item or $${item:-x}"),
        ("echo ${#x}", "${#x} is not a drawer reference", "$${#x}"),
        ("echo $((${HOME}))", "${HOME} is not a drawer reference", "$HOME or $${HOME}"),
    ],
)
def test_not_a_drawer_reference(script: str, message: str, hint: str) -> None:
    template, issues = compile_(script)
    assert render_shell(template) == script
    assert issues == [
        ShellIssue(script.index("${"), "error", message, f"for a shell variable write {hint}")
    ]


@pytest.mark.parametrize("script", ["echo ${item", 'echo "${item"', "echo ${inputs['}"])
def test_unterminated_reference(script: str) -> None:
    template, issues = compile_(script)
    assert render_shell(template) == script
    assert [(i.offset, i.severity, i.message) for i in issues] == [
        (script.index("${"), "error", "unterminated ${")
    ]


def test_issue_offsets_are_in_order() -> None:
    script = "echo ${HOME} '${item}' $((${n})) ${item}"
    assert issues_of(script) == [(5, "error"), (14, "warning"), (26, "error")]
    assert render_shell(compile_(script)[0]).endswith(' "$DRAWER_REF_1"')


TOKENS = ["${item}", "$${", "${", "}", "(", ")", "$(", "$((", "))", "'", '"', "`", "\\", "#"]
TOKENS += ["\n", " ", "<<", "<<-", "EOF", "let ", "[[ ", " ]]", ";", "case ", "a)", "esac", "$'"]


@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_any_script_compiles_consistently(script: str) -> None:
    template, _ = compile_(script)
    for ref in template.refs:
        assert script[ref.start : ref.end] == f"${{{ref.content}}}"
    assert [p for p in template.parts if isinstance(p, ShellRef)] == list(template.refs)
    if "$${" not in script:
        rebuilt = "".join(
            p if isinstance(p, str) else script[p.start : p.end] for p in template.parts
        )
        assert rebuilt == script


# --- render and python -------------------------------------------------------------------------


def test_render_as_file() -> None:
    template, _ = compile_('echo ${item} "${n}" ${path}')
    assert render_shell(template, frozenset({1, 2})) == (
        'DRAWER_REF_1="$(cat "$DRAWER_REF_1_FILE"; printf x)"; DRAWER_REF_1="${DRAWER_REF_1%x}"; '
        'DRAWER_REF_2="$(cat "$DRAWER_REF_2_FILE"; printf x)"; DRAWER_REF_2="${DRAWER_REF_2%x}"; '
        'echo "$DRAWER_REF_1" "${DRAWER_REF_2}" "$DRAWER_REF_3"'
    )


@pytest.mark.parametrize("shell", [["bash", "-e", "-c"], ["sh", "-e", "-c"]])
def test_a_value_passed_as_a_file_keeps_its_trailing_newlines(
    tmp_path: Path, shell: list[str]
) -> None:
    value = "x" * (70 * 1024) + "\n\n"
    (tmp_path / "value").write_text(value)
    script = render("printf %s ${item} | wc -c\nprintf '%s|' \"${item}\" | tail -c 3", {1})
    out = run(shell, script, tmp_path, {"DRAWER_REF_1_FILE": str(tmp_path / "value")})
    assert out.split() == [str(len(value)), "|"]


def test_find_python_refs() -> None:
    script = 'import os\nprint("${item}", "$${x}", "$$")\n# ${HOME}\n'
    issues = find_python_refs(script)
    assert [(i.offset, i.severity, i.hint) for i in issues] == [
        (script.index("${item}"), "error", PYTHON_HINT),
        (script.index("${HOME}"), "error", PYTHON_HINT),
    ]
    assert find_python_refs("print('$${x} $x')") == []
    assert [i.message for i in find_python_refs("x = '${'")] == ["unterminated ${"]


# --- real execution ----------------------------------------------------------------------------

EXECUTED = [
    ("echo ${item}", "{v}\n"),
    ('echo "${item}"', "{v}\n"),
    ('echo "$(printf %s ${item})"', "{v}\n"),
    ("echo `printf %s ${item}`", "{v}\n"),
    ("cat <<EOF\n${item}\nEOF", "{v}\n"),
    ("cat <<EOF\n$(printf %s ${item})\nEOF", "{v}\n"),
    ("printf '[%s]\\n' ${item}", "[{v}]\n"),
    ('printf "%s\\n" "$${UNSET:-${item}}"', "{v}\n"),
    ("printf '%s\\n' $${UNSET:-${item}}", "{v}\n"),
]


@pytest.mark.parametrize("argv", SHELLS, ids=["bash", "sh"])
@pytest.mark.parametrize(("script", "expected"), EXECUTED)
def test_payload_is_printed_never_run(
    tmp_path: Path, argv: list[str], script: str, expected: str
) -> None:
    out = run(argv, render(script), tmp_path, {"DRAWER_REF_1": PAYLOAD})
    assert out == expected.format(v=PAYLOAD)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("argv", SHELLS, ids=["bash", "sh"])
@pytest.mark.parametrize(
    "value", ["it's", 'say "hi"', "two\nlines", "*", "a  b   c", " lead", "\\n $HOME `id`"]
)
def test_awkward_values_are_one_argument(tmp_path: Path, argv: list[str], value: str) -> None:
    (tmp_path / "file.txt").touch()
    out = run(argv, render("printf '[%s]\\n' ${item}"), tmp_path, {"DRAWER_REF_1": value})
    assert out == f"[{value}]\n"


def test_large_value_through_a_file(tmp_path: Path) -> None:
    size = 200 * 1024
    value = (PAYLOAD + " 'q' \"d\" *\n" * 9)[:100] * (size // 100)
    assert len(value) == size and not value.endswith("\n")
    ref_file = tmp_path / "ref1"
    ref_file.write_text(value)
    env = {"DRAWER_REF_1_FILE": str(ref_file)}
    for argv in SHELLS:
        script = render("printf %s ${item} | wc -c", frozenset({1}))
        assert run(argv, script, tmp_path, env).strip() == str(size)
        script = render('printf %s "${item}" > out.txt', frozenset({1}))
        run(argv, script, tmp_path, env)
        assert (tmp_path / "out.txt").read_text() == value
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("content", "shell"),
    [
        ("HOME", True),
        ("1", True),
        ("10", True),
        ("#", True),
        ("@", True),
        ("!x", True),
        ("#arr[@]", True),
        ("x%.txt", True),
        ("x:1:2", True),
        ("x/a/b", True),
        ("x^^", True),
        ("x@Q", True),
        ("1 + inputs.n", False),
        ("(inputs.n + 1) * 2", False),
        ('"a" + inputs.s', False),
        ("[1, 2]", False),
        ("-inputs.n", False),
        ("size(inputs.s)", False),
        ("'x'", False),
    ],
)
def test_is_shell_parameter_tells_expansions_from_expressions(content: str, shell: bool) -> None:
    assert is_shell_parameter(content) is shell


def test_an_expression_that_begins_with_a_number_or_a_parenthesis_runs_in_a_shell_string(
    tmp_path: Path,
) -> None:
    """Issue 11 item 25: validate took these for shell variables and refused them."""
    (tmp_path / "d.yaml").write_text(
        "inputs:\n  n: {type: integer, default: 1}\nsteps:\n  - id: a\n"
        "    run: echo \"${1 + inputs.n}\" ${(inputs.n + 1) * 2} ${'x' + string(inputs.n)}\n"
        "outputs:\n  said: ${a.output.stdout}\n"
    )
    ran = run_cli("d.yaml", "run", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"] == {"said": "2 4 x1"}
    (tmp_path / "e.yaml").write_text("steps:\n  - {id: a, run: 'echo ${foo bar}'}\n")
    refused = run_cli("e.yaml", "validate", cwd=tmp_path)
    assert refused.returncode == 2
    assert "${foo bar}: Syntax error" in refused.stderr
    assert "for a shell variable" not in refused.stderr
