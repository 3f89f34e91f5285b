"""`run --resume`: a killed or failed run finished without redoing what ended ok (SPEC 3.5)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from drawer.loader import load_text
from drawer.paths import definition_path
from drawer.resume import changed_steps, definitions
from drawer.store import DATABASE, MIGRATIONS, SCHEMA_VERSION, open_store
from tests.conftest import is_alive, run_cli, until, wait_for


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def calls(tmp_path: Path, name: str = "calls.txt") -> Counter[str]:
    """How often each item's command ran (each appends its item to the file)."""
    path = tmp_path / name
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return Counter(lines)


def document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# 1. kill -9 in the middle of a loop ------------------------------------------------------------

KILLED = """\
steps:
  - id: each
    kind: for_each
    over: {range: [0, 50]}
    parallelism: 4
    steps:
      - id: work
        run: echo $$ >> pids.txt; echo ${item} >> calls.txt; sleep 0.2
"""


def test_a_killed_loop_resumes_where_it_stopped(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", KILLED)
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    drawer = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "calls.txt"
    wait_for(lambda: log.exists() and len(log.read_text().split()) >= 25, "25 items", drawer, 60)
    drawer.send_signal(signal.SIGKILL)
    drawer.wait()
    # The commands running at the kill were orphaned, not killed: let them end.
    pids = [int(pid) for pid in (tmp_path / "pids.txt").read_text().split()]
    wait_for(lambda: not any(is_alive(pid) for pid in pids), "the orphaned commands to end")
    first = calls(tmp_path)
    assert 25 <= sum(first.values()) < 50

    result = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    total = first + calls(tmp_path)
    assert set(total) == {str(index) for index in range(50)}
    twice = [item for item, count in total.items() if count == 2]
    assert all(count <= 2 for count in total.values()) and len(twice) <= 4
    resumed = document(result)
    loop = resumed["steps"]["each"]
    assert resumed["status"] == "ok" and resumed["resumed_from"] is not None
    assert loop["output"]["succeeded"] == 50
    assert [entry["item"] for entry in loop["output"]["results"]] == list(range(50))
    assert all(entry["steps"]["work"]["status"] == "ok" for entry in loop["output"]["results"])
    history = json.loads(run_cli("d.yaml", "history", "--json", cwd=tmp_path).stdout)
    assert history[0]["resumed_from"] == history[1]["run_id"] == resumed["resumed_from"]
    assert history[1]["status"] == "interrupted"  # killed: it never recorded its end
    shown = run_cli("d.yaml", "show", history[1]["run_id"], "--json", cwd=tmp_path)
    assert document(shown)["status"] == "interrupted"
    assert document(shown)["steps"] == {}  # the loop never finished; its iterations did
    assert (tmp_path / ".drawer" / ".gitignore").read_text().endswith("*\n")


# 2. a failed loop: fix what it calls, or change the drawer ----------------------------------------

FAILING = """\
steps:
  - id: prep
    run: echo prep >> calls.txt
  - id: each
    kind: for_each
    over: {range: [0, 20]}
    parallelism: 4
    on_item_failure: continue
    steps:
      - id: work
        run: echo ${item} >> calls.txt; ./check.sh ${item}
  - id: report
    run: echo report >> calls.txt
"""


def broken_check(tmp_path: Path) -> None:
    write(tmp_path / "check.sh", '#!/bin/sh\ncase "$1" in 3|7|11) exit 1;; esac\n')
    (tmp_path / "check.sh").chmod(0o755)


def test_resume_runs_only_the_failed_items_after_their_script_is_fixed(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", FAILING)
    broken_check(tmp_path)
    failed = run_cli("d.yaml", "run", "--json", cwd=tmp_path)
    assert failed.returncode == 1
    assert document(failed)["steps"]["each"]["output"]["failed"] == 3
    assert sum(calls(tmp_path).values()) == 21  # prep and 20 items; report was skipped

    write(tmp_path / "check.sh", "#!/bin/sh\nexit 0\n")
    result = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == Counter({"3": 1, "7": 1, "11": 1, "report": 1})
    resumed = document(result)
    assert resumed["resumed_from"] == document(failed)["run_id"]
    assert resumed["steps"]["each"]["output"]["succeeded"] == 20
    assert resumed["steps"]["prep"]["status"] == "ok"
    assert "changed" not in result.stderr

    # The resumed run is complete on its own: resuming it again runs nothing.
    again = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
    assert again.returncode == 0 and calls(tmp_path) == Counter()
    assert "reused from" in again.stdout and "resuming run" in again.stdout


def test_a_changed_step_runs_again_and_is_named(tmp_path: Path) -> None:
    drawer = write(tmp_path / "d.yaml", FAILING)
    broken_check(tmp_path)
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 1
    calls(tmp_path)
    drawer.write_text(FAILING.replace("./check.sh ${item}", "./check.sh ${item} || true"))
    result = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ran = calls(tmp_path)
    assert ran == Counter({**{str(index): 1 for index in range(20)}, "report": 1})
    assert "drawer: each.work changed since run" in result.stderr
    assert "prep changed" not in result.stderr


def test_scheduling_fields_do_not_count_as_a_change(tmp_path: Path) -> None:
    drawer = write(tmp_path / "d.yaml", FAILING)
    broken_check(tmp_path)
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 1
    calls(tmp_path)
    assert (
        run_cli("d.yaml", "set", "each.parallelism=2", "work.timeout=5m", cwd=tmp_path).returncode
        == 0
    )
    assert "parallelism: 2" in drawer.read_text()
    write(tmp_path / "check.sh", "#!/bin/sh\nexit 0\n")
    result = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
    assert result.returncode == 0 and "changed" not in result.stderr
    assert calls(tmp_path) == Counter({"3": 1, "7": 1, "11": 1, "report": 1})


# 3. a file source, reordered and extended ---------------------------------------------------

FROM_FILE = """\
steps:
  - id: each
    kind: for_each
    over: {file: items.txt}
    parallelism: 3
    on_item_failure: continue
    steps:
      - id: work
        run: echo ${item} >> calls.txt; [ "${item}" != c ]
"""


def test_items_are_matched_by_hash_and_occurrence(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", FROM_FILE.replace('[ "${item}" != c ]', "[ ! -e fail-${item} ]"))
    (tmp_path / "items.txt").write_text("a\nb\nc\na\nb\n")
    (tmp_path / "fail-c").touch()
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 1
    assert calls(tmp_path) == Counter({"a": 2, "b": 2, "c": 1})

    (tmp_path / "fail-c").unlink()
    (tmp_path / "items.txt").write_text("b\na\nnew\nc\na\nb\nb\n")
    result = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # a#0, a#1, b#0 and b#1 ran ok before; the new line, c (failed) and b#2 run now.
    assert calls(tmp_path) == Counter({"new": 1, "c": 1, "b": 1})
    results = document(result)["steps"]["each"]["output"]["results"]
    assert [entry["item"] for entry in results] == ["b", "a", "new", "c", "a", "b", "b"]
    assert all(entry["status"] == "ok" for entry in results)


# what a step may take from the run it resumes ----------------------------------------------


def test_a_step_after_one_that_ran_again_runs_again(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        """\
        steps:
          - id: a
            on_failure: continue
            run: echo a >> calls.txt; [ -e ok ]
          - id: b
            depends_on: [a]
            run: echo b >> calls.txt
          - id: c
            depends_on: []
            run: echo c >> calls.txt
          - id: d
            depends_on: [c]
            # d fails only once b has run (a failure starts nothing new), within 10 s.
            run: |
              echo d >> calls.txt
              i=0; until grep -qx b calls.txt || [ $i -ge 200 ]; do i=$((i+1)); sleep 0.05; done
              [ -e ok ]
        """,
    )
    first = run_cli("d.yaml", "run", "--json", cwd=tmp_path)
    assert first.returncode == 1 and document(first)["steps"]["b"]["status"] == "ok"
    calls(tmp_path)
    (tmp_path / "ok").touch()
    assert run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path).returncode == 0
    # b was ok, but after a step that runs again: it runs again too. c stands, d reruns.
    assert calls(tmp_path) == Counter({"a": 1, "b": 1, "d": 1})


def test_a_masked_output_is_not_reused_and_secrets_are_given_again(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        """\
        inputs:
          token: {secret: true, required: true}
          name: {default: world}
        steps:
          - id: shows
            run: echo shows >> calls.txt; echo "${inputs.token}"
          - id: hides
            depends_on: []
            run: echo hides >> calls.txt; echo "hello ${inputs.name}"
          - id: last
            depends_on: [hides]
            run: echo last >> calls.txt; [ -e ok ]
        """,
    )
    secret = "s3cr3t-t0ken"
    first = run_cli("d.yaml", "run", "-i", f"token={secret}", "-i", "name=moon", cwd=tmp_path)
    assert first.returncode == 1
    calls(tmp_path)
    (tmp_path / "ok").touch()

    missing = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
    assert missing.returncode == 2 and "token" in missing.stderr
    other = run_cli("d.yaml", "run", "--resume", "last", "-i", "name=sun", cwd=tmp_path)
    assert other.returncode == 2 and "only secret inputs" in other.stderr
    edited = run_cli("d.yaml", "run", "--resume", "last", "--set", "last.run=true", cwd=tmp_path)
    assert edited.returncode == 2 and "--set cannot be used with --resume" in edited.stderr

    result = run_cli(
        "d.yaml", "run", "--resume", "last", "-i", f"token={secret}", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == Counter({"shows": 1, "last": 1})
    resumed = document(result)
    assert resumed["inputs"] == {"token": "***", "name": "moon"}
    assert resumed["steps"]["hides"]["output"]["stdout"] == "hello moon"
    for path in (tmp_path / ".drawer").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_resume_from_a_run_document_without_a_store(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", FAILING)
    broken_check(tmp_path)
    failed = run_cli("d.yaml", "run", "--no-store", "--output", "run.json", cwd=tmp_path)
    assert failed.returncode == 1 and not (tmp_path / ".drawer").exists()
    calls(tmp_path)
    write(tmp_path / "check.sh", "#!/bin/sh\nexit 0\n")
    result = run_cli("d.yaml", "run", "--no-store", "--resume", "run.json", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == Counter({"3": 1, "7": 1, "11": 1, "report": 1})
    assert (
        document(result)["resumed_from"]
        == json.loads((tmp_path / "run.json").read_text())["run_id"]
    )
    assert not (tmp_path / ".drawer").exists()

    # Into a store, the document becomes a run of its own that history lists.
    recorded = run_cli("d.yaml", "run", "--resume", "run.json", cwd=tmp_path)
    assert recorded.returncode == 0
    history = json.loads(run_cli("d.yaml", "history", "--json", cwd=tmp_path).stdout)
    assert [run["status"] for run in history] == ["ok", "failed"]


def test_bad_resume_arguments_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", "steps:\n  - id: a\n    run: 'true'\n")
    nothing = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
    assert nothing.returncode == 2 and "no runs of" in nothing.stderr
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 0
    unknown = run_cli("d.yaml", "run", "--resume", "20990101-000000-abcdef", cwd=tmp_path)
    assert unknown.returncode == 2 and "no run 20990101-000000-abcdef" in unknown.stderr
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = run_cli("d.yaml", "run", "--resume", "bad.json", cwd=tmp_path)
    assert bad.returncode == 2 and "not a drawer run document" in bad.stderr
    missing = run_cli("d.yaml", "run", "--resume", "missing.json", cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read a run document" in missing.stderr
    # A document edited by hand is refused naming its first odd field (issue 11 item 27).
    run = json.loads(run_cli("d.yaml", "run", "--json", cwd=tmp_path).stdout)
    run["steps"]["a"]["started_at"] = "yesterday"
    (tmp_path / "edited.json").write_text(json.dumps(run))
    edited = run_cli("d.yaml", "run", "--resume", "edited.json", cwd=tmp_path)
    assert edited.returncode == 2, edited.stderr
    assert 'steps.a.started_at is "yesterday", not an RFC 3339 time' in edited.stderr


# definitions ------------------------------------------------------------------------------------


def loaded(tmp_path: Path, text: str) -> Any:
    path = write(tmp_path / "d.yaml", text)
    return load_text(path.read_text(), path)


def test_definition_hashes_cover_bodies_and_ignore_scheduling(tmp_path: Path) -> None:
    base = """\
    steps:
      - id: each
        kind: for_each
        over: [1, 2]
        parallelism: 2
        steps:
          - id: work
            run: echo ${item}
      - id: block
        kind: parallel
        branches:
          - {id: one, run: echo one}
          - id: group
            steps:
              - {id: inner, run: echo inner}
    """
    before = definitions(loaded(tmp_path, base))
    assert {"each", "each.work", "block", "block.one", "block.group.inner"} <= set(before)
    same = definitions(
        loaded(tmp_path, base.replace("parallelism: 2", "parallelism: 9\n        timeout: 5m"))
    )
    assert same == before
    over = definitions(loaded(tmp_path, base.replace("over: [1, 2]", "over: [3]")))
    assert over == before  # items are matched one by one, not through the loop's definition
    inner = definitions(loaded(tmp_path, base.replace("echo inner", "echo other")))
    assert changed_steps(before, inner) == ["block.group.inner"]
    assert inner["block"] != before["block"] and inner["each"] == before["each"]
    env = definitions(loaded(tmp_path, "env: {A: b}\n" + textwrap.dedent(base)))
    assert changed_steps(before, env) == ["(the drawer's env or default shell)"]
    assert definition_path("each[3].work") == "each.work"
    assert definition_path("tries#2.probe") == "tries.probe"


def test_a_sub_drawer_change_is_a_change_of_the_calling_step(tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", "steps:\n  - id: c\n    run: echo one\n")
    text = "steps:\n  - id: call\n    kind: drawer\n    drawer: ./child.yaml\n"
    before = definitions(loaded(tmp_path, text))
    assert "call.c" in before
    write(tmp_path / "child.yaml", "steps:\n  - id: c\n    run: echo two\n")
    after = definitions(loaded(tmp_path, text))
    assert changed_steps(before, after) == ["call.c"]


# 6. schema migration ----------------------------------------------------------------------------


def test_a_store_from_schema_1_is_migrated_by_run_and_read_as_it_is_by_history(
    tmp_path: Path,
) -> None:
    write(tmp_path / "d.yaml", "steps:\n  - id: a\n    run: echo a >> calls.txt\n")
    store = tmp_path / ".drawer"
    store.mkdir()
    connection = sqlite3.connect(store / DATABASE, isolation_level=None)
    MIGRATIONS[0](connection)
    connection.execute("PRAGMA user_version = 1")
    drawer_path = str((tmp_path / "d.yaml").resolve())
    content = hashlib.sha256((tmp_path / "d.yaml").read_bytes()).hexdigest()
    connection.execute(
        "INSERT INTO runs (id, drawer_path, content_hash, name, inputs, edits, status,"
        " started_at, ended_at) VALUES ('old-run', ?, ?, 'd', '{}', '[]', 'failed', 1.0, 2.0)",
        (drawer_path, content),
    )
    connection.execute(
        "INSERT INTO steps (run_id, path, kind, attempt, status, output)"
        " VALUES ('old-run', 'a', 'run', 1, 'ok', '{\"stdout\": \"\"}')"
    )
    connection.close()

    history = run_cli("d.yaml", "history", "--json", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert [run["run_id"] for run in json.loads(history.stdout)] == ["old-run"]
    shown = run_cli("d.yaml", "show", "old-run", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    # The read verbs read it through a migrated copy in memory: they write nothing.
    reading = sqlite3.connect(store / DATABASE)
    assert reading.execute("PRAGMA user_version").fetchone() == (1,)
    reading.close()
    migrated = open_store(store)
    assert migrated is not None
    assert migrated.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert migrated.execute("SELECT count(*) FROM iterations").fetchone() == (0,)
    migrated.close()
    # A schema-1 run has no definitions; an unchanged file still lets it be resumed.
    result = run_cli("d.yaml", "run", "--resume", "old-run", cwd=tmp_path)
    assert result.returncode == 0 and calls(tmp_path) == Counter()
    (tmp_path / "d.yaml").write_text("steps:\n  - id: a\n    run: echo b >> calls.txt\n")
    result = run_cli("d.yaml", "run", "--resume", "old-run", cwd=tmp_path)
    assert "did not record its step definitions" in result.stderr
    assert calls(tmp_path) == Counter({"b": 1})


def test_a_corrupt_store_does_not_stop_a_run_elsewhere(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", "steps:\n  - id: a\n    run: 'true'\n")
    (tmp_path / ".drawer").mkdir()
    (tmp_path / ".drawer" / DATABASE).write_bytes(b"\0garbage" * 512)
    for verb in (["run"], ["history"], ["run", "--resume", "last"]):
        result = run_cli("d.yaml", *verb, cwd=tmp_path)
        assert result.returncode == 2 and "STORE_ERROR" in result.stderr, verb
    assert run_cli("d.yaml", "run", "--store", "elsewhere", cwd=tmp_path).returncode == 0
    assert run_cli("d.yaml", "run", "--no-store", cwd=tmp_path).returncode == 0


def test_a_secret_item_is_never_hashed_into_the_store(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        """\
        inputs:
          token: {secret: true}
        steps:
          - id: each
            kind: for_each
            over: ["${inputs.token}", plain]
            steps:
              - {id: v, kind: value, value: "${item}"}
        """,
    )
    secret = "another-s3cret"
    assert run_cli("d.yaml", "run", "-i", f"token={secret}", cwd=tmp_path).returncode == 0
    digest = hashlib.sha256(json.dumps(secret).encode()).hexdigest()
    database = (tmp_path / ".drawer" / DATABASE).read_bytes()
    assert secret.encode() not in database and digest.encode() not in database


def test_a_step_skipped_by_when_both_times_keeps_its_dependants(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        """\
        steps:
          - id: optional
            when: false
            run: echo optional >> calls.txt
          - id: after
            run: echo after >> calls.txt
          - id: last
            run: echo last >> calls.txt; [ -e ok ]
        """,
    )
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 1
    assert calls(tmp_path) == Counter({"after": 1, "last": 1})
    (tmp_path / "ok").touch()
    assert run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path).returncode == 0
    assert calls(tmp_path) == Counter({"last": 1})


def test_a_run_still_in_progress_is_not_resumed(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        f"""\
        steps:
          - id: wait
            run: 'touch started; {until("[ -e release ]")}'
        """,
    )
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    drawer = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for((tmp_path / "started").exists, "the command to start", drawer, 60)
        result = run_cli("d.yaml", "run", "--resume", "last", cwd=tmp_path)
        assert result.returncode == 2 and "is still running" in result.stderr
        history = json.loads(run_cli("d.yaml", "history", "--json", cwd=tmp_path).stdout)
        assert [run["status"] for run in history] == ["running"]
    finally:
        (tmp_path / "release").touch()
        assert drawer.wait(timeout=60) == 0


def test_reused_containers_keep_their_outputs_and_branch_records(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        """\
        steps:
          - id: block
            kind: parallel
            branches:
              - {id: one, run: echo one >> calls.txt; echo first}
              - id: group
                steps:
                  - {id: inner, run: echo inner >> calls.txt; echo second}
          - id: route
            kind: switch
            cases:
              - when: "true"
                steps:
                  - {id: chosen, run: echo chosen >> calls.txt; echo third}
          - id: use
            run: >-
              echo use >> calls.txt;
              echo "${one.output.stdout} ${block.output.group.output.inner.stdout}
              ${route.output.steps.chosen.output.stdout}"; [ -e ok ]
        """,
    )
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 1
    calls(tmp_path)
    (tmp_path / "ok").touch()
    result = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == Counter({"use": 1})
    assert document(result)["steps"]["use"]["output"]["stdout"] == "first second third"
