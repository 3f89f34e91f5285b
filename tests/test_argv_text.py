"""Text fields hold the text as written: YAML and JSON never turn an unquoted `true`, `1e3`,
`0x10` or `~` in an argv list, an env value or a string input's default into another text."""

from __future__ import annotations

from pathlib import Path

import pytest

from drawer.loader import load_text
from tests.conftest import RunText, run_cli, run_loaded

PLAIN = [
    "true", "false", "True", "FALSE", "1e3", "0x10", "0o17", "010", "1_000", "1.10", ".inf",
    "-.Inf", ".nan", "-0", "+1", "null", "Null", "~", "2024-01-01", "2024-01-01T12:00:00Z",
    "yes", "on", "12",
]  # fmt: skip


def test_every_plain_scalar_in_an_argv_list_is_passed_as_written(run_text: RunText) -> None:
    result = run_text(
        f"""
        steps:
          - id: show
            run: [printf, '%s\\n', {", ".join(PLAIN)}]
        """
    )
    assert result.steps["show"]["output"]["lines"] == PLAIN


def test_a_block_list_an_alias_and_an_empty_item_are_passed_as_written(
    run_text: RunText,
) -> None:
    result = run_text(
        """
        steps:
          - id: show
            run:
              - printf
              - '[%s]'
              - &hex 0x10
              - *hex
              -
              - git config core.autocrlf false
        """
    )
    assert (
        result.steps["show"]["output"]["stdout"] == "[0x10][0x10][][git config core.autocrlf false]"
    )


def test_json_numbers_and_literals_in_argv_are_passed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        '{"steps": [{"id": "show", "env": {"E": 1.50},'
        ' "run": ["printf", "[%s]", true, 1e3, 1.10, -0.0, null, 7, "$E"]}]}'
    )
    result = run_loaded(load_text(path.read_text(), path), tmp_path)
    assert result.steps["show"]["output"]["stdout"] == "[true][1e3][1.10][-0.0][null][7][$E]"


def test_env_values_and_string_input_defaults_are_text_as_written(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          version: {default: 1.10}
          mode: {type: string, default: 010, enum: [010, 0x10]}
          count: {type: integer, default: 0x10}
        env:
          TOP: 1e3
        steps:
          - id: show
            env: {FLAG: false, HEX: 0x10}
            run: >-
              printf '[%s]' "$TOP" "$FLAG" "$HEX"
              ${inputs.version} ${inputs.mode} ${inputs.count}
        """
    )
    assert result.steps["show"]["output"]["stdout"] == "[1e3][false][0x10][1.10][010][16]"


def test_data_fields_keep_what_yaml_reads(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: data
            kind: value
            value: &shared [true, 1e3, &hex 0x10, ~]
          - id: each
            kind: for_each
            over: *shared
            steps: [{id: v, kind: value, value: "${item}"}]
          - id: show
            run: [printf, '[%s]', *hex]
        """
    )
    assert result.steps["data"]["output"] == [True, 1000.0, 16, None]
    results = result.steps["each"]["output"]["results"]
    assert [entry["item"] for entry in results] == [True, 1000.0, 16, None]
    assert result.steps["show"]["output"]["stdout"] == "[0x10]"  # the same node, as text


@pytest.mark.parametrize("written", ["0x10", "1e3", "True"])
def test_a_string_input_given_such_a_scalar_on_the_command_line_stays_text(
    run_text: RunText, written: str
) -> None:
    result = run_text(
        """
        inputs:
          v: {type: string}
        steps:
          - {id: show, run: [printf, '%s', "${inputs.v}"]}
        """,
        inputs=[f"v={written}"],
    )
    assert result.steps["show"]["output"]["stdout"] == written


CHILD = (
    "inputs:\n  version: {type: string}\nsteps:\n  - {id: a, run: [echo, '${inputs.version}']}\n"
)


@pytest.mark.parametrize(
    ("written", "read"), [("1.10", "1.1"), ("0x10", "16"), ("True", "true"), ("1e3", "1000.0")]
)
def test_a_sub_drawer_text_input_given_a_scalar_read_as_another_text_is_refused(
    tmp_path: Path, written: str, read: str
) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "d.yaml").write_text(
        "steps:\n  - id: sub\n    kind: drawer\n    drawer: child.yaml\n"
        f"    inputs: {{version: {written}, }}\n"
    )
    completed = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert completed.returncode == 2
    assert f'd.yaml:5:23: error: input "version" is text, but {written} reads as {read}' in (
        completed.stderr + completed.stdout
    )
    assert (
        f"quote it to pass the text as written: '{written}'" in completed.stderr + completed.stdout
    )


def test_a_sub_drawer_text_input_given_a_number_that_reads_the_same_is_accepted(
    tmp_path: Path,
) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "d.yaml").write_text(
        "steps:\n  - id: sub\n    kind: drawer\n    drawer: child.yaml\n"
        "    inputs: {version: 4.5}\n"
    )
    assert run_cli("d.yaml", "validate", cwd=tmp_path).returncode == 0


def test_a_text_field_given_a_scalar_that_is_not_text_asks_for_quotes(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("name: 1.10\nsteps:\n  - {id: a, cwd: 010, run: x}\n")
    completed = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert completed.returncode == 2
    output = completed.stderr + completed.stdout
    assert "d.yaml:1:7: error: name: Input should be a valid string" in output
    assert "hint: quote it to mean the text: '1.10'" in output
    assert "hint: quote it to mean the text: '010'" in output
