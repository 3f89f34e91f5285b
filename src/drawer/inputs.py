"""Run inputs from `-i NAME=VALUE` and `DRAWER_INPUT_<NAME>`: typed, checked, secrets marked."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drawer.model import InputSpec


class InputError(Exception):
    """A wrong type, an unknown name or a missing required input (exit 2, INPUT_INVALID)."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class InputErrors(Exception):
    """Every problem with the run's inputs, reported together."""

    def __init__(self, errors: list[InputError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class ResolvedInputs:
    values: dict[str, Any]
    secrets: list[str]


def env_name(name: str) -> str:
    return "DRAWER_INPUT_" + name.upper().replace("-", "_")


SECRET_SHOWN = "a secret value (not shown)"


def shown(spec: InputSpec, value: Any) -> str:
    """How a message shows an input's value: the one place that decides, so that no message
    about a secret input (given by -i, the environment, a default or a caller) echoes it."""
    if spec.secret:
        return SECRET_SHOWN
    return f'"{value}"' if isinstance(value, str) else repr(value)


def recorded_inputs(specs: Mapping[str, InputSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as a record keeps them (store, run document): a secret one as `***`."""
    from drawer.context import MASK

    return {name: MASK if specs[name].secret else value for name, value in values.items()}


def secret_defaults(data: Any) -> list[str]:
    """The defaults of a drawer file's secret inputs as text, read from its parsed data (valid
    or not), for a message that quotes the file's text (after a `--set`, say) to hide."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, dict):
        return []
    found = []
    for spec in inputs.values():
        if isinstance(spec, dict) and spec.get("secret") is True:
            default = spec.get("default")
            text = default if isinstance(default, str) else json.dumps(default, default=str)
            if default is not None and len(text) >= 4:
                found.append(text)
    return found


def convert(name: str, spec: InputSpec, raw: str) -> Any:
    """Command-line text to the input's type."""
    kind = spec.type
    if kind == "string":
        return raw
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise InputError(
                f'input "{name}" must be an integer, got {shown(spec, raw)}', name
            ) from None
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise InputError(
                f'input "{name}" must be a number, got {shown(spec, raw)}', name
            ) from None
        if not math.isfinite(number):
            raise InputError(
                f'input "{name}" must be a finite number, got {shown(spec, raw)}', name
            )
        return number
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise InputError(f'input "{name}" must be true or false, got {shown(spec, raw)}', name)
        return lowered == "true"
    try:
        value = json.loads(raw)
    except ValueError as error:
        # json's message gives a position, never the text (of a secret, say)
        raise InputError(f'input "{name}" must be JSON ({kind}): {error}', name) from None
    expected = list if kind == "array" else dict
    if not isinstance(value, expected):
        raise InputError(f'input "{name}" must be a JSON {kind}, got {shown(spec, raw)}', name)
    return value


def check_type(name: str, spec: InputSpec, value: Any) -> Any:
    """A default (already typed by YAML/JSON) must match the declared type."""
    checks: dict[str, tuple[type, ...]] = {
        "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
        "array": (list, tuple), "object": (dict,),
    }  # fmt: skip
    if (isinstance(value, bool) and spec.type not in ("boolean",)) or not isinstance(
        value, checks[spec.type]
    ):
        raise InputError(
            f'the default of input "{name}" is not a {spec.type}: {shown(spec, value)}', name
        )
    if spec.type == "number":
        return float(value)  # type: ignore[arg-type]  # checked above: int or float
    return list(value) if isinstance(value, tuple) else value


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep:
            raise InputError(f'-i takes NAME=VALUE, got "{assignment}"')
        if not name.strip():
            raise InputError('-i takes NAME=VALUE, got no NAME before "=" (value not shown)')
        pairs[name.strip()] = value
    return pairs


def resolve_inputs(
    specs: Mapping[str, InputSpec], assignments: Sequence[str], environ: Mapping[str, str]
) -> ResolvedInputs:
    """Typed values for every declared input: -i first, then the environment, then defaults.
    Raises InputErrors naming every problem at once."""
    try:
        given = parse_assignments(assignments)
    except InputError as error:
        raise InputErrors([error]) from None
    errors: list[InputError] = []
    for name in given:
        if name not in specs:
            from drawer.source import suggest

            guess = suggest(name, specs)
            hint = f'; did you mean "{guess}"?' if guess else ""
            known = ", ".join(specs) or "none"
            errors.append(InputError(f'unknown input "{name}" (inputs: {known}){hint}', name))
    values: dict[str, Any] = {}
    secrets: list[str] = []
    for name, spec in specs.items():
        try:
            value = _input_value(name, spec, given, environ)
            secret = check_value(name, spec, value)
        except InputError as error:
            errors.append(error)
            continue
        if secret is not None:
            secrets.append(secret)
        values[name] = value
        if spec.secret and spec.default is not None:
            # A default not used (-i gave the value) is a secret still: a `--set` edit may
            # hold it, and is recorded masked only if it is masked.
            default = spec.default if isinstance(spec.default, str) else json.dumps(spec.default)
            if len(default) >= 4 and default not in secrets:
                secrets.append(default)
    if errors:
        from_env = {name: environ[env_name(name)] for name in specs if env_name(name) in environ}
        raise InputErrors(hide_given_secrets(errors, specs, {**from_env, **given}))
    return ResolvedInputs(values, secrets)


def hide_given_secrets(
    errors: list[InputError], specs: Mapping[str, InputSpec], given: Mapping[str, Any]
) -> list[InputError]:
    """The errors with every value given to a secret input hidden: a message shows an input's
    value only when it is not secret (`shown`), but the same text may have been given to
    another input too."""
    from drawer.context import Masker

    hidden = [
        value if isinstance(value, str) else json.dumps(value)
        for name, value in given.items()
        if name in specs and specs[name].secret and value is not None
    ]
    masker = Masker([text for text in hidden if len(text) >= 4])
    if not masker:
        return errors
    return [InputError(masker.text(str(error)), error.name) for error in errors]


def _input_value(
    name: str, spec: InputSpec, given: Mapping[str, str], environ: Mapping[str, str]
) -> Any:
    if name in given:
        return convert(name, spec, given[name])
    if env_name(name) in environ:
        return convert(name, spec, environ[env_name(name)])
    if spec.default is not None:
        return check_type(name, spec, spec.default)
    if spec.required:
        raise InputError(
            f'missing required input "{name}": give -i {name}=VALUE or set {env_name(name)}',
            name,
        )
    return None


def check_value(name: str, spec: InputSpec, value: Any) -> str | None:
    """Enforce `enum` and the secret length; return a secret input's text (for masking)."""
    if spec.enum is not None and value is not None and value not in spec.enum:
        allowed = ", ".join(json.dumps(option) for option in spec.enum)
        raise InputError(f'input "{name}" must be one of {allowed}, got {shown(spec, value)}', name)
    if not spec.secret or value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) < 4:
        raise InputError(f'secret input "{name}" is shorter than 4 characters', name)
    return text
