"""Tests for drawer.procs with real processes: capture, stdin, errors, cancellation, cleanup."""

from __future__ import annotations

import errno
import functools
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from drawer import procs
from drawer.procs import CommandResult, CommandSpec, run_command
from tests.conftest import until

ENV = dict(os.environ)
PY = sys.executable
MIB = 1024 * 1024


@pytest.fixture(autouse=True, params=["pidfd", "portable"])
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Run every test on both implementations, chosen the documented way: DRAWER_PROCS."""
    if request.param == "portable":
        monkeypatch.setenv("DRAWER_PROCS", "portable")
    else:
        monkeypatch.delenv("DRAWER_PROCS", raising=False)
    procs._use_pidfd.cache_clear()
    if request.param == "pidfd" and not procs._use_pidfd():
        pytest.skip("pidfd_open or epoll is not available here")
    assert procs._use_pidfd() == (request.param == "pidfd")
    yield request.param
    procs._use_pidfd.cache_clear()


def spec(*argv: str, **kwargs: Any) -> CommandSpec:
    return CommandSpec(argv, kwargs.pop("env", ENV), **kwargs)


def run(command: CommandSpec, **kwargs: Any) -> CommandResult:
    return trio.run(functools.partial(run_command, command, **kwargs))


def python(code: str, **kwargs: Any) -> CommandSpec:
    return spec(PY, "-c", code, **kwargs)


def is_gone(pid: int) -> bool:
    """True when pid no longer runs: it does not exist or is a zombie awaiting its reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


async def wait_for_file(path: Path) -> None:
    """Poll until a command has written a complete line to path."""
    while not path.exists() or not path.read_text().endswith("\n"):
        await trio.sleep(0.01)


def test_exit_codes() -> None:
    assert run(spec("sh", "-c", "exit 0")).exit_code == 0
    assert run(spec("sh", "-c", "exit 3")).exit_code == 3
    assert run(spec("sh", "-c", "kill -TERM $$")).exit_code == 128 + signal.SIGTERM
    assert run(spec("sh", "-c", "kill -KILL $$")).exit_code == 128 + signal.SIGKILL


def test_captures_stdout_and_stderr() -> None:
    started: list[int] = []
    result = run(spec("sh", "-c", "echo out; echo err >&2"), on_started=started.append)
    assert result == CommandResult(
        exit_code=0,
        stdout=b"out\n",
        stdout_complete=True,
        stderr=b"err\n",
        stderr_truncated=False,
        pid=started[0],
    )


def test_stderr_is_whole_up_to_64_mib() -> None:
    code = "import sys; sys.stderr.buffer.write(b'a' * (2 * 2**20) + b'b' * 2**19 + b'end')"
    result = run(python(code))
    assert not result.stderr_truncated
    assert result.stderr == b"a" * (2 * MIB) + b"b" * 2**19 + b"end"


def test_stderr_beyond_64_mib_keeps_last_mib() -> None:
    result = run(python("import sys; sys.stderr.buffer.write(b'x' * (64 * 2**20) + b'end')"))
    assert result.stderr_truncated
    assert len(result.stderr) == MIB
    assert result.stderr.endswith(b"xend")


def test_stdout_beyond_64_mib_keeps_last_mib() -> None:
    code = "import sys; sys.stdout.buffer.write(b'a' * (64 * 2**20) + b'tail')"
    result = run(python(code))
    assert not result.stdout_complete
    assert len(result.stdout) == MIB
    assert result.stdout.endswith(b"atail")


def test_stdin_bytes_and_large_stdin_is_echoed() -> None:
    assert run(spec("cat", stdin=b"hello")).stdout == b"hello"
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB: far more than both pipe buffers
    result = run(spec("cat", stdin=data))
    assert result.stdout == data


def test_stdin_is_dev_null_by_default() -> None:
    result = run(python("import os, sys; print(os.readlink('/proc/self/fd/0'), sys.stdin.read())"))
    assert result.stdout == b"/dev/null \n"


def test_stdin_not_read_by_command_does_not_hang() -> None:
    result = run(spec("true", stdin=b"x" * (4 * MIB)))
    assert result.exit_code == 0


def test_on_output_receives_every_chunk() -> None:
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    code = (
        "import sys\n"
        "for i in range(200):\n"
        "    sys.stdout.write(f'line {i}\\n'); sys.stdout.flush()\n"
        "    sys.stderr.write(f'err {i}\\n')\n"
        "sys.stdout.buffer.write(b'z' * 300000)\n"
    )
    result = run(python(code), on_output=lambda stream, data: chunks[stream].append(data))
    assert b"".join(chunks["stdout"]) == result.stdout
    assert b"".join(chunks["stderr"]) == result.stderr
    assert result.stdout.endswith(b"z" * 300000)
    assert result.stderr.count(b"\n") == 200


def test_many_concurrent_commands_each_get_their_own_output() -> None:
    # Regression: a child spawned concurrently holds copies of the other commands' fds until
    # its exec, so fds must leave the epoll set explicitly before they are closed.
    results: dict[int, CommandResult] = {}

    async def worker(jobs: Iterator[int]) -> None:
        for i in jobs:
            results[i] = await run_command(spec("sh", "-c", f"echo {i}; echo e{i} >&2"))

    async def main() -> None:
        jobs = iter(range(400))
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(worker, jobs)

    trio.run(main)
    for i, result in results.items():
        assert (result.exit_code, result.stdout, result.stderr) == (0, b"%d\n" % i, b"e%d\n" % i)
    assert len(results) == 400


def test_command_not_found() -> None:
    result = run(spec("drawer-no-such-command-xyz"))
    assert result.not_found
    assert result.exit_code is None
    assert result.error == "command not found: drawer-no-such-command-xyz"
    assert run(spec("/nonexistent/dir/tool")).error == "command not found: /nonexistent/dir/tool"


def test_command_not_found_with_cwd(tmp_path: Path) -> None:
    result = run(spec("drawer-no-such-command-xyz", cwd=str(tmp_path)))
    assert result.not_found
    assert result.error == "command not found: drawer-no-such-command-xyz"


def test_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    result = run(spec(str(script)))
    assert result.not_found
    assert result.error == f"permission denied: {script}"


def test_missing_cwd_and_cwd_that_is_a_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    result = run(spec("true", cwd=missing))
    assert result.not_found
    assert result.error == f"cwd does not exist: {missing}"
    afile = tmp_path / "file"
    afile.write_text("")
    assert run(spec("true", cwd=str(afile))).error == f"cwd is not a directory: {afile}"


def test_cwd_env_and_relative_command(tmp_path: Path) -> None:
    (tmp_path / "tool").write_text('#!/bin/sh\necho "$FOO $(pwd)"\n')
    (tmp_path / "tool").chmod(0o755)
    env = {"FOO": "bar", "PATH": f"{tmp_path}:/usr/bin:/bin"}
    assert run(spec("tool", env=env)).stdout == f"bar {Path.cwd()}\n".encode()
    result = run(spec("./tool", env=env, cwd=str(tmp_path), stdin=b""))
    assert result.stdout == f"bar {tmp_path}\n".encode()
    assert run(spec("sh", env={"PATH": str(tmp_path)})).error == "command not found: sh"


@pytest.mark.parametrize("cwd", [None, "/"])
def test_runs_in_new_session_with_default_sigpipe(cwd: str | None) -> None:
    code = "import os; print(os.getsid(0) == os.getpgid(0) == os.getpid())"
    assert run(python(code, cwd=cwd)).stdout == b"True\n"
    # Python ignores SIGPIPE and SIGXFSZ; commands must not inherit that (as SigIgn in /proc).
    status = run(spec("grep", "SigIgn", "/proc/self/status", cwd=cwd)).stdout
    ignored = int(status.split()[1], 16)
    assert ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)) == 0


def test_background_grandchild_holding_stdout_does_not_hang(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    began = time.monotonic()
    result = run(spec("sh", "-c", f"sleep 30 & echo $! > {pidfile}; echo hi"))
    assert time.monotonic() - began < 10
    assert result.exit_code == 0
    assert result.stdout == b"hi\n"
    assert wait_until(lambda: is_gone(int(pidfile.read_text())))


async def wait_for_reaping(pid: int) -> None:
    """Poll until pid no longer exists at all: it has exited and been reaped."""
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await trio.sleep(0.01)


def cancel_test(
    tmp_path: Path,
    script: str,
    *,
    grace: float,
    set_kill_now: bool = False,
    after_leader: bool = False,
) -> tuple[list[int], float]:
    """Run `script`, which writes pids to tmp_path/pids; time it out once they are there.

    With after_leader the timeout waits for run_command to have reaped the leader, too.
    Returns the pids (leader first) and how long run_command took after the timeout.
    """
    pidfile = tmp_path / "pids"
    started: list[int] = []
    kill_now = trio.Event()
    timings: list[float] = []

    async def main() -> None:
        with trio.move_on_after(60) as scope:
            async with trio.open_nursery() as nursery:

                async def expire() -> None:
                    await wait_for_file(pidfile)
                    if after_leader:
                        await wait_for_reaping(started[0])
                    timings.append(trio.current_time())
                    scope.deadline = trio.current_time()
                    if set_kill_now:
                        kill_now.set()

                nursery.start_soon(expire)
                await run_command(
                    spec("sh", "-c", script),
                    on_started=started.append,
                    grace=grace,
                    kill_now=kill_now,
                )
        assert scope.cancelled_caught
        timings.append(trio.current_time())

    trio.run(main)
    pids = [started[0], *(int(p) for p in pidfile.read_text().split())]
    return pids, timings[1] - timings[0]


def test_cancel_kills_leader_and_grandchild(tmp_path: Path) -> None:
    pids, elapsed = cancel_test(
        tmp_path, f"sleep 60 & echo $! > {tmp_path}/pids; sleep 60", grace=30
    )
    assert elapsed < 10  # both die of the SIGTERM, long before the grace period ends
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the leader has been reaped
    assert wait_until(lambda: is_gone(pids[1]))


def test_grace_lets_the_group_finish_after_the_leader_died(tmp_path: Path) -> None:
    # Like make under sh: the leader dies of SIGTERM at once, its child needs time to clean up.
    code = (
        "import os, signal, sys, time\n"
        "def stop(*_):\n"
        "    time.sleep(0.3)\n"
        f"    open({str(tmp_path / 'cleaned')!r}, 'w').close()\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"open({str(tmp_path / 'pids')!r}, 'w').write(f'{{os.getpid()}}\\n')\n"
        "time.sleep(60)\n"
    )
    script = f"{shlex.quote(PY)} -c {shlex.quote(code)} & wait"
    pids, elapsed = cancel_test(tmp_path, script, grace=30)
    assert elapsed < 10
    assert (tmp_path / "cleaned").exists()
    assert wait_until(lambda: all(is_gone(pid) for pid in pids))


def test_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path) -> None:
    script = f"trap '' TERM; sleep 60 & echo $! > {tmp_path}/pids; wait"
    pids, elapsed = cancel_test(tmp_path, script, grace=0.5)
    assert 0.5 <= elapsed < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert wait_until(lambda: is_gone(pids[1]))


def test_kill_now_skips_the_grace_period(tmp_path: Path) -> None:
    script = f"trap '' TERM; sleep 60 & echo $! > {tmp_path}/pids; wait"
    pids, elapsed = cancel_test(tmp_path, script, grace=60, set_kill_now=True)
    assert elapsed < 10
    assert wait_until(lambda: all(is_gone(pid) for pid in pids))


def test_process_that_left_the_group_keeps_pipes_open_until_cancelled(tmp_path: Path) -> None:
    # setsid puts sleep in a session of its own, out of reach of the group kill; it still holds
    # stdout, so run_command waits for it after reaping the leader, but a cancellation ends the
    # wait at once. (Cancelled before that, the grace period would wait for stdout to close.)
    pidfile = tmp_path / "pids"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & {until(f'[ -s {pidfile} ]')}"
    pids, elapsed = cancel_test(tmp_path, script, grace=30, after_leader=True)
    try:
        assert elapsed < 10
        assert not is_gone(pids[1])
    finally:
        os.kill(pids[1], signal.SIGKILL)


def test_failure_after_spawn_kills_and_reaps_the_child(
    monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    # What follows the spawn: pidfd_open(pid), or starting the task that awaits pid's exit.
    pids: list[int] = []

    def fail(*args: object) -> None:
        pids.extend(arg for arg in args if isinstance(arg, int))
        raise OSError(errno.EMFILE, "Too many open files")

    if implementation == "pidfd":
        monkeypatch.setattr(os, "pidfd_open", fail)
    else:
        monkeypatch.setattr(trio.lowlevel, "spawn_system_task", fail)
    with pytest.raises(OSError, match="Too many open files"):
        run(spec("sleep", "60"))
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_pidfd_open_failing_selects_the_portable_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def enosys(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.delenv("DRAWER_PROCS", raising=False)
    monkeypatch.setattr(os, "pidfd_open", enosys, raising=False)
    procs._use_pidfd.cache_clear()
    assert not procs._use_pidfd()
    assert run(spec("sh", "-c", "echo ok")).stdout == b"ok\n"


def test_callback_error_terminates_command(tmp_path: Path) -> None:
    started: list[int] = []

    def fail(stream: str, data: bytes) -> None:
        raise RuntimeError("display broke")

    command = spec("sh", "-c", "echo hi; sleep 60")
    with pytest.raises(RuntimeError, match="display broke"):
        run(command, on_output=fail, on_started=started.append)
    with pytest.raises(ProcessLookupError):
        os.kill(started[0], 0)


def test_already_cancelled_starts_nothing() -> None:
    started: list[int] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await run_command(spec("true"), on_started=started.append)

    trio.run(main)
    assert started == []


def test_terminate_after_a_wakeup_that_saw_the_leader_exit() -> None:
    """Issue 11 item 21: when an output callback raises in the wakeup that also reported the
    leader's exit, terminate must not wait on the pidfd already closed (it raised ValueError)."""

    async def main() -> int | None:
        child = (procs._PidfdChild if procs._use_pidfd() else procs._Child)(spec("echo", "x"))
        try:
            assert wait_until(lambda: os.waitid(os.P_PID, child.pid, _EXITED_NOHANG) is not None)
            with trio.fail_after(10):
                await child._ready()
                await child.terminate(None, 0.5, None)
        finally:
            child.close()
        return child.exit_code

    assert trio.run(main) == 0


_EXITED_NOHANG = os.WEXITED | os.WNOHANG | os.WNOWAIT
