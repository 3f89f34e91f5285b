"""drawer steps: inputs, environment, shared budget, directories, failures, cycles, secrets."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from drawer import events as ev
from tests.conftest import RunText, is_alive, load, run_cli, run_loaded


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


CHILD = """
inputs:
  n: {type: integer, required: true}
  label: {type: string, default: item}
steps:
  - id: shout
    run: echo "${inputs.label}-${inputs.n} $GREETING $DRAWER_ITEM"
  - id: double
    kind: value
    value: ${inputs.n * 2}
outputs:
  text: ${shout.output.stdout}
  doubled: ${double.output}
"""


def test_called_per_item_with_its_own_outputs_and_the_parents_budget(
    run_text: RunText, tmp_path: Path
) -> None:
    write(tmp_path / "child.yaml", CHILD)
    result = run_text(
        """
        execution: {max_processes: 1}
        steps:
          - id: each
            kind: for_each
            over: [1, "2", 3]
            parallelism: all
            steps:
              - id: sub
                kind: drawer
                drawer: ./child.yaml
                env: {GREETING: hello}
                inputs: {n: "${item}", label: "x${index}"}
          - id: total
            kind: value
            value: ${each.output.results.2.steps.sub.output.doubled}
        """
    )
    assert result.document["status"] == "ok", result.document["error"]
    results = result.steps["each"]["output"]["results"]
    outputs = [r["steps"]["sub"]["output"] for r in results]
    assert outputs == [
        {"text": "x0-1 hello 1", "doubled": 2},
        {"text": "x1-2 hello 2", "doubled": 4},
        {"text": "x2-3 hello 3", "doubled": 6},
    ]
    assert result.steps["total"]["output"] == 6
    # All three iterations were under way before the first command ended, yet the child
    # commands ran one at a time: the child uses the calling run's process budget.
    first_end = next(
        i for i, e in enumerate(result.log.events) if isinstance(e, ev.CommandFinished)
    )
    started = [e for e in result.log.events[:first_end] if isinstance(e, ev.IterationStarted)]
    assert len(started) == 3
    assert result.log.max_concurrent_commands() == 1
    paths = {e.path for e in result.log.of(ev.CommandStarted)}
    assert paths == {"each[0].sub.shout", "each[1].sub.shout", "each[2].sub.shout"}


def test_child_resolves_relative_paths_from_its_own_directory(
    run_text: RunText, tmp_path: Path
) -> None:
    write(tmp_path / "lib" / "names.txt", "ada\ngrace\n")
    write(
        tmp_path / "lib" / "child.yaml",
        """
        steps:
          - id: read
            run: cat names.txt
          - id: each
            kind: for_each
            over: {file: names.txt}
            steps:
              - id: greet
                kind: drawer
                drawer: ./grandchild.yaml
                inputs: {who: "${item}"}
        outputs:
          names: ${read.output.lines}
          dir: ${drawer.dir}
          first: ${each.output.results.0.steps.greet.output.said}
          second: ${each.output.results.1.steps.greet.output.said}
        """,
    )
    write(
        tmp_path / "lib" / "grandchild.yaml",
        """
        inputs:
          who: {type: string, required: true}
        steps:
          - id: say
            run: echo "hi ${inputs.who} from $(basename "$PWD")"
        outputs:
          said: ${say.output.stdout}
        """,
    )
    result = run_text(
        """
        steps:
          - id: sub
            kind: drawer
            drawer: lib/child.yaml
        """
    )
    assert result.document["status"] == "ok", result.document["error"]
    assert result.steps["sub"]["output"] == {
        "names": ["ada", "grace"],
        "dir": str((tmp_path / "lib").resolve()),
        "first": "hi ada from lib",
        "second": "hi grace from lib",
    }


def test_failing_child_fails_the_step_with_its_error_as_cause(
    run_text: RunText, tmp_path: Path
) -> None:
    write(
        tmp_path / "child.yaml",
        """
        steps:
          - id: build
            run: exit 3
          - id: never
            kind: value
            value: 1
        outputs:
          never: ${never.output}
        """,
    )
    result = run_text(
        """
        steps:
          - id: sub
            kind: drawer
            drawer: ./child.yaml
        """
    )
    sub = result.steps["sub"]
    assert result.document["status"] == "failed"
    assert sub["status"] == "failed"
    assert sub["error"]["code"] == "SUBDRAWER_FAILED"
    assert sub["error"]["step_path"] == "sub"
    assert sub["error"]["cause"]["code"] == "STEP_FAILED"
    assert sub["error"]["cause"]["step_path"] == "sub.build"
    assert "exited with code 3" in sub["error"]["message"]
    assert sub["output"] == {"never": None}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ("{n: '7', label: 4.5}", {"text": "4.5-7  ", "doubled": 14}),
        ("{n: '${first.output.n}'}", {"text": "item-3  ", "doubled": 6}),
        (
            "{n: many}",
            'INPUT_INVALID: sub-drawer "./child.yaml": input "n" must be an integer, got "many"',
        ),
        ("{n: 2, label: [a]}", "INPUT_INVALID: input \"label\" must be a string, got ['a']"),
        ("{n: '${first.output.none}'}", 'INPUT_INVALID: missing required input "n"'),
        ("{n: '${first.output.m}'}", "REF_UNRESOLVED: ${first.output.m}: output has no key 'm'"),
    ],
    ids=["text-converts", "reference", "not-an-integer", "not-a-string", "null", "unresolved"],
)
def test_inputs_are_resolved_typed_and_checked(
    run_text: RunText, tmp_path: Path, inputs: str, expected: object
) -> None:
    write(tmp_path / "child.yaml", CHILD)
    result = run_text(
        f"""
        steps:
          - id: first
            kind: value
            value: {{n: 3, none: null}}
          - id: sub
            kind: drawer
            drawer: ./child.yaml
            inputs: {inputs}
        """
    )
    sub = result.steps["sub"]
    if isinstance(expected, dict):
        assert sub["status"] == "ok", sub["error"]
        assert sub["output"] == expected
        return
    assert sub["status"] == "failed"
    code, message = str(expected).split(": ", 1)
    assert sub["error"]["code"] == code
    assert message in sub["error"]["message"]
    assert result.log.of(ev.CommandStarted) == []


def test_the_childs_env_applies_and_a_child_that_breaks_fails_the_step(tmp_path: Path) -> None:
    write(tmp_path / "child.yaml", "env: {GREETING: 'n is ${inputs.n}'}\n" + CHILD)
    loaded = load(
        tmp_path,
        """
        steps:
          - id: sub
            kind: drawer
            drawer: ./child.yaml
            inputs: {n: 1}
        """,
    )
    sub = run_loaded(loaded, tmp_path).steps["sub"]
    assert sub["output"]["text"] == "item-1 n is 1 "
    # The run loads the child again: a file changed since validation fails only this step.
    write(tmp_path / "child.yaml", "env: {GREETING: '${inputs.n + \"a\"}'}\n" + CHILD)
    sub = run_loaded(loaded, tmp_path).steps["sub"]
    assert sub["error"]["code"] == "EXPR_ERROR"
    write(tmp_path / "child.yaml", "steps: []\nbogus: 1\n")
    sub = run_loaded(loaded, tmp_path).steps["sub"]
    assert sub["error"]["code"] == "INVALID_DRAWER"
    assert 'unknown key "bogus"' in sub["error"]["message"]


def test_secret_input_is_masked_in_the_childs_outputs(run_text: RunText, tmp_path: Path) -> None:
    write(
        tmp_path / "child.yaml",
        """
        inputs:
          token: {type: string, required: true, secret: true}
          level: {type: integer, enum: [1, 2], default: 1}
        steps:
          - id: use
            run: echo "token=${inputs.token}"
        outputs:
          said: ${use.output.stdout}
          raw: ${inputs.token}
          level: ${inputs.level}
        """,
    )
    result = run_text(
        """
        steps:
          - id: sub
            kind: drawer
            drawer: ./child.yaml
            inputs: {token: hunter2-s3cret}
          - id: bad
            kind: drawer
            drawer: ./child.yaml
            inputs: {token: hunter2-s3cret, level: "hunter2-s3cret"}
        """
    )
    assert result.steps["sub"]["output"] == {"said": "token=***", "raw": "***", "level": 1}
    bad = result.steps["bad"]["error"]
    assert bad["code"] == "INPUT_INVALID"
    assert "***" in bad["message"]
    lines = [e.text for e in result.log.of(ev.OutputLine)]
    assert "token=***" in lines
    assert "hunter2-s3cret" not in repr(result.document)
    assert not any("hunter2-s3cret" in text for text in lines)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"b.yaml": "steps:\n  - id: back\n    kind: drawer\n    drawer: a.yaml\n"},
            "sub-drawer cycle: a.yaml -> b.yaml -> a.yaml",
        ),
        ({}, 'sub-drawer "b.yaml" not found'),
        (
            {"b.yaml": "inputs:\n  name: {required: true}\nsteps:\n  - {id: s, run: 'true'}\n"},
            'sub-drawer "b.yaml" needs input "name"',
        ),
        (
            {"b.yaml": "inputs:\n  n: {default: x}\nsteps:\n  - {id: s, run: 'true'}\n"},
            'sub-drawer "b.yaml" has no input "nn"',
        ),
    ],
    ids=["cycle", "missing-file", "missing-input", "unknown-input"],
)
def test_validation_of_calls_exits_2_at_the_calling_line(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    inputs = "    inputs: {nn: 1}\n" if "nn" in message else ""
    write(
        tmp_path / "a.yaml",
        "steps:\n  - id: first\n    run: 'true'\n"
        f"  - id: call\n    kind: drawer\n    drawer: b.yaml\n{inputs}",
    )
    for name, text in files.items():
        write(tmp_path / name, text)
    result = run_cli("a.yaml", "validate", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert re.search(r"a\.yaml:(6|7):\d+", result.stderr), result.stderr


def test_default_timeout_applies_to_the_call_and_ends_the_childs_commands(
    run_text: RunText, tmp_path: Path
) -> None:
    write(
        tmp_path / "child.yaml",
        """
        steps:
          - id: slow
            run: echo $$ > slow.pid; exec sleep 30
        """,
    )
    result = run_text(
        """
        defaults: {timeout: 1s}
        steps:
          - id: sub
            kind: drawer
            drawer: ./child.yaml
        """
    )
    sub = result.steps["sub"]
    assert sub["status"] == "failed"
    assert sub["error"]["code"] == "TIMEOUT"
    slow = next(e for e in result.log.of(ev.StepFinished) if e.path == "sub.slow")
    assert slow.record.status == "cancelled"
    assert not is_alive(int((tmp_path / "slow.pid").read_text()))
