"""`drawer FILE set / get / unset` and `run --set`: paths, typing, refusal, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drawer.assign import AssignError, to_pointer, write_atomic, yaml_scalar
from tests.conftest import run_cli

DRAWER = """\
# Lint every file.
steps:
  - id: files
    run: ls   # list them

  - id: each
    kind: for_each
    over: ${files.output.lines}
    parallelism: 4
    steps:
      - id: build
        run: echo ${item}
execution:
  max_workers: 2
"""


@pytest.fixture
def drawer_file(tmp_path: Path) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(DRAWER)
    return path


def test_set_changes_only_the_value(drawer_file: Path) -> None:
    result = run_cli(
        "d.yaml", "set", "each.parallelism=10", "execution.max_workers=3", cwd=drawer_file.parent
    )
    assert result.returncode == 0, result.stderr
    expected = DRAWER.replace("parallelism: 4", "parallelism: 10").replace(
        "max_workers: 2", "max_workers: 3"
    )
    assert drawer_file.read_text() == expected


def test_string_only_fields_stay_strings_and_json_values(drawer_file: Path) -> None:
    assert run_cli("d.yaml", "set", "build.run=true", cwd=drawer_file.parent).returncode == 0
    assert run_cli("d.yaml", "get", "build.run", cwd=drawer_file.parent).stdout.strip() in (
        "'true'",
        '"true"',
    )
    result = run_cli("d.yaml", "set", "each.over:=[1, 2]", cwd=drawer_file.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(run_cli("d.yaml", "get", "each.over", cwd=drawer_file.parent).stdout) == [
        1,
        2,
    ]


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (["each.parallelism=-1"], "parallelism must be an integer >= 0"),
        (["each.kind=nope"], "kind"),
        (["nosuch.parallelism=3"], 'no step "nosuch"'),
        (["lnit.parallelism=3"], "no step"),
        (["each.parallelism=8", "each.parallelism=ten"], "parallelism"),
    ],
)
def test_refused_edits_leave_the_file_byte_identical(
    drawer_file: Path, assignments: list[str], message: str
) -> None:
    before = drawer_file.read_bytes()
    result = run_cli("d.yaml", "set", *assignments, cwd=drawer_file.parent)
    assert result.returncode == 2
    assert message in result.stderr
    assert drawer_file.read_bytes() == before


def test_an_invalid_file_can_be_repaired(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("steps:\n  - id: a\n    run: echo\n    timeout: ten\n  - {id: b, run: x}\n")
    result = run_cli("d.yaml", "set", "b.run=echo fixed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "run: echo fixed}" in path.read_text()
    assert run_cli("d.yaml", "set", "a.timeout=5s", cwd=tmp_path).returncode == 0
    assert run_cli("d.yaml", "validate", cwd=tmp_path).returncode == 0


def test_unset_and_get(drawer_file: Path) -> None:
    cwd = drawer_file.parent
    assert run_cli("d.yaml", "get", "each.parallelism", cwd=cwd).stdout == "4\n"
    assert run_cli("d.yaml", "unset", "each.parallelism", cwd=cwd).returncode == 0
    assert "parallelism" not in drawer_file.read_text()
    missing = run_cli("d.yaml", "unset", "each.parallelism", cwd=cwd)
    assert missing.returncode == 2
    effective = run_cli("d.yaml", "get", "each.parallelism", "--effective", cwd=cwd)
    assert effective.stdout == "1\n"


def test_dry_run_prints_a_diff_and_writes_nothing(drawer_file: Path) -> None:
    before = drawer_file.read_bytes()
    result = run_cli("d.yaml", "set", "each.parallelism=6", "--dry-run", cwd=drawer_file.parent)
    assert result.returncode == 0
    assert "-    parallelism: 4\n+    parallelism: 6\n" in result.stdout
    assert drawer_file.read_bytes() == before


def test_write_follows_symlinks_and_keeps_the_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text(DRAWER)
    real.chmod(0o640)
    (tmp_path / "link.yaml").symlink_to(real)
    assert run_cli("link.yaml", "set", "each.parallelism=5", cwd=tmp_path).returncode == 0
    assert (tmp_path / "link.yaml").is_symlink()
    assert "parallelism: 5" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640


def test_a_failed_rename_leaves_the_original_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(DRAWER)

    def broken_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(path, "steps: []\n")
    assert path.read_text() == DRAWER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.yaml"]


def test_run_set_edits_this_run_only(drawer_file: Path) -> None:
    before = drawer_file.read_bytes()
    result = run_cli(
        "d.yaml",
        "run",
        "--json",
        "--set",
        "files.run=printf 'a\\nb\\n'",
        "--set",
        "build.run=echo got-${item}",
        cwd=drawer_file.parent,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    results = document["steps"]["each"]["output"]["results"]
    assert [r["steps"]["build"]["output"]["stdout"] for r in results] == ["got-a", "got-b"]
    assert drawer_file.read_bytes() == before


def test_paths_and_scalars() -> None:
    assert to_pointer("each.parallelism", DRAWER, "d.yaml") == "/steps/1/parallelism"
    assert to_pointer("build.run", DRAWER, "d.yaml") == "/steps/1/steps/0/run"
    assert to_pointer("execution.max_workers", DRAWER, "d.yaml") == "/execution/max_workers"
    assert to_pointer("/steps/0/run", DRAWER, "d.yaml") == "/steps/0/run"
    with pytest.raises(AssignError, match='did you mean "each"'):
        to_pointer("eahc.parallelism", DRAWER, "d.yaml")
    assert [yaml_scalar(text) for text in ("10", "1.5", "true", "null", "ten", "0x1f")] == [
        10,
        1.5,
        True,
        None,
        "ten",
        31,
    ]
