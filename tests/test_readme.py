"""The README's drawer example is a valid drawer, and its commands say what they do."""

from __future__ import annotations

import re
from pathlib import Path

from drawer.loader import load_text

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_drawer_examples_validate(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    drawers = [block for block in blocks if block.lstrip().startswith(("name:", "steps:"))]
    assert drawers, "the README shows a drawer file"
    for number, block in enumerate(drawers):
        path = tmp_path / f"readme-{number}.yaml"
        path.write_text(block)
        loaded = load_text(block, path)
        assert loaded.model.steps
