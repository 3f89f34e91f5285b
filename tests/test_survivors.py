"""No command outlives drawer: escapers, daemons, signals, a closed terminal and `kill -9`.

Every scenario looks for survivors the way a user would: every live process whose environment
carries this test's DRAWER_TEST_TAG (commands inherit drawer's environment), read from
/proc/*/environ. Linux only, as the subreaper and /proc are.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import read_pid, run_cli, tagged, until, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a subreaper needs Linux")

ESCAPERS = 8


def no_survivors(tag: str, seconds: float = 10) -> None:
    wait_for(lambda: not tagged(tag), f"no process tagged {tag}", seconds=seconds)


class Drawer:
    """drawer run as a user runs it, with its own tag, TMPDIR and a run document."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.path = tmp_path
        self.tag = uuid.uuid4().hex
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        (tmp_path / "d.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        self.env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
        self.env |= {"DRAWER_TEST_TAG": self.tag, "TMPDIR": str(self.tmp)}
        self.argv = [sys.executable, "-m", "drawer", "d.yaml", "run", "--output", "doc.json"]

    def start(self, **kwargs: object) -> subprocess.Popen[bytes]:
        options: dict[str, object] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        options.update(kwargs)
        process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            self.argv, cwd=self.path, env=self.env, **options
        )
        return process

    def document(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.path / "doc.json").read_text())
        return data

    def temp_left(self) -> list[str]:
        return sorted(entry.name for entry in self.tmp.iterdir())


def started(drawer: Drawer, process: subprocess.Popen[bytes], count: int = ESCAPERS) -> None:
    for index in range(count):
        read_pid(drawer.path / f"escaper-{index}", process)


LOOP = f"""\
steps:
  - id: each
    kind: for_each
    over: {{range: [0, {ESCAPERS}]}}
    parallelism: all
    steps:
      - id: escape
        run: setsid sh -c 'echo $$ > "$0"; exec sleep 60' escaper-${{item}} & wait
"""


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGQUIT, 131)],
)
def test_a_signal_ends_commands_that_left_their_group(
    tmp_path: Path, signum: int, code: int
) -> None:
    drawer = Drawer(tmp_path, LOOP)
    process = drawer.start()
    started(drawer, process)
    assert len(tagged(drawer.tag)) >= 2 * ESCAPERS  # the shells and their setsid sleeps
    sent = time.monotonic()
    process.send_signal(signum)
    assert process.wait(timeout=30) == code
    # The escapers hold the output pipes: without drawer adopting and ending them,
    # cancellation waited the whole grace period (5 s) for them.
    assert time.monotonic() - sent < 4
    assert tagged(drawer.tag) == []
    document = drawer.document()
    assert document["status"] == "cancelled"
    assert drawer.temp_left() == []


def test_a_timeout_ends_what_its_command_started_with_setsid(tmp_path: Path) -> None:
    drawer = Drawer(
        tmp_path,
        """\
        steps:
          - id: slow
            timeout: 1s
            run: setsid sh -c 'echo $$ > escaper-0; exec sleep 60' & wait
          - id: after
            run: 'true'
        """,
    )
    process = drawer.start()
    escaper = read_pid(tmp_path / "escaper-0", process)
    assert process.wait(timeout=30) == 1
    assert tagged(drawer.tag) == []
    assert not Path(f"/proc/{escaper}").exists()  # killed and reaped, not a zombie
    slow = drawer.document()["steps"]["slow"]  # type: ignore[index]
    assert slow["status"] == "failed" and slow["error"]["code"] == "TIMEOUT"
    assert slow["duration"] < 4


def test_a_daemon_is_ended_with_its_step_before_the_next_starts(tmp_path: Path) -> None:
    drawer = Drawer(
        tmp_path,
        f"""\
        steps:
          - id: start
            run: |
              setsid -f sh -c 'echo $$ > daemon; exec sleep 60' </dev/null >/dev/null 2>&1
              {until("[ -s daemon ]")}
          - id: look
            run: if kill -0 $(cat daemon) 2>/dev/null; then echo alive; else echo gone; fi
        """,
    )
    process = drawer.start()
    assert process.wait(timeout=30) == 0
    look = drawer.document()["steps"]["look"]  # type: ignore[index]
    assert look["output"]["stdout"] == "gone"
    assert tagged(drawer.tag) == []


def test_an_escaper_with_a_cleared_environment_is_known_by_the_pipe_it_holds(
    tmp_path: Path,
) -> None:
    # No DRAWER_TRACKING_ID (nor the test's tag) in its environment: the output pipe it holds
    # is what makes it the command's. Before, the step waited the 60 s of its sleep.
    drawer = Drawer(
        tmp_path,
        """\
        steps:
          - id: quick
            run: env -i setsid sh -c 'echo $$ > escaper-0; exec sleep 60' & sleep 0.2
        """,
    )
    process = drawer.start()
    escaper = read_pid(tmp_path / "escaper-0", process)
    assert process.wait(timeout=30) == 0
    assert not Path(f"/proc/{escaper}").exists()
    assert drawer.document()["status"] == "ok"


def test_kill_9_of_drawer_leaves_no_command_and_no_temporary_file(tmp_path: Path) -> None:
    drawer = Drawer(
        tmp_path,
        f"""\
        steps:
          - id: each
            kind: for_each
            over: {{range: [0, {ESCAPERS}]}}
            parallelism: all
            steps:
              - id: work
                run: |
                  sleep 60 &
                  setsid sh -c 'echo $$ > "$0"; exec sleep 60' escaper-${{item}} & wait
        """,
    )
    process = drawer.start()
    started(drawer, process)
    assert drawer.temp_left() != []  # the run's temporary directory
    assert len(tagged(drawer.tag)) >= 3 * ESCAPERS
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # The watchdog gives them SIGTERM and the grace period, then SIGKILL.
    no_survivors(drawer.tag)
    wait_for(lambda: drawer.temp_left() == [], "the temporary directory to be removed")


def test_closing_the_terminal_cancels_the_run(tmp_path: Path) -> None:
    drawer = Drawer(tmp_path, LOOP)
    controller, terminal = os.openpty()

    def take_terminal() -> None:  # as a login shell does: drawer's terminal is this pty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        process = drawer.start(
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,
            preexec_fn=take_terminal,
        )
    finally:
        os.close(terminal)
    try:
        started(drawer, process)
        os.close(controller)  # the terminal window is closed: SIGHUP
        controller = -1
        assert process.wait(timeout=30) == 129
    finally:
        if controller >= 0:
            os.close(controller)
        process.kill()
        process.wait()
    assert tagged(drawer.tag) == []
    assert drawer.document()["status"] == "cancelled"
    history = run_cli("d.yaml", "history", "--json", cwd=tmp_path)
    assert json.loads(history.stdout)[0]["status"] == "cancelled"
    assert drawer.temp_left() == []


def test_the_watchdog_ends_with_drawer(tmp_path: Path) -> None:
    drawer = Drawer(tmp_path, "steps:\n  - id: a\n    run: echo $PPID > drawer-pid\n")
    process = drawer.start()
    assert process.wait(timeout=30) == 0
    pid = (tmp_path / "drawer-pid").read_text().strip()
    watchdogs = []
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"watchdog.py") for arg in argv) and f"/{pid}.".encode() in argv[-3]:
            watchdogs.append(entry)
    assert watchdogs == []


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_signal_as_the_first_command_starts_is_handled(tmp_path: Path, signum: int) -> None:
    # The first command signals drawer at once: before, the handlers were installed by a task
    # that had not run yet, and drawer died of the signal with no run document.
    drawer = Drawer(tmp_path, f"steps:\n  - id: a\n    run: kill -{signum} $PPID; sleep 30\n")
    process = drawer.start()
    assert process.wait(timeout=30) == 128 + signum
    assert drawer.document()["status"] == "cancelled"
    assert tagged(drawer.tag) == []
