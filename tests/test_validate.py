"""Tests for drawer.validate helpers."""

from __future__ import annotations

from drawer.source import parse_document
from drawer.validate import strings_in


def test_strings_in_walks_an_aliased_value_once() -> None:
    lines = ["x0: &a0 ['${a}', b, c, d, e, f, g, h, i]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    data = parse_document("\n".join(lines) + "\n", "f.yaml").data
    found = list(strings_in(data, ()))
    assert len(found) == 9
    assert found[0] == (("x0", 0), "${a}")
