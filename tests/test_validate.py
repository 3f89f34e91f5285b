"""Tests for drawer.validate helpers."""

from __future__ import annotations

from pathlib import Path

from drawer.source import parse_document
from drawer.validate import strings_in


def test_strings_in_walks_an_aliased_value_once() -> None:
    lines = ["x0: &a0 ['${a}', b, c, d, e, f, g, h, i]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    data = parse_document("\n".join(lines) + "\n", "f.yaml").data
    found = list(strings_in(data, ()))
    assert len(found) == 9
    assert found[0] == (("x0", 0), "${a}")


def test_a_long_depends_on_chain_is_checked_in_bounded_memory() -> None:
    """5,000 steps chained by depends_on, each referring to the first: one ancestor set per
    step took 600 MB; bit sets take a few (issue 11 item 22). A generous bound, no clock."""
    import tracemalloc

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
    from tests.conftest import run_cli

    big = tmp_path / "big.yaml"
    big.write_bytes(b"steps: []\n" + b"\n" * (8 * 2**20))
    for args in (("validate",), ("run",), ("set", "steps=[]")):
        result = run_cli("big.yaml", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "over the 8 MiB drawer files may have" in result.stderr
        assert "Traceback" not in result.stderr
