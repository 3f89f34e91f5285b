"""What a run produces: step records, iteration records and errors (SPEC 3.2)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

OK, FAILED, SKIPPED, CANCELLED, RUNNING, PENDING = (
    "ok", "failed", "skipped", "cancelled", "running", "pending",
)  # fmt: skip

ERROR_CODES = (
    "INVALID_DRAWER", "INPUT_INVALID", "STEP_FAILED", "TIMEOUT", "COMMAND_NOT_FOUND",
    "REF_UNRESOLVED", "EXPR_ERROR", "FOREACH_NOT_A_LIST", "FOREACH_ITEM_FAILED",
    "PARALLEL_BRANCH_FAILED", "REPEAT_EXHAUSTED", "SUBDRAWER_FAILED", "DEPENDENCY_FAILED",
    "CANCELLED", "RUN_TIMEOUT", "VALUE_TOO_LARGE", "OUTPUT_TOO_LARGE", "STORE_ERROR",
    "SHARD_MISSING", "SHARD_DEFERRED", "VALUE_NOT_TEXT",
)  # fmt: skip


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def json_text(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = (",", ":"),
) -> str:
    """`value` as JSON that is always valid UTF-8: the text of every record, document and
    output drawer writes. A lone surrogate (an undecodable byte of a file name, an `-i` value
    or the environment, or a `\\ud800` escape in JSON read by a step) is written as a
    `\\uXXXX` escape, which reads back as the same string; everything else as it is."""
    if indent is None and not sort_keys and separators == (",", ":"):
        text = _compact(value)  # the store's hot path: one encoder, made once
    else:
        text = json.dumps(
            value, ensure_ascii=False, indent=indent, sort_keys=sort_keys, separators=separators
        )
    return escape_surrogates(text)


def escape_surrogates(text: str) -> str:
    """JSON text with its lone surrogates (only ever inside strings) written as escapes."""
    if text.isascii() or not _LONE_SURROGATE.search(text):
        return text
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def holds_surrogate(value: Any) -> bool:
    """Whether a string anywhere in plain JSON data holds a lone surrogate."""
    if isinstance(value, str):
        return not value.isascii() and _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(holds_surrogate(key) or holds_surrogate(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_surrogate(item) for item in value)
    return False


def replace_surrogates(value: Any) -> Any:
    """Plain JSON data with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replace_surrogates(key): replace_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [replace_surrogates(item) for item in value]
    return value


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_rfc3339(text: Any) -> float | None:
    """The timestamp `rfc3339` wrote, or None."""
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def document_problem(document: Any) -> str | None:
    """Where `document` is not a run document as drawer writes it (SPEC 3.2), or None.

    Checked before a document is read back (`merge`, `run --resume RUN_DOC.json`), so that a
    hand-edited, truncated or foreign JSON file is refused naming its first odd field rather
    than failing half-way through. Step records are checked at every depth drawer's readers
    go: the records in the `steps` of each entry of an output's `results` list."""
    if not isinstance(document, dict):
        return f"it is a JSON {_json_kind(document)}, not an object"
    if not isinstance(document.get("steps"), dict) or not isinstance(document.get("run_id"), str):
        return "it has no run_id and steps"
    return fields_problem(document, "", _DOCUMENT_FIELDS) or _steps_problem(
        document["steps"], "steps"
    )


_DOCUMENT_FIELDS = {
    "run_id": "text", "drawer": "text", "name": "text?", "status": "text",
    "started_at": "time", "ended_at": "time?", "inputs": "object?", "edits": "texts?",
    "error": "error?", "definitions": "object?", "resumed_from": "text?",
}  # fmt: skip
_RECORD_FIELDS = {
    "status": "text", "attempts": "count?", "started_at": "time?", "ended_at": "time?",
    "error": "error?",
}  # fmt: skip


def _steps_problem(steps: dict[str, Any], where: str) -> str | None:
    for step_id, record in steps.items():
        here = f"{where}.{step_id}"
        if not isinstance(record, dict):
            return f"{here} is a JSON {_json_kind(record)}, not a step record"
        problem = fields_problem(record, here, _RECORD_FIELDS)
        if problem:
            return problem
        output = record.get("output")
        results = output.get("results") if isinstance(output, dict) else None
        for number, entry in enumerate(results if isinstance(results, list) else []):
            if isinstance(entry, dict) and isinstance(entry.get("steps"), dict):
                problem = _steps_problem(entry["steps"], f"{here}.output.results[{number}].steps")
                if problem:
                    return problem
    return None


def fields_problem(data: dict[str, Any], where: str, fields: dict[str, str]) -> str | None:
    """The first field of `data` that is not of its kind (`text`, `time`, `object`, `count`,
    `texts`, `error`; with `?`, or null), named by its path under `where`."""
    for name, kind in fields.items():
        value = data.get(name)
        if value is None and kind.endswith("?"):
            continue
        if not _is_kind(value, kind.rstrip("?")):
            at = f"{where}.{name}" if where else name
            return f"{at} is {json_text(value)[:60]}, not {_KIND_NAMES[kind.rstrip('?')]}"
    return None


_KIND_NAMES = {
    "text": "a string", "time": "an RFC 3339 time", "object": "an object",
    "count": "a whole number", "texts": "a list of strings",
    "error": 'an error {"code": ..., "message": ...}',
}  # fmt: skip


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "texts":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "error":
        return (
            isinstance(value, dict)
            and isinstance(value.get("code"), str)
            and isinstance(value.get("message"), str)
        )
    try:  # time
        return isinstance(value, str) and from_rfc3339(value) is not None
    except ValueError:
        return False


def _json_kind(value: Any) -> str:
    kinds = ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"))
    if value is None:
        return "null"
    return next((name for kind, name in kinds if isinstance(value, kind)), "number")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error: a stable code, a message, the step path where it happened, and its cause."""

    code: str
    message: str
    step_path: str | None = None
    cause: ErrorInfo | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "step_path": self.step_path,
            "cause": self.cause.as_json() if self.cause else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorInfo:
        cause = data.get("cause")
        return cls(
            str(data.get("code")),
            str(data.get("message")),
            data.get("step_path"),
            cls.from_json(cause) if isinstance(cause, dict) else None,
        )

    def root_cause(self) -> ErrorInfo:
        return self.cause.root_cause() if self.cause else self


class CommandOutput(dict[str, Any]):
    """A run step's output. References see stdout and stderr whole (up to 64 MiB); a record
    keeps only their last `keep` characters, with `stdout_truncated`/`stderr_truncated` set.
    """

    __slots__ = ("keep",)

    def __init__(self, data: dict[str, Any], keep: int) -> None:
        super().__init__(data)
        self.keep = keep

    def recorded(self) -> dict[str, Any]:
        data = dict(self)
        for name in ("stdout", "stderr"):
            if len(data[name]) > self.keep:
                data[name] = data[name][-self.keep :]
                data[f"{name}_truncated"] = True
        return data


def recorded(output: Any) -> Any:
    """What a record keeps of a step's output (the tail of a command's text)."""
    return output.recorded() if isinstance(output, CommandOutput) else output


class StepRecord:
    """One step execution: `{status, attempts, started_at, ended_at, duration, output, error}`."""

    __slots__ = ("attempts", "ended_at", "error", "output", "started_at", "status")

    def __init__(self) -> None:
        self.status = PENDING
        self.attempts = 0
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.output: Any = None
        self.error: ErrorInfo | None = None

    def start(self) -> None:
        self.status = RUNNING
        self.started_at = time.time()

    def finish(self, status: str, output: Any = None, error: ErrorInfo | None = None) -> None:
        self.status = status
        self.output = output
        self.error = error
        self.ended_at = time.time()

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.started_at, 3)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        """A record as `as_json` wrote it (a resumed run takes over earlier records)."""
        record = cls()
        record.status = data.get("status", PENDING)
        record.attempts = data.get("attempts") or 0
        record.started_at = from_rfc3339(data.get("started_at"))
        record.ended_at = from_rfc3339(data.get("ended_at"))
        record.output = data.get("output")
        error = data.get("error")
        record.error = ErrorInfo.from_json(error) if isinstance(error, dict) else None
        return record

    def view(self) -> dict[str, Any]:
        """What a reference to the step sees: `{status, output, error}`."""
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error.as_json() if self.error else None,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "started_at": rfc3339(self.started_at),
            "ended_at": rfc3339(self.ended_at),
            "duration": self.duration,
            "output": recorded(self.output),
            "error": self.error.as_json() if self.error else None,
        }


class IterationRecord:
    """One for_each iteration: `{index, item, status, steps, error, duration}`."""

    __slots__ = ("ended_at", "error", "index", "item", "started_at", "status", "steps")

    def __init__(self, index: int, item: Any) -> None:
        self.index = index
        self.item = item
        self.status = PENDING
        self.steps: dict[str, StepRecord] = {}
        self.error: ErrorInfo | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        duration = None
        if self.started_at is not None and self.ended_at is not None:
            duration = round(self.ended_at - self.started_at, 3)
        return {
            "index": self.index,
            "item": self.item,
            "status": self.status,
            "steps": {step_id: record.as_json() for step_id, record in self.steps.items()},
            "error": self.error.as_json() if self.error else None,
            "duration": duration,
        }
