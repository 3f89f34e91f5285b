"""`{glob: PATTERN}` sources: `**` never enters a symlink to a directory (issue 11 item 19);
the rest of the pattern follows symlinks as bash does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drawer.globs import glob_files
from tests.conftest import RunText


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tree/{top.txt, a/x.txt, a/b/y.txt, .hidden/h.txt}, a loop a/b/up -> .., a linked
    directory alias -> a and a linked file link.txt -> a/x.txt."""
    (tmp_path / "tree" / "a" / "b").mkdir(parents=True)
    (tmp_path / "tree" / ".hidden").mkdir()
    for name in ("top.txt", "a/x.txt", "a/b/y.txt", ".hidden/h.txt"):
        (tmp_path / "tree" / name).write_text(name)
    os.symlink("..", tmp_path / "tree" / "a" / "b" / "up")
    os.symlink("a", tmp_path / "tree" / "alias")
    os.symlink("a/x.txt", tmp_path / "tree" / "link.txt")
    os.symlink("gone", tmp_path / "tree" / "dangling.txt")
    return tmp_path


@pytest.mark.parametrize("start", ["", "./"])
def test_a_loop_over_globstar_does_not_follow_a_symlink_loop(
    run_text: RunText, tree: Path, start: str
) -> None:
    """Nor does it list hidden entries: `./` (which the loop once took as asking for them,
    listing `./.git/...`) is only the same directory."""
    result = run_text(
        f"""
        steps:
          - id: files
            kind: for_each
            over: {{glob: "{start}tree/**/*.txt"}}
            steps: [{{id: name, kind: value, value: "${{item}}"}}]
        """
    )
    items = [entry["item"] for entry in result.steps["files"]["output"]["results"]]
    expected = ["tree/a/b/y.txt", "tree/a/x.txt", "tree/link.txt", "tree/top.txt"]
    assert items == [start + path for path in expected]


def test_the_rest_of_a_pattern_follows_symlinks(tree: Path) -> None:
    assert glob_files("tree/*/x.txt", tree) == ["tree/a/x.txt", "tree/alias/x.txt"]
    assert glob_files("tree/alias/**/*.txt", tree) == ["tree/alias/b/y.txt", "tree/alias/x.txt"]
    assert glob_files("tree/a/b/up/*.txt", tree) == ["tree/a/b/up/x.txt"]
    assert glob_files("tree/link.txt", tree) == ["tree/link.txt"]
    assert glob_files("tree/dangling.txt", tree) == []


def test_globstar_matches_zero_or_more_directories_and_files_only(tree: Path) -> None:
    everything = ["tree/a/b/y.txt", "tree/a/x.txt", "tree/link.txt", "tree/top.txt"]
    assert glob_files("tree/**", tree) == everything
    assert glob_files("tree/**/**/*.txt", tree) == everything
    assert glob_files("**/b/*.txt", tree) == ["tree/a/b/y.txt"]
    assert glob_files("tree/a[l]*/x.txt", tree) == ["tree/alias/x.txt"]
    assert glob_files("tree/top.txt/**", tree) == []
    assert glob_files("nothing/**/*.txt", tree) == []
    absolute = f"{tree}/tree/a/**/*.txt"
    assert glob_files(absolute, Path("/")) == [f"{tree}/tree/a/b/y.txt", f"{tree}/tree/a/x.txt"]


def test_hidden_entries_only_for_a_part_that_starts_with_a_dot(tree: Path) -> None:
    assert "tree/.hidden/h.txt" not in glob_files("tree/**/*.txt", tree)
    assert glob_files("tree/.*/*.txt", tree) == ["tree/.hidden/h.txt"]
    assert glob_files("tree/**/.hidden/*", tree) == ["tree/.hidden/h.txt"]
    # `./` is the same directory, not a request for hidden names (it listed .git/ trees).
    dotted = glob_files("./tree/**/*.txt", tree)
    assert dotted == ["./" + path for path in glob_files("tree/**/*.txt", tree)]
    assert glob_files("./tree/.hidden/*", tree) == ["./tree/.hidden/h.txt"]
