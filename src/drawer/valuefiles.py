"""Files a command reads or writes by path: a value too large for its environment, and its
`$DRAWER_OUTPUT`. Either may hold a secret, so none of them outlives its command.

On Linux each is a memory file (memfd_create) that never reaches a disk, named to the command
by `/proc/<drawer's pid>/fd/<n>`: any process of the same user opens it by that path, and a
descendant needs no inherited fd (a program that closes every fd before it spawns a child
still works). The fd is close-on-exec, so no other command, started at the same moment or
later, holds it. Elsewhere, or where /proc cannot name one, each is a file in the run's temp
dir (mode 0600, in a 0700 dir), and nowhere else, so that what removes that dir removes
them. Both end when the command's `CommandFiles` is closed, on every exit path (an exception,
a cancellation); a memory file is freed, whatever killed drawer, once no process holds it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from pathlib import Path
from types import TracebackType

_counter = itertools.count(1)


@functools.cache
def memory_files() -> bool:
    """True when a memfd can be created and reopened by its /proc path (probed once)."""
    if not hasattr(os, "memfd_create"):
        return False
    try:
        fd = os.memfd_create("drawer-probe", os.MFD_CLOEXEC)
    except OSError:
        return False
    try:
        os.write(fd, b"x")
        with open(_proc_path(fd), "rb") as reopened:
            return reopened.read() == b"x"
    except OSError:
        return False
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _proc_path(fd: int) -> str:
    return f"/proc/{os.getpid()}/fd/{fd}"


class CommandFiles:
    """The files of one command; a context manager that ends them all."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.fds: dict[str, int] = {}
        """Memory files by the path given to the command."""
        self.paths: list[Path] = []
        """Files in the temp dir, where memory files cannot be used."""

    def __enter__(self) -> CommandFiles:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def holding(self, name: str, data: bytes) -> str:
        """A new file holding `data`; its path."""
        if memory_files():
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
            path = _proc_path(fd)
            self.fds[path] = fd
            _write_all(fd, data)
            return path
        file = self.tmpdir / f"{name}-{next(_counter)}"
        self.paths.append(file)
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(descriptor, data)
        finally:
            os.close(descriptor)
        return str(file)

    def read(self, path: str) -> bytes:
        """What the file at `path` (one of these) holds now; nothing when it is gone."""
        fd = self.fds.get(path)
        if fd is None:
            try:
                return Path(path).read_bytes()
            except FileNotFoundError:
                return b""
        size = os.fstat(fd).st_size
        chunks = []
        offset = 0
        while offset < size:
            chunk = os.pread(fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)
        paths, self.paths = self.paths, []
        for file in paths:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
