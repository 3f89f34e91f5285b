"""`{glob: PATTERN}` items: the files a pattern matches, as bash's globstar and `find` see them.

`**` matches zero or more directories and never descends into a symlink to a directory, so
a symlink loop cannot make it endless and a tree linked twice is not listed twice. Every
other part of the pattern follows symlinks as usual: `docs/*/index.md` looks inside a
linked `docs/latest`, `current/**/*.txt` walks the tree a `current` link points to, and a
symlink to a file is matched like a file.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

_MAGIC = re.compile(r"[*?\[]")


def glob_files(pattern: str, root: Path) -> list[str]:
    """The files (symlinks to files included) `pattern` matches under `root`, sorted, each
    once: relative to `root` as the pattern is, absolute when the pattern is. A wildcard
    matches a name that starts with `.` only when its own part starts with `.` (`**` never
    enters a hidden directory), as bash without dotglob: `./src/**` is `src/**`."""
    absolute = pattern.startswith("/")
    parts = [part for part in pattern.split("/") if part]
    start = "/" if absolute else ""
    found = {path for path in _expand(start, parts, root) if path and (root / path).is_file()}
    return sorted(found)


def _expand(prefix: str, parts: list[str], root: Path) -> Iterator[str]:
    """Every existing path that `prefix` followed by `parts` matches."""
    if not parts:
        yield prefix
        return
    part, rest = parts[0], parts[1:]
    if part == "**":  # last, it matches the files below too: `**/*`
        for directory in _walk(prefix, root):
            yield from _expand(directory, rest or ["*"], root)
        return
    if not _MAGIC.search(part):
        path = _join(prefix, part)
        if os.path.lexists(root / path if path else root):
            yield from _expand(path, rest, root)
        return
    matches = _compiled(part).match
    show_hidden = part.startswith(".")
    for name in sorted(_names(root / prefix if prefix else root)):
        if matches(name) and (show_hidden or not name.startswith(".")):
            yield from _expand(_join(prefix, name), rest, root)


def _walk(prefix: str, root: Path) -> Iterator[str]:
    """`prefix` (when it is a directory) and every directory below it, not entering
    symlinks to directories."""
    if not (root / prefix if prefix else root).is_dir():
        return
    pending = [prefix]
    while pending:
        directory = pending.pop()
        yield directory
        try:
            with os.scandir(root / directory if directory else root) as entries:
                below = [
                    _join(directory, entry.name)
                    for entry in entries
                    if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)
                ]
        except OSError:  # not a directory, unreadable, or gone meanwhile
            continue
        pending.extend(sorted(below, reverse=True))


def _names(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _join(prefix: str, name: str) -> str:
    if not prefix:
        return name
    return prefix + name if prefix.endswith("/") else f"{prefix}/{name}"


@cache
def _compiled(part: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(part))
