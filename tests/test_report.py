"""What a person sees: plain prefixed lines, the live display and the summary."""

from __future__ import annotations

import doctest
import io
import re
from collections import Counter
from pathlib import Path

from rich.console import Console

import drawer.paths
from drawer import events as ev
from drawer.report import LiveReporter, PlainReporter, print_summary
from tests.conftest import RunText, run_cli

LOOP = """
steps:
  - id: prep
    run: echo preparing
  - id: crawl
    kind: for_each
    over: [0, 1, 2, 3]
    parallelism: 2
    on_item_failure: continue
    steps:
      - id: fetch
        run: echo "page ${item}"; if [ ${item} = 2 ]; then echo "bad gateway" >&2; exit 1; fi
"""


def test_plain_lines_are_prefixed_with_step_paths(run_text: RunText) -> None:
    result = run_text(LOOP)
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    for event in result.log.events:
        reporter(event)
    text = stream.getvalue()
    assert "[prep] preparing" in text
    assert "[crawl[2].fetch] page 2" in text
    assert "[crawl[2].fetch] bad gateway" in text
    assert "crawl: 4 items, 2 at a time" in text
    assert "✗ crawl failed" in text
    assert "crawl[1].fetch" not in text.replace("[crawl[1].fetch] page 1", "")

    verbose = io.StringIO()
    reporter = PlainReporter(verbose, verbose=True)
    for event in result.log.events:
        reporter(event)
    assert "> crawl[3] started" in verbose.getvalue()
    assert "✓ crawl[3].fetch ok" in verbose.getvalue()

    quiet = io.StringIO()
    reporter = PlainReporter(quiet, quiet=True)
    for event in result.log.events:
        reporter(event)
    assert quiet.getvalue() == ""


def test_live_display_shows_loop_counts_and_running_steps(run_text: RunText) -> None:
    result = run_text(LOOP)
    console = Console(file=io.StringIO(), force_terminal=True, width=100, record=True)
    reporter = LiveReporter(console)
    events = result.log.events
    finished_at = next(i for i, e in enumerate(events) if isinstance(e, ev.IterationFinished))
    for event in events[: finished_at + 1]:
        reporter(event)
    console.print(reporter.render())
    screen = console.export_text()
    assert "crawl" in screen
    assert "1/4 done" in screen
    assert "running" in screen
    assert "✓ prep ok" in screen


def test_summary_names_the_failure_and_its_stderr_tail(run_text: RunText) -> None:
    result = run_text(LOOP)
    console = Console(file=io.StringIO(), width=120, record=True)
    print_summary(result.document, console)
    text = console.export_text()
    assert "crawl" in text and "failed" in text
    assert "3 / 1 / 4" in text
    assert "FOREACH_ITEM_FAILED" in text
    assert "crawl[2].fetch" in text
    assert "bad gateway" in text


def test_find_output_follows_every_kind_of_step_path() -> None:
    from drawer.report import find_output

    document = {
        "steps": {
            "lint": {
                "output": {
                    "results": [
                        {"steps": {"ruff": {"status": "failed", "output": {"stderr": "E1"}}}},
                    ]
                }
            },
            "tries": {
                "output": {
                    "results": [
                        {},
                        {},
                        {"steps": {"probe": {"status": "ok", "output": {"stderr": "E2"}}}},
                    ]
                }
            },
            "block": {
                "output": {
                    "b1": {"status": "failed", "output": {"stderr": "E3"}},
                    "g1": {"status": "failed", "output": {"x": {"stderr": "E4"}}},
                }
            },
            "route": {
                "output": {
                    "matched": "default",
                    "steps": {
                        "y": {"status": "failed", "output": {"stderr": "E5"}},
                    },
                }
            },
        }
    }
    assert find_output(document, "lint[0].ruff") == {"stderr": "E1"}
    assert find_output(document, "tries#2.probe") == {"stderr": "E2"}
    assert find_output(document, "block.b1") == {"stderr": "E3"}
    assert find_output(document, "block.g1.x") == {"stderr": "E4"}
    assert find_output(document, "route.default.y") == {"stderr": "E5"}
    assert find_output(document, "lint[5].ruff") is None
    assert find_output(document, "nothing.here") is None


def test_summary_counts_branches_and_iterations(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: block
            kind: parallel
            on_branch_failure: continue
            tolerate: 1
            branches:
              - {id: b1, run: "true"}
              - {id: b2, run: "false"}
          - id: tries
            kind: repeat
            max_iterations: 5
            until: index == 2
            steps: [{id: v, kind: value, value: x}]
        """
    )
    console = Console(file=io.StringIO(), width=120, record=True)
    print_summary(result.document, console)
    text = console.export_text()
    assert "1 / 1 / 2 branches" in text
    assert "3 / 0 / 3 iterations" in text


EVERY_KIND = """\
steps:
  - id: par
    kind: parallel
    branches:
      - id: alone
        run: echo alone
      - id: pair
        steps:
          - id: first
            run: echo first
  - id: each
    kind: for_each
    over: [a, b]
    steps:
      - id: inner
        kind: parallel
        branches:
          - id: solo
            run: echo ${item}
  - id: tries
    kind: repeat
    max_iterations: 2
    until: probe.output.stdout == 'p'
    steps:
      - id: probe
        run: echo p
"""


def test_verbose_prints_each_lifecycle_line_once(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(EVERY_KIND, encoding="utf-8")
    done = run_cli("d.yaml", "run", "--verbose", "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stamp = re.compile(r"^\d\d:\d\d:\d\d ")
    # Without their timings: "✓ par.alone ok (0.01s)" -> "✓ par.alone ok".
    lifecycle = [
        re.sub(r" \(\d+\.\d\ds\)$", "", line[9:])
        for line in done.stdout.splitlines()
        if stamp.match(line)
    ]
    repeated = [line for line, count in Counter(lifecycle).items() if count > 1]
    assert repeated == []
    for path in ("par.alone", "par.pair", "par.pair.first", "each[1]", "each[1].inner.solo"):
        assert f"> {path} started" in lifecycle
        assert f"✓ {path} ok" in lifecycle
    assert "> tries#0.probe started" in lifecycle


def test_without_verbose_the_steps_inside_iterations_are_not_listed(tmp_path: Path) -> None:
    """A repeat's tries are iterations as a for_each's items are: their steps' lines are for
    --verbose (the plain reporter knew `[` but not `#`, and listed every try's steps)."""
    (tmp_path / "d.yaml").write_text(EVERY_KIND, encoding="utf-8")
    done = run_cli("d.yaml", "run", "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    stamp = re.compile(r"^\d\d:\d\d:\d\d [>✓] (\S+)")
    listed = [m.group(1) for line in done.stdout.splitlines() if (m := stamp.match(line))]
    assert "tries" in listed and "each" in listed
    assert [path for path in listed if "[" in path or "#" in path] == []


def test_a_loop_of_one_is_counted_in_the_singular() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter(ev.LoopStarted("each", 1, 1))
    reporter(ev.LoopStarted("tries", 1, 1, "iterations at most"))
    reporter(ev.LoopStarted("block", 1, 1, "branches"))
    reporter(ev.LoopStarted("many", 3, 2))
    assert [line[9:] for line in stream.getvalue().splitlines()] == [
        "  each: 1 item, 1 at a time",
        "  tries: 1 iteration at most, 1 at a time",
        "  block: 1 branch, 1 at a time",
        "  many: 3 items, 2 at a time",
    ]


def test_paths_doctests() -> None:
    assert doctest.testmod(drawer.paths).failed == 0


def test_the_summary_shows_the_stderr_of_a_failing_step_inside_a_sub_drawer(
    tmp_path: Path,
) -> None:
    (tmp_path / "inner.yaml").write_text(
        "inputs:\n  item: {type: string}\n"
        "steps:\n"
        "  - id: noisy\n    on_failure: continue\n    run: echo 'not this one' >&2; exit 1\n"
        '  - id: boom\n    run: echo "no ${inputs.item} here" >&2; exit 3\n',
        encoding="utf-8",
    )
    (tmp_path / "mid.yaml").write_text(
        "inputs:\n  item: {type: string}\n"
        "steps:\n"
        "  - id: deep\n    kind: drawer\n    drawer: inner.yaml\n"
        "    inputs: {item: '${inputs.item}'}\n",
        encoding="utf-8",
    )
    (tmp_path / "d.yaml").write_text(
        "steps:\n"
        "  - id: lone\n    kind: drawer\n    drawer: inner.yaml\n    inputs: {item: top}\n"
        "    on_failure: continue\n"
        "  - id: each\n    kind: for_each\n    over: [a, b]\n    steps:\n"
        "      - id: call\n        kind: drawer\n        drawer: mid.yaml\n"
        "        inputs: {item: '${item}'}\n",
        encoding="utf-8",
    )
    shown = [
        "  stderr of each[0].call.deep.boom (last 1 lines):",
        "    no a here",
    ]
    for store in (["--no-store"], []):
        done = run_cli("d.yaml", "run", *store, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert done.stdout.splitlines()[-2:] == shown
    # Later, from the store.
    later = run_cli("d.yaml", "show", "last", cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines()[-2:] == shown
