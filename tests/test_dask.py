"""`executor: dask`: a for_each's items in chunks on a Dask LocalCluster (threads, for speed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
import trio
from distributed import Client, LocalCluster

from drawer import events as ev
from drawer.context import Interrupt
from drawer.engine import RunOptions, execute_run
from drawer.events import EventLog
from drawer.inputs import resolve_inputs
from drawer.loader import InvalidDrawer, LoadedDrawer
from drawer.steps.dask_executor import PROCESSES_VARIABLE
from tests.conftest import (
    RunResult,
    is_alive,
    load,
    run_cli,
    run_loaded,
    wait_for,
    wait_for_async,
)

TIMINGS = {"started_at", "ended_at", "duration", "run_id"}


def start_cluster(workers: int, threads: int) -> LocalCluster:
    """In-process workers; a lost worker fails its task at once (only drawer retries)."""
    return LocalCluster(
        processes=False,
        n_workers=workers,
        threads_per_worker=threads,
        dashboard_address=":0",
        scheduler_kwargs={"allowed_failures": 0},
    )


def close_cluster(cluster: LocalCluster) -> None:
    # Bounded: under some coverage settings an in-process cluster's close never returns.
    with contextlib.suppress(TimeoutError):
        cluster.close(timeout=10)


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """One worker with four threads: up to four chunks run at once."""
    cluster = start_cluster(workers=1, threads=4)
    try:
        yield str(cluster.scheduler_address)
    finally:
        close_cluster(cluster)


def without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def finished(log: EventLog) -> Counter[tuple[str, str, str]]:
    """What the run store hears: every step and iteration that ended, with its status."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for event in log.events:
        if isinstance(event, ev.StepFinished):
            seen["step", event.path, event.record.status] += 1
        elif isinstance(event, ev.IterationFinished):
            seen["iteration", event.path, event.status] += 1
    return seen


def statuses(result: RunResult, step_id: str = "each") -> list[str]:
    return [r["status"] for r in result.steps[step_id]["output"]["results"]]


# the same drawer on both executors ----------------------------------------------------------------

SAME = """\
name: same
inputs:
  greeting: {type: string, default: hello}
steps:
  - id: base
    kind: value
    value: {suffix: "!"}
  - id: prep
    run: printf 'a\\nb\\nc\\nd\\ne\\n'
  - id: each
    kind: for_each
    over: ${prep.output.lines}
    executor: %s
    dask: {chunk_size: 2}
    parallelism: 2
    on_item_failure: continue
    tolerate: 1
    env: {MARK: m}
    steps:
      - id: shout
        run: |
          [ "${item}" != c ] || { echo "no c" >&2; exit 4; }
          echo "${inputs.greeting} ${item}${base.output.suffix} $DRAWER_INDEX $MARK"
      - id: size
        kind: value
        value: ${shout.output.stdout}
      - id: inner
        kind: for_each
        over: [1, 2]
        as: n
        index_as: k
        steps:
          - id: pair
            kind: value
            value: ${item}-${n}
      - id: never
        when: ${index == 99}
        run: echo never
  - id: summary
    kind: value
    value: ${each.output.succeeded} of ${each.output.total}
outputs:
  results: ${each.output.results}
  summary: ${summary.output}
"""


def test_dask_gives_what_the_local_executor_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROCESSES_VARIABLE, "0")  # the LocalCluster drawer starts: threads
    local = run_loaded(load(tmp_path, SAME % "local", "local.yaml"), tmp_path)
    dask = run_loaded(load(tmp_path, SAME % "dask", "dask.yaml"), tmp_path)

    assert dask.document["status"] == "ok"
    assert statuses(dask) == ["ok", "ok", "failed", "ok", "ok"]
    results = dask.steps["each"]["output"]["results"]
    assert [r["item"] for r in results] == ["a", "b", "c", "d", "e"]
    assert results[0]["steps"]["size"]["output"] == "hello a! 0 m"
    assert results[4]["steps"]["inner"]["output"]["results"][1]["steps"]["pair"]["output"] == "e-2"
    assert results[2]["error"]["step_path"] == "each[2].shout"
    assert dask.document["outputs"]["summary"] == "4 of 5"
    for key in ("drawer", "run_id"):
        local.document.pop(key)
        dask.document.pop(key)
    assert without_timings(dask.document) == without_timings(local.document)
    # Every step and iteration, at any depth, reached the listeners (store, display) too.
    assert finished(dask.log) == finished(local.log)
    assert len(dask.log.of(ev.CommandFinished)) == len(local.log.of(ev.CommandFinished)) == 6
    stderr = [e.text for e in dask.log.of(ev.OutputLine) if e.path == "each[2].shout"]
    assert stderr == ["no c"]


# failure policies ---------------------------------------------------------------------------------


def policy_drawer(address: str, policy: str, count: int, body: str) -> str:
    return textwrap.dedent(
        f"""\
            steps:
              - id: each
                kind: for_each
                over: {{range: [0, {count}]}}
                executor: dask
                dask: {{address: "{address}", chunk_size: 2}}
                on_item_failure: {policy}
                steps:
                  - id: work
                    run: |
            """
    ) + textwrap.indent(textwrap.dedent(body), " " * 10)


def test_stop_cancels_running_chunks_and_sends_no_more(tmp_path: Path, address: str) -> None:
    # Six chunks of two, four threads: chunks 0-3 start together, 4 and 5 wait for a slot.
    # Item 3 fails once item 0 is running; items 4 and 6 would sleep for a minute.
    text = policy_drawer(
        address,
        "stop",
        12,
        """\
        case ${item} in
          0) touch started-0; sleep 60 ;;
          3) n=0; while [ ! -e started-0 ]; do
               n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01
             done; exit 3 ;;
          4|6) sleep 60 ;;
        esac
        """,
    )
    result = run_loaded(load(tmp_path, text), tmp_path)
    loop = result.steps["each"]
    assert result.document["status"] == "failed"
    assert loop["error"]["code"] == "FOREACH_ITEM_FAILED"
    assert loop["error"]["cause"]["step_path"] == "each[3].work"
    found = statuses(result)
    assert found[:4] == ["cancelled", "skipped", "ok", "failed"]
    assert found[4] in ("cancelled", "skipped") and found[6] in ("cancelled", "skipped")
    assert found[5] == found[7] == "skipped"  # behind a cancelled item in their chunk
    assert found[8:] == ["skipped"] * 4  # their chunks were never sent
    started = {e.index for e in result.log.of(ev.IterationStarted)}
    assert {0, 2, 3} <= started <= {0, 2, 3, 4, 6}
    output = loop["output"]
    assert (output["succeeded"], output["failed"]) == (1, 1)
    assert output["cancelled"] + output["skipped"] == 10


def test_continue_runs_every_item_and_names_the_lowest_failure(
    tmp_path: Path, address: str
) -> None:
    # Item 3 fails only once item 5 has failed: the cause is still item 3, the lower index.
    text = policy_drawer(
        address,
        "continue",
        8,
        """\
        case ${item} in
          5) touch failed-5; exit 5 ;;
          3) n=0; while [ ! -e failed-5 ]; do
               n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01
             done; exit 3 ;;
          *) echo ran ${item} ;;
        esac
        """,
    )
    result = run_loaded(load(tmp_path, text), tmp_path)
    loop = result.steps["each"]
    assert statuses(result) == ["ok", "ok", "ok", "failed", "ok", "failed", "ok", "ok"]
    assert loop["error"]["cause"]["step_path"] == "each[3].work"
    assert loop["error"]["message"].startswith("2 of 8 iterations failed")
    assert loop["output"]["results"][5]["error"]["step_path"] == "each[5].work"


def test_delay_is_refused_before_anything_runs(tmp_path: Path, address: str) -> None:
    text = policy_drawer(address, "stop", 3, "touch ran-${item}\n")
    text = text.replace("    executor: dask\n", "    executor: dask\n    delay: 1s\n")
    with pytest.raises(InvalidDrawer) as refused:
        load(tmp_path, text)
    [problem] = refused.value.problems
    assert "delay cannot be used with executor: dask" in problem.message
    assert problem.position is not None
    assert text.splitlines()[problem.position.line - 1].strip() == "delay: 1s"
    assert not list(tmp_path.glob("ran-*"))


def test_executor_dask_without_the_extra_is_a_validation_error(tmp_path: Path) -> None:
    """Dask made unimportable in a real drawer process, as when the extra is not installed."""
    shim = tmp_path / "no-dask"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text('import sys\nsys.modules["distributed"] = None\n')
    text = "steps:\n  - id: each\n    kind: for_each\n    over: [1]\n    executor: dask\n"
    (tmp_path / "d.yaml").write_text(text + "    steps: [{id: s, run: 'true'}]\n")
    for command in ("validate", "run"):
        refused = run_cli("d.yaml", command, cwd=tmp_path, env={"PYTHONPATH": str(shim)})
        assert refused.returncode == 2, refused.stderr
        assert 'd.yaml:5:15: error: "each": executor: dask needs Dask' in refused.stderr
        assert 'pip install "drawer[dask]"' in refused.stderr
    assert run_cli("d.yaml", "validate", cwd=tmp_path).returncode == 0


CANCELLED = """\
steps:
  - id: each
    kind: for_each
    over: [0, 1, 2, 3]
    executor: dask
    dask: {address: "%s", chunk_size: 2}
    steps:
      - id: work
        run: exec sh -c 'echo $$ > pid-$0.tmp && mv pid-$0.tmp pid-$0 && exec sleep 60' ${item}
"""


def test_cancelling_the_run_stops_the_commands_on_the_workers(tmp_path: Path, address: str) -> None:
    loaded = load(tmp_path, CANCELLED % address)
    resolved = resolve_inputs(loaded.model.inputs, [], os.environ)
    options = RunOptions(resolved.values, resolved.secrets, [], grace=2.0, workdir=tmp_path)
    interrupt = Interrupt()
    cancel_scope = trio.CancelScope()

    async def interrupt_when_both_chunks_run() -> None:
        await wait_for_async(
            lambda: (tmp_path / "pid-0").exists() and (tmp_path / "pid-2").exists(),
            "both chunks to run",
        )
        interrupt.signal = 2
        cancel_scope.cancel()

    async def main() -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupt_when_both_chunks_run)
            return await execute_run(loaded, options, interrupt, cancel_scope)

    document = trio.run(main)
    assert document["status"] == "cancelled"
    loop = document["steps"]["each"]
    assert loop["status"] == "cancelled"
    assert [r["status"] for r in loop["output"]["results"]] == [
        "cancelled",
        "skipped",
        "cancelled",
        "skipped",
    ]
    pids = [int((tmp_path / f"pid-{item}").read_text()) for item in (0, 2)]
    assert not any(is_alive(pid) for pid in pids)


def test_ctrl_c_reaches_worker_processes_yet_no_command_outlives_drawer(tmp_path: Path) -> None:
    # The LocalCluster drawer starts (worker processes): a terminal's Ctrl-C goes to the whole
    # process group, workers included; they leave the cancelling to drawer.
    (tmp_path / "d.yaml").write_text(
        CANCELLED.replace('address: "%s", ', "").replace("chunk_size: 2", "chunk_size: 1"),
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    env.pop(PROCESSES_VARIABLE, None)
    drawer = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--json", "--no-store"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for((tmp_path / "pid-0").exists, "the first item to start", drawer, 60)
        os.killpg(drawer.pid, signal.SIGINT)
        stdout, stderr = drawer.communicate(timeout=60)
        wait_for(lambda: not group_alive(drawer.pid), "the worker processes to end with drawer")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(drawer.pid, signal.SIGKILL)  # only if something above went wrong
    assert drawer.returncode == 130, stderr
    assert json.loads(stdout)["steps"]["each"]["output"]["results"][0]["status"] == "cancelled"
    pids = [int(path.read_text()) for path in tmp_path.glob("pid-*")]
    assert pids and not any(is_alive(pid) for pid in pids)


def test_an_unreachable_scheduler_fails_the_loop_before_any_item(tmp_path: Path) -> None:
    text = policy_drawer("tcp://127.0.0.1:9", "stop", 3, "touch ran-${item}\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = run_loaded(load(tmp_path, text), tmp_path)
    error = result.steps["each"]["error"]
    assert error["code"] == "STEP_FAILED"
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in error["message"]
    assert not list(tmp_path.glob("ran-*"))


# a lost worker ------------------------------------------------------------------------------------

LOST = """\
steps:
  - id: each
    kind: for_each
    over: [0, 1, 2, 3]
    executor: dask
    dask: {address: "%s", chunk_size: 2}
    on_item_failure: continue
    retry: {attempts: 2, delay: 0}
    steps:
      - id: work
        run: |
          echo ${item} >> ran-${item}
          n=0
          case ${item} in
            0|1) while [ ! -e started-2 ]; do
                   n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01
                 done ;;
            2) touch started-2
               while [ ! -e released ]; do
                 n=$((n+1)); [ "$n" -lt 3000 ] || exit 9; sleep 0.01
               done ;;
          esac
"""


class WorkerKiller:
    """When the first chunk's results arrive, the second chunk is running (item 0 waited for
    item 2 to start): close the worker running it, as a crash would, then let item 2 go on."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.client = Client(cluster, set_as_default=False)
        self.workdir = workdir
        self.killed: str | None = None

    def __call__(self, event: ev.Event) -> None:
        if self.killed is not None or not isinstance(event, ev.IterationFinished):
            return
        if event.loop_path != "each" or event.index != 0:
            return
        busy = [addr for addr, keys in self.client.processing().items() if keys]
        assert len(busy) == 1, busy
        self.killed = busy[0]
        worker = next(w for w in self.cluster.workers.values() if w.address == self.killed)
        self.cluster.sync(worker.close, executor_wait=False)
        (self.workdir / "released").touch()


def run_with(loaded: LoadedDrawer, workdir: Path, *listeners: ev.Listener) -> RunResult:
    log = EventLog()
    resolved = resolve_inputs(loaded.model.inputs, [], os.environ)
    options = RunOptions(
        resolved.values, resolved.secrets, [log, *listeners], grace=2.0, workdir=workdir
    )

    async def main() -> dict[str, Any]:
        return await execute_run(loaded, options)

    return RunResult(trio.run(main), log)


def test_a_lost_worker_is_survived_through_drawers_retry(tmp_path: Path) -> None:
    cluster = start_cluster(workers=2, threads=1)
    killer = WorkerKiller(cluster, tmp_path)
    try:
        loaded = load(tmp_path, LOST % cluster.scheduler_address)
        result = run_with(loaded, tmp_path, killer)
    finally:
        killer.client.close()
        close_cluster(cluster)
    assert killer.killed is not None
    assert result.document["status"] == "ok"
    loop = result.steps["each"]
    assert loop["attempts"] == 2
    assert statuses(result) == ["ok"] * 4
    retried = result.log.of(ev.StepRetrying)
    assert [e.path for e in retried] == ["each"]
    cause = retried[0].error.cause
    assert cause.step_path == "each[2]" and f"worker {killer.killed}" in cause.message
    # The first chunk ran once; the lost chunk's items ran again on the other worker.
    assert (tmp_path / "ran-0").read_text() == "0\n"
    assert (tmp_path / "ran-1").read_text() == "1\n"
    assert (tmp_path / "ran-2").read_text() == "2\n2\n"


# resume -------------------------------------------------------------------------------------------

RESUMED = """\
steps:
  - id: each
    kind: for_each
    over: {range: [0, 8]}
    executor: dask
    dask: {chunk_size: 3}
    on_item_failure: continue
    steps:
      - id: work
        run: echo ${item} >> calls.txt; ./check.sh ${item}
"""


def calls(workdir: Path) -> Counter[str]:
    path = workdir / "calls.txt"
    found = Counter(path.read_text().split())
    path.unlink()
    return found


def test_resume_takes_over_ok_items_and_reruns_the_failed_on_the_cluster(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(RESUMED, encoding="utf-8")
    check = tmp_path / "check.sh"
    check.write_text('#!/bin/sh\ncase "$1" in 3|6) exit 1;; esac\n', encoding="utf-8")
    check.chmod(0o755)
    env = {PROCESSES_VARIABLE: "0"}
    failed = run_cli("d.yaml", "run", "--json", cwd=tmp_path, env=env)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["steps"]["each"]["output"]["failed"] == 2
    assert calls(tmp_path) == Counter(str(item) for item in range(8))

    check.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    resumed = run_cli("d.yaml", "run", "--resume", "last", "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert calls(tmp_path) == Counter({"3": 1, "6": 1})
    loop = json.loads(resumed.stdout)["steps"]["each"]
    assert [r["status"] for r in loop["output"]["results"]] == ["ok"] * 8


def group_alive(group: int) -> bool:
    """Whether any process of the process group is left."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
