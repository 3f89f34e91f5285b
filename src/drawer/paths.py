"""Step paths, the one grammar: `lint[3].ruff`, `tries#2.probe`, `block.g1.x`.

A path joins step ids with `.`; an iteration adds its number to its loop's id, `[N]` for a
`for_each` item and `#N` for a `repeat` try. Reporters, the store, resume and the GitHub
summary read paths only through these functions, so a new mark cannot be known to some of
them and not to others (the plain reporter once knew `[` but not `#`).
"""

from __future__ import annotations

import re

_MARK = re.compile(r"\[\d+\]|#\d+")
_ENDS_WITH_MARK = re.compile(r"(?:\[\d+\]|#\d+)$")
_PARENT = re.compile(r"^(.+?)(?:\[\d+\]|#\d+|\.[^.\[\]#]+)$")


def in_iteration(path: str) -> bool:
    """Whether the path is an iteration or lies inside one (`lint[3]`, `tries#2.probe`).

    >>> [in_iteration(p) for p in ("lint", "lint[3].ruff", "tries#2.probe", "block.g1.x")]
    [False, True, True, False]
    """
    return "[" in path or "#" in path


def is_iteration(path: str) -> bool:
    """Whether the path names an iteration itself (`lint[3]`, `tries#2`), not a step.

    >>> [is_iteration(p) for p in ("lint[3]", "tries#2", "lint[3].ruff")]
    [True, True, False]
    """
    return _ENDS_WITH_MARK.search(path) is not None


def definition_path(path: str) -> str:
    """The path without its iteration numbers: the path of the step's definition in the file.

    >>> definition_path("lint[3].ruff"), definition_path("outer[0].tries#2.probe")
    ('lint.ruff', 'outer.tries.probe')
    """
    return _MARK.sub("", path) if in_iteration(path) else path


def parent(path: str) -> str | None:
    """The step or iteration that holds the path; None at the top level.

    >>> parent("lint[3].ruff"), parent("lint[3]"), parent("tries#2"), parent("lint")
    ('lint[3]', 'lint', 'tries', None)
    """
    match = _PARENT.match(path)
    return match.group(1) if match else None
