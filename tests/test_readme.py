"""The README's drawer example is a valid drawer, and its commands say what they do."""

from __future__ import annotations

import re
from pathlib import Path

from drawer.loader import load_text
from drawer.shell import EVALUATING, SPECIAL_VARIABLES

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


# How the README names each of drawer.shell.EVALUATING's contexts (issue 12 item 6).
README_EVALUATING = {
    "$(( ))": "`$(( ))`",
    "(( ))": "`(( ))` and `for ((...))`",
    "$[ ]": "`$[ ]`",
    "[[ ]]": "`[[ ]]`",
    "let": "`let`",
    "subscript": "`a=([${item}]=1)`",
    "offset": "`$${x:${item}}`",
    "declare -i": "the value of `declare -i`",
    "integer": "`declare -i n;\n  n=${item}`",
    "arithmetic variable": "`y=${item}; echo $(( y + 1 ))`",
    "code variable": '`y=${item}; eval\n  "$y"`',
    "name variable": 'as a variable\'s name (`read "$y"`)',
    "name": "`read ${item}`, `printf -v ${item}`",
    "declare -n": "the value of\n  `declare -n`",
    "nameref": "or `-n`",
    "indirect": "with `$${!y}`",
    "prompt variable": "with `$${y@P}`",
    "prompt": "`PS4`",
    "startup file": "`BASH_ENV` and `ENV`",
    "code": "`eval`, `trap ${item} EXIT`, `mapfile -C`, `compgen -W` and `-C`",
    "stdin script": "reads as its\n  script (`bash <<< ${item}`)",
    ">&": "the file of `>&${item}`",
}


def test_readme_lists_every_context_where_bash_evaluates_a_value() -> None:
    text = README.read_text()
    assert set(README_EVALUATING) == set(EVALUATING)
    assert [snippet for snippet in README_EVALUATING.values() if snippet not in text] == []
    assert all(f"`{name}`" in text for name in SPECIAL_VARIABLES)
