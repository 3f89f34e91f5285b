"""Sharding (SPEC 6): plan, run --shard I/N, merge, and resuming a shard from its document."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drawer.loader import InvalidDrawer
from drawer.shard import ShardError, deferred_steps, parse_shard, shard_of, sharded_loop
from tests.conftest import load, run_cli

LOOP = """\
name: squares
steps:
  - id: prep
    run: echo prepared
  - id: each
    kind: for_each
    over: {range: [0, 40]}
    parallelism: 4
    on_item_failure: continue
    steps:
      - id: sq
        kind: value
        value: ${item * item}
      - id: say
        run: echo "item ${item}"; [ ! -e fail-${item} ]
  - id: report
    run: echo "${each.output.succeeded} squares"
outputs:
  succeeded: ${each.output.succeeded}
  squares: ${each.output.results.map(r, r.steps.sq.output)}
"""


def write(tmp_path: Path, text: str = LOOP, name: str = "d.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_doc(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "out.json"
    out.unlink(missing_ok=True)
    result = run_cli("d.yaml", "run", "--no-store", "-q", "--output", str(out), *args, cwd=tmp_path)
    assert out.exists(), result.stderr
    return result.returncode, json.loads(out.read_text())


def shard_parts(tmp_path: Path, count: int) -> list[Path]:
    parts = []
    for index in range(1, count + 1):
        part = tmp_path / f"part-{index}-of-{count}.json"
        result = run_cli(
            "d.yaml", "run", "--shard", f"{index}/{count}", "--no-store", "-q",
            "--output", str(part), cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        parts.append(part)
    return parts


def merged(tmp_path: Path, parts: list[Path]) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "merged.json"
    result = run_cli("merge", *map(str, parts), "--output", str(out), cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def comparable(results: list[dict[str, Any]]) -> list[Any]:
    return [
        (entry["index"], entry["item"], entry["status"],
         {step: record["output"] for step, record in entry["steps"].items()})
        for entry in results
    ]  # fmt: skip


@pytest.mark.parametrize("count", [1, 3, 7])
def test_merged_shards_equal_an_unsharded_run(tmp_path: Path, count: int) -> None:
    write(tmp_path)
    code, whole = run_doc(tmp_path)
    assert code == 0
    parts = shard_parts(tmp_path, count)
    documents = [json.loads(part.read_text()) for part in parts]
    indices = [
        {entry["index"] for entry in doc["steps"]["each"]["output"]["results"]} for doc in documents
    ]
    assert sum(map(len, indices)) == 40 and set().union(*indices) == set(range(40))
    for doc in documents:
        assert doc["shard"]["count"] == count and doc["shard"]["total"] == 40
        assert doc["steps"]["report"]["status"] == "skipped"
        assert doc["steps"]["report"]["error"]["code"] == "SHARD_DEFERRED"
        assert doc["steps"]["prep"]["status"] == "ok"

    code, merge = merged(tmp_path, parts)
    assert code == 0 and merge["status"] == "ok"
    loop, unsharded = merge["steps"]["each"], whole["steps"]["each"]
    assert comparable(loop["output"]["results"]) == comparable(unsharded["output"]["results"])
    counts = ("total", "succeeded", "failed", "cancelled", "skipped")
    assert {key: loop["output"][key] for key in counts} == {
        key: unsharded["output"][key] for key in counts
    }
    assert merge["outputs"] == whole["outputs"]
    assert merge["merged_from"] == [doc["run_id"] for doc in documents]


def test_a_failed_shard_fails_the_merge_until_it_is_resumed(tmp_path: Path) -> None:
    write(tmp_path)
    failing = [item for item in range(40) if shard_of(item, 3) == 2][:2]
    for item in failing:
        (tmp_path / f"fail-{item}").touch()
    parts = shard_parts(tmp_path, 3)
    code, merge = merged(tmp_path, parts)
    assert code == 1 and merge["status"] == "failed"
    error = merge["steps"]["each"]["error"]
    assert error["code"] == "FOREACH_ITEM_FAILED"
    assert error["message"].startswith("2 of 40 iterations failed")
    assert error["cause"]["step_path"] == f"each[{failing[0]}].say"
    failed = [
        e["index"] for e in merge["steps"]["each"]["output"]["results"] if e["status"] == "failed"
    ]
    assert failed == failing

    for item in failing:
        (tmp_path / f"fail-{item}").unlink()
    resumed = run_cli(
        "d.yaml", "run", "--resume", str(parts[1]), "--no-store", "-q", "--output", str(parts[1]),
        cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads(parts[1].read_text())
    assert again["shard"]["index"] == 2 and again["resumed_from"] is not None
    code, merge = merged(tmp_path, parts)
    assert code == 0 and merge["status"] == "ok"
    assert merge["steps"]["each"]["output"]["succeeded"] == 40


def test_a_collect_none_shard_keeps_each_items_entry_and_resumes_from_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        steps:
          - id: each
            kind: for_each
            over: {range: [0, 30]}
            collect: none
            on_item_failure: continue
            steps:
              - id: w
                run: echo ${item} >> calls.txt; [ ! -e fail-${item} ]
        """,
    )
    item = next(item for item in range(30) if shard_of(item, 2) == 1)
    (tmp_path / f"fail-{item}").touch()
    part = tmp_path / "part.json"
    first = run_cli(
        "d.yaml", "run", "--shard", "1/2", "--no-store", "--output", str(part), cwd=tmp_path
    )
    assert first.returncode == 1
    entries = json.loads(part.read_text())["steps"]["each"]["output"]["results"]
    mine = [entry for entry in range(30) if shard_of(entry, 2) == 1]
    assert [entry["index"] for entry in entries] == mine
    assert set(entries[0]) == {"index", "item", "status", "error"}
    (tmp_path / "calls.txt").unlink()
    (tmp_path / f"fail-{item}").unlink()
    again = run_cli("d.yaml", "run", "--resume", str(part), "--no-store", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "calls.txt").read_text().split() == [str(item)]


def test_plan_prints_a_matrix(tmp_path: Path) -> None:
    write(tmp_path)
    matrix = run_cli("d.yaml", "plan", "--shards", "3", cwd=tmp_path)
    assert matrix.returncode == 0
    assert matrix.stdout == '{"shard":["1/3","2/3","3/3"]}\n'
    described = run_cli("d.yaml", "plan", "--shards", "2", "--format", "json", cwd=tmp_path)
    assert json.loads(described.stdout) == {
        "loop": "each", "shards": 2, "deferred": ["report"], "shard": ["1/2", "2/2"],
    }  # fmt: skip
    assert run_cli("d.yaml", "plan", "--shards", "0", cwd=tmp_path).returncode == 2


def test_shard_usage_errors_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "steps:\n  - id: a\n    run: 'true'\n")
    none = run_cli("d.yaml", "run", "--shard", "1/2", cwd=tmp_path)
    assert none.returncode == 2 and "no top-level for_each to shard" in none.stderr
    write(tmp_path)
    for bad in ("0/2", "3/2", "x", "1/0"):
        result = run_cli("d.yaml", "run", "--shard", bad, cwd=tmp_path)
        assert result.returncode == 2, bad
    parts = shard_parts(tmp_path, 3)
    missing = run_cli("merge", str(parts[0]), str(parts[2]), cwd=tmp_path)
    assert missing.returncode == 2 and "SHARD_MISSING: missing shard(s) 2/3" in missing.stderr
    twice = run_cli("merge", str(parts[0]), str(parts[0]), str(parts[1]), cwd=tmp_path)
    assert twice.returncode == 2 and "shard 1/3 is given twice" in twice.stderr
    _, whole = run_doc(tmp_path)
    (tmp_path / "whole.json").write_text(json.dumps(whole))
    unsharded = run_cli("merge", "whole.json", cwd=tmp_path)
    assert unsharded.returncode == 2 and "not the run document of a shard" in unsharded.stderr


def test_merge_refuses_what_is_not_a_shard_s_run_document(tmp_path: Path) -> None:
    """A JSON file that is no run document, or one edited by hand, is refused by its name
    and its first odd field, exit 2; never `[Errno 21] Is a directory: '.'` or a traceback
    (issue 11 item 27)."""
    write(tmp_path)
    parts = shard_parts(tmp_path, 2)
    for name, text in (("empty.json", "{}"), ("list.json", "[1]"), ("other.json", '{"a": 1}')):
        (tmp_path / name).write_text(text)
        result = run_cli("merge", name, str(parts[1]), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr
            == f"drawer: {name} is not the run document of a shard (run --shard I/N)\n"
        )
    good = json.loads(parts[1].read_text())
    assert good["steps"]["each"]["output"]["results"], "shard 2 of 2 has items"
    edits: list[tuple[str, Any, str]] = [
        ("ended_at", "yesterday", 'ended_at is "yesterday", not an RFC 3339 time'),
        ("drawer", None, "drawer is null, not a string"),
        ("shard", {"index": 2, "count": [2], "loop": "each"}, "shard.count is [2]"),
        ("steps", {"each": 1}, "steps.each is a JSON number, not a step record"),
    ]
    for key, value, message in edits:
        edited = dict(good, **{key: value})
        (tmp_path / "edited.json").write_text(json.dumps(edited))
        result = run_cli("merge", str(parts[0]), "edited.json", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "edited.json is not a shard's run document as drawer wrote it" in result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    entry = good["steps"]["each"]["output"]["results"][0]
    entry["index"] = "x"
    (tmp_path / "edited.json").write_text(json.dumps(good))
    result = run_cli("merge", str(parts[0]), "edited.json", cwd=tmp_path)
    assert result.returncode == 2
    assert 'steps.each.output.results[0].index is "x", not a whole number' in result.stderr


def test_which_loop_is_sharded_and_what_waits_for_the_merge(tmp_path: Path) -> None:
    two = load(
        tmp_path,
        """\
        steps:
          - id: a
            kind: for_each
            over: [1]
            steps: [{id: x, run: 'true'}]
          - id: b
            kind: for_each
            over: [1]
            shard: true
            steps: [{id: y, run: 'true'}]
          - id: c
            depends_on: [b]
            run: 'true'
          - id: d
            depends_on: [a]
            run: 'true'
          - id: e
            depends_on: [c]
            run: 'true'
        """,
    )
    assert sharded_loop(two.model).id == "b"
    assert deferred_steps(two.model, "b") == {"c", "e"}
    unmarked = load(tmp_path, "steps:\n" + "".join(
        f"  - {{id: l{n}, kind: for_each, over: [1], steps: [{{id: x{n}, run: 'true'}}]}}\n"
        for n in range(2)
    ))  # fmt: skip
    with pytest.raises(ShardError, match="mark the one to shard"):
        sharded_loop(unmarked.model)
    assert parse_shard(" 2 / 5 ") == (2, 5)
    nested = (
        "steps:\n  - id: block\n    kind: parallel\n    branches:\n      - {id: inner,"
        " kind: for_each, shard: true, over: [1], steps: [{id: z, run: 'true'}]}\n"
    )
    with pytest.raises(InvalidDrawer, match="shard: true but is not a top-level step"):
        load(tmp_path, nested)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(JSON, max_size=30), count=st.integers(min_value=1, max_value=8))
def test_shards_partition_the_items_whatever_their_order(items: list[Any], count: int) -> None:
    shards = [shard_of(item, count) for item in items]
    assert all(1 <= shard <= count for shard in shards)
    # Each item lands in exactly one shard, the same one in any order of the list.
    assert [shard_of(item, count) for item in reversed(items)] == list(reversed(shards))
    chosen = [[i for i, shard in enumerate(shards) if shard == n] for n in range(1, count + 1)]
    assert sorted(i for part in chosen for i in part) == list(range(len(items)))


# (item, its canonical JSON written out by hand, its shard among 2, 3, 7 and 10): computed once
# from the documented formula; a drawer that puts any of these elsewhere splits a matrix job
# differently from the version that planned it.
PINNED_SHARDS: list[tuple[Any, str, list[int]]] = [
    (0, "0", [1, 1, 4, 1]),
    (1, "1", [2, 2, 3, 4]),
    (1.0, "1", [2, 2, 3, 4]),
    ("a", '"a"', [2, 3, 4, 10]),
    ("é", '"é"', [1, 1, 6, 3]),
    ({"b": 1, "a": 2.0}, '{"a":2,"b":1}', [2, 3, 1, 8]),
    ([1, 2], "[1,2]", [2, 3, 4, 2]),
    ({"k": [1.5, "x"]}, '{"k":[1.5,"x"]}', [2, 3, 5, 2]),
    (None, "null", [2, 2, 5, 4]),
    (True, "true", [1, 2, 1, 1]),
]


def documented_shard(canonical: str, count: int) -> int:
    """README, "Beyond one machine": the first 16 hex digits of the SHA-256 of the item's
    canonical JSON, as a number, mod N, plus 1."""
    return int(hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16], 16) % count + 1


@pytest.mark.parametrize(("item", "canonical", "shards"), PINNED_SHARDS)
def test_the_partition_is_fixed_across_machines(
    item: Any, canonical: str, shards: list[int]
) -> None:
    # These values may never change between versions: shards planned by one drawer are run
    # by another on each machine.
    assert [shard_of(item, count) for count in (2, 3, 7, 10)] == shards
    assert [documented_shard(canonical, count) for count in (2, 3, 7, 10)] == shards


def test_a_shard_runs_the_items_the_documented_formula_gives_it(tmp_path: Path) -> None:
    write(tmp_path)
    code, document = run_doc(tmp_path, "--shard", "2/3")
    assert code == 0
    entries = document["steps"]["each"]["output"]["results"]
    assert [entry["item"] for entry in entries] == [
        item for item in range(40) if documented_shard(str(item), 3) == 2
    ]


def test_merge_writes_the_job_summary_in_github_mode(tmp_path: Path) -> None:
    write(tmp_path)
    parts = shard_parts(tmp_path, 2)
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    result = run_cli("merge", *map(str, parts), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"]["each"]["output"]["succeeded"] == 40
    text = summary.read_text()
    assert "### drawer: squares ok" in text and "| `each` | ✅ ok |" in text
    assert "```mermaid" in text


# the example workflow -------------------------------------------------------------------------

EXAMPLE_WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "github" / "sharded.yml"


def test_the_example_workflow_plans_runs_a_matrix_and_merges() -> None:
    from tests.test_packaging import check_jsonschema, load_yaml, zizmor_findings

    result = check_jsonschema("vendor.github-workflows", EXAMPLE_WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert zizmor_findings(str(EXAMPLE_WORKFLOW)) == []
    workflow = load_yaml(EXAMPLE_WORKFLOW)
    jobs = workflow["jobs"]
    assert list(jobs) == ["plan", "shard", "merge"]
    assert jobs["shard"]["strategy"]["fail-fast"] is False
    assert jobs["shard"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    uploads = [step for step in jobs["shard"]["steps"] if "upload-artifact" in step.get("uses", "")]
    assert uploads[0]["with"]["name"] == "${{ steps.name.outputs.part }}"
    downloads = [step for step in jobs["merge"]["steps"] if "download" in step.get("uses", "")]
    assert downloads[0]["with"]["pattern"] == "part-*"
    scripts = [step["run"] for job in jobs.values() for step in job["steps"] if "run" in step]
    assert any("plan --shards" in script for script in scripts)
    assert any("--shard " in script for script in scripts)
    assert any("drawer merge" in script for script in scripts)
    assert not any("${{" in script for script in scripts)


def test_the_example_workflow_steps_work_on_the_example(tmp_path: Path) -> None:
    """The workflow's three commands, run here on examples/checksums.yaml."""
    import shutil

    shutil.copy(EXAMPLE_WORKFLOW.parents[1] / "checksums.yaml", tmp_path / "checksums.yaml")
    matrix = json.loads(run_cli("checksums.yaml", "plan", "--shards", "2", cwd=tmp_path).stdout)
    (tmp_path / "parts").mkdir()
    for shard in matrix["shard"]:
        part = "parts/part-" + shard.replace("/", "-of-") + ".json"
        ran = run_cli(
            "checksums.yaml", "run", "--shard", shard, "--no-store", "--output", part, cwd=tmp_path
        )
        assert ran.returncode == 0, ran.stderr
    parts = sorted(
        str(path.relative_to(tmp_path)) for path in (tmp_path / "parts").glob("part-*.json")
    )
    merge = run_cli("merge", *parts, "--output", "merged.json", cwd=tmp_path)
    assert merge.returncode == 0, merge.stderr
    merged_doc = json.loads((tmp_path / "merged.json").read_text())
    whole = run_cli("checksums.yaml", "run", "--no-store", "--json", cwd=tmp_path)
    assert merged_doc["outputs"] == json.loads(whole.stdout)["outputs"]
    assert merged_doc["outputs"]["hashed"] == 600
