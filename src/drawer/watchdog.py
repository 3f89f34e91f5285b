"""drawer's watchdog: ends what drawer started once drawer is gone, however it went (`kill -9`).

procs.py starts one per drawer process, the first time a run starts: `python -I -S
watchdog.py PREFIX GRACE`, in a session of its own (no signal meant for drawer's terminal
reaches it), with an empty environment, and with its stdin the read end of a pipe whose only
write end drawer holds (close-on-exec: no command inherits it). drawer writes one line per
fact:

    g PGID   a command's process group started     e PGID   it ended, its leader reaped
    d HEX    a directory to remove if drawer dies  u HEX    drawer removed it itself
    q        drawer is exiting normally: nothing to do

At end of file without `q`, drawer has died: the watchdog sends SIGTERM to every group still
open and to every process whose environment carries `DRAWER_TRACKING_ID=PREFIX...` (a
command that left its group, or a command's descendant: drawer gives each command the
variable), waits up to GRACE seconds for them to end, SIGKILLs what is left, removes the
directories (the run's temporary files, secrets among them), and exits.

It uses only the standard library, so that it starts in about 10 ms; then it sleeps in poll(),
woken by the pipe's closing and once a second to read what drawer wrote.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

TRACKING = b"DRAWER_TRACKING_ID="


def _processes(groups: set[int], needle: bytes) -> list[tuple[int, int]]:
    """(pid, pgid) of every live process in one of `groups` or whose environment has a
    variable starting with `needle`; empty where there is no /proc."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    me = os.getpid()
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X"):
                continue  # exited: nothing left to end
            pgid = int(fields[2])
            if pgid not in groups:
                with open(f"/proc/{name}/environ", "rb") as file:
                    if needle not in b"\0" + file.read():
                        continue
        except (OSError, IndexError, ValueError):
            continue  # gone, or another user's
        found.append((int(name), pgid))
    return found


def _signal(groups: set[int], processes: list[tuple[int, int]], signum: int) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signum)
    for pid, pgid in processes:
        try:
            if pgid == pid:
                os.killpg(pid, signum)
            os.kill(pid, signum)
        except OSError:
            pass


def _remove(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    prefix, grace = argv[1].encode(), float(argv[2])
    groups: set[int] = set()
    directories: set[str] = set()
    pending = b""
    # Asking poll for no event but the hangup that every poll reports means that drawer's
    # writes wake nobody (a wake-up per write cost ~100 us of drawer's time per command on a
    # busy 2-core machine); what drawer wrote is read once a second, and all of it at the end.
    os.set_blocking(0, False)
    poller = select.poll()
    poller.register(0, 0)
    ended = False
    while not ended:
        poller.poll(1000)
        while True:
            try:
                chunk = os.read(0, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                ended = True
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                what, _, value = line.partition(b" ")
                if what == b"g":
                    groups.add(int(value))
                elif what == b"e":
                    groups.discard(int(value))
                elif what in (b"d", b"u"):
                    path = bytes.fromhex(value.decode()).decode("utf-8", "surrogateescape")
                    if what == b"d":
                        directories.add(path)
                    else:
                        directories.discard(path)
                elif what == b"q":
                    return 0
    needle = b"\0" + TRACKING + prefix
    processes = _processes(groups, needle)
    _signal(groups, processes, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while processes and time.monotonic() < deadline:
        time.sleep(0.05)
        processes = _processes(groups, needle)
    _signal(groups, _processes(groups, needle), signal.SIGKILL)
    for directory in directories:
        _remove(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
