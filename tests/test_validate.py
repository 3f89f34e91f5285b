"""Tests for drawer.validate helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from drawer.loader import InvalidDrawer
from drawer.source import parse_document
from drawer.validate import strings_in
from tests.conftest import load, run_cli


def test_strings_in_walks_an_aliased_value_once() -> None:
    lines = ["x0: &a0 ['${a}', b, c, d, e, f, g, h, i]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    data = parse_document("\n".join(lines) + "\n", "f.yaml").data
    found = list(strings_in(data, ()))
    assert len(found) == 9
    assert found[0] == (("x0", 0), "${a}")


def test_inputs_that_share_an_environment_variable_are_refused_at_the_second(
    tmp_path: Path,
) -> None:
    (tmp_path / "d.yaml").write_text(
        "inputs:\n  out-dir: {default: a}\n  out_dir: {default: b}\n  Out-Dir: {}\n"
        "steps:\n  - {id: s, run: 'true'}\n"
    )
    checked = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert checked.returncode == 2
    lines = [line for line in checked.stderr.splitlines() if ": error: " in line]
    assert lines == [
        'd.yaml:3:3: error: inputs "out-dir" and "out_dir" would both be set by'
        " DRAWER_INPUT_OUT_DIR",
        'd.yaml:4:3: error: inputs "out-dir" and "Out-Dir" would both be set by'
        " DRAWER_INPUT_OUT_DIR",
    ]
    assert "input names must differ in more than case and - or _" in checked.stderr


def test_loop_names_that_share_an_environment_variable_are_refused(tmp_path: Path) -> None:
    nested = """
        steps:
          - id: outer
            kind: for_each
            over: [1]
            steps:
              - id: inner
                kind: for_each
                over: [2]
                as: Item
                index_as: j
                steps: [{id: s, run: 'true'}]
        """
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, nested)
    [problem] = caught.value.problems
    assert problem.message == (
        'loop name "Item" is already used by an enclosing loop (as "item": both are'
        " DRAWER_VAR_ITEM)"
    )
    assert problem.position is not None and problem.position.line == 10
    one_loop = "steps:\n  - {id: l, kind: for_each, over: [1], as: i, index_as: I, steps: []}\n"
    with pytest.raises(InvalidDrawer, match='as "i" and index_as "I" are both DRAWER_VAR_I'):
        load(tmp_path, one_loop)


@pytest.mark.parametrize(
    ("over", "hint"),
    [
        ('"a b c"', "write a list ([a, b, c]), a ${...} reference, or a source"),
        ("src/*.py", 'to loop over files, write over: {glob: "src/*.py"}'),
        ("files.output.lines", 'a reference is written over: "${files.output.lines}"'),
        ('"${files.output.stdout} and more"', "write a list ([a, b, c])"),
    ],
)
def test_plain_text_in_over_is_refused_with_a_hint(tmp_path: Path, over: str, hint: str) -> None:
    (tmp_path / "d.yaml").write_text(
        "steps:\n  - {id: files, run: ls}\n  - id: each\n    kind: for_each\n"
        f"    over: {over}\n    steps: [{{id: s, run: 'true'}}]\n"
    )
    checked = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert checked.returncode == 2
    assert (
        'd.yaml:5:11: error: "each": over is text, not a list, a ${...} reference or a source'
        in checked.stderr
    )
    assert f"hint: {hint}" in checked.stderr
