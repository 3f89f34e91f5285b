"""Run records: rows and logs per step path, history/show/logs, where the store lives,
two writers at once, secrets kept out of every byte."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from drawer.engine import RunOptions, execute_run
from drawer.inputs import resolve_inputs
from drawer.paths import parent
from drawer.resume import definitions
from drawer.store import (
    DATABASE,
    SCHEMA_VERSION,
    UNRECORDED,
    RunFacts,
    RunRecorder,
    item_identity,
    open_store,
)
from tests.conftest import load, run_cli

LOOP = """\
steps:
  - id: each
    kind: for_each
    over: [a, b, a]
    parallelism: 2
    steps:
      - id: s
        run: echo "line one $DRAWER_ITEM"; echo "line two" >&2
  - id: last
    run: echo done
"""


def write(tmp_path: Path, text: str, name: str = "d.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rows(database: Path, sql: str, *args: Any) -> list[Any]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def test_item_identity_is_canonical_json_hash_and_occurrence() -> None:
    expected = hashlib.sha256('{"a":2,"b":"é"}'.encode()).hexdigest()
    assert item_identity({"b": "é", "a": 2.0}, 1) == f"{expected}#1"
    assert item_identity(3.0, 0) == item_identity(3, 0) != item_identity(3.5, 0)


def test_parent_paths() -> None:
    assert parent("lint[3].ruff") == "lint[3]"
    assert parent("lint[3]") == "lint"
    assert parent("tries#2.probe") == "tries#2"
    assert parent("block.b1") == "block"
    assert parent("lint") is None


def test_a_loop_is_recorded_step_by_step_with_logs(tmp_path: Path) -> None:
    loaded = load(tmp_path, LOOP)
    store = tmp_path / "store"
    connection = open_store(store)
    assert connection is not None
    facts = RunFacts(loaded.path.resolve(), "hash", {}, [], [])
    recorder = RunRecorder(connection, store, facts)
    resolved = resolve_inputs(loaded.model.inputs, [], {})
    options = RunOptions(resolved.values, [], [recorder], workdir=tmp_path)

    async def main() -> dict[str, Any]:
        return await execute_run(loaded, options)

    document = trio.run(main)
    connection.close()
    assert recorder.failure is None
    database = store / DATABASE
    assert rows(database, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(database, "PRAGMA journal_mode") == [("wal",)]
    steps = {
        row[0]: row[1:]
        for row in rows(database, "SELECT path, parent_path, kind, status, exit_code FROM steps")
    }
    assert set(steps) == {"each", "each[0]", "each[1]", "each[2]", "each[0].s", "each[1].s",
                          "each[2].s", "last"}  # fmt: skip
    assert steps["each[2]"] == ("each", "iteration", "ok", None)
    assert steps["each[1].s"] == ("each[1]", "run", "ok", 0)
    keys = dict(rows(database, "SELECT path, item_key FROM iterations"))
    assert keys == {
        "each[0]": item_identity("a", 0),
        "each[1]": item_identity("b", 0),
        "each[2]": item_identity("a", 1),
    }
    assert rows(database, "SELECT item FROM steps WHERE path = 'each[1]'") == [('"b"',)]
    output = json.loads(rows(database, "SELECT output FROM steps WHERE path = 'each'")[0][0])
    assert output["total"] == 3 and "results" not in output
    log = rows(database, "SELECT log_path FROM steps WHERE path = 'each[1].s'")[0][0]
    assert (store / log).read_text() == "line one b\nline two\n"
    assert "%5B1%5D" in log
    run = rows(database, "SELECT id, status, document FROM runs")
    assert run[0][:2] == (document["run_id"], "ok")
    assert json.loads(run[0][2]) == document


def test_history_show_and_logs(tmp_path: Path) -> None:
    write(tmp_path, LOOP)
    first = run_cli("d.yaml", "run", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert run_cli("d.yaml", "run", "--quiet", cwd=tmp_path).returncode == 0

    listed = run_cli("d.yaml", "history", "--json", cwd=tmp_path)
    runs = json.loads(listed.stdout)
    assert len(runs) == 2 and runs[1]["run_id"] == document["run_id"]
    assert runs[0]["status"] == "ok" and runs[0]["resumed_from"] is None
    assert runs[0]["duration"] is not None
    one = run_cli("d.yaml", "history", "--limit", "1", cwd=tmp_path)
    assert one.stdout.count("\n") == 1 and runs[0]["run_id"] in one.stdout

    shown = run_cli("d.yaml", "show", document["run_id"], "--json", cwd=tmp_path)
    assert json.loads(shown.stdout) == document
    summary = run_cli("d.yaml", "show", "last", cwd=tmp_path)
    assert summary.returncode == 0 and runs[0]["run_id"] in summary.stdout
    assert "each" in summary.stdout and "3 / 0 / 3" in summary.stdout

    every = run_cli("d.yaml", "logs", document["run_id"], cwd=tmp_path).stdout.splitlines()
    assert "[each[2].s] line one a" in every and "[each[2].s] line two" in every
    assert every[-1] == "[last] done"
    step = run_cli("d.yaml", "logs", document["run_id"], "each[1].s", cwd=tmp_path)
    assert step.stdout == "line one b\nline two\n"

    unknown_run = run_cli("d.yaml", "show", "nope", cwd=tmp_path)
    assert unknown_run.returncode == 2 and "no run nope" in unknown_run.stderr
    unknown_step = run_cli("d.yaml", "logs", "last", "each[9].s", cwd=tmp_path)
    assert unknown_step.returncode == 2 and "no step 'each[9].s'" in unknown_step.stderr


def test_no_store_writes_nothing_and_drawer_home_moves_it(tmp_path: Path) -> None:
    write(tmp_path, "steps:\n  - id: a\n    run: echo hi\n")
    assert run_cli("d.yaml", "run", "--no-store", cwd=tmp_path).returncode == 0
    assert not (tmp_path / ".drawer").exists()
    empty = run_cli("d.yaml", "history", "--json", cwd=tmp_path)
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    nothing = run_cli("d.yaml", "run", "--resume", "last", "--no-store", cwd=tmp_path)
    assert nothing.returncode == 2 and "no runs" in nothing.stderr
    assert not (tmp_path / ".drawer").exists()  # reading never creates the store

    home = tmp_path / "home"
    env = {"DRAWER_HOME": str(home)}
    assert run_cli("d.yaml", "run", cwd=tmp_path, env=env).returncode == 0
    assert (home / DATABASE).is_file() and not (tmp_path / ".drawer").exists()
    assert len(json.loads(run_cli("d.yaml", "history", "--json", cwd=tmp_path, env=env).stdout))
    elsewhere = tmp_path / "elsewhere"
    assert run_cli("d.yaml", "run", "--store", str(elsewhere), cwd=tmp_path).returncode == 0
    assert (elsewhere / DATABASE).is_file()
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 0
    assert (tmp_path / ".drawer" / DATABASE).is_file()


def test_an_unusable_store_stops_run_with_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "steps:\n  - id: a\n    run: echo ran > ran.txt\n")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / DATABASE).write_bytes(b"this is not a database" * 100)
    result = run_cli("d.yaml", "run", "--store", str(corrupt), cwd=tmp_path)
    assert result.returncode == 2
    assert "STORE_ERROR" in result.stderr and str(corrupt / DATABASE) in result.stderr
    assert not (tmp_path / "ran.txt").exists()

    newer = tmp_path / "newer"
    newer.mkdir()
    connection = sqlite3.connect(newer / DATABASE)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    result = run_cli("d.yaml", "run", "--store", str(newer), cwd=tmp_path)
    assert result.returncode == 2 and "newer than this drawer knows" in result.stderr
    assert run_cli("d.yaml", "run", cwd=tmp_path).returncode == 0


def test_two_processes_record_into_one_store_at_once(tmp_path: Path) -> None:
    # Each run waits at a file barrier until the other has started, then both write rows.
    write(
        tmp_path,
        """\
        inputs:
          me: {type: string}
          other: {type: string}
        steps:
          - id: meet
            run: |
              touch "started-${inputs.me}"
              for _ in $(seq 1000); do [ -e "started-${inputs.other}" ] && exit 0; sleep 0.01; done
              exit 1
          - id: each
            kind: for_each
            over: {range: [0, 40]}
            parallelism: 4
            steps:
              - id: s
                run: echo ${item}
        """,
    )
    command = [sys.executable, "-m", "drawer", "d.yaml", "run", "--quiet"]
    processes = [
        subprocess.Popen(
            [*command, "-i", f"me={me}", "-i", f"other={other}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("x", "y"), ("y", "x"))
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "locked" not in stderr and "store" not in stderr
    runs = json.loads(run_cli("d.yaml", "history", "--json", cwd=tmp_path).stdout)
    assert [run["status"] for run in runs] == ["ok", "ok"]
    for run in runs:
        shown = run_cli("d.yaml", "show", run["run_id"], "--json", cwd=tmp_path)
        assert json.loads(shown.stdout)["steps"]["each"]["output"]["succeeded"] == 40
    database = tmp_path / ".drawer" / DATABASE
    counts = rows(database, "SELECT count(*) FROM steps GROUP BY run_id")
    assert counts == [(82,), (82,)]


@pytest.mark.parametrize("status", ["ok", "failed"])
def test_a_secret_never_reaches_the_store_or_show(tmp_path: Path, status: str) -> None:
    secret = "hunter2-sekrit"
    write(
        tmp_path,
        f"""\
        inputs:
          token: {{type: string, secret: true}}
        steps:
          - id: each
            kind: for_each
            over: ["${{inputs.token}}", plain]
            steps:
              - id: s
                run: echo "item $DRAWER_ITEM"; echo "token ${{inputs.token}}" >&2
          - id: v
            kind: value
            value: ${{inputs.token}}
          - id: fail
            when: {"true" if status == "failed" else "false"}
            run: echo "${{inputs.token}}" >&2; exit 3
        """,
    )
    env = {"DRAWER_INPUT_TOKEN": secret}
    result = run_cli("d.yaml", "run", cwd=tmp_path, env=env)
    assert result.returncode == (0 if status == "ok" else 1), result.stderr
    store = tmp_path / ".drawer"
    files = [path for path in store.rglob("*") if path.is_file()]
    assert any(path.suffix == ".log" for path in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    shown = run_cli("d.yaml", "show", "last", "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["inputs"] == {"token": "***"}
    summary = run_cli("d.yaml", "show", "last", cwd=tmp_path)
    logs = run_cli("d.yaml", "logs", "last", cwd=tmp_path)
    assert "token ***" in logs.stdout
    for output in (shown, summary, logs):
        assert secret not in output.stdout + output.stderr


def test_a_store_that_fails_mid_run_still_records_the_run_s_end(tmp_path: Path) -> None:
    """After a write fails, the run's row still gets its end and document: it is never
    left `running` (issue 11 item 16), and it is `unrecorded`, not ok (issue 12 item 7)."""
    store = tmp_path / "store"
    drop = f"import sqlite3; sqlite3.connect({str(store / DATABASE)!r}).execute('DROP TABLE steps')"
    loaded = load(
        tmp_path,
        f"""
        steps:
          - id: break-the-store
            run: [{json.dumps(sys.executable)}, -c, {json.dumps(drop)}]
          - id: after
            run: echo still running
        """,
    )
    connection = open_store(store)
    assert connection is not None
    recorder = RunRecorder(connection, store, RunFacts(loaded.path.resolve(), "h", {}, [], []))
    options = RunOptions({}, [], [recorder], workdir=tmp_path)

    async def main() -> dict[str, Any]:
        return await execute_run(loaded, options)

    document = trio.run(main)
    connection.close()
    assert document["status"] == "ok"
    assert recorder.failure is not None and "no such table: steps" in recorder.failure
    [(status, recorded)] = rows(store / DATABASE, "SELECT status, document FROM runs")
    assert status == UNRECORDED
    assert json.loads(recorded) == document


def test_a_drawer_in_a_directory_named_in_latin_1_is_recorded(tmp_path: Path) -> None:
    """A path that is not UTF-8 is stored with its odd bytes as `\\xe9` (issue 11 item 16)."""
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    write(folder, "steps:\n  - id: a\n    run: pwd\n")
    assert run_cli("d.yaml", "run", cwd=folder).returncode == 0
    history = run_cli("d.yaml", "history", "--json", cwd=folder)
    assert history.returncode == 0, history.stderr
    assert [run["status"] for run in json.loads(history.stdout)] == ["ok"]
    shown = run_cli("d.yaml", "show", "last", "--json", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "ok"
    [(path,)] = rows(folder / ".drawer" / DATABASE, "SELECT drawer_path FROM runs")
    assert path.endswith("caf\\xe9/d.yaml")


# the store at its edges (issue 12 item 7) ------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs of `size` mounted at `path` (as root); False where none can be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        mounted = subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def make_read_only(path: Path, mounted: bool) -> None:
    """Writes into `path` fail from now on: a read-only remount as root, else permissions."""
    if mounted:
        remount = ["mount", "-o", "remount,ro", str(path)]
        assert subprocess.run(remount, capture_output=True, timeout=30).returncode == 0
        return
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions and cannot mount a read-only tmpfs here")
    for item in [path, *path.rglob("*")]:
        item.chmod(item.stat().st_mode & ~0o222)


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def test_history_show_and_logs_read_a_store_on_a_read_only_medium(tmp_path: Path) -> None:
    """As from an artifact: only drawer.db, in a directory nothing can be written to; the
    read verbs read it without creating or migrating anything (issue 12 item 7)."""
    project = tmp_path / "project"
    with tmpfs(project, "16m") as mounted:
        try:
            write(project, "steps:\n  - id: a\n    run: echo out-$RANDOM; exit ${inputs.code}\n"
                  "inputs:\n  code: {type: integer, default: 0}\n")  # fmt: skip
            first = run_cli("d.yaml", "run", "--json", cwd=project)
            second = run_cli("d.yaml", "run", "--json", "-i", "code=1", cwd=project)
            assert (first.returncode, second.returncode) == (0, 1), first.stderr + second.stderr
            store = project / ".drawer"
            assert (store / DATABASE).is_file() and not list(store.glob(f"{DATABASE}-*"))
            make_read_only(project, mounted)
            before = snapshot(project)

            history = run_cli("d.yaml", "history", "--json", cwd=project)
            assert history.returncode == 0, history.stderr
            assert [run["status"] for run in json.loads(history.stdout)] == ["failed", "ok"]
            for result in (first, second):
                document = json.loads(result.stdout)
                shown = run_cli("d.yaml", "show", document["run_id"], "--json", cwd=project)
                assert shown.returncode == 0, shown.stderr
                assert json.loads(shown.stdout) == document
                logs = run_cli("d.yaml", "logs", document["run_id"], "a", cwd=project)
                assert logs.returncode == 0, logs.stderr
                assert logs.stdout == document["steps"]["a"]["output"]["stdout"] + "\n"
            summary = run_cli("d.yaml", "show", "last", cwd=project)
            assert summary.returncode == 0 and "failed" in summary.stdout, summary.stderr
            resumed = run_cli("d.yaml", "run", "--resume", "last", "--no-store", cwd=project)
            assert resumed.returncode == 1 and "Traceback" not in resumed.stderr, resumed.stderr

            refused = run_cli("d.yaml", "run", cwd=project)
            assert refused.returncode == 2 and "STORE_ERROR" in refused.stderr
            assert "read-only" in refused.stderr and str(store / DATABASE) in refused.stderr
            assert snapshot(project) == before
        finally:
            if not mounted:
                for item in [project, *project.rglob("*")]:
                    item.chmod(item.stat().st_mode | 0o200)


def test_a_read_only_store_left_by_a_killed_writer_is_read_with_its_wal(tmp_path: Path) -> None:
    """A store copied while a writer had it open holds `-wal` and `-shm`: read with them.
    Without the `-shm` and no way to make one, reading would miss the WAL: exit 2 saying so."""
    project = tmp_path / "project"
    with tmpfs(project, "16m") as mounted:
        if not mounted:
            pytest.skip("a read-only remount needs root")
        write(project, "steps:\n  - id: a\n    run: echo hi\n")
        assert run_cli("d.yaml", "run", cwd=project).returncode == 0
        database = project / ".drawer" / DATABASE
        killed = (
            "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
            " c.execute(\"INSERT INTO runs SELECT 'from-the-wal', drawer_path, content_hash,"
            " name, inputs, edits, 'failed', started_at + 1, ended_at + 1, error, NULL,"
            ' document, definitions, NULL, NULL FROM runs"); os._exit(0)'
        )
        subprocess.run([sys.executable, "-c", killed, str(database)], check=True, timeout=60)
        assert Path(f"{database}-wal").stat().st_size > 0
        remount = ["mount", "-o", "remount,ro", str(project)]
        assert subprocess.run(remount, capture_output=True, timeout=30).returncode == 0
        history = run_cli("d.yaml", "history", "--json", cwd=project)
        assert history.returncode == 0, history.stderr
        ids = [run["run_id"] for run in json.loads(history.stdout)]
        assert len(ids) == 2 and ids[0] == "from-the-wal"

        remount[2] = "remount,rw"
        assert subprocess.run(remount, capture_output=True, timeout=30).returncode == 0
        Path(f"{database}-shm").unlink()
        remount[2] = "remount,ro"
        assert subprocess.run(remount, capture_output=True, timeout=30).returncode == 0
        refused = run_cli("d.yaml", "history", cwd=project)
        assert refused.returncode == 2 and "STORE_ERROR" in refused.stderr, refused.stderr
        assert "write-ahead log" in refused.stderr and "copy the store" in refused.stderr


DAMAGE_LOOP = """\
steps:
  - id: each
    kind: for_each
    over: {range: [0, 300]}
    steps:
      - id: v
        kind: value
        value: ${item}
  - id: mark
    run: echo ran >> ran.txt
"""


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_damaged_data_page_is_refused_by_run_and_reported_by_the_readers(
    tmp_path: Path, where: str
) -> None:
    """A page in the body of a real store overwritten: `run` checks the store at open and
    refuses it (exit 2, nothing runs); the read verbs and --resume never show a traceback
    (issue 12 item 7)."""
    write(tmp_path, DAMAGE_LOOP)
    for _ in range(3):
        assert run_cli("d.yaml", "run", "--quiet", cwd=tmp_path).returncode == 0
    database = tmp_path / ".drawer" / DATABASE
    [(pages,)] = rows(database, "PRAGMA page_count")
    assert rows(database, "PRAGMA freelist_count") == [(0,)] and pages > 50
    page = {"first": 2, "middle": pages // 2, "last": pages}[where]
    with database.open("r+b") as handle:
        handle.seek((page - 1) * 4096)
        handle.write(b"\xff" * 4096)
    try:
        problems = rows(database, "PRAGMA quick_check")
    except sqlite3.DatabaseError as error:
        problems = [(str(error),)]
    assert problems != [("ok",)]

    refused = run_cli("d.yaml", "run", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert f"STORE_ERROR: the run store {database} is damaged" in refused.stderr
    assert "aside" in refused.stderr and "--no-store" in refused.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran\n" * 3
    readers = (["history"], ["show", "last"], ["show", "last", "--json"], ["logs", "last"])
    resumes = (["run", "--resume", "last"], ["run", "--resume", "last", "--no-store"])
    for verb in (*readers, *resumes):
        result = run_cli("d.yaml", *verb, cwd=tmp_path)
        assert "Traceback" not in result.stderr, (verb, result.stderr)
        assert result.returncode in (0, 2), (verb, result.stderr)
        if result.returncode == 2:
            assert "STORE_ERROR" in result.stderr and str(database) in result.stderr, verb
        if verb[0] == "run":
            assert result.returncode == 2, verb
    assert (tmp_path / "ran.txt").read_text() == "ran\n" * 3
    assert run_cli("d.yaml", "run", "--no-store", cwd=tmp_path).returncode == 0


FULL_DISK = """\
steps:
  - id: fill
    run: {fill}
  - id: each
    kind: for_each
    over: {{range: [0, 400]}}
    steps:
      - id: v
        kind: value
        value: ${{item}}
  - id: last
    run: echo done >> done.txt
"""


@pytest.mark.parametrize("full", ["tmpfs", "max_page_count"])
def test_a_run_whose_store_filled_up_is_unrecorded_and_not_resumed(
    tmp_path: Path, full: str
) -> None:
    """The store's disk fills up mid-run: a real tmpfs (as root), or SQLite's page limit.
    The run goes on, its row says `unrecorded` (not `interrupted`), `history` and `show`
    say so, and `--resume` refuses it; its run document resumes it (issue 12 item 7)."""
    disk = tmp_path / "disk"
    store = disk / "store"
    document_file = tmp_path / "run.json"
    with tmpfs(disk, "512k") as mounted:
        if full == "tmpfs":
            if not mounted:
                pytest.skip("mounting a tmpfs needs root")
            fill = f"head -c 10000000 /dev/zero > {disk / 'ballast'} || true"
            write(tmp_path, FULL_DISK.format(fill=json.dumps(fill)))
            ran = run_cli("d.yaml", "run", "--store", str(store), "--output", str(document_file),
                          cwd=tmp_path)  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            assert "stopped recording" in ran.stderr and "No space left" in ran.stderr
        else:
            loaded = load(tmp_path, FULL_DISK.format(fill="'true'"), name="d.yaml")
            connection = open_store(store)
            [(pages,)] = connection.execute("PRAGMA page_count").fetchall()
            connection.execute(f"PRAGMA max_page_count = {pages + 2}")
            steps = definitions(loaded)
            facts = RunFacts(loaded.path.resolve(), "h", {}, [], [], definitions=steps)
            recorder = RunRecorder(connection, store, facts)
            options = RunOptions(
                {}, [], [recorder], workdir=tmp_path, commit=recorder.commit, definitions=steps
            )

            async def main() -> dict[str, Any]:
                return await execute_run(loaded, options)

            document = trio.run(main)
            connection.close()
            assert document["status"] == "ok"
            assert recorder.failure is not None and "full" in recorder.failure
            document_file.write_text(json.dumps(document))
        assert (tmp_path / "done.txt").read_text() == "done\n"

        history = run_cli("d.yaml", "history", "--json", "--store", str(store), cwd=tmp_path)
        assert history.returncode == 0, history.stderr
        [run] = json.loads(history.stdout)
        assert run["status"] == UNRECORDED
        shown = run_cli("d.yaml", "show", "last", "--store", str(store), cwd=tmp_path)
        assert shown.returncode == 0 and f"is {UNRECORDED}" in shown.stderr, shown.stderr
        refused = run_cli("d.yaml", "run", "--resume", "last", "--store", str(store),
                          cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2 and f"is {UNRECORDED}" in refused.stderr, refused.stderr
        assert "cannot be trusted" in refused.stderr and "Traceback" not in refused.stderr

        (disk / "ballast").unlink(missing_ok=True)
        resumed = run_cli("d.yaml", "run", "--resume", str(document_file), "--store",
                          str(store), "--json", cwd=tmp_path)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert (tmp_path / "done.txt").read_text() == "done\n"  # reused from the document
        assert json.loads(resumed.stdout)["steps"]["each"]["output"]["succeeded"] == 400
        assert rows(store / DATABASE, "PRAGMA integrity_check") == [("ok",)]
