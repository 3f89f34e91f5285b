"""What a run produces is valid UTF-8 whatever its values hold: NUL bytes, bytes that are not
UTF-8 (from file names, `-i`, the environment) and lone surrogates (`\\ud800` in JSON) reach
commands as they can, fail their own step when they cannot (VALUE_NOT_TEXT), and never stop
the run, its store, its `--json` document or its GitHub output (issue 11 item 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from drawer.records import json_text


def drawer_bytes(
    *args: bytes, cwd: Path, env: dict[bytes, bytes] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The drawer command line given bytes, as a shell passes them (not always UTF-8)."""
    full_env = {
        os.fsencode(key): os.fsencode(value)
        for key, value in os.environ.items()
        if key != "GITHUB_ACTIONS"
    }
    full_env.update(env or {})
    return subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"drawer", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def utf8_json(data: bytes) -> Any:
    """JSON that must be valid UTF-8 (strict decoding, not Python's lenient reading)."""
    return json.loads(data.decode("utf-8"))


def test_json_text_writes_lone_surrogates_as_escapes_that_read_back() -> None:
    value = {"name": "caf\udce9", "lone\ud800": ["a\x00b", "é"]}
    text = json_text(value)
    assert text == '{"name":"caf\\udce9","lone\\ud800":["a\\u0000b","é"]}'
    assert json.loads(text.encode("utf-8")) == value
    assert json_text({"é": 1}, indent=1, separators=None) == '{\n "é": 1\n}'


def test_bytes_that_are_not_utf8_reach_commands_as_they_were(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / os.fsdecode(b"in/caf\xe9.txt")).write_text("latin-1 name\n")
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent(
            """
            inputs:
              word: {type: string}
              other: {type: string}
            steps:
              - id: files
                kind: for_each
                over: {glob: "in/*.txt"}
                as: name
                steps:
                  - id: read
                    run: [cat, "${name}"]
              - id: arg
                run: [sh, -c, 'printf %s "$1" > arg.out', sh, "${inputs.word}"]
              - id: shell
                run: printf %s "${inputs.other}" > shell.out
              - id: stdin
                run: cat > stdin.out
                stdin: ${env.LATIN}
              - id: kept
                kind: value
                value: ${inputs.word}
            outputs:
              word: ${inputs.word}
            """
        )
    )
    env = {b"DRAWER_INPUT_OTHER": b"\xff\xfe", b"LATIN": b"caf\xe9"}
    args = (b"d.yaml", b"run", b"-i", b"word=caf\xe9", b"--json", b"--output", b"doc.json")
    result = drawer_bytes(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp_path / "arg.out").read_bytes() == b"caf\xe9"
    assert (tmp_path / "shell.out").read_bytes() == b"\xff\xfe"
    assert (tmp_path / "stdin.out").read_bytes() == b"caf\xe9"
    document = utf8_json(result.stdout)
    assert document == utf8_json((tmp_path / "doc.json").read_bytes())
    assert document["status"] == "ok"
    assert document["outputs"] == {"word": "caf\udce9"}
    assert document["steps"]["kept"]["output"] == "caf\udce9"
    [iteration] = document["steps"]["files"]["output"]["results"]
    assert iteration["item"] == "in/caf\udce9.txt"
    assert iteration["steps"]["read"]["output"]["stdout"] == "latin-1 name"

    shown = drawer_bytes(b"d.yaml", b"show", b"last", b"--json", cwd=tmp_path)
    assert shown.returncode == 0
    assert utf8_json(shown.stdout)["outputs"] == {"word": "caf\udce9"}
    resumed = drawer_bytes(b"d.yaml", b"run", b"--resume", b"last", b"--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr.decode(errors="replace")
    again = utf8_json(resumed.stdout)
    assert again["outputs"] == {"word": "caf\udce9"}
    assert again["steps"]["files"]["output"]["total"] == 1


def test_values_that_are_not_text_fail_their_own_step_not_the_run(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_bytes(b'"a\\u0000b"\n"\\udcff"\n"\\ud800"\n"caf\xe9"\n')
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent(
            r"""
            steps:
              - id: emit
                run: |
                  printf '{"nul": "a\\u0000b", "lone": "\\ud800"}'
              - id: nul_arg
                on_failure: continue
                run: [printf, '%s', "${emit.output.json.nul}"]
              - id: nul_stdin
                run: od -An -tx1
                stdin: ${emit.output.json.nul}
              - id: lone_arg
                on_failure: continue
                run: [printf, '%s', "${emit.output.json.lone}"]
              - id: lone_stdin
                on_failure: continue
                run: cat
                stdin: ${emit.output.json.lone}
              - id: items
                kind: for_each
                over: {file: items.jsonl, format: jsonl}
                on_item_failure: continue
                steps:
                  - id: bytes
                    run:
                      - sh
                      - -c
                      - od -An -tx1 "$${DRAWER_ITEM_FILE:-/dev/null}";
                        printf %s "$${DRAWER_ITEM:-}" | od -An -tx1
            outputs:
              lone: ${emit.output.json.lone}
              nul: ${emit.output.json.nul}
            """
        )
    )
    summary = tmp_path / "summary.md"
    env = {b"GITHUB_ACTIONS": b"true", b"GITHUB_STEP_SUMMARY": os.fsencode(summary)}
    result = drawer_bytes(b"d.yaml", b"run", b"--output", b"doc.json", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr and b"warning" not in result.stderr
    result.stdout.decode("utf-8")
    assert "lone_arg" in summary.read_bytes().decode("utf-8")
    document = utf8_json((tmp_path / "doc.json").read_bytes())
    assert document["outputs"] == {"lone": "\ud800", "nul": "a\x00b"}
    steps = document["steps"]
    for step_id in ("nul_arg", "lone_arg", "lone_stdin"):
        assert steps[step_id]["status"] == "failed"
        assert steps[step_id]["error"]["code"] == "VALUE_NOT_TEXT"
    assert "NUL" in steps["nul_arg"]["error"]["message"]
    assert "U+D800" in steps["lone_arg"]["error"]["message"]
    assert steps["nul_stdin"]["output"]["stdout"].split() == ["61", "00", "62"]
    results = steps["items"]["output"]["results"]
    assert [entry["item"] for entry in results] == ["a\x00b", "\udcff", "\ud800", "caf\ufffd"]
    assert [entry["status"] for entry in results] == ["ok", "ok", "failed", "ok"]
    # A NUL item goes to commands as $DRAWER_ITEM_FILE; a byte that is not UTF-8 as itself.
    assert results[0]["steps"]["bytes"]["output"]["stdout"].split() == ["61", "00", "62"]
    assert results[1]["steps"]["bytes"]["output"]["stdout"].split() == ["ff"]
    assert results[2]["steps"]["bytes"]["error"]["code"] == "VALUE_NOT_TEXT"

    history = drawer_bytes(b"d.yaml", b"history", b"--json", cwd=tmp_path)
    assert [run["status"] for run in utf8_json(history.stdout)] == ["failed"]
    shown = drawer_bytes(b"d.yaml", b"show", b"last", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr.decode(errors="replace")
    shown.stdout.decode("utf-8")


def test_a_structured_item_holding_a_lone_surrogate_reaches_commands_as_valid_json(
    tmp_path: Path,
) -> None:
    """`${item}` and DRAWER_ITEM of a mapping are JSON, and JSON with a lone surrogate inside
    is written with a `\\uXXXX` escape: written raw it became a byte that is not UTF-8 (or
    VALUE_NOT_TEXT, failing steps that never used that field)."""
    (tmp_path / "items.jsonl").write_text(
        '{"a": "\\udcff"}\n{"a": "ok", "b": "\\ud800"}\n', encoding="ascii"
    )
    check = "import json, os, sys; print(json.loads(os.environb[b'DRAWER_ITEM'].decode()) == " + (
        "json.loads(sys.argv[1].encode().decode()))"
    )
    (tmp_path / "d.yaml").write_text(
        textwrap.dedent(
            f"""\
            steps:
              - id: l
                kind: for_each
                over: {{file: items.jsonl, format: jsonl}}
                steps:
                  - {{id: whole, run: [{json.dumps(sys.executable)}, -c, "{check}", "${{item}}"]}}
                  - {{id: field, run: [echo, "${{item.a}}"]}}
            """
        )
    )
    result = drawer_bytes(b"d.yaml", b"run", b"--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    results = utf8_json(result.stdout)["steps"]["l"]["output"]["results"]
    assert [r["steps"]["whole"]["output"]["stdout"] for r in results] == ["True", "True"]
    assert [r["steps"]["field"]["output"]["stdout"] for r in results] == ["\ufffd", "ok"]
