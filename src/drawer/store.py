"""Run records in SQLite and command logs beside them: a listener while running, queries after.

One row per run and one per step execution, keyed by its step path (`lint[3].ruff`). Rows
are buffered and written in short transactions: a loop slot waits for `commit()` before it
takes its next item, and iterations that end in the same scheduler round share one commit.
So a `kill -9` loses nothing that had finished, 100,000 iterations cost a few thousand
commits instead of 200,000, and no write lock is held while commands run (two drawer
processes can record into one store at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote

import trio

from drawer import events as ev
from drawer.context import Masker
from drawer.paths import parent
from drawer.records import (
    document_problem,
    from_rfc3339,
    json_text,
    recorded,
    rfc3339,
)
from drawer.refs import plain

SCHEMA_VERSION = 2
DEFAULT_DIR = ".drawer"
DATABASE = "drawer.db"
BUSY_TIMEOUT_MS = 10_000
FLUSH_ROWS = 2_000
"""Rows buffered before they are written without waiting for a loop slot."""
THREAD_BELOW = 64
"""Transactions of fewer rows are written from a worker thread (see RunRecorder.commit)."""
RESERVE = "reserve"
"""A file of RESERVE_BYTES that `run` keeps in the store: when a write fails (a full disk),
deleting it leaves room to mark the run `unrecorded`; the next run makes it again."""
RESERVE_BYTES = 64 * 1024
UNRECORDED = "unrecorded"
"""The status of a run whose recording stopped before it ended (a full disk): its rows miss
steps that may have finished, so it is shown as such and never resumed from."""


class StoreError(Exception):
    """The store cannot be opened or read (STORE_ERROR); the message names its path."""


class StoreDamaged(StoreError):
    """SQLite finds the store malformed; `directory` is None where the reader does not know
    it (the command line does)."""

    def __init__(self, problem: str, directory: Path | None = None) -> None:
        where, aside = (f" {directory / DATABASE}", str(directory)) if directory else ("", "it")
        super().__init__(
            f"the run store{where} is damaged ({problem}): move {aside} aside and drawer"
            " starts a new store there"
        )
        self.problem = problem
        self.directory = directory


def store_directory(option: Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """`--store DIR`, else `$DRAWER_HOME`, else `.drawer/` under the current directory."""
    if option is not None:
        return option
    home = environ.get("DRAWER_HOME")
    return Path(home) if home else cwd / DEFAULT_DIR


_SCALARS = (str, int, bool, type(None))


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, integral floats as integers: equal data, equal bytes."""
    if type(value) in _SCALARS:
        return json_text(value).encode("utf-8")
    return json_text(_integral(value), sort_keys=True).encode("utf-8")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(item) for item in value]
    return value


def item_hash(item: Any) -> str:
    return hashlib.sha256(canonical_json(item)).hexdigest()


def item_identity(item: Any, occurrence: int) -> str:
    """An iteration's identity across runs: its item's hash and its rank among equal items."""
    return f"{item_hash(item)}#{occurrence}"


def log_name(path: str) -> str:
    """A step path as a file name: everything but letters, digits, `_.-~` percent-escaped."""
    return f"{quote(path, safe='')}.log"


# schema ---------------------------------------------------------------------------------------


def _create_v1(connection: sqlite3.Connection) -> None:
    connection.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            drawer_path TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            name TEXT NOT NULL,
            inputs TEXT NOT NULL,
            edits TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            ended_at REAL,
            error TEXT,
            resumed_from TEXT,
            document TEXT
        )"""
    )
    connection.execute("CREATE INDEX runs_by_drawer ON runs (drawer_path, started_at)")
    connection.execute(
        """CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (id),
            path TEXT NOT NULL,
            parent_path TEXT,
            kind TEXT NOT NULL,
            item_index INTEGER,
            item_hash TEXT,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            started_at REAL,
            ended_at REAL,
            exit_code INTEGER,
            output TEXT,
            error TEXT,
            log_path TEXT,
            PRIMARY KEY (run_id, path)
        ) WITHOUT ROWID"""
    )
    # No secondary index: each one costs as much as the table on a 100,000-item loop, and
    # a loop's iterations are a range of the primary key (`lint[` up to `lint\`).


def _v2_items_and_definitions(connection: sqlite3.Connection) -> None:
    """Version 2 keeps each iteration's item (canonical JSON), each run's step definitions
    (hashes by definition path, which `--resume` compares) and the recording process."""
    connection.execute("ALTER TABLE steps ADD COLUMN item TEXT")
    connection.execute("ALTER TABLE runs ADD COLUMN definitions TEXT")
    # Who records a run: a `running` run whose process is gone was killed (`interrupted`).
    connection.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    connection.execute("ALTER TABLE runs ADD COLUMN host TEXT")
    # The item key of SPEC 3.5, for people querying the store: the item's hash and its
    # occurrence among equal items, counted when read (counting on insert would cost a
    # ranking pass per loop or a counter per distinct item).
    connection.execute(
        """CREATE VIEW iterations AS
        SELECT run_id, path, parent_path AS loop_path, item_index, item,
            item_hash || '#' || (row_number() OVER (
                PARTITION BY run_id, parent_path, item_hash ORDER BY item_index) - 1) AS item_key,
            attempt, status, started_at, ended_at, error
        FROM steps WHERE kind = 'iteration' AND item_hash IS NOT NULL"""
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _create_v1,
    _v2_items_and_definitions,
)
"""MIGRATIONS[n] takes a store from schema version n to n + 1."""


def migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction (two processes may race here)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"schema version {version} is newer than this drawer knows ({SCHEMA_VERSION})"
            )
        for step in MIGRATIONS[version:]:
            step(connection)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # else the error would be "no transaction is active"
            connection.execute("ROLLBACK")
        raise


def open_store(directory: Path) -> sqlite3.Connection:
    """The store's connection for a run to record into (WAL, busy timeout, integrity checked,
    schema migrated), created when missing. Raises StoreError naming the database's path."""
    database = directory / DATABASE
    try:
        if not directory.exists():
            directory.mkdir(parents=True)
            # As pytest and ruff do with their caches: the records stay out of git.
            (directory / ".gitignore").write_text("# created by drawer: run records\n*\n")
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open the run store {database}: {error}") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        problem = _first_problem(connection)
        if problem is not None:
            raise StoreDamaged(problem, directory)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        migrate(connection)
        _keep_reserve(directory / RESERVE)
    except StoreDamaged:
        connection.close()
        raise
    except (sqlite3.Error, StoreError) as error:
        connection.close()
        why = str(error)
        if isinstance(error, sqlite3.Error) and not os.access(directory, os.W_OK):
            why += ": its directory is read-only (history, show and logs read it; a run writes)"
        raise StoreError(f"cannot use the run store {database}: {why}") from None
    return connection


def _keep_reserve(path: Path) -> None:
    try:
        if path.stat().st_size >= RESERVE_BYTES:
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        with path.open("wb") as handle:
            handle.write(bytes(RESERVE_BYTES))
    except OSError:  # no room for it now: the next run tries again
        with contextlib.suppress(OSError):
            path.unlink()


def check_store(connection: sqlite3.Connection, directory: Path) -> None:
    """Raise StoreDamaged at the first problem SQLite's `quick_check` finds."""
    problem = _read(lambda: _first_problem(connection))
    if problem is not None:
        raise StoreDamaged(problem, directory)


def _first_problem(connection: sqlite3.Connection) -> str | None:
    """`quick_check` reads every page once (O(size): 0.3 ms for a store of a few runs, 53 ms
    for one of 100,000 iterations, 50 MB) and checks each b-tree page's structure (not that
    indexes match their tables, which costs more and drawer's one index does not need)."""
    try:
        problems = connection.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as error:
        if not _is_damage(error):
            raise
        return str(error)
    return None if problems == [("ok",)] else str(problems[0][0])


def _is_damage(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def read_store(directory: Path) -> sqlite3.Connection | None:
    """The store's connection for `history`, `show` and `logs`: read-only, it never creates,
    migrates or writes anything, so a store on a read-only medium (an artifact, another
    user's) can be read; None when there is no store. A store of an older schema is read
    through a migrated copy in memory (the next `run` migrates it in place)."""
    database = directory / DATABASE
    if not database.is_file():
        return None
    try:
        connection = _connect_read_only(database)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            connection.close()
            raise StoreError(
                f"the run store {database} has schema version {version}, newer than this"
                f" drawer knows ({SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            connection.backup(memory)
            connection.close()
            migrate(memory)
            connection = memory
    except sqlite3.Error as error:
        if _is_damage(error):
            raise StoreDamaged(str(error), directory) from None
        raise StoreError(f"cannot read the run store {database}: {error}") from None
    return connection


def _connect_read_only(database: Path) -> sqlite3.Connection:
    """`mode=ro`, which needs the WAL index (`-shm`) to exist or to be creatable; else, on a
    read-only medium with no WAL left behind, `immutable=1` (no locks: no writer can be
    there, for a writer would have made the index). sqlite.org/wal.html, "Read-Only
    Databases"."""
    uri = database.absolute().as_uri()
    connection = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        connection.execute("PRAGMA user_version").fetchone()  # the first read opens the WAL
    except sqlite3.OperationalError as error:
        connection.close()
        if getattr(error, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_CANTOPEN:
            raise
        wal = Path(f"{database}-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreError(
                f"cannot read the run store {database}: its write-ahead log {wal.name} has no"
                f" index ({database.name}-shm) and none can be made here (a read-only"
                " directory): copy the store somewhere writable and read it there"
            ) from None
        return sqlite3.connect(
            f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
    return connection


# recording ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What the command line knows about a run before it starts."""

    drawer_path: Path
    content_hash: str
    inputs: dict[str, Any]
    """Secret values already replaced by `***`."""
    edits: list[str]
    """As given: the recorder masks them (a `--set` edit may hold a secret)."""
    secrets: list[str]
    resumed_from: str | None = None
    definitions: dict[str, str] = field(default_factory=dict)


_UPSERT_STEP = """
INSERT INTO steps (run_id, path, parent_path, kind, attempt, status, started_at, ended_at,
                   exit_code, output, error, log_path)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, path) DO UPDATE SET
    parent_path = excluded.parent_path, kind = excluded.kind, attempt = excluded.attempt,
    status = excluded.status, started_at = excluded.started_at, ended_at = excluded.ended_at,
    exit_code = excluded.exit_code, output = excluded.output, error = excluded.error,
    log_path = coalesce(excluded.log_path, steps.log_path)
"""

# A single-step branch of a `parallel` shares its path with its step: the step's row wins.
# A loop's retry runs an iteration again: its attempt counts up.
_UPSERT_ITERATION = """
INSERT INTO steps (run_id, path, parent_path, kind, item_index, item_hash, item,
                   attempt, status, started_at, ended_at, error)
VALUES (?, ?, ?, 'iteration', ?, ?, ?, 1, ?, ?, ?, ?)
ON CONFLICT (run_id, path) DO UPDATE SET
    attempt = steps.attempt + 1, status = excluded.status,
    started_at = excluded.started_at, ended_at = excluded.ended_at, error = excluded.error
WHERE steps.kind = 'iteration'
"""

# A reused step's row and the rows below it, copied from the run that recorded them, under
# the path it has in this run (logs stay where that run wrote them).
_COPY_SUBTREE = """
INSERT OR REPLACE INTO steps (run_id, path, parent_path, kind, item_index, item_hash,
    item, attempt, status, started_at, ended_at, exit_code, output, error, log_path)
SELECT :run, :new || substr(path, :length + 1),
    CASE WHEN path = :old THEN :parent ELSE :new || substr(parent_path, :length + 1) END,
    kind, item_index, item_hash, item, attempt, status, started_at, ended_at,
    exit_code, output, error, log_path
FROM steps
WHERE run_id = :from_run AND path >= :old AND path < :old || '\\'
    AND (path = :old OR substr(path, 1, :length + 1) IN (:old || '.', :old || '[', :old || '#'))
"""

Operation = tuple[str, Any]


class RunRecorder:
    """The store as a listener: a row per run, step and iteration, and a log per command.

    Rows wait in `pending` until `commit()` (a loop slot about to take its next item), the
    buffer filling up, or the run's end. A failure to write (disk full, say) stops the
    recording, never the run: `failure` says why.
    """

    def __init__(self, connection: sqlite3.Connection, directory: Path, facts: RunFacts) -> None:
        self.connection = connection
        self.directory = directory
        self.facts = facts
        self.masker = Masker(facts.secrets)
        self.run_id = ""
        self.failure: str | None = None
        self.started: dict[str, float] = {}
        self.exit_codes: dict[str, int | None] = {}
        self.logs: dict[str, IO[str]] = {}
        self.log_paths: dict[str, str] = {}
        self.pending: list[Operation] = []
        self.flushing = False
        self.flushed = trio.Event()
        self.appended = 0
        self.durable = 0
        self.writing = threading.Lock()
        """Held while a transaction is written (from the event loop or a worker thread)."""
        self.handlers: dict[type, Callable[[Any], None]] = {
            ev.OutputLine: self.output_line,
            ev.StepFinished: self.step_finished,
            ev.IterationStarted: self.iteration_started,
            ev.IterationFinished: self.iteration_finished,
            ev.CommandFinished: self.command_finished,
            ev.RunStarted: self.run_started,
            ev.RunFinished: lambda event: self.run_finished(event.document),
        }

    def __call__(self, event: ev.Event) -> None:
        if self.failure is not None and not isinstance(event, ev.RunFinished):
            return
        try:
            self.record(event)
        except (sqlite3.Error, OSError, TypeError, ValueError) as error:
            self.stop(error)
            return
        if len(self.pending) >= FLUSH_ROWS:
            self.flush()

    def stop(self, error: Exception) -> None:
        self.pending.clear()
        self.close_logs()
        self.flushed.set()
        if self.failure is None:  # the first failure is the one to report
            self.failure = f"the run store {self.directory / DATABASE} stopped recording: {error}"
            with contextlib.suppress(OSError):
                (self.directory / RESERVE).unlink()
            self.mark_unrecorded()

    def mark_unrecorded(self) -> None:
        """Mark the run `unrecorded` as soon as a write fails (a full disk, say): the store
        lacks rows of steps that may have finished, so it is not resumed from. The update
        shrinks the row (its pid and host only serve a `running` row), so SQLite rewrites it
        in place and needs no new page, and its WAL frame takes the room of the RESERVE file,
        just deleted; when even that fails, the run reads `interrupted`."""
        with contextlib.suppress(sqlite3.Error), self.writing:
            self.connection.execute(
                "UPDATE runs SET status = ?, pid = NULL, host = NULL WHERE id = ?",
                (UNRECORDED, self.run_id),
            )

    def add(self, sql: str, params: Any) -> None:
        self.pending.append((sql, params))
        self.appended += 1

    async def commit(self) -> None:
        """Wait until every row recorded so far is committed.

        The first caller yields once, so that the iterations ending in this scheduler round
        add their rows to its transaction; callers arriving meanwhile wait for it. A small
        transaction (commands ending one by one) is written from a worker thread (sqlite3
        lets go of the GIL), so commands keep starting while it commits; a large one
        (instant iterations, every slot waiting on it) is written here, where the hand-off
        would only add its cost (a 1,000-command fan-out: +14 % wall time with every commit
        in the event loop; a 30,000-item value loop: +17 % with every commit in a thread).
        """
        target = self.appended
        while self.durable < target and self.failure is None:
            if self.flushing:
                await self.flushed.wait()
                continue
            self.flushing = True
            try:
                await trio.lowlevel.cancel_shielded_checkpoint()
                if len(self.pending) >= THREAD_BELOW:
                    self.flush()
                else:
                    operations, self.pending = self.pending, []
                    upto = self.appended
                    with trio.CancelScope(shield=True):
                        error = await trio.to_thread.run_sync(self.write, operations)
                    if error is not None:
                        self.stop(error)
                    self.durable = max(self.durable, upto)
            finally:
                self.flushing = False
                flushed, self.flushed = self.flushed, trio.Event()
                flushed.set()

    def flush(self) -> None:
        """Write the buffered rows now, in this thread."""
        if not self.pending or self.failure is not None:
            return
        operations, self.pending = self.pending, []
        upto = self.appended
        error = self.write(operations)
        if error is not None:
            self.stop(error)
        self.durable = max(self.durable, upto)

    def write(self, operations: list[Operation]) -> sqlite3.Error | ValueError | None:
        """One transaction, rows of a kind together (executemany); returns the error, if any.
        (Rows of different paths are independent, and a parallel's single-step branch gets
        its step's row whichever comes first.)"""
        batches: dict[str, list[Any]] = {}
        for sql, params in operations:
            batches.setdefault(sql, []).append(params)
        connection = self.connection
        with self.writing:
            return self._write(connection, batches)

    @staticmethod
    def _write(
        connection: sqlite3.Connection, batches: dict[str, list[Any]]
    ) -> sqlite3.Error | ValueError | None:
        try:
            connection.execute("BEGIN")
            for sql, rows in batches.items():
                connection.executemany(sql, rows)
            connection.execute("COMMIT")
        except (sqlite3.Error, ValueError) as error:  # ValueError: text SQLite cannot take
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return error
        return None

    def record(self, event: ev.Event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def output_line(self, event: ev.OutputLine) -> None:
        if event.path:
            self.log(event.path).write(event.text + "\n")

    def iteration_started(self, event: ev.IterationStarted) -> None:
        self.started[event.path] = time.time()

    def iteration_finished(self, event: ev.IterationFinished) -> None:
        started = self.started.pop(event.path, None)
        record = event.record
        digest = item = error = None
        if record is not None:
            started = record.started_at
            if record.error is not None:
                error = json_text(self.masker.error(record.error).as_json())  # type: ignore[union-attr]
            if event.keyed:
                item = canonical_json(record.item).decode("utf-8")
                if self.masker:
                    # An item holding a secret is keyed by its masked text: no hash of a
                    # secret is stored, and it never matches on resume (it runs again).
                    item = self.masker.text(item)
                digest = hashlib.sha256(item.encode("utf-8")).hexdigest()
        self.add(
            _UPSERT_ITERATION,
            (self.run_id, event.path, event.loop_path, event.index, digest, item, event.status,
             started, time.time(), error),
        )  # fmt: skip

    def command_finished(self, event: ev.CommandFinished) -> None:
        self.exit_codes[event.path] = event.exit_code
        handle = self.logs.get(event.path)
        if handle is not None:
            handle.flush()

    def run_started(self, event: ev.RunStarted) -> None:
        self.run_id = event.run_id
        facts = self.facts
        self.connection.execute(
            "INSERT INTO runs (id, drawer_path, content_hash, name, inputs, edits, status,"
            " started_at, resumed_from, definitions, pid, host)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (event.run_id, _sql_text(str(facts.drawer_path)), facts.content_hash,
             _sql_text(event.name),
             json_text(self.masker.value(facts.inputs)),
             json_text(self.masker.value(facts.edits)), time.time(), facts.resumed_from,
             json_text(facts.definitions), os.getpid(), socket.gethostname()),
        )  # fmt: skip

    def step_finished(self, event: ev.StepFinished) -> None:
        path, record = event.path, event.record
        handle = self.logs.pop(path, None)
        if handle is not None:
            handle.close()
        if event.reused is not None:
            run_id, old = event.reused
            self.add(
                _COPY_SUBTREE,
                {"run": self.run_id, "new": path, "old": old, "length": len(old),
                 "parent": parent(path), "from_run": run_id},
            )  # fmt: skip
            return
        output = recorded(record.output)
        if event.kind == "for_each":
            # The results live in the iterations' own rows and their steps' rows.
            data = output.as_json() if hasattr(output, "as_json") else output
            if isinstance(data, dict):
                output = {key: value for key, value in data.items() if key != "results"}
        if type(output) not in _SCALARS:
            output = plain(output)
        if self.masker:
            output = self.masker.value(output)
        error = self.masker.error(record.error)
        self.add(
            _UPSERT_STEP,
            (self.run_id, path, parent(path), event.kind, record.attempts, record.status,
             record.started_at, record.ended_at, self.exit_codes.pop(path, None), json_text(output),
             json_text(error.as_json()) if error else None, self.log_paths.pop(path, None)),
        )  # fmt: skip

    def run_finished(self, document: dict[str, Any]) -> None:
        self.close_logs()
        self.flush()
        # After a failure to record, the run's row still gets its end and its document when
        # it can (`show` reads the document), and stays `unrecorded`.
        status = document["status"] if self.failure is None else UNRECORDED
        text = json_text(document)
        try:
            with self.writing:
                self.connection.execute(
                    "UPDATE runs SET status = ?, ended_at = ?, error = ?, document = ?"
                    " WHERE id = ?",
                    (status, time.time(), json_text(document["error"]), text, self.run_id),
                )
        except sqlite3.Error as error:
            self.stop(error)

    def log(self, path: str) -> IO[str]:
        handle = self.logs.get(path)
        if handle is None:
            relative = f"logs/{self.run_id}/{log_name(path)}"
            target = self.directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = self.logs[path] = target.open("a", encoding="utf-8", errors="backslashreplace")
            self.log_paths[path] = relative
        return handle

    def close_logs(self) -> None:
        for handle in self.logs.values():
            with contextlib.suppress(OSError):  # its last lines are lost (a full disk): closed
                handle.close()
        self.logs.clear()


def _sql_text(text: str) -> str:
    """Text as SQLite can hold it (valid UTF-8): the undecodable bytes of a path or name
    (a directory named in Latin-1, say) written as `\\xe9`, the same way each time."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    """One row of `history`."""

    run_id: str
    name: str
    recorded_status: str
    started_at: float
    ended_at: float | None
    resumed_from: str | None
    pid: int | None = None
    host: str | None = None

    @property
    def status(self) -> str:
        """As recorded; `interrupted` for a run still `running` whose process on this
        machine is gone (killed before it could record its end)."""
        return _live_status(self.recorded_status, self.pid, self.host)

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else round(self.ended_at - self.started_at, 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "started_at": rfc3339(self.started_at),
            "ended_at": rfc3339(self.ended_at),
            "duration": self.duration,
            "resumed_from": self.resumed_from,
        }


_SUMMARY = "SELECT id, name, status, started_at, ended_at, resumed_from, pid, host FROM runs"
RUNNING, INTERRUPTED = "running", "interrupted"


def _live_status(status: str, pid: int | None, host: str | None) -> str:
    if status != RUNNING or pid is None or host != socket.gethostname():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return INTERRUPTED
    except PermissionError:
        return status
    return status


def _read(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except sqlite3.Error as error:
        if _is_damage(error):
            raise StoreDamaged(str(error)) from None
        raise StoreError(f"cannot read the run store: {error}") from None


def runs_of(connection: sqlite3.Connection, drawer_path: Path, limit: int) -> list[RunSummary]:
    """The drawer file's runs, newest first."""
    rows = _read(
        lambda: connection.execute(
            f"{_SUMMARY} WHERE drawer_path = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            (_sql_text(str(drawer_path)), limit),
        ).fetchall()
    )
    return [RunSummary(*row) for row in rows]


def find_run(connection: sqlite3.Connection, drawer_path: Path, run_id: str) -> RunSummary | None:
    """A run of this drawer file by id, or its newest run for `last`."""
    if run_id == "last":
        runs = runs_of(connection, drawer_path, 1)
        return runs[0] if runs else None
    row = _read(
        lambda: connection.execute(
            f"{_SUMMARY} WHERE drawer_path = ? AND id = ?",
            (_sql_text(str(drawer_path)), _sql_text(run_id)),
        ).fetchone()
    )
    return RunSummary(*row) if row else None


def run_document(connection: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """The run document (SPEC 3.2) as recorded at the end; for a run that never ended
    (killed), one rebuilt from its row and the top-level steps that finished."""
    row = _read(
        lambda: connection.execute(
            "SELECT document, drawer_path, name, resumed_from, status, started_at, inputs, error,"
            " pid, host FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
    )
    if row[0] is not None:
        document: dict[str, Any] = json.loads(row[0])
        return document
    _, drawer_path, name, resumed_from, status, started_at, inputs, error, pid, host = row
    status = _live_status(status, pid, host)
    steps = _read(
        lambda: connection.execute(
            "SELECT path, status, attempt, started_at, ended_at, output, error FROM steps"
            " WHERE run_id = ? AND parent_path IS NULL ORDER BY started_at, path",
            (run_id,),
        ).fetchall()
    )
    last_end = max((step[4] for step in steps if step[4] is not None), default=started_at)
    return {
        "run_id": run_id,
        "drawer": drawer_path,
        "name": name,
        "resumed_from": resumed_from,
        "status": status,
        "started_at": rfc3339(started_at),
        "ended_at": None,
        "duration": round(last_end - started_at, 3),
        "inputs": json.loads(inputs),
        "outputs": {},
        "steps": {
            path: {
                "status": step_status,
                "attempts": attempts,
                "started_at": rfc3339(started),
                "ended_at": rfc3339(ended),
                "duration": None if started is None or ended is None else round(ended - started, 3),
                "output": json.loads(output) if output else None,
                "error": json.loads(step_error) if step_error else None,
            }
            for path, step_status, attempts, started, ended, output, step_error in steps
        },
        "error": json.loads(error) if error else None,
    }


def has_step(connection: sqlite3.Connection, run_id: str, path: str) -> bool:
    row = _read(
        lambda: connection.execute(
            "SELECT 1 FROM steps WHERE run_id = ? AND path = ?", (run_id, path)
        ).fetchone()
    )
    return row is not None


def step_output(connection: sqlite3.Connection, run_id: str, path: str) -> Any:
    """The recorded output of the step at `path` (any depth, a sub-drawer's steps too)."""
    row = _read(
        lambda: connection.execute(
            "SELECT output FROM steps WHERE run_id = ? AND path = ?", (run_id, path)
        ).fetchone()
    )
    return json.loads(row[0]) if row and row[0] else None


def step_logs(
    connection: sqlite3.Connection, directory: Path, run_id: str
) -> list[tuple[str, Path]]:
    """Every log of a run as (step path, file), in the order the steps started; logs of
    steps that never finished (the run was killed) come last, by path."""
    rows = _read(
        lambda: connection.execute(
            "SELECT path, log_path FROM steps WHERE run_id = ? AND log_path IS NOT NULL"
            " ORDER BY started_at, path",
            (run_id,),
        ).fetchall()
    )
    logs = [(path, directory / relative) for path, relative in rows]
    known = {file.name for _, file in logs}
    folder = directory / "logs" / run_id
    if folder.is_dir():
        unfinished = sorted(p for p in folder.glob("*.log") if p.name not in known)
        logs.extend((unquote(file.name.removesuffix(".log")), file) for file in unfinished)
    return logs


# resuming -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResumeFacts:
    """What a resumed run takes from the run it resumes."""

    run_id: str
    inputs: dict[str, Any]
    edits: list[str]
    definitions: dict[str, str] | None
    """None for a run recorded before definitions were (schema 1): see content_hash."""
    content_hash: str
    shard: str | None = None
    """`I/N` when the run was a shard (known from its run document)."""


def resume_facts(connection: sqlite3.Connection, run_id: str) -> ResumeFacts:
    row = _read(
        lambda: connection.execute(
            "SELECT inputs, edits, definitions, content_hash, document FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
    )
    inputs, edits, definitions, content_hash, document = row
    shard = None
    if document:
        info = json.loads(document).get("shard")
        if isinstance(info, dict) and "index" in info and "count" in info:
            shard = f"{info['index']}/{info['count']}"
    return ResumeFacts(
        run_id,
        json.loads(inputs),
        json.loads(edits),
        json.loads(definitions) if definitions else None,
        content_hash,
        shard,
    )


class DocumentError(Exception):
    """A file given to `--resume` is not a run document."""


def import_document(connection: sqlite3.Connection, document: Any, drawer_path: Path) -> str:
    """Record a run document (from `run --json`/`--output`, perhaps made on another machine)
    as a run in this store, its top-level steps and loop iterations as rows; returns its id.
    A run already in the store is left as it is, unless it is `unrecorded`: the document,
    which that run wrote at its end, holds what its rows miss, and replaces them."""
    problem = document_problem(document)
    if problem is not None or not document["run_id"]:
        raise DocumentError(f"it is not a drawer run document: {problem or 'no run_id'}")
    run_id: str = document["run_id"]
    found = connection.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    if found is not None and found[0] != UNRECORDED:
        return run_id
    rows: list[tuple[Any, ...]] = []
    iterations: list[tuple[Any, ...]] = []

    def add(steps: dict[str, Any], prefix: str) -> None:
        for step_id, record in steps.items():
            if not isinstance(record, dict):
                continue
            path = f"{prefix}.{step_id}" if prefix else step_id
            output = record.get("output")
            kind = "step"
            if (
                isinstance(output, dict)
                and "total" in output
                and isinstance(output.get("results"), list)
            ):
                kind = "for_each"
                for entry in output["results"]:
                    if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                        here = f"{path}[{entry['index']}]"
                        text = canonical_json(entry.get("item"))
                        iterations.append(
                            (run_id, here, path, entry["index"],
                             hashlib.sha256(text).hexdigest(), text.decode("utf-8"),
                             entry.get("status"), json_text(entry.get("error"))
                             if entry.get("error") else None)
                        )  # fmt: skip
                        if isinstance(entry.get("steps"), dict):
                            add(entry["steps"], here)
                output = {key: value for key, value in output.items() if key != "results"}
            error = record.get("error")
            rows.append(
                (run_id, path, parent(path), kind, record.get("attempts") or 1,
                 record.get("status") or "failed", from_rfc3339(record.get("started_at")),
                 from_rfc3339(record.get("ended_at")), json_text(output),
                 json_text(error) if error else None)
            )  # fmt: skip

    add(document["steps"], "")
    error = document.get("error")
    connection.execute("BEGIN IMMEDIATE")
    try:
        if found is not None:
            connection.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        connection.execute(
            "INSERT INTO runs (id, drawer_path, content_hash, name, inputs, edits, status,"
            " started_at, ended_at, error, resumed_from, document, definitions)"
            " VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, _sql_text(str(drawer_path)), _sql_text(str(document.get("name") or "")),
             json_text(document.get("inputs") or {}), json_text(document.get("edits") or []),
             str(document.get("status") or "failed"),
             from_rfc3339(document.get("started_at")) or 0.0,
             from_rfc3339(document.get("ended_at")),
             json_text(error) if error else None, document.get("resumed_from"), json_text(document),
             json_text(document["definitions"]) if "definitions" in document else None),
        )  # fmt: skip
        connection.executemany(
            "INSERT OR REPLACE INTO steps (run_id, path, parent_path, kind, attempt, status,"
            " started_at, ended_at, output, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.executemany(
            "INSERT OR IGNORE INTO steps (run_id, path, parent_path, kind, item_index,"
            " item_hash, item, attempt, status, error)"
            " VALUES (?, ?, ?, 'iteration', ?, ?, ?, 1, ?, ?)",
            iterations,
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return run_id
