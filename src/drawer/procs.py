"""Start commands, capture their output and make sure none of their processes outlive drawer.

This is the only module that creates processes. Each command becomes the leader of a new
session (and so of its own process group); the whole group is signalled on cancellation and
killed once the leader has exited, before the leader is reaped, so that its pid cannot name
another group yet.

Two implementations behave the same. On Linux a pidfd and a private epoll set let one trio task,
without a nursery, drive each command: spawning is the dominant cost. The portable one (macOS,
other POSIX systems, kernels without pidfd_open) starts commands with subprocess.Popen, waits
for their pipes with trio and learns of the leader's exit from kqueue or waitid, neither of
which reaps it. The first command chooses, once per process: the Linux implementation when
pidfd_open works, unless the environment has DRAWER_PROCS=portable (as the tests use).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

import trio

_CHUNK = 64 * 1024
_OUTPUT_LIMIT = 64 * 1024 * 1024
_TAIL = 1024 * 1024
# Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive exec, so children get defaults.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
_SPAWN_ERRORS = (FileNotFoundError, NotADirectoryError, PermissionError)
_LEADER = -2  # stands for "the leader has exited" among ready fds
# One waitid thread per running command on the portable path: never let them queue.
_WAITERS = trio.CapacityLimiter(math.inf)


@dataclass(frozen=True)
class CommandSpec:
    """What to run: argv, the complete environment, the working directory and stdin bytes."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None = None
    stdin: bytes | None = None


@dataclass(frozen=True)
class CommandResult:
    """How a command ended and what it wrote; exit_code is 128+N when killed by signal N."""

    exit_code: int | None
    stdout: bytes
    stdout_complete: bool
    stderr: bytes
    stderr_truncated: bool
    not_found: bool = False
    error: str | None = None
    pid: int | None = None


OutputCallback = Callable[[str, bytes], None]


class _Buffer:
    """Keeps a stream whole up to `limit` bytes; past that only its last 1 MiB."""

    __slots__ = ("complete", "data", "limit")

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.complete = True

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            self.complete = False
            del self.data[:-_TAIL]
            # Trim only every 1 MiB from now on, so the tail costs amortised O(1) per byte.
            self.limit = 2 * _TAIL

    def value(self) -> bytes:
        return bytes(self.data if self.complete else self.data[-_TAIL:])


# Supervision: escapers, orphans and the watchdog -------------------------------------------

TRACKING = "DRAWER_TRACKING_ID"
"""Every command's environment has TRACKING=PREFIX+N, N its own number: a command's
descendants inherit it, so that a process that left the command's group (setsid, a daemon)
is still known as the command's (GitHub's runner tags processes with RUNNER_TRACKING_ID)."""
_PR_SET_CHILD_SUBREAPER = 36
_F_SETPIPE_SZ = 1031
_RANGE_SCAN = 512
"""Beyond this many pids allocated since a command started, scan all of /proc instead."""
_SETTLE_SECONDS = 1.0
_FIRST_RESWEEP = 0.01


def _stat(pid: int) -> tuple[bytes, int, int, int] | None:
    """(state, ppid, pgid, sid) of a process or thread, from /proc; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


class _Supervisor:
    """What one drawer process started, and what it has to end besides its commands' groups.

    During a run drawer is a child subreaper (Linux): a process whose parent exits is given
    to drawer instead of to init. So a command's descendant that escaped its process group
    (`setsid`, a daemon's double fork) becomes drawer's child when its parent exits, and is
    found, known by its TRACKING variable (or by holding the command's output pipe), and
    ended with the command: when the command ends, times out or is cancelled. Whatever is
    still adopted at the end of the run is ended then. The watchdog (watchdog.py) does the
    same for every group and tagged process after drawer's own death.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sid = os.getsid(0)
        import secrets

        inherited = os.environ.get(TRACKING)
        self.prefix = f"{inherited or secrets.token_hex(4)}/{self.pid}."
        self.numbers = iter(range(1, sys.maxsize))
        self.live: set[int] = set()
        """Children started here and not reaped yet (commands' leaders, the watchdog)."""
        self.doomed: set[int] = set()
        """Adopted processes signalled and not reaped yet."""
        self.depth = 0
        self.lock = threading.RLock()
        """Held while a command is started and recorded in `live`, while adopted processes are
        looked for, and while runs begin and end: the Dask executor runs chunks in threads of
        this process, and a sweep must not take another thread's new leader (a zombie not yet
        in `live`) for an orphan and reap it."""
        self.subreaper = False
        self.watchdog_fd = -1
        self.watchdog_pid = 0
        self.unsent = b""
        self.children_file = f"/proc/{self.pid}/task/{self.pid}/children"
        self.has_children_file = os.path.exists(self.children_file)

    # the run -----------------------------------------------------------------------------

    def begin(self, directory: str, grace: float) -> None:
        with self.lock:
            self._begin(directory, grace)

    def _begin(self, directory: str, grace: float) -> None:
        self.depth += 1
        if os.environ.get("DRAWER_SUPERVISE") == "off":  # for benchmarks and odd sandboxes
            return
        if self.depth == 1 and sys.platform == "linux":
            self.subreaper = _set_subreaper(True)
        if self.watchdog_fd < 0 and self.watchdog_pid == 0:
            self._start_watchdog(grace)
        self.send(_directory_line(b"d", directory))

    def end(self, directory: str) -> None:
        with self.lock:
            self._end(directory)

    def _end(self, directory: str) -> None:
        self.depth -= 1
        self.send(_directory_line(b"u", directory))
        if self.depth == 0:
            self.end_adopted(None, signal.SIGKILL, None)
            self.reap_doomed(block=True)
            if self.subreaper:
                self.subreaper = not _set_subreaper(False)

    # commands ----------------------------------------------------------------------------

    def tag(self) -> str:
        return f"{self.prefix}{next(self.numbers)}"

    def started(self, pid: int) -> None:
        self.live.add(pid)
        self.send(b"g %d\n" % pid)

    def reaped(self, pid: int) -> None:
        self.live.discard(pid)
        self.send(b"e %d\n" % pid)

    def end_adopted(
        self,
        tag: str | None,
        signum: int,
        since: int | None,
        pipes: Callable[[], set[int]] | None = None,
    ) -> set[int]:
        """Signal the processes drawer adopted that belong to the command tagged `tag` (all of
        them when None); reap those that have exited. `since` is the command leader's pid
        (every descendant's pid is larger, modulo wrapping). Returns the pids it signalled."""
        if not self.subreaper:
            return set()
        with self.lock:
            return self._end_adopted(tag, signum, since, pipes)

    def _end_adopted(
        self,
        tag: str | None,
        signum: int,
        since: int | None,
        pipes: Callable[[], set[int]] | None,
    ) -> set[int]:
        needle = None if tag is None else f"\0{TRACKING}={tag}\0".encode()
        signalled: set[int] = set()
        for pid in self._candidates(since):
            if pid in self.live:
                continue
            stat = _stat(pid)
            if stat is None:
                continue
            state, ppid, pgid, sid = stat
            if ppid != self.pid or sid == self.sid:
                continue  # not adopted, or not from a command (commands lead new sessions)
            if state in (b"Z", b"X"):
                self._reap(pid)
                continue
            if needle is not None and not _belongs(pid, needle, pipes):
                continue
            with contextlib.suppress(OSError):
                if pgid == pid:
                    os.killpg(pid, signum)
                os.kill(pid, signum)
            self.doomed.add(pid)
            signalled.add(pid)
        self.reap_doomed(block=False)
        return signalled

    def reap_doomed(self, *, block: bool) -> None:
        """Reap the adopted processes signalled so far; with block, wait (up to a second)."""
        deadline = time.monotonic() + _SETTLE_SECONDS
        for pid in list(self.doomed):
            while not self._reap(pid) and block:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)

    def _reap(self, pid: int) -> bool:
        """Reap an adopted child if it has exited; True when it is gone."""
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid  # not a child (a thread's id), or already reaped
        if done:
            self.doomed.discard(pid)
        return bool(done)

    def _candidates(self, since: int | None) -> list[int]:
        if self.has_children_file:
            try:
                with open(self.children_file, "rb") as file:
                    return [int(pid) for pid in file.read().split()]
            except OSError:
                pass
        if since is not None:
            try:
                with open("/proc/sys/kernel/ns_last_pid", "rb") as file:
                    last = int(file.read())
            except (OSError, ValueError):
                last = -1
            if since <= last <= since + _RANGE_SCAN:
                return list(range(since + 1, last + 1))
        try:
            return [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return []

    # the watchdog ------------------------------------------------------------------------

    def _start_watchdog(self, grace: float) -> None:
        from drawer import watchdog

        read, write = os.pipe()  # both close-on-exec: no command inherits either end
        argv = [sys.executable, "-I", "-S", watchdog.__file__, self.prefix, f"{grace:g}"]
        actions = [
            (os.POSIX_SPAWN_DUP2, read, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        spawn = functools.partial(os.posix_spawn, sys.executable, argv, {}, file_actions=actions)
        try:
            try:
                self.watchdog_pid = spawn(setsid=True, setsigdef=_DEFAULT_SIGNALS)
            except NotImplementedError:
                # No POSIX_SPAWN_SETSID (macOS before 10.15, some BSDs): a process group of
                # its own keeps the terminal's Ctrl-C away from it; it ignores the rest.
                self.watchdog_pid = spawn(setpgroup=0, setsigdef=_DEFAULT_SIGNALS)
        except (OSError, NotImplementedError):
            os.close(write)
            self.watchdog_pid = -1  # runs go on without it; not tried again
            return
        finally:
            os.close(read)
        os.set_blocking(write, False)
        if sys.platform == "linux":  # read once a second: room for ~100,000 commands' lines
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.fcntl(write, _F_SETPIPE_SZ, 1 << 20)
        self.watchdog_fd = write
        self.live.add(self.watchdog_pid)
        import atexit

        atexit.register(self.stop_watchdog)

    def send(self, line: bytes) -> None:
        """Tell the watchdog a fact; never blocks (what does not fit waits for the next)."""
        if self.watchdog_fd < 0:
            return
        data = self.unsent + line if self.unsent else line
        try:
            written = os.write(self.watchdog_fd, data)
        except BlockingIOError:
            written = 0
        except OSError:  # the watchdog is gone: go on without it
            os.close(self.watchdog_fd)
            self.watchdog_fd, self.unsent = -1, b""
            return
        self.unsent = data[written:]

    def stop_watchdog(self) -> None:
        """At drawer's normal exit: tell the watchdog there is nothing to do and reap it."""
        if self.watchdog_fd < 0 or os.getpid() != self.pid:
            return
        os.set_blocking(self.watchdog_fd, True)
        with contextlib.suppress(OSError):
            os.write(self.watchdog_fd, self.unsent + b"q\n")
        os.close(self.watchdog_fd)
        self.watchdog_fd = -1
        self.doomed.add(self.watchdog_pid)
        self.reap_doomed(block=True)
        self.live.discard(self.watchdog_pid)


def _directory_line(what: bytes, directory: str) -> bytes:
    """A watchdog line naming a directory: hex, so that no byte of a path can end it."""
    return what + b" " + os.fsencode(directory).hex().encode() + b"\n"


def _belongs(pid: int, needle: bytes, pipes: Callable[[], set[int]] | None) -> bool:
    """Whether process `pid` carries the command's tag, or holds one of its output pipes."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            if needle in b"\0" + file.read():
                return True
    except OSError:
        pass
    if pipes is None:
        return False
    held = {f"pipe:[{inode}]" for inode in pipes()}
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in held:
                    return True
    except OSError:
        pass
    return False


def _set_subreaper(on: bool) -> bool:
    """PR_SET_CHILD_SUBREAPER (Linux 3.4); False when it could not be set."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


_supervisors: dict[int, _Supervisor] = {}


def _supervisor() -> _Supervisor:
    """This process's supervisor (a new one in a forked or spawned child)."""
    pid = os.getpid()
    supervisor = _supervisors.get(pid)
    if supervisor is None:
        supervisor = _supervisors[pid] = _Supervisor()
    return supervisor


@contextlib.contextmanager
def supervise(directory: str, grace: float = 5.0) -> Iterator[None]:
    """Around a run: drawer adopts what its commands orphan, ends it with them and at the
    end; the watchdog removes `directory` and ends every command if drawer dies."""
    supervisor = _supervisor()
    supervisor.begin(directory, grace)
    try:
        yield
    finally:
        supervisor.end(directory)


@functools.cache
def _use_pidfd() -> bool:
    """Whether to use the Linux implementation: see the module docstring."""
    if os.environ.get("DRAWER_PROCS") == "portable":
        return False
    if not (hasattr(os, "pidfd_open") and hasattr(select, "epoll")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # ENOSYS before Linux 5.3, EPERM under some seccomp filters
        return False
    return True


def _find_executable(name: str, search_path: str) -> str:
    """Resolve `name` along `search_path` like execvp does."""
    for directory in search_path.split(":"):
        path = f"{directory or '.'}/{name}"
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    raise FileNotFoundError(2, "command not found", name)


def _spawn_error(spec: CommandSpec, exc: OSError) -> CommandResult:
    """Describe a command or cwd that could not be used."""
    if spec.cwd is not None and exc.filename == spec.cwd:
        what = {
            FileNotFoundError: "cwd does not exist",
            NotADirectoryError: "cwd is not a directory",
        }.get(type(exc), "cwd is not accessible")
        message = f"{what}: {spec.cwd}"
    elif isinstance(exc, PermissionError):
        message = f"permission denied: {spec.argv[0]}"
    else:
        message = f"command not found: {spec.argv[0]}"
    return CommandResult(
        exit_code=None,
        stdout=b"",
        stdout_complete=True,
        stderr=b"",
        stderr_truncated=False,
        not_found=True,
        error=message,
    )


async def _wait_for_exit(pid: int, exited: trio.Event) -> None:
    """Set `exited` once child `pid` has exited, leaving it unreaped; runs as a system task.

    kqueue where trio uses it (macOS, the BSDs), elsewhere waitid(WNOWAIT) in a thread.
    """
    try:
        # An error (ESRCH: already gone) ends the wait too; waitpid then reaps or says why.
        with contextlib.suppress(OSError):
            if sys.platform != "linux" and not hasattr(select, "epoll"):
                kqueue = trio.lowlevel.current_kqueue()

                def event(flags: int) -> select.kevent:
                    return select.kevent(pid, select.KQ_FILTER_PROC, flags, select.KQ_NOTE_EXIT)

                def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
                    kqueue.control([event(select.KQ_EV_DELETE)], 0)
                    return trio.lowlevel.Abort.SUCCEEDED

                kqueue.control([event(select.KQ_EV_ADD | select.KQ_EV_ONESHOT)], 0)
                await trio.lowlevel.wait_kevent(pid, select.KQ_FILTER_PROC, abort)
            else:
                await trio.to_thread.run_sync(
                    os.waitid,
                    os.P_PID,
                    pid,
                    os.WEXITED | os.WNOWAIT,
                    abandon_on_cancel=True,
                    limiter=_WAITERS,
                )
    finally:
        exited.set()


class _Child:
    """A started process group and the parent's ends of its pipes, driven by the caller's task.

    This is the portable implementation; _PidfdChild changes how the command is started, how
    its exit is noticed and how readiness is awaited.
    """

    def __init__(self, spec: CommandSpec) -> None:
        self.exit_code: int | None = None
        self.leader_exited = False
        self.supervisor = _supervisor()
        self.tag = self.supervisor.tag()
        self.env = {**spec.env, TRACKING: self.tag}
        self.resweep = _FIRST_RESWEEP
        self.stdin_fd = -1
        self.stdin_data = memoryview(spec.stdin or b"")
        self.stdout = _Buffer(_OUTPUT_LIMIT)
        self.stderr = _Buffer(_OUTPUT_LIMIT)
        self.streams: dict[int, tuple[str, _Buffer]] = {}
        child_ends: list[int] = []  # closed here as soon as the child has them
        try:
            out_read, out_write = os.pipe()
            self.streams[out_read] = ("stdout", self.stdout)
            child_ends.append(out_write)
            err_read, err_write = os.pipe()
            self.streams[err_read] = ("stderr", self.stderr)
            child_ends.append(err_write)
            in_read = None
            if spec.stdin is not None:
                in_read, self.stdin_fd = os.pipe()
                child_ends.append(in_read)
            with self.supervisor.lock:
                self.pid, self.popen = self._start(spec, in_read, out_write, err_write)
                self.supervisor.started(self.pid)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        try:
            self._watch()
        except BaseException:
            self._signal_group(signal.SIGKILL)
            self._reap()
            self.close()
            raise
        if self.stdin_fd >= 0:
            os.set_blocking(self.stdin_fd, False)
            self._write_stdin()

    async def pump(self, on_output: OutputCallback | None, *, kill_on_exit: bool) -> None:
        """Feed stdin and collect output until the leader has exited and both pipes are at EOF.

        With kill_on_exit the rest of the group is killed (and the leader reaped) as soon as the
        leader exits; otherwise the leader is left a zombie, which keeps its pgid reserved.
        """
        while self.streams or not self.leader_exited:
            for fd in await self._ready_or_resweep(kill_on_exit):
                if fd == _LEADER:
                    self.leader_exited = True
                    if kill_on_exit:
                        self._signal_group(signal.SIGKILL)
                        self._reap()
                        await self._settle()
                    else:  # terminating: what it orphaned gets the SIGTERM too
                        self._end_adopted(signal.SIGTERM)
                elif fd == self.stdin_fd:
                    self._write_stdin()
                else:
                    self._read(fd, on_output)

    async def terminate(
        self, on_output: OutputCallback | None, grace: float, kill_now: trio.Event | None
    ) -> None:
        """SIGTERM the group, give it `grace` seconds (or until kill_now) to end, then SIGKILL."""
        if self.exit_code is not None:
            return  # already reaped, and the rest of its group killed
        self._signal_group(signal.SIGTERM)
        self._end_adopted(signal.SIGTERM)
        try:
            with trio.move_on_after(grace):
                if kill_now is None:
                    await self.pump(on_output, kill_on_exit=False)
                else:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_cancel_when_set, kill_now, nursery.cancel_scope)
                        await self.pump(on_output, kill_on_exit=False)
                        nursery.cancel_scope.cancel()
        finally:
            self._signal_group(signal.SIGKILL)
            if not self.leader_exited:
                await self._leader_exit()
            self._reap()
            await self._settle()

    async def _ready_or_resweep(self, kill_on_exit: bool) -> list[int]:
        """_ready; but once the leader has exited, the pipes may be held open only by what
        escaped its group: then that is looked for again at growing intervals and ended."""
        if not (self.leader_exited and self.supervisor.subreaper):
            return await self._ready()
        with trio.move_on_after(self.resweep):
            return await self._ready()
        self.resweep = min(self.resweep * 2, 1.0)
        self._end_adopted(signal.SIGKILL if kill_on_exit else signal.SIGTERM)
        return []

    def _end_adopted(self, signum: int) -> set[int]:
        return self.supervisor.end_adopted(self.tag, signum, self.pid, self._pipes)

    def _pipes(self) -> set[int]:
        return {os.fstat(fd).st_ino for fd in self.streams}

    async def _settle(self) -> None:
        """After the leader is reaped and its group killed: end what escaped the group, until
        the group is gone (its members' orphans are adopted as they die) and what was ended
        is reaped, so that none of it is left when the next step starts; a second at most.
        """
        supervisor = self.supervisor
        if not supervisor.subreaper:
            return
        delay = 0.001
        deadline = trio.current_time() + _SETTLE_SECONDS
        ended: set[int] = set()
        while True:
            try:
                os.killpg(self.pid, 0)
                gone = False
            except OSError:  # ESRCH: the group is gone (EPERM: what is left is not ours)
                gone = True
            # Looked for after the group is seen gone, the last members' orphans are found too.
            ended |= self._end_adopted(signal.SIGKILL)
            if gone and not ended & supervisor.doomed:
                return
            if trio.current_time() > deadline:
                return
            await trio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def result(self) -> CommandResult:
        return CommandResult(
            exit_code=self.exit_code,
            stdout=self.stdout.value(),
            stdout_complete=self.stdout.complete,
            stderr=self.stderr.value(),
            stderr_truncated=not self.stderr.complete,
            pid=self.pid,
        )

    def close(self) -> None:
        for fd in (*self.streams, self.stdin_fd):
            if fd >= 0:
                os.close(fd)

    def _start(
        self, spec: CommandSpec, stdin_fd: int | None, out_fd: int, err_fd: int
    ) -> tuple[int, subprocess.Popen[bytes] | None]:
        """Start the command as a session leader with the given fds as 0, 1 and 2.

        The Popen object is returned so that _reap can mark it reaped. restore_signals (the
        default) gives the command the default SIGPIPE and SIGXFSZ.
        """
        popen = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL if stdin_fd is None else stdin_fd,
            stdout=out_fd,
            stderr=err_fd,
            close_fds=False,
            cwd=spec.cwd,
            env=self.env,
            start_new_session=True,
        )
        return popen.pid, popen

    def _watch(self) -> None:
        """Start watching for the leader's exit."""
        self.exited = trio.Event()
        trio.lowlevel.spawn_system_task(_wait_for_exit, self.pid, self.exited)

    async def _leader_exit(self) -> None:
        await self.exited.wait()

    async def _ready(self) -> list[int]:
        """Wait, as on an epoll set, until some fds are ready or the leader has exited (_LEADER).

        One short-lived task per fd; the first one ready cancels the others. Otherwise only a
        cancellation ends them, which is raised plain rather than as a group, as on Linux.
        """
        ready: list[int] = []

        async def note(fd: int, wait: Callable[[int], Awaitable[object]]) -> None:
            await wait(fd)
            ready.append(fd)
            nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                for fd in self.streams:
                    nursery.start_soon(note, fd, trio.lowlevel.wait_readable)
                if self.stdin_fd >= 0:
                    nursery.start_soon(note, self.stdin_fd, trio.lowlevel.wait_writable)
                if not self.leader_exited:
                    nursery.start_soon(note, _LEADER, lambda _: self._leader_exit())
        except BaseExceptionGroup:
            await trio.lowlevel.checkpoint_if_cancelled()
            raise
        return ready

    def _read(self, fd: int, on_output: OutputCallback | None) -> None:
        # The fd stays blocking: it was reported readable, so this read cannot block.
        data = os.read(fd, _CHUNK)
        name, buffer = self.streams[fd]
        if not data:
            del self.streams[fd]
            self._forget(fd)
            return
        buffer.add(data)
        if on_output is not None:
            on_output(name, data)

    def _write_stdin(self) -> None:
        try:
            written = os.write(self.stdin_fd, self.stdin_data)
        except BlockingIOError:
            return
        except BrokenPipeError:
            written = len(self.stdin_data)
        self.stdin_data = self.stdin_data[written:]
        if not self.stdin_data:
            self._forget(self.stdin_fd)
            self.stdin_fd = -1

    def _forget(self, fd: int) -> None:
        # No task waits on it outside _ready, so trio holds no registration for it.
        os.close(fd)

    def _signal_group(self, signum: int) -> None:
        # Only called while the leader is unreaped, so its pid cannot name another group. EPERM:
        # all that is left of the group runs as another user (setuid), which drawer cannot signal.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _reap(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self.supervisor.reaped(self.pid)
        code = os.waitstatus_to_exitcode(status)
        self.exit_code = code if code >= 0 else 128 - code
        if self.popen is not None:
            self.popen.returncode = code  # so that subprocess never waits for this pid itself


class _PidfdChild(_Child):
    """The Linux implementation: posix_spawn, and a pidfd and the pipes in a private epoll set."""

    def __init__(self, spec: CommandSpec) -> None:
        self.pidfd = -1
        self.poller = select.epoll()
        super().__init__(spec)

    def close(self) -> None:
        super().close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
        self.poller.close()

    def _start(
        self, spec: CommandSpec, stdin_fd: int | None, out_fd: int, err_fd: int
    ) -> tuple[int, subprocess.Popen[bytes] | None]:
        """posix_spawn (vfork + exec in glibc) is the cheapest way to start a process from Python,
        but it cannot change directory: commands with a cwd are started the portable way.
        """
        if spec.cwd is not None:
            return super()._start(spec, stdin_fd, out_fd, err_fd)
        actions: list[tuple[int, int, int] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, err_fd, 2),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
            if stdin_fd is None
            else (os.POSIX_SPAWN_DUP2, stdin_fd, 0),
        ]
        executable = spec.argv[0]
        search_path = self.env.get("PATH", os.defpath)
        if "/" not in executable and search_path != os.environ.get("PATH", os.defpath):
            executable = _find_executable(executable, search_path)
        # posix_spawnp searches drawer's own PATH (in the vfork child, cheaper than doing it
        # here), which is only right when the command's PATH is the same.
        pid = os.posix_spawnp(
            executable,
            spec.argv,
            self.env,
            file_actions=actions,
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
        )
        return pid, None

    def _watch(self) -> None:
        self.pidfd = os.pidfd_open(self.pid)
        self.poller.register(self.pidfd, select.EPOLLIN)
        for fd in self.streams:
            self.poller.register(fd, select.EPOLLIN)
        if self.stdin_fd >= 0:
            self.poller.register(self.stdin_fd, select.EPOLLOUT)

    async def _leader_exit(self) -> None:
        await trio.lowlevel.wait_readable(self.pidfd)

    async def _ready(self) -> list[int]:
        await trio.lowlevel.wait_readable(self.poller.fileno())
        ready = [_LEADER if fd == self.pidfd else fd for fd, _ in self.poller.poll(0)]
        if _LEADER in ready:
            self._forget(self.pidfd)
            self.pidfd = -1
            # Noted here, not only in pump: if an output callback raises before pump sees
            # _LEADER, terminate must not wait on the pidfd that is gone.
            self.leader_exited = True
        return ready

    def _forget(self, fd: int) -> None:
        # Unregister explicitly: a child being spawned at this moment may still hold a copy of
        # the fd (until its exec closes it), and then close() alone leaves it in the epoll set.
        self.poller.unregister(fd)
        os.close(fd)


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def run_command(
    spec: CommandSpec,
    *,
    on_output: OutputCallback | None = None,
    on_started: Callable[[int], None] | None = None,
    grace: float = 5.0,
    kill_now: trio.Event | None = None,
) -> CommandResult:
    """Run one command in its own process group and wait for it; terminate the group on cancel.

    on_output gets every chunk as read ("stdout"/"stderr", bytes); on_started gets the pid. On
    cancellation (or an exception from a callback) the group gets SIGTERM, then SIGKILL after
    `grace` seconds or as soon as kill_now is set; this cleanup is shielded, then the exception
    propagates. Processes still in the group when the leader exits are killed.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        child = (_PidfdChild if _use_pidfd() else _Child)(spec)
    except _SPAWN_ERRORS as exc:
        await trio.lowlevel.cancel_shielded_checkpoint()
        return _spawn_error(spec, exc)
    try:
        if on_started is not None:
            on_started(child.pid)
        await child.pump(on_output, kill_on_exit=True)
    except BaseException:
        with trio.CancelScope(shield=True):
            await child.terminate(on_output, grace, kill_now)
        raise
    finally:
        child.close()
    return child.result()
