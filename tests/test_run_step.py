"""run steps: references are data in every form, large values travel as files."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from drawer.context import Masker
from drawer.loader import InvalidDrawer
from drawer.steps.run import LINE_LIMIT, LineSplitter
from tests.conftest import RunText, load

HOSTILE = "$(touch pwned); echo hacked `touch pwned2` 'q' \"dq\" *"


@pytest.mark.parametrize(
    "command",
    [
        "echo ${item}",
        'echo "${item}"',
        'echo "$DRAWER_ITEM"',
        'printf "%s\\n" "$(echo ${item})"',
        "cat <<EOF\n${item}\nEOF",
    ],
    ids=["bare", "double-quoted", "env", "command-substitution", "heredoc"],
)
@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_item_value_is_printed_never_executed(
    run_text: RunText, tmp_path: Path, command: str, shell: str
) -> None:
    (tmp_path / "items.json").write_text(json.dumps([HOSTILE]))
    script = "\n".join(" " * 18 + line for line in command.splitlines())
    result = run_text(
        f"""
        steps:
          - id: each
            kind: for_each
            over: {{file: items.json, format: json}}
            steps:
              - id: show
                shell: {shell}
                run: |
{script}
        """
    )
    record = result.steps["each"]["output"]["results"][0]["steps"]["show"]
    assert record["status"] == "ok", record
    assert record["output"]["stdout"] == HOSTILE
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned2").exists()


def test_argv_form_passes_values_as_single_arguments(run_text: RunText, tmp_path: Path) -> None:
    (tmp_path / "items.json").write_text(json.dumps([HOSTILE]))
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: {file: items.json, format: json}
            steps:
              - id: show
                run: [printf, "[%s]", "${item}", "x-${item}"]
        """
    )
    output = result.steps["each"]["output"]["results"][0]["steps"]["show"]["output"]
    assert output["stdout"] == f"[{HOSTILE}][x-{HOSTILE}]"
    assert not (tmp_path / "pwned").exists()


def test_a_200_kib_value_passes_intact_through_a_file(run_text: RunText, tmp_path: Path) -> None:
    big = "x" * (200 * 1024 - 1) + "$"
    (tmp_path / "big.json").write_text(json.dumps([big]))
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: {file: big.json, format: json}
            steps:
              - id: size
                run: |
                  printf %s ${item} | wc -c
                  printf %s "$(cat "$DRAWER_ITEM_FILE")" | wc -c
                  printf %s ${item} | tail -c 3
        """
    )
    output = result.steps["each"]["output"]["results"][0]["steps"]["size"]["output"]
    assert output["lines"] == [str(len(big)), str(len(big)), "xx$"]


@pytest.mark.parametrize(
    ("script", "message", "hint"),
    [
        ("echo $(( ${inputs.n} + 1 ))", "$(( ))", "${n * 2}"),
        ("(( ${inputs.n} > 1 )) && echo big", "(( ))", "expression"),
        ("[[ ${inputs.n} -gt 1 ]] && echo big", "[[ ]]", "expression"),
        ("let x=${inputs.n}", "let", "expression"),
        ("echo ${HOME}", "${HOME} is not a drawer reference", "$HOME or $${HOME}"),
        ("echo ${VAR:-x}", "not a drawer reference", "$VAR"),
        ("echo ${f%.py}", "not a drawer reference", "$${f%.py}"),
    ],
)
def test_unsafe_or_foreign_references_are_validation_errors(
    tmp_path: Path, script: str, message: str, hint: str
) -> None:
    text = f"""
        inputs:
          n: {{type: integer, default: 1}}
        steps:
          - id: s
            run: '{script}'
    """
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, text)
    problems = [p for p in caught.value.problems if p.severity == "error"]
    assert len(problems) == 1
    assert message in problems[0].message
    assert problems[0].hint is not None and hint in problems[0].hint
    assert problems[0].position is not None and problems[0].position.line == 6


def test_python_shell_rejects_references(tmp_path: Path) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(
            tmp_path,
            """
            steps:
              - id: s
                shell: python
                run: print("${inputs.x}")
            inputs:
              x: {default: a}
        """,
        )
    assert "os.environ" in (caught.value.problems[0].hint or "")


def test_shell_variables_written_with_double_dollar(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: s
            run: name=report.py; echo "$${name%.py}" $${#name}
        """
    )
    assert result.steps["s"]["output"]["stdout"] == "report 9"


def test_reference_in_single_quotes_stays_literal_with_a_warning(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """
        steps:
          - id: s
            run: echo '${inputs.x}'
        inputs:
          x: {default: a}
    """,
    )
    assert [p.severity for p in loaded.warnings] == ["warning"]
    assert "single quotes" in loaded.warnings[0].message


def test_python_shell_and_sh_shell_run(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: py
            shell: python
            run: |
              import os
              print(os.environ["DRAWER_OUTPUT"] != "")
          - id: posix
            shell: sh
            run: echo "$0"
        """
    )
    assert result.steps["py"]["output"]["stdout"] == "True"
    assert result.steps["posix"]["output"]["stdout"] == "sh"


def test_a_reference_to_stdout_or_stderr_gives_the_whole_text(run_text: RunText) -> None:
    code = 'import sys; sys.stdout.write("o" * 2**21 + "E"); sys.stderr.write("e" * 10000)'
    write = f"{sys.executable} -c '{code}'"
    count = f"{sys.executable} -c 'import sys; print(len(sys.stdin.read()))'"
    result = run_text(
        f"""
        steps:
          - id: top
            run: {write}
          - id: top_count
            run: {count}
            stdin: "${{top.output.stdout}}${{top.output.stderr}}"
          - id: each
            kind: for_each
            over: [1]
            steps:
              - id: inner
                run: {write}
              - id: inner_count
                run: {count}
                stdin: "${{inner.output.stdout}}${{inner.output.stderr}}"
        """
    )
    assert result.steps["top_count"]["output"]["stdout"] == str(2**21 + 1 + 10000)
    inner = result.steps["each"]["output"]["results"][0]["steps"]
    assert inner["inner_count"]["output"]["stdout"] == str(2**21 + 1 + 10000)
    # The records keep a tail, marked as such.
    top = result.steps["top"]["output"]
    assert len(top["stdout"]) == 2**20 and top["stdout"].endswith("oE")
    assert top["stdout_truncated"] is True and top["stderr_truncated"] is False


def test_a_reference_to_stdout_past_64_mib_fails_with_output_too_large(
    run_text: RunText,
) -> None:
    result = run_text(
        f"""
        steps:
          - id: big
            run: {sys.executable} -c 'import sys; sys.stdout.write("x" * (64 * 2**20 + 1))'
          - id: use
            run: {sys.executable} -c 'import sys; sys.stdin.read()'
            stdin: "${{big.output.stdout}}"
        """
    )
    assert result.steps["big"]["status"] == "ok"
    assert result.steps["use"]["error"]["code"] == "OUTPUT_TOO_LARGE"


def test_output_kept_in_iteration_records_is_bounded(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: top
            run: head -c 10000 /dev/zero | tr '\\0' x
          - id: each
            kind: for_each
            over: [1]
            steps:
              - id: inner
                run: head -c 10000 /dev/zero | tr '\\0' y
        """
    )
    top = result.steps["top"]["output"]
    assert len(top["stdout"]) == 10000 and top["stdout_truncated"] is False
    inner = result.steps["each"]["output"]["results"][0]["steps"]["inner"]["output"]
    assert len(inner["stdout"]) == 4096 and inner["stdout_truncated"] is True
    assert inner["lines"] == ["y" * 10000]  # computed from the complete output


def test_the_line_splitter_caps_the_pending_line_and_keeps_every_byte() -> None:
    lines: list[str] = []
    ctx = SimpleNamespace(emit=lambda event: lines.append(event.text), masker=Masker([]))
    splitter = LineSplitter("step", ctx)  # type: ignore[arg-type]
    chunk = "é".encode() * 2**15  # 64 KiB without a newline, two bytes per character
    start = time.monotonic()
    for _ in range(800):  # 50 MiB: quadratic splitting took minutes
        splitter.feed("stdout", chunk)
        assert len(splitter.partial["stdout"]) <= LINE_LIMIT
    splitter.feed("stdout", b"end\nnext")
    splitter.flush()
    assert time.monotonic() - start < 30
    assert all(len(line.encode()) <= LINE_LIMIT for line in lines)
    assert "".join(lines[:-1]) == "é" * 2**15 * 800 + "end"
    assert lines[-1] == "next"


def test_the_line_splitter_masks_a_secret_longer_than_a_piece() -> None:
    # A line is shown in pieces of LINE_LIMIT bytes: a secret longer than that, or across
    # a cut, is masked whole, never shown in part, whatever the chunks the pipe gave.
    secret = "s3cret-" + "é" * LINE_LIMIT + "-end"
    for size in (1000, 4096, 65536, 200_000):
        lines: list[str] = []
        ctx = SimpleNamespace(emit=lambda event, into=lines: into.append(event.text))
        ctx.masker = Masker([secret])
        splitter = LineSplitter("step", ctx)  # type: ignore[arg-type]
        data = ("x" * 70_000 + secret + "y" * 10 + secret + "\n" + "z" * 5).encode()
        for start in range(0, len(data), size):
            splitter.feed("stdout", data[start : start + size])
            assert len(splitter.partial["stdout"]) <= LINE_LIMIT + len(secret.encode())
        splitter.flush()
        joined = "".join(lines)
        assert "s3cret" not in joined and "éééé" not in joined and "-end" not in joined
        assert joined == "x" * 70_000 + "***" + "y" * 10 + "***" + "z" * 5
        assert all(len(line.encode()) <= LINE_LIMIT for line in lines)


def test_a_nul_byte_in_a_value_is_a_step_error(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: a
            run: printf 'x\\0y'
          - id: b
            run: echo ${a.output.stdout}
        """
    )
    assert result.document["status"] == "failed"
    assert result.steps["b"]["error"]["code"] == "VALUE_NOT_TEXT"
    assert "NUL" in result.steps["b"]["error"]["message"]


def test_the_drawer_env_gives_values_as_a_step_env_does(run_text: RunText) -> None:
    """Top-level `env:` wrote Python's text (True, {'a': 1}); a step's env wrote true, JSON."""
    result = run_text(
        """
        inputs:
          o: {type: object, default: {a: 1}}
        env:
          FLAG: true
          DATA: ${inputs.o}
        steps:
          - id: show
            env: {STEP_FLAG: true, STEP_DATA: "${inputs.o}"}
            run: echo "$FLAG $DATA $STEP_FLAG $STEP_DATA"
        """
    )
    assert result.steps["show"]["output"]["stdout"] == 'true {"a":1} true {"a":1}'
