"""Secret inputs leak nowhere: not in a message (plain or GitHub mode), not in any byte drawer
writes (output, run document, store files, SQLite rows, logs, job summary), not in a temp
file while a command runs, and not in the temp dir after a run, however it ended."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drawer.store import DATABASE
from tests.conftest import run_cli, until, wait_for

ENV_SECRET = "envs3cret-Alpha-9431"
FLAG_SECRET = "flags3cret-Bravo-5519"
SET_SECRET = "sets3cret-Charlie-7702"
BIG_SECRET = "bigs3cret-Delta-" + "x" * 70_000 + "-end"  # over 64 KiB: passed as a file
SECRETS = (ENV_SECRET, FLAG_SECRET, SET_SECRET, BIG_SECRET)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def leaks(secrets: tuple[str, ...], texts: dict[str, str], folders: list[Path]) -> list[str]:
    """Where any secret (or a line of it) shows: in a text, a file's bytes under a folder, or
    a row of an SQLite database there (read through SQL, as a user's query would)."""
    found = []
    needles = [secret[:30] for secret in secrets]  # a prefix: a piece of a secret leaks too
    for name, text in texts.items():
        found += [f"{name}: {needle}" for needle in needles if needle in text]
    for folder in folders:
        for file in [folder] if folder.is_file() else sorted(folder.rglob("*")):
            if not file.is_file():
                continue
            data = file.read_bytes()
            found += [f"{file}: {needle}" for needle in needles if needle.encode() in data]
            if file.name == DATABASE:
                connection = sqlite3.connect(file)
                dump = "\n".join(connection.iterdump())
                connection.close()
                found += [f"{file} (SQL): {needle}" for needle in needles if needle in dump]
    return found


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {"TMPDIR": str(temp), "DRAWER_INPUT_FROM_ENV": ENV_SECRET, **extra}


# messages -------------------------------------------------------------------------------------

MESSAGES = """\
inputs:
  choice: {type: string, secret: true, required: false, enum: [aaaa-one, bbbb-two]}
  number: {type: integer, secret: true, required: false}
  real: {type: number, secret: true, required: false}
  flag: {type: boolean, secret: true, required: false}
  list: {type: array, secret: true, required: false}
  map: {type: object, secret: true, required: false}
  plain: {type: integer, required: false}
steps:
  - id: a
    run: "true"
"""


@pytest.mark.parametrize("github", [False, True])
@pytest.mark.parametrize(
    ("given", "environ"),
    [
        (["-i", f"choice={FLAG_SECRET}"], {}),
        ([], {"DRAWER_INPUT_CHOICE": ENV_SECRET}),
        (["-i", f"number={FLAG_SECRET}"], {}),
        (["-i", f"real={FLAG_SECRET}"], {}),
        (["-i", f"flag={FLAG_SECRET}"], {}),
        (["-i", f'list={{"k": "{FLAG_SECRET}"}}'], {}),
        (["-i", f'map=["{FLAG_SECRET}"]'], {}),
        # the same text given to a secret input and to another one
        (["-i", f"plain={FLAG_SECRET}", "-i", f"choice={FLAG_SECRET}"], {}),
        (["-i", f"={FLAG_SECRET}"], {}),
        (["--set", f"inputs.number.default={SET_SECRET}"], {}),
        (["--set", f"inputs.choice.default={SET_SECRET}"], {}),
    ],
)
def test_no_message_shows_a_secret_value(
    tmp_path: Path, given: list[str], environ: dict[str, str], github: bool
) -> None:
    write(tmp_path / "d.yaml", MESSAGES)
    env = cli_env(tmp_path, **environ)
    if github:
        env["GITHUB_ACTIONS"] = "true"
    result = run_cli("d.yaml", "run", *given, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr
    assert "Traceback" not in result.stderr
    assert leaks(SECRETS, {"stdout": result.stdout, "stderr": result.stderr}, [tmp_path]) == []


def test_a_secret_default_is_hidden_in_a_quoted_line(tmp_path: Path) -> None:
    # A problem quotes its line of the file; a secret default on that line is masked.
    write(
        tmp_path / "d.yaml",
        f"""\
        inputs:
          tok: {{type: string, secret: true, default: {SET_SECRET}, descripton: x}}
        steps:
          - id: a
            run: "true"
        """,
    )
    for verb in (["validate"], ["validate", "--json"], ["run"]):
        for env in (cli_env(tmp_path), cli_env(tmp_path, GITHUB_ACTIONS="true")):
            result = run_cli("d.yaml", *verb, cwd=tmp_path, env=env)
            assert result.returncode == 2, result.stderr
            assert "descripton" in result.stdout + result.stderr
            texts = {"stdout": result.stdout, "stderr": result.stderr}
            assert leaks((SET_SECRET,), texts, []) == [], verb


def test_a_sub_drawer_input_error_hides_the_secret(tmp_path: Path) -> None:
    write(
        tmp_path / "child.yaml",
        """\
        inputs:
          n: {type: integer, secret: true}
        steps:
          - id: a
            run: "true"
        """,
    )
    write(
        tmp_path / "d.yaml",
        f"""\
        steps:
          - id: sub
            kind: drawer
            drawer: ./child.yaml
            inputs: {{n: "{FLAG_SECRET}"}}
        """,
    )
    result = run_cli("d.yaml", "run", "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["steps"]["sub"]["error"]["code"] == "INPUT_INVALID"
    assert "not shown" in document["steps"]["sub"]["error"]["message"]
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    assert leaks((FLAG_SECRET,), texts, [tmp_path / ".drawer", tmp_path / "tmp"]) == []


# a whole run ----------------------------------------------------------------------------------

RUN = """\
inputs:
  from_env: {type: string, secret: true}
  from_flag: {type: string, secret: true}
  from_set: {type: string, secret: true, required: false}
  big: {type: string, secret: true}
steps:
  - id: echo
    run: |
      echo "out ${inputs.from_env} ${inputs.from_flag} ${inputs.from_set}"
      echo "err ${inputs.from_env} ${inputs.from_flag} ${inputs.from_set}" >&2
      echo "env=${inputs.from_env}" >> "$DRAWER_OUTPUT"
      echo "flag=${inputs.from_flag}" >> "$DRAWER_OUTPUT"
      echo "set=${inputs.from_set}" >> "$DRAWER_OUTPUT"
      printf 'big=%s\\n' "${inputs.big}" >> "$DRAWER_OUTPUT"
      printf %s "${inputs.big}"
  - id: later
    run: |
      echo "later ${echo.output.values.env} ${echo.output.values.flag}" \\
        "${echo.output.values.set}"
  - id: value
    kind: value
    value: "${inputs.from_env} ${echo.output.values.big}"
  - id: sub
    kind: drawer
    drawer: ./child.yaml
    inputs: {n: "${inputs.from_flag}"}
    on_failure: continue
  - id: fails
    run: echo "failing with ${inputs.from_flag} ${inputs.from_set}" >&2; exit 3
outputs:
  all: ${echo.output.values}
  value: ${value.output}
"""

CHILD = """\
inputs:
  n: {type: integer}
steps:
  - id: a
    run: "true"
"""


@pytest.mark.parametrize("github", [False, True])
def test_a_run_leaks_no_secret_anywhere(tmp_path: Path, github: bool) -> None:
    write(tmp_path / "d.yaml", RUN)
    write(tmp_path / "child.yaml", CHILD)
    summary = tmp_path / "summary.md"
    env = cli_env(tmp_path, DRAWER_INPUT_BIG=BIG_SECRET)
    if github:
        env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    run = run_cli(
        "d.yaml", "run", "-i", f"from_flag={FLAG_SECRET}", "--set",
        f"inputs.from_set.default={SET_SECRET}", "--output", "run.json", "-v",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["steps"]["echo"]["output"]["values"]["env"] == "***"
    assert document["steps"]["later"]["output"]["stdout"] == "later *** *** ***"
    assert document["steps"]["sub"]["error"]["code"] == "INPUT_INVALID"
    assert document["edits"] == ["inputs.from_set.default=***"]
    stdout = run.stdout
    if github:
        assert summary.exists()
        # the runner consumes these lines and never shows them: they are how it learns to mask
        stdout = "\n".join(line for line in stdout.splitlines() if "::add-mask::" not in line)
    texts = {"stdout": stdout, "stderr": run.stderr}
    for verb in (["history", "--json"], ["show", "last", "--json"], ["show", "last"],
                 ["logs", "last"], ["logs", "last", "echo"]):  # fmt: skip
        shown = run_cli("d.yaml", *verb, cwd=tmp_path, env=cli_env(tmp_path))
        assert shown.returncode == 0, (verb, shown.stderr)
        texts[" ".join(verb)] = shown.stdout + shown.stderr
    assert leaks(SECRETS, texts, [tmp_path]) == []
    database = sqlite3.connect(tmp_path / ".drawer" / DATABASE)
    (edits,) = database.execute("SELECT edits FROM runs").fetchone()
    database.close()
    assert json.loads(edits) == ["inputs.from_set.default=***"]
    assert list((tmp_path / "tmp").iterdir()) == []  # the run's temp dir is gone


def test_a_resume_does_not_apply_a_masked_edit(tmp_path: Path) -> None:
    write(tmp_path / "d.yaml", RUN.replace("exit 3", "test -e ok || exit 3"))
    write(tmp_path / "child.yaml", CHILD.replace("integer", "string"))
    env = cli_env(tmp_path, DRAWER_INPUT_BIG=BIG_SECRET)
    first = run_cli("d.yaml", "run", "-i", f"from_flag={FLAG_SECRET}", "--set",
                    f"inputs.from_set.default={SET_SECRET}", cwd=tmp_path, env=env)  # fmt: skip
    assert first.returncode == 1, first.stderr
    (tmp_path / "ok").touch()
    resumed = run_cli("d.yaml", "run", "--resume", "last", "-i", f"from_flag={FLAG_SECRET}",
                      "-i", f"from_set={SET_SECRET}", cwd=tmp_path, env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "inputs.from_set.default=*** " in resumed.stderr
    assert "not applied again" in resumed.stderr
    texts = {"stdout": resumed.stdout, "stderr": resumed.stderr}
    assert leaks(SECRETS, texts, [tmp_path]) == []


def test_a_secret_default_set_but_not_used_is_recorded_masked(tmp_path: Path) -> None:
    """`--set inputs.tok.default=S` with the secret given by -i: S is no value of the run,
    but still a secret, and the edit that holds it is recorded masked."""
    write(
        tmp_path / "d.yaml",
        """\
        inputs:
          tok: {type: string, secret: true}
        steps:
          - id: a
            run: echo hi
        """,
    )
    done = run_cli("d.yaml", "run", "--set", f"inputs.tok.default={SET_SECRET}", "-i",
                   f"tok={FLAG_SECRET}", "--json", cwd=tmp_path, env=cli_env(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = run_cli("d.yaml", "show", "last", "--json", cwd=tmp_path)
    texts = {"stdout": done.stdout + shown.stdout, "stderr": done.stderr + shown.stderr}
    assert leaks(SECRETS, texts, [tmp_path / ".drawer"]) == []


# temp files -----------------------------------------------------------------------------------

WAITING = f"""\
inputs:
  big: {{type: string, secret: true}}
  small: {{type: string, secret: true}}
steps:
  - id: hold
    kind: for_each
    over: ["${{inputs.big}}"]
    steps:
      - id: wait
        run: |
          printf 'v=%s\\n' "${{inputs.small}}" >> "$DRAWER_OUTPUT"
          printf 'w=%s\\n' "${{item}}" >> "$DRAWER_OUTPUT"
          test "$(printf %s "${{inputs.big}}" | wc -c)" -gt 65536
          touch started
          {until("[ -e release ]")}
"""


@pytest.mark.parametrize("procs", ["pidfd", "portable"])
@pytest.mark.parametrize("ending", ["ok", "SIGTERM", "SIGINT"])
def test_no_secret_is_on_disk_while_a_command_runs_nor_after(
    tmp_path: Path, procs: str, ending: str
) -> None:
    """A value over 64 KiB (a shell reference, a loop variable) and `$DRAWER_OUTPUT` reach
    the command as files: memory files, never in the temp dir; gone however the run ends."""
    write(tmp_path / "d.yaml", WAITING)
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    env.update(cli_env(tmp_path, DRAWER_INPUT_BIG=BIG_SECRET, DRAWER_INPUT_SMALL=FLAG_SECRET))
    if procs == "portable":
        env["DRAWER_PROCS"] = "portable"
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run", "--no-store"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the command to start", process)
        during = leaks((BIG_SECRET, FLAG_SECRET), {}, [tmp_path / "tmp"])
        temp_dirs = list((tmp_path / "tmp").iterdir())
        if ending == "ok":
            (tmp_path / "release").touch()
        else:
            process.send_signal(getattr(signal, ending))
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert len(temp_dirs) == 1  # the run's one temp dir, holding nothing secret
    assert during == []
    assert process.returncode == (0 if ending == "ok" else 128 + getattr(signal, ending)), stderr
    assert leaks((BIG_SECRET, FLAG_SECRET), {"stdout": stdout, "stderr": stderr}, [tmp_path]) == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_kill_9_leaves_no_secret_on_disk(tmp_path: Path) -> None:
    """After `kill -9` of drawer its temp dir may stay (removing it is not drawer's to do
    any more), but nothing in it holds a secret."""
    write(tmp_path / "d.yaml", WAITING)
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    env.update(cli_env(tmp_path, DRAWER_INPUT_BIG=BIG_SECRET, DRAWER_INPUT_SMALL=FLAG_SECRET))
    process = subprocess.Popen(
        [sys.executable, "-m", "drawer", "d.yaml", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the command to start", process)
        process.kill()
        process.wait(timeout=60)
    finally:
        (tmp_path / "release").touch()  # the orphaned command ends by itself
        if process.poll() is None:
            process.kill()
            process.wait()
    assert leaks((BIG_SECRET, FLAG_SECRET), {}, [tmp_path]) == []


def test_a_kept_tail_does_not_begin_inside_a_secret(tmp_path: Path) -> None:
    """Past 64 MiB only a command's last 1 MiB is kept: the cut may fall inside a secret,
    whose end would then be kept unmasked."""
    end = FLAG_SECRET[-10:]
    write(
        tmp_path / "d.yaml",
        """\
        inputs:
          small: {type: string, secret: true}
        steps:
          - id: loud
            run: |
              python3 -c '
              import sys
              for out in (sys.stdout.buffer, sys.stderr.buffer):
                  out.write(b"x" * (65 << 20) + sys.argv[1].encode() + b"y" * ((1 << 20) - 10))
              ' "${inputs.small}"
        """,
    )
    env = cli_env(tmp_path, DRAWER_INPUT_SMALL=FLAG_SECRET)
    result = run_cli(
        "d.yaml", "run", "--quiet", "--no-store", "--output", "run.json", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    output = json.loads((tmp_path / "run.json").read_text())["steps"]["loud"]["output"]
    assert output["stdout_truncated"] and output["stderr_truncated"]
    assert output["stdout"].startswith("y") and output["stderr"].startswith("y")
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    assert leaks((end,), texts, [tmp_path / "run.json"]) == []


def test_a_dask_loop_leaks_no_secret(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    write(
        tmp_path / "d.yaml",
        """\
        inputs:
          small: {type: string, secret: true}
          big: {type: string, secret: true}
        steps:
          - id: each
            kind: for_each
            over: ["${inputs.small}", "${inputs.big}"]
            executor: dask
            dask: {chunk_size: 1}
            on_item_failure: continue
            steps:
              - id: show
                run: |
                  printf '%s\\n' "${item}" "${inputs.small}"
                  printf 'v=%s\\n' "${item}" >> "$DRAWER_OUTPUT"
                  echo "${item}" >&2; exit 1
        """,
    )
    env = cli_env(
        tmp_path,
        DRAWER_INPUT_SMALL=FLAG_SECRET,
        DRAWER_INPUT_BIG=BIG_SECRET,
        DRAWER_DASK_PROCESSES="0",
    )
    run = run_cli("d.yaml", "run", "--output", "run.json", cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 1, run.stderr
    results = json.loads((tmp_path / "run.json").read_text())["steps"]["each"]["output"]
    assert [r["steps"]["show"]["output"]["values"]["v"] for r in results["results"]] == [
        "***",
        "***",
    ]
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for verb in (["show", "last", "--json"], ["logs", "last"]):
        shown = run_cli("d.yaml", *verb, cwd=tmp_path, env=cli_env(tmp_path))
        texts[" ".join(verb)] = shown.stdout + shown.stderr
    folders = [tmp_path / ".drawer", tmp_path / "run.json", tmp_path / "tmp"]
    assert leaks((FLAG_SECRET, BIG_SECRET), texts, folders) == []


def test_no_command_holds_another_commands_memory_file(tmp_path: Path) -> None:
    # Four commands at once, each given a value file: each sees only what it opens itself.
    big = "v" * 70_000
    write(
        tmp_path / "d.yaml",
        f"""\
        steps:
          - id: each
            kind: for_each
            over: ["{big}-0", "{big}-1", "{big}-2", "{big}-3"]
            parallelism: 4
            steps:
              - id: look
                run: |
                  touch "started-$DRAWER_INDEX"
                  {until('[ "$(ls started-* | wc -l)" -eq 4 ]')}
                  ls -l /proc/$$/fd | grep -c memfd || true
                  tail -c 2 "$DRAWER_ITEM_FILE"
        """,
    )
    run = run_cli("d.yaml", "run", "--no-store", "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["steps"]["each"]["output"]["results"]
    seen = [r["steps"]["look"]["output"]["lines"] for r in results]
    assert seen == [["0", f"-{index}"] for index in range(4)]


def test_memory_files_exist_only_for_commands_that_hold_a_process_slot(tmp_path: Path) -> None:
    # 64 items at once under a budget of 2 processes: the 62 waiting hold no file (a memory
    # file each would run drawer out of fds on a large loop).
    write(
        tmp_path / "d.yaml",
        """\
        execution: {max_processes: 2}
        steps:
          - id: each
            kind: for_each
            over: {range: [0, 64]}
            parallelism: all
            steps:
              - id: count
                run: ls -l /proc/$PPID/fd | grep -c memfd || true
        """,
    )
    run = run_cli("d.yaml", "run", "--no-store", "--json", cwd=tmp_path, env=cli_env(tmp_path))
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)["steps"]["each"]["output"]["results"]
    counts = [int(r["steps"]["count"]["output"]["stdout"]) for r in results]
    assert len(counts) == 64 and 1 <= max(counts) <= 2
