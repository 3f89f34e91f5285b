"""for_each: concurrency, order, failure policies, tolerance, sources, retries."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio.testing

from drawer import events as ev
from tests.conftest import FinishedFiles, RunText, until


def test_four_items_overlap_and_results_keep_input_order(run_text: RunText, tmp_path: Path) -> None:
    # Every item waits (bounded) until all four have arrived, so they can only finish if
    # they really run at the same time; then each item ends only once drawer has recorded
    # the end of the next one (FinishedFiles), so they end in reverse order whatever the load.
    result = run_text(
        f"""
        steps:
          - id: each
            kind: for_each
            over: [a, b, c, d]
            parallelism: 4
            steps:
              - id: work
                run: |
                  touch "arrived-${{index}}"
                  {until('[ "$(ls arrived-* | wc -l)" -ge 4 ]')}
                  next=${{index + 1}}
                  if [ "$next" -lt 4 ]; then {until('[ -e "finished-$next" ]')}; fi
                  echo "${{item}}"
        """,
        listeners=[FinishedFiles(tmp_path, "each")],
    )
    assert result.document["status"] == "ok"
    commands = [
        e for e in result.log.events if isinstance(e, ev.CommandStarted | ev.CommandFinished)
    ]
    assert [type(e) for e in commands[:4]] == [ev.CommandStarted] * 4
    results = result.steps["each"]["output"]["results"]
    assert [r["item"] for r in results] == ["a", "b", "c", "d"]
    assert [r["steps"]["work"]["output"]["stdout"] for r in results] == ["a", "b", "c", "d"]
    assert [e.index for e in result.log.of(ev.IterationFinished)] == [3, 2, 1, 0]


# Items 0 to 3 start; 3 fails once 0 and 1 run (tolerated: its slot goes to 4), and 2 fails
# once 4 has started, which is one failure too many: 0, 1 and 4 are cancelled.
LOOP_WITH_FAILURES = f"""
steps:
  - id: each
    kind: for_each
    over: [0, 1, 2, 3, 4, 5, 6, 7]
    parallelism: 4
    on_item_failure: %s
    tolerate: %s
    steps:
      - id: work
        run: |
          case ${{item}} in
            0|1|4) touch started-${{item}}; sleep 60 ;;
            3) {until("[ -e started-0 ] && [ -e started-1 ]")}; exit 3 ;;
            2) {until("[ -e started-4 ]")}; exit 2 ;;
            *) sleep 60 ;;
          esac
"""


def test_stop_cancels_in_flight_and_names_lowest_own_failure(
    run_text: RunText, tmp_path: Path
) -> None:
    text = LOOP_WITH_FAILURES % ("stop", 1)
    result = run_text(text)
    loop = result.steps["each"]
    assert loop["status"] == "failed"
    error = loop["error"]
    assert error["code"] == "FOREACH_ITEM_FAILED"
    # item 2 failed after item 3 but has the lower index; item 0 was only cancelled
    assert error["cause"]["step_path"] == "each[2].work"
    assert error["cause"]["code"] == "STEP_FAILED"
    statuses = [r["status"] for r in loop["output"]["results"]]
    # item 3's failure was tolerated, so its slot went to item 4; item 2's failure stopped it
    assert statuses == [
        "cancelled",
        "cancelled",
        "failed",
        "failed",
        "cancelled",
        "skipped",
        "skipped",
        "skipped",
    ]
    started = {e.index for e in result.log.of(ev.IterationStarted)}
    assert started == {0, 1, 2, 3, 4}
    assert loop["output"]["failed"] == 2
    assert loop["output"]["cancelled"] == 3
    assert loop["output"]["skipped"] == 3
    assert result.document["status"] == "failed"


def test_finish_lets_running_end_and_starts_no_more(run_text: RunText, tmp_path: Path) -> None:
    # Item 0 ends only once drawer has recorded item 1's failure (FinishedFiles), and drawer
    # applies the policy before it looks at another process: no slot frees up before that.
    result = run_text(
        f"""
        steps:
          - id: each
            kind: for_each
            over: [0, 1, 2, 3, 4, 5]
            parallelism: 2
            on_item_failure: finish
            steps:
              - id: work
                run: |
                  case ${{item}} in
                    0) touch started-0; {until("[ -e finished-1 ]")} ;;
                    1) {until("[ -e started-0 ]")}; exit 1 ;;
                  esac
        """,
        listeners=[FinishedFiles(tmp_path, "each")],
    )
    loop = result.steps["each"]
    statuses = [r["status"] for r in loop["output"]["results"]]
    assert statuses == ["ok", "failed", "skipped", "skipped", "skipped", "skipped"]
    assert loop["error"]["code"] == "FOREACH_ITEM_FAILED"
    assert {e.index for e in result.log.of(ev.IterationStarted)} == {0, 1}


def _continue_loop(run_text: RunText, tolerate: str) -> dict[str, object]:
    result = run_text(
        f"""
        steps:
          - id: each
            kind: for_each
            over: [0, 1, 2, 3, 4]
            parallelism: 2
            on_item_failure: continue
            tolerate: {tolerate}
            steps:
              - id: work
                run: test ${{item}} != 1 && test ${{item}} != 3
        """
    )
    loop: dict[str, object] = result.steps["each"]
    return loop


def test_continue_runs_every_item_and_tolerate_decides(run_text: RunText) -> None:
    strict = _continue_loop(run_text, "0")
    assert strict["status"] == "failed"
    output = strict["output"]
    assert isinstance(output, dict)
    assert [r["status"] for r in output["results"]] == ["ok", "failed", "ok", "failed", "ok"]
    assert (output["succeeded"], output["failed"]) == (3, 2)
    assert _continue_loop(run_text, "2")["status"] == "ok"
    assert _continue_loop(run_text, "1")["status"] == "failed"
    assert _continue_loop(run_text, '"100%"')["status"] == "ok"
    assert _continue_loop(run_text, '"40%"')["status"] == "ok"  # floor(5 * 40 / 100) = 2
    assert _continue_loop(run_text, '"39%"')["status"] == "failed"


def test_failed_step_with_on_failure_continue_lets_the_run_end_ok(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: [1, 2]
            on_failure: continue
            steps:
              - id: work
                run: exit ${item}
          - id: after
            run: echo ${each.status}
        """
    )
    assert result.steps["each"]["status"] == "failed"
    assert result.steps["after"]["output"]["stdout"] == "failed"
    assert result.document["status"] == "ok"


def test_nested_loops_respect_max_processes_without_deadlock(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          max_processes: 2
        steps:
          - id: outer
            kind: for_each
            over: [a, b, c, d]
            as: os
            parallelism: 4
            steps:
              - id: inner
                kind: for_each
                over: [1, 2, 3, 4]
                as: version
                index_as: vi
                parallelism: 4
                steps:
                  - id: build
                    run: echo ${os}-${version} "$DRAWER_VAR_OS"
        """
    )
    assert result.document["status"] == "ok"
    assert len(result.log.of(ev.CommandStarted)) == 16
    assert result.log.max_concurrent_commands() == 2
    first = result.steps["outer"]["output"]["results"][0]
    build = first["steps"]["inner"]["output"]["results"][1]["steps"]["build"]
    assert build["output"]["stdout"] == "a-2 a"


def test_empty_list_is_ok(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: []
            steps:
              - {id: v, kind: value, value: x}
        """
    )
    assert result.steps["each"]["status"] == "ok"
    assert result.steps["each"]["output"]["total"] == 0


def test_over_a_non_list_fails_with_foreach_not_a_list(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: data
            kind: value
            value: {a: 1}
          - id: each
            kind: for_each
            over: ${data.output}
            steps:
              - {id: v, kind: value, value: x}
        """
    )
    error = result.steps["each"]["error"]
    assert error["code"] == "FOREACH_NOT_A_LIST"
    assert "dict" in error["message"]


def test_sources_glob_file_and_range(run_text: RunText, tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    for name in ("src/b.py", "src/pkg/a.py", "src/pkg/.hidden.py", "src/c.txt"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "items.txt").write_text("one\n\ntwo\r\nthree\n")
    (tmp_path / "items.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    result = run_text(
        """
        steps:
          - id: g
            kind: for_each
            over: {glob: "src/**/*.py"}
            steps: [{id: vg, kind: value, value: "${item}"}]
          - id: f
            kind: for_each
            over: {file: items.txt}
            collect: all
            steps: [{id: vf, kind: value, value: "${item}"}]
          - id: j
            kind: for_each
            over: {file: items.jsonl, format: jsonl}
            steps: [{id: vj, kind: value, value: "${item.n}"}]
          - id: r
            kind: for_each
            over: {range: [2, 11, 3]}
            parallelism: all
            steps: [{id: vr, kind: value, value: "${index}:${item}"}]
        """
    )

    def values(step: str) -> list[object]:
        return [r["steps"]["v" + step]["output"] for r in result.steps[step]["output"]["results"]]

    assert values("g") == ["src/b.py", "src/pkg/a.py"]
    assert values("f") == ["one", "two", "three"]
    assert values("j") == [1, 2]
    assert values("r") == ["0:2", "1:5", "2:8"]


def test_a_file_is_split_into_lines_as_it_is_counted_and_as_output_lines_are(
    run_text: RunText, tmp_path: Path
) -> None:
    # One rule (drawer.textlines) counts a file's items, reads them and splits a command's
    # output.lines: split on \n only, a trailing \r dropped, a line of nothing but whitespace
    # (NBSP and \x1c too) skipped, UTF-8 with replacement, a leading BOM dropped. A lone \r
    # once made 3 items read from 2 counted (IndexError, exit 3); a blank NBSP line made 4
    # counted from 2 read (total 4, 2 accounted for).
    (tmp_path / "odd.txt").write_bytes(b"\xef\xbb\xbfa\rb\nc\r\n\xc2\xa0\n\x1c\n \t\nd\xff\n")
    (tmp_path / "odd.jsonl").write_bytes(b'\xef\xbb\xbf{"n": 1}\r\n\xc2\xa0\n\x1c\n{"n":\r 2}\n')
    result = run_text(
        """
        steps:
          - id: f
            kind: for_each
            over: {file: odd.txt, format: lines}
            steps: [{id: vf, kind: value, value: "${item}"}]
          - id: j
            kind: for_each
            over: {file: odd.jsonl, format: jsonl}
            steps: [{id: vj, kind: value, value: "${item.n}"}]
          - id: out
            run: [cat, odd.txt]
        """
    )
    assert result.document["status"] == "ok"
    for step, items in (("f", ["a\rb", "c", "d\ufffd"]), ("j", [1, 2])):
        output = result.steps[step]["output"]
        assert output["total"] == output["succeeded"] == len(items)
        values = [r["steps"]["v" + step]["output"] for r in output["results"]]
        assert values == items
    assert result.steps["out"]["output"]["lines"] == ["a\rb", "c", "d\ufffd"]


def test_a_file_that_changes_while_its_loop_reads_it_neither_crashes_nor_loses_items(
    run_text: RunText, tmp_path: Path
) -> None:
    # A file is read lazily after it was counted. Lines appended since are no items (they
    # once overflowed the count: IndexError, exit 3); a file cut short or a jsonl line no
    # longer JSON fails the loop, every item it could not read skipped saying why (they were
    # once left out: total 5000, a few hundred accounted for, status ok).
    (tmp_path / "grow.txt").write_text("a\nb\nc\n")
    many = "".join(f'{{"n": {n}}}\n' for n in range(5000))  # beyond one read buffer
    (tmp_path / "cut.txt").write_text(many)
    (tmp_path / "bad.jsonl").write_text(many)
    result = run_text(
        """
        steps:
          - id: grow
            kind: for_each
            over: {file: grow.txt}
            steps: [{id: g, run: "echo more >> grow.txt"}]
          - id: cut
            kind: for_each
            over: {file: cut.txt}
            collect: none
            on_failure: continue
            steps: [{id: c, run: ": > cut.txt"}]
          - id: bad
            kind: for_each
            over: {file: bad.jsonl, format: jsonl}
            steps: [{id: b, run: "seq 5000 | sed s/^/oops/ > bad.jsonl"}]
        """
    )
    grow = result.steps["grow"]
    assert grow["status"] == "ok"
    assert [r["item"] for r in grow["output"]["results"]] == ["a", "b", "c"]
    cut = result.steps["cut"]
    assert cut["status"] == "failed"
    assert cut["error"]["code"] == "FOREACH_NOT_A_LIST"
    assert "cut.txt ends after " in cut["error"]["message"]
    assert "of the 5000 items it held when the loop started" in cut["error"]["message"]
    counts = cut["output"]
    assert counts["total"] == 5000 == counts["succeeded"] + counts["skipped"]
    assert counts["skipped"] > 0
    bad = result.steps["bad"]
    assert bad["error"]["code"] == "FOREACH_NOT_A_LIST"
    assert "is no longer a JSON value" in bad["error"]["message"]
    results = bad["output"]["results"]
    assert len(results) == 5000
    assert {r["status"] for r in results} == {"ok", "skipped"}
    assert results[-1]["error"]["message"].startswith("bad[4999] never started: bad.jsonl:")


def test_collect_none_keeps_counts_only(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: {range: [10]}
            collect: none
            parallelism: 3
            steps: [{id: v, kind: value, value: "${item}"}]
        """
    )
    output = result.steps["each"]["output"]
    assert output == {"total": 10, "succeeded": 10, "failed": 0, "cancelled": 0, "skipped": 0}


def test_parallelism_from_a_reference_and_delay_spaces_starts(run_text: RunText) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    result = run_text(
        """
        inputs:
          width: {type: integer, default: 3}
        steps:
          - id: each
            kind: for_each
            over: [a, b, c, d]
            parallelism: ${inputs.width}
            delay: 200ms
            steps: [{id: v, kind: value, value: "${item}"}]
        """,
        clock=clock,
    )
    started = result.log.of(ev.LoopStarted)[0]
    assert started.parallelism == 3
    starts = [e.clock for e in result.log.of(ev.IterationStarted)]
    gaps = [round(later - earlier, 6) for earlier, later in itertools.pairwise(starts)]
    assert gaps == [0.2, 0.2, 0.2]


def test_retry_reruns_only_failed_iterations(run_text: RunText, tmp_path: Path) -> None:
    result = run_text(
        """
        steps:
          - id: each
            kind: for_each
            over: [0, 1, 2]
            on_item_failure: continue
            retry: {attempts: 2}
            steps:
              - id: work
                run: |
                  echo ${item} >> runs.txt
                  if [ ${item} = 1 ] && [ ! -e again ]; then touch again; exit 1; fi
        """
    )
    loop = result.steps["each"]
    assert loop["status"] == "ok"
    assert loop["attempts"] == 2
    assert sorted((tmp_path / "runs.txt").read_text().split()) == ["0", "1", "1", "2"]


def test_missing_or_malformed_file_sources_fail_before_any_item(
    run_text: RunText, tmp_path: Path
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"n": 1}\n{oops\n')
    result = run_text(
        """
        steps:
          - id: missing
            kind: for_each
            over: {file: nowhere.txt}
            on_failure: continue
            steps: [{id: a, kind: value, value: "${item}"}]
          - id: broken
            kind: for_each
            over: {file: bad.jsonl, format: jsonl}
            steps: [{id: b, run: "touch ran-${index}"}]
        """
    )
    missing = result.steps["missing"]["error"]
    assert missing["code"] == "FOREACH_NOT_A_LIST"
    assert "no file 'nowhere.txt'" in missing["message"]
    broken = result.steps["broken"]["error"]
    assert broken["code"] == "FOREACH_NOT_A_LIST"
    assert "bad.jsonl:2" in broken["message"]
    assert not list(tmp_path.glob("ran-*"))


def test_serial_execution_runs_iterations_one_at_a_time(run_text: RunText) -> None:
    result = run_text(
        """
        execution:
          parallel: false
        steps:
          - id: each
            kind: for_each
            over: [1, 2, 3]
            parallelism: all
            steps: [{id: t, run: "true"}]
        """
    )
    assert result.log.of(ev.LoopStarted)[0].parallelism == 1
    assert result.log.max_concurrent_commands() == 1
