"""Tests for drawer.validate helpers."""

from __future__ import annotations

import tracemalloc
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


@pytest.mark.parametrize(
    ("step", "message", "hint"),
    [
        (
            "{id: a, run: 'true', paralelism: 2}",
            'unknown key "paralelism" in step "a"',
            'did you mean "parallelism"? (a key of for_each and repeat steps, not of run steps)',
        ),
        (
            "{id: a, run: 'true', over: [1]}",
            'unknown key "over" in step "a"',
            '"over" belongs to for_each steps, not to run steps: set kind: for_each',
        ),
        (
            "{id: a, kind: value, value: 1, tolerate: 1}",
            'unknown key "tolerate" in step "a"',
            '"tolerate" belongs to for_each and parallel steps, not to value steps: set its kind',
        ),
        ("{id: a, run: 'true', tmeout: 1}", 'unknown key "tmeout"', 'did you mean "timeout"?'),
        ("{id: a, run: 'true', zzz: 1}", 'unknown key "zzz" in step "a"', None),
    ],
)
def test_did_you_mean_looks_at_the_keys_of_other_kinds(
    tmp_path: Path, step: str, message: str, hint: str | None
) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, f"steps:\n  - {step}\n")
    [problem] = caught.value.problems
    assert problem.message.startswith(message)
    assert problem.hint == hint


@pytest.mark.parametrize(
    ("reference", "hint"),
    [
        ("${a.outptu.stdout}", "did you mean ${a.output.stdout}?"),
        ("${a.statsu}", "did you mean ${a.status}?"),
        ("${a.stdout}", "write ${a.output.stdout}"),
    ],
)
def test_did_you_mean_for_a_step_field_points_the_right_way(
    tmp_path: Path, reference: str, hint: str
) -> None:
    with pytest.raises(InvalidDrawer) as caught:
        load(
            tmp_path,
            f"steps:\n  - {{id: a, run: 'true'}}\n  - {{id: b, run: 'echo {reference}'}}\n",
        )
    [problem] = caught.value.problems
    assert problem.message == f"{reference}: a step has output, status and error"
    assert problem.hint == hint


def test_a_step_field_misspelt_in_a_condition_is_found(tmp_path: Path) -> None:
    text = """
        steps:
          - {id: a, run: 'true'}
          - id: b
            run: 'true'
            when: "a.outptu.stdout == 'a.outptu' && a.status == 'ok'"
        """
    with pytest.raises(InvalidDrawer) as caught:
        load(tmp_path, text)
    [problem] = caught.value.problems
    assert problem.message.endswith(": a step has output, status and error")
    assert problem.hint == "did you mean ${a.output.stdout}?"


def test_an_input_default_of_the_wrong_type_is_refused_by_validate(tmp_path: Path) -> None:
    """`default: true` on an integer input passed validate and failed only at run time."""
    (tmp_path / "d.yaml").write_text(
        "inputs:\n  n: {type: integer, default: true}\n  f: {type: number, default: '1'}\n"
        "steps:\n  - {id: s, run: 'true'}\n"
    )
    checked = run_cli("d.yaml", "validate", cwd=tmp_path)
    assert checked.returncode == 2
    assert 'd.yaml:2:31: error: the default of input "n" is not a integer: True' in checked.stderr
    assert 'd.yaml:3:30: error: the default of input "f" is not a number' in checked.stderr


def test_a_long_depends_on_chain_is_checked_in_bounded_memory() -> None:
    """5,000 steps chained by depends_on, each referring to the first: one ancestor set per
    step took 600 MB; bit sets take a few (issue 11 item 22). A generous bound, no clock."""
    from drawer.model import Drawer
    from drawer.validate import Ancestry

    steps = [{"id": "s0", "run": "true"}] + [
        {"id": f"s{i}", "depends_on": [f"s{i - 1}"], "run": "true"} for i in range(1, 5000)
    ]
    model = Drawer.model_validate({"steps": steps})
    tracemalloc.start()
    try:
        ancestry = Ancestry(model.steps)
        assert all(ancestry.precedes("s0", f"s{i}") for i in range(1, 5000))
        assert not ancestry.precedes("s4999", "s0")
        assert ancestry.precedes("s17", "s4000") and not ancestry.precedes("s4000", "s17")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20


def test_a_drawer_file_over_8_mib_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """Exit 2 with the limit, for validate, run and set alike (issue 11 item 22)."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"steps: []\n" + b"\n" * (8 * 2**20))
    for args in (("validate",), ("run",), ("set", "steps=[]")):
        result = run_cli("big.yaml", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "over the 8 MiB drawer files may have" in result.stderr
        assert "Traceback" not in result.stderr
