"""Lines of text: one rule for a command's `output.lines` and a `{file: ..., format: lines}` or
`jsonl` loop, so what is counted is what is read. Lines are split on `\\n` only, a trailing
`\\r` is dropped (CRLF files read as LF ones), and a blank line (nothing but whitespace, as
`str.isspace` has it: NBSP and `\\x1c` too) is no line at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def decode_text(data: bytes) -> str:
    """UTF-8 with replacement (U+FFFD), a leading BOM dropped."""
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def kept_line(line: str) -> str | None:
    """A line split off at `\\n`, without its trailing `\\r`; None when it is blank."""
    text = line.removesuffix("\r")
    return text if text.strip() else None


def text_lines(text: str) -> list[str]:
    """The lines of a text that are not blank."""
    return [kept for line in text.split("\n") if (kept := kept_line(line)) is not None]


def file_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a file that are not blank, with their line numbers, read lazily."""
    with path.open("rb") as handle:  # a binary file splits on b"\n" only
        for number, raw in enumerate(handle, 1):
            line = raw.removesuffix(b"\n")
            text = decode_text(line) if number == 1 else line.decode("utf-8", errors="replace")
            kept = kept_line(text)
            if kept is not None:
                yield number, kept
