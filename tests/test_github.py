"""GitHub mode (SPEC 5): groups per top-level step, masks, annotations on the failing steps'
lines, and a job summary with a table and a Mermaid graph coloured by status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drawer import github
from drawer.github import GitHubReporter, escape_data, escape_property, mask_commands, top_level
from tests.conftest import load, run_cli
from tests.test_action import parse_github_output

SECRET = "gh-s3cr3t-t0ken"
DRAWER = """\
inputs:
  token: {secret: true}
steps:
  - id: prep
    run: echo "prep with ${inputs.token}"
  - id: each
    kind: for_each
    over: [1, 2, 3, 4, 5]
    parallelism: 2
    on_item_failure: continue
    steps:
      - id: work
        run: |
          echo "work ${item}"
          [ ${item} -ne 2 ] && [ ${item} -ne 4 ]
  - id: side
    depends_on: [prep]
    run: echo "side, ${inputs.token}"
"""


def github_run(tmp_path: Path, *args: str, text: str = DRAWER) -> tuple[str, str, str, int]:
    (tmp_path / "ci.yaml").write_text(text)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step's summary\n")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(tmp_path),
        "DRAWER_INPUT_TOKEN": SECRET,
    }
    result = run_cli("ci.yaml", "run", *args, cwd=tmp_path, env=env)
    return result.stdout, result.stderr, summary.read_text(), result.returncode


def test_a_run_in_github_mode_groups_annotates_and_summarises(tmp_path: Path) -> None:
    stdout, stderr, summary, code = github_run(tmp_path)
    assert code == 1, stderr
    lines = stdout.splitlines()
    # The mask comes first, before any line could show the secret.
    assert lines[0] == f"::add-mask::{SECRET}"
    assert SECRET not in "\n".join(lines[1:]) + stderr + summary

    # One group per top-level step, never interleaved, each holding its own lines only.
    groups: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("::group::"):
            assert current is None, "groups must not nest or interleave"
            current = line.removeprefix("::group::").split(":")[0]
            groups[current] = []
        elif line == "::endgroup::":
            current = None
        elif current is not None:
            groups[current].append(line)
    assert set(groups) == {"prep", "each", "side"}
    assert "[prep] prep with ***" in groups["prep"]
    assert sorted(line for line in groups["each"] if line.startswith("[each[")) == [
        f"[each[{index}].work] work {index + 1}" for index in range(5)
    ]
    assert not any("[each" in line for line in groups["prep"] + groups["side"])
    assert "::group::each: failed in" in stdout

    # One annotation per failing step definition, on that step's line in the file.
    annotations = [line for line in lines if line.startswith("::error ")]
    assert annotations == [
        "::error file=ci.yaml,line=12,title=drawer%3A each.work failed::failed in 2 "
        "iterations; first at each[1].work: STEP_FAILED: each[1].work exited with code 1"
    ]
    assert (tmp_path / "ci.yaml").read_text().splitlines()[11].strip() == "- id: work"

    # The job summary: appended, a table, the failures, a Mermaid graph coloured by status.
    assert summary.startswith("earlier step's summary\n### drawer: ci failed in ")
    assert "| `prep` | ✅ ok |" in summary
    assert re.search(r"\| `each` \| ❌ failed \| [\d.]+s \| 3 / 2 / 5 \|", summary)
    assert "- `each.work`: failed in 2 iterations; first at each[1].work" in summary
    mermaid = summary.split("```mermaid\n")[1].split("```")[0]
    assert "class s_prep,s_side ok" in mermaid
    assert "class s_each,s_work failed" in mermaid


def test_an_annotation_points_at_the_file_on_disk_when_run_set_moved_lines(
    tmp_path: Path,
) -> None:
    text = DRAWER.replace("  - id: prep\n", "  - id: prep\n    # a comment line\n")
    stdout, _, _, code = github_run(tmp_path, "--set", "each.parallelism=3", text=text)
    assert code == 1
    assert "::error file=ci.yaml,line=13," in stdout


def test_quiet_github_mode_prints_no_groups_but_still_annotates(tmp_path: Path) -> None:
    stdout, _, summary, code = github_run(tmp_path, "--quiet")
    assert code == 1
    assert "::group::" not in stdout and "::error file=ci.yaml,line=12" in stdout
    assert "```mermaid" in summary


def test_a_successful_run_has_no_annotations(tmp_path: Path) -> None:
    text = DRAWER.replace("[ ${item} -ne 2 ] && [ ${item} -ne 4 ]", "true")
    stdout, _, summary, code = github_run(tmp_path, "--json", text=text)
    assert code == 0
    assert "::error" not in stdout and "### drawer: ci ok in" in summary


def test_workflow_command_escaping() -> None:
    assert escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    assert mask_commands(["one", "two\nlines here\n}", "one"]) == [
        "::add-mask::one",
        "::add-mask::lines here",
    ]
    assert [top_level(path) for path in ("lint[3].ruff", "block.b1", "tries#2.x", "a")] == [
        "lint", "block", "tries", "a",
    ]  # fmt: skip


def test_the_summary_stays_under_the_limit_for_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = "".join(f"  - {{id: s{n}, kind: value, value: {n}}}\n" for n in range(300))
    loaded = load(tmp_path, "steps:\n" + steps)
    reporter = GitHubReporter(stream=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    document = {
        "name": "big",
        "status": "ok",
        "duration": 1.0,
        "steps": {
            f"s{n}": {"status": "ok", "duration": 0.1, "output": n, "error": None}
            for n in range(300)
        },
    }
    full = reporter.summary(document, loaded)
    assert "```mermaid" in full and "| `s299` |" in full
    monkeypatch.setattr(github, "SUMMARY_LIMIT", len(full.encode()) - 1)
    smaller = reporter.summary(document, loaded)
    assert "```mermaid" not in smaller and "too large for a job summary" in smaller
    monkeypatch.setattr(github, "SUMMARY_LIMIT", 4_000)
    smallest = reporter.summary(document, loaded)
    assert len(smallest.encode()) <= 4_000 and "| … |" in smallest
    reporter.stream.close()


def test_a_large_loop_gives_a_small_summary(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        steps:
          - id: many
            kind: for_each
            over: {range: [0, 3000]}
            parallelism: 50
            on_item_failure: continue
            steps:
              - id: v
                kind: value
                value: ${item}
              - id: odd
                when: ${item % 500 == 7}
                run: exit 1
        """
    )
    stdout, _, summary, code = github_run(tmp_path, "--no-store", text=text)
    assert code == 1
    assert len(summary.encode()) < 5_000
    assert "- `many.odd`: failed in 6 iterations; first at many[7].odd" in summary
    assert stdout.count("::error ") == 1


def test_the_action_in_github_mode_end_to_end(tmp_path: Path) -> None:
    """As a workflow step runs it: outputs, groups, annotation, summary, and the secret
    nowhere but in the ::add-mask:: line the runner consumes."""
    (tmp_path / "ci.yaml").write_text(DRAWER + "outputs:\n  prepared: ${prep.output.stdout}\n")
    files = {name: tmp_path / name for name in ("output.txt", "summary.md")}
    for path in files.values():
        path.write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DRAWER_")}
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(tmp_path),
        GITHUB_OUTPUT=str(files["output.txt"]),
        GITHUB_STEP_SUMMARY=str(files["summary.md"]),
        RUNNER_TEMP=str(tmp_path),
        INPUT_DRAWER="ci.yaml",
        INPUT_INPUTS=f"token<<END\n{SECRET}\nEND\n",
        INPUT_SET="each.parallelism=3",
        INPUT_SUMMARY="true",
    )
    done = subprocess.run(
        [sys.executable, "-m", "drawer.action"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    outputs = parse_github_output(files["output.txt"].read_text())
    document = json.loads((tmp_path / outputs["results"]).read_text())
    assert outputs["status"] == "failed" == document["status"]
    assert outputs["run-id"] == document["run_id"]
    assert json.loads(outputs["outputs"]) == {"prepared": "prep with ***"}
    assert document["edits"] == ["each.parallelism=3"]
    assert "::group::each: failed in" in done.stdout
    assert "::error file=ci.yaml,line=12," in done.stdout
    summary = files["summary.md"].read_text()
    assert "| `each` | ❌ failed |" in summary and "```mermaid" in summary
    shown = [line for line in (done.stdout + done.stderr).splitlines() if SECRET in line]
    assert shown == [f"::add-mask::{SECRET}"]
    for path in [*files.values(), tmp_path / outputs["results"]]:
        assert SECRET not in path.read_text()
