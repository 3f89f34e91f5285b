"""Every drawer in examples/ validates and runs as a user runs it, and does what it says."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
DRAWER_PATTERNS = ("*.yaml", "*.yml", "*.json")


def drawer_files(folder: Path) -> list[Path]:
    return sorted(path for pattern in DRAWER_PATTERNS for path in folder.glob(pattern))


EXAMPLES = drawer_files(EXAMPLES_DIR)
# Sub-drawers the examples call with `kind: drawer`: checked like the examples, but run
# through their callers (their inputs are required, so a plain `run` exits 2).
LIBRARY = drawer_files(EXAMPLES_DIR / "lib")
EXPECTED_EXAMPLES = {
    "process-files.yaml",
    "build-dag.yaml",
    "fan-out.yaml",
    "tolerate-failures.yaml",
    "nested-loops.yaml",
    "inputs.yaml",
    "poll-service.yaml",
    "parallel-builds.yaml",
    "route.yaml",
    "release.yaml",
    "resume.yaml",
    "checksums.yaml",
}
EXPECTED_LIBRARY = {"lib/build-one.yaml"}
TOKEN = "tok-3f9a7c21-never-shown"
# The environment an example needs to run with its defaults (its required inputs).
EXAMPLE_ENV: dict[str, dict[str, str]] = {"inputs.yaml": {"DRAWER_INPUT_TOKEN": TOKEN}}


@dataclass(frozen=True)
class ExampleRun:
    """One `drawer FILE run --json` of an example: exit code, run document, both streams."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.stdout)
        return document

    @property
    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = self.document["outputs"]
        return outputs

    def step(self, step_id: str) -> dict[str, Any]:
        record: dict[str, Any] = self.document["steps"][step_id]
        return record

    def results(self, step_id: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.step(step_id)["output"]["results"]
        return results


class ExampleRunner:
    """Runs examples as real `python -m drawer` processes from examples/, mktemp in tmpdir."""

    def __init__(self, tmpdir: Path, store: Path) -> None:
        self.tmpdir = tmpdir
        self.store = store
        self.cache: dict[str, ExampleRun] = {}

    def env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DRAWER_") and key != "GITHUB_ACTIONS"
        }
        env["TMPDIR"] = str(self.tmpdir)
        env["DRAWER_HOME"] = str(self.store)  # run records stay out of examples/
        env.update(EXAMPLE_ENV.get(name, {}))
        env.update(extra or {})
        return env

    def drawer(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "drawer", name, *args],
            cwd=EXAMPLES_DIR,
            env=self.env(name, env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run(self, name: str, *args: str, env: dict[str, str] | None = None) -> ExampleRun:
        done = self.drawer(name, "run", "--json", "--no-progress", *args, env=env)
        return ExampleRun(done.returncode, done.stdout, done.stderr)

    def default_run(self, name: str) -> ExampleRun:
        """The example run with its defaults, once per module; asserted to succeed."""
        if name not in self.cache:
            self.cache[name] = self.run(name)
        run = self.cache[name]
        assert run.returncode == 0, f"{name} exited {run.returncode}\n{run.stderr}"
        return run


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ExampleRunner:
    return ExampleRunner(
        tmp_path_factory.mktemp("examples-tmp"), tmp_path_factory.mktemp("examples-store")
    )


def example_ids() -> list[str]:
    return [path.name for path in EXAMPLES]


def relative(path: Path) -> str:
    """How a drawer file is named on the command line in examples/: `route.yaml`, `lib/x.yaml`."""
    return path.relative_to(EXAMPLES_DIR).as_posix()


ALL_DRAWERS = [*EXAMPLES, *LIBRARY]
ALL_IDS = [relative(path) for path in ALL_DRAWERS]


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def ordered_after(later: dict[str, Any], *earlier: dict[str, Any]) -> bool:
    start = parse_time(later["started_at"])
    return all(start >= parse_time(record["ended_at"]) for record in earlier)


def iteration_steps(results: list[dict[str, Any]], step_id: str) -> Iterator[dict[str, Any]]:
    for result in results:
        yield result["steps"][step_id]


# --- every example ---------------------------------------------------------------------------


def test_the_documented_examples_exist() -> None:
    assert set(example_ids()) >= EXPECTED_EXAMPLES
    assert {relative(path) for path in LIBRARY} >= EXPECTED_LIBRARY


def test_every_drawer_file_in_examples_is_an_example_or_in_the_library() -> None:
    found = {
        path
        for pattern in DRAWER_PATTERNS
        for path in EXAMPLES_DIR.rglob(pattern)
        # data/ holds sample data; github/ holds GitHub workflows (checked in test_shard).
        if relative(path).split("/")[0] not in ("data", "github")
    }
    assert found == set(ALL_DRAWERS), "a drawer in another folder would be checked by nothing"


@pytest.mark.parametrize("library", LIBRARY, ids=[relative(path) for path in LIBRARY])
def test_library_drawers_are_called_by_an_example(library: Path) -> None:
    callers = [
        example.name
        for example in EXAMPLES
        if f"drawer: {relative(library)}" in example.read_text(encoding="utf-8")
    ]
    assert callers, f"no example calls {relative(library)}"


@pytest.mark.parametrize("example", ALL_DRAWERS, ids=ALL_IDS)
def test_example_has_a_header_saying_what_it_shows(example: Path) -> None:
    lines = example.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(f"# {example.stem}: "), "first line: # NAME: what it shows"
    header = "\n".join(line for line in lines if line.startswith("#"))
    assert "cd examples" in header, "the header says to run it from examples/"


@pytest.mark.parametrize("example", ALL_DRAWERS, ids=ALL_IDS)
def test_example_validates_without_problems(example: Path, runner: ExampleRunner) -> None:
    done = runner.drawer(relative(example), "validate", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report == {"valid": True, "problems": []}


@pytest.mark.parametrize("example", EXAMPLES, ids=example_ids())
def test_example_runs_ok(example: Path, runner: ExampleRunner) -> None:
    before = files_under(EXAMPLES_DIR)
    run = runner.default_run(example.name)
    document = run.document
    assert document["status"] == "ok"
    assert document["error"] is None
    assert document["name"] == example.stem
    assert document["steps"], "an example has steps"
    for step_id, record in document["steps"].items():
        assert record["status"] in ("ok", "skipped"), f"{step_id}: {record['error']}"
    assert document["outputs"], "an example declares drawer outputs"
    assert all(value is not None for value in document["outputs"].values())
    assert files_under(EXAMPLES_DIR) == before, "an example must not write into examples/"
    assert not list(runner.tmpdir.iterdir()), "an example removes the temp dirs it makes"
    assert TOKEN not in run.stdout + run.stderr


# --- what each example shows ---------------------------------------------------------------


def test_process_files_measures_every_csv_and_reshapes_the_totals(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("process-files.yaml")
    csv_files = sorted((EXAMPLES_DIR / "data").glob("sales-*.csv"))
    expected: dict[str, dict[str, Any]] = {}
    for path in csv_files:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        expected[path.name] = {
            "rows": len(rows),
            "units": sum(int(row["units"]) for row in rows),
            "revenue": round(sum(int(row["units"]) * float(row["unit_price"]) for row in rows), 2),
        }

    results = run.results("measure")
    assert [result["item"] for result in results] == [f"data/{p.name}" for p in csv_files]
    assert [result["index"] for result in results] == list(range(len(csv_files)))
    assert all(result["status"] == "ok" for result in results)

    report = run.outputs["report"]
    assert report["files"] == report["processed"] == len(csv_files) == 6
    assert report["first_file"] == "data/sales-2024-01.csv"
    assert report["per_file"] == expected
    assert report["rows"] == sum(item["rows"] for item in expected.values())
    assert report["units"] == sum(item["units"] for item in expected.values())
    assert report["revenue"] == pytest.approx(sum(f["revenue"] for f in expected.values()))
    best = max(expected, key=lambda name: expected[name]["revenue"])
    assert report["best_month"] == best
    assert report["headline"] == f"6 files, best month {best}"


def test_build_dag_runs_lint_test_docs_side_by_side_then_bundles(runner: ExampleRunner) -> None:
    run = runner.default_run("build-dag.yaml")
    checkout, configure, bundle, cleanup = (
        run.step(name) for name in ("checkout", "configure", "bundle", "cleanup")
    )
    middle = [run.step(name) for name in ("lint", "test", "docs")]
    assert all(record["status"] == "ok" for record in run.document["steps"].values())
    assert ordered_after(configure, checkout)
    assert all(ordered_after(record, configure) for record in middle)
    # max_workers: 3 lets all three start before any of them ends.
    assert max(parse_time(r["started_at"]) for r in middle) <= min(
        parse_time(r["ended_at"]) for r in middle
    )
    assert ordered_after(bundle, *middle)
    assert ordered_after(cleanup, bundle)

    assert run.outputs["version"] == "1.4.2"
    assert run.outputs["archive"] == "calc-1.4.2.tar.gz"
    assert run.outputs["contents"] == [
        "API.md",
        "calc/",
        "calc/__init__.py",
        "tests/",
        "tests/__init__.py",
        "tests/test_calc.py",
    ]
    assert "Ran 2 tests" in " ".join(run.outputs["tests"])
    assert run.outputs["tests"][-1] == "OK"
    assert run.step("docs")["output"]["stdout"] == "docs: 2 functions documented"
    assert not Path(checkout["output"]["stdout"]).exists(), "cleanup removed the checkout"


def test_fan_out_checks_every_listed_service_and_collects_named_outputs(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("fan-out.yaml")
    services = run.step("services")["output"]["json"]
    names = ["auth", "billing", "catalog", "gateway", "search"]
    assert [service["name"] for service in services] == names

    results = run.results("check")
    assert [result["item"] for result in results] == services
    for service, probe in zip(services, iteration_steps(results, "probe"), strict=True):
        values = probe["output"]["values"]
        assert values["endpoint"] == f"http://{service['name']}:{service['port']}"
        assert probe["output"]["stdout"] == (
            f"{service['name']} on port {service['port']}: version {values['version']}, "
            f"{service['replicas']} replicas"
        )

    # cksum is the POSIX CRC, so the simulated versions are the same everywhere.
    assert run.outputs["report"] == {
        "checked": 5,
        "healthy": 5,
        "versions": {
            "auth": "2.8.3",
            "billing": "2.0.5",
            "catalog": "2.0.5",
            "gateway": "2.8.5",
            "search": "2.2.6",
        },
        "first_endpoint": "http://auth:8081",
    }


def test_tolerate_failures_ends_ok_with_two_mirrors_down_and_retries_the_flaky_one(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("tolerate-failures.yaml")
    assert run.outputs == {
        "total": 10,
        "reachable": 8,
        "unreachable": 2,
        "summary": "2 of 10 mirrors unreachable",
    }
    mirrors = run.step("mirrors")
    assert mirrors["status"] == "ok"
    assert mirrors["error"] is None
    assert mirrors["output"]["cancelled"] == mirrors["output"]["skipped"] == 0

    results = mirrors["output"]["results"]
    urls = (EXAMPLES_DIR / "data" / "mirrors.txt").read_text(encoding="utf-8").split()
    assert [result["item"] for result in results] == urls
    failed = [result["index"] for result in results if result["status"] == "failed"]
    assert failed == [3, 8]
    for index, fetch in enumerate(iteration_steps(results, "fetch")):
        url = urls[index]
        if "down" in url:
            assert fetch["attempts"] == 2, "a failing check is retried once"
            assert fetch["output"]["exit_code"] == 7
            assert fetch["error"]["code"] == "STEP_FAILED"
            assert "Connection refused" in fetch["output"]["stderr"]
            assert results[index]["error"]["code"] == "STEP_FAILED"
        else:
            assert fetch["status"] == "ok"
            assert fetch["attempts"] == (2 if "flaky" in url else 1)
            assert fetch["output"]["values"] == {"host": url.split("/")[2]}
    assert run.step("cleanup")["status"] == "ok"
    assert not Path(run.step("state")["output"]["stdout"]).exists()


def test_nested_loops_build_the_whole_matrix_two_commands_at_a_time(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("nested-loops.yaml")
    platforms = ["linux-x86_64", "linux-aarch64", "macos-arm64"]
    versions = ["3.11", "3.12", "3.13"]
    wheels = sorted(f"{p}-py{v}.whl" for p in platforms for v in versions)
    assert run.outputs == {"platforms": 3, "built": 3, "wheels": wheels}

    running: list[int] = []
    for outer, platform in zip(run.results("matrix"), platforms, strict=True):
        assert outer["item"] == platform
        toolchain = outer["steps"]["toolchain"]["output"]["stdout"]
        assert toolchain == f"preparing gcc-13 for {platform}"
        inner = outer["steps"]["versions"]
        assert inner["status"] == "ok"
        assert inner["output"]["total"] == inner["output"]["succeeded"] == 3
        for result, version in zip(inner["output"]["results"], versions, strict=True):
            build = result["steps"]["build"]["output"]
            assert build["values"]["wheel"] == f"{platform}-py{version}.whl"
            assert build["stdout"] == (
                f"building calc for {platform}, Python {version} "
                f"(matrix cell {outer['index']}.{result['index']}, "
                f"{build['values']['running']} build(s) running)"
            )
            running.append(int(build["values"]["running"]))
    assert len(running) == 9
    # Every build counts the builds running when it starts: max_processes: 2 caps it.
    assert min(running) >= 1
    assert max(running) <= 2


def test_inputs_defaults_plan_only_and_mask_the_secret(runner: ExampleRunner) -> None:
    run = runner.default_run("inputs.yaml")
    assert run.outputs == {
        "environment": "staging",
        "replicas": 2,
        "plan": "web -> staging x2",
        "deployed": "skipped",
    }
    assert run.document["inputs"] == {
        "environment": "staging",
        "replicas": 2,
        "apply": False,
        "token": "***",
    }
    assert run.step("deploy")["status"] == "skipped"
    login = run.step("login")["output"]
    assert login["stdout"] == "Authorization: Bearer ***"
    assert login["values"]["session"].startswith("sess-")
    assert TOKEN not in run.stdout + run.stderr


def test_inputs_given_on_the_command_line_are_typed_and_apply_deploys(
    runner: ExampleRunner,
) -> None:
    run = runner.run(
        "inputs.yaml", "-i", "apply=true", "-i", "replicas=3", "-i", "environment=production"
    )
    assert run.returncode == 0, run.stderr
    assert run.outputs == {
        "environment": "production",
        "replicas": 3,
        "plan": "web -> production x3",
        "deployed": "ok",
    }
    deploy = run.step("deploy")["output"]
    assert deploy["lines"][1:] == [f"  instance web-{n} started" for n in (1, 2, 3)]
    assert deploy["lines"][0].startswith("deploying web to production (session sess-")
    assert TOKEN not in run.stdout + run.stderr


def test_inputs_without_the_secret_exits_2_naming_it(runner: ExampleRunner) -> None:
    env = runner.env("inputs.yaml")
    del env["DRAWER_INPUT_TOKEN"]
    done = subprocess.run(
        [sys.executable, "-m", "drawer", "inputs.yaml", "run", "--no-progress"],
        cwd=EXAMPLES_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert '"token"' in done.stderr
    assert "DRAWER_INPUT_TOKEN" in done.stderr
    assert "plan:" not in done.stdout + done.stderr, "nothing ran"


@pytest.mark.parametrize(
    ("assignment", "named"),
    [("replicas=three", "replicas"), ("environment=qa", "environment"), ("apply=yes", "apply")],
)
def test_inputs_refuses_a_wrongly_typed_input_before_running(
    runner: ExampleRunner, assignment: str, named: str
) -> None:
    done = runner.drawer("inputs.yaml", "run", "--no-progress", "-i", assignment)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f'"{named}"' in done.stderr
    assert "plan:" not in done.stdout + done.stderr, "nothing ran"
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("ready_after", "winner"), [(1, 0), (3, 2), (8, 7)], ids=["at-once", "default", "last-try"]
)
def test_poll_service_polls_until_the_service_answers_ready(
    runner: ExampleRunner, ready_after: int, winner: int
) -> None:
    if ready_after == 3:
        run = runner.default_run("poll-service.yaml")
    else:
        run = runner.run("poll-service.yaml", "-i", f"ready_after={ready_after}")
    assert run.returncode == 0, run.stderr
    polls = winner + 1
    assert run.outputs == {"ready": True, "polls": polls, "winner": winner, "answer": "ready"}
    poll = run.step("poll")
    assert poll["status"] == "ok"
    assert poll["error"] is None
    assert poll["output"]["satisfied"] is True
    assert poll["output"]["last"]["probe"]["stdout"] == "ready"

    results = poll["output"]["results"]
    assert [result["index"] for result in results] == list(range(polls))
    assert all(result["status"] == "ok" for result in results)
    probes = list(iteration_steps(results, "probe"))
    assert [probe["output"]["stdout"] for probe in probes] == ["starting"] * winner + ["ready"]
    assert [probe["output"]["stderr"] for probe in probes] == [f"poll {n}" for n in range(polls)]
    # delay: 100ms at least between the starts of two polls, so the last one starts 100ms x
    # (polls - 1) after the repeat did at the earliest (durations are kept to the millisecond).
    assert poll["duration"] >= 0.1 * winner - 0.001

    boot = run.step("boot")
    assert boot["output"]["waited"] >= 0.2
    assert ordered_after(probes[0], boot), "the first poll waits for the boot wait"
    assert run.step("gave-up")["status"] == "skipped"
    assert not Path(run.step("service")["output"]["stdout"]).exists(), "cleanup removed it"


def test_poll_service_that_never_comes_up_cleans_up_then_fails(runner: ExampleRunner) -> None:
    run = runner.run("poll-service.yaml", "-i", "ready_after=20")
    assert run.returncode == 1, run.stderr
    document = run.document
    assert document["status"] == "failed"
    assert run.outputs == {"ready": False, "polls": 8, "winner": None, "answer": "starting"}

    poll = run.step("poll")
    assert poll["status"] == "ok", "on_exhausted: ok lets the run go on"
    assert poll["output"]["satisfied"] is False
    assert poll["output"]["winner"] is None
    assert poll["output"]["iterations"] == len(poll["output"]["results"]) == 8
    assert run.step("cleanup")["status"] == "ok"
    assert not Path(run.step("service")["output"]["stdout"]).exists()

    gave_up = run.step("gave-up")
    assert gave_up["status"] == "failed"
    assert gave_up["output"]["stderr"] == "the service was not ready after 8 polls"
    assert document["error"]["code"] == "STEP_FAILED"
    assert document["error"]["step_path"] == "gave-up"


def test_parallel_builds_makes_three_artefacts_two_builds_at_a_time(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("parallel-builds.yaml")
    assert run.outputs == {
        "artefacts": ["calc-0.3.0-py3-none-any.whl", "calc-0.3.0-docs.html", "calc-0.3.0.tar.gz"],
        "wheel": "calc-0.3.0-py3-none-any.whl: 2 files",
        "docs": "calc-0.3.0-docs.html: 2 functions documented",
        "sdist": "calc-0.3.0.tar.gz: 2 entries",
        "summary": "3 of 3 builds ok",
    }
    builds = run.step("builds")
    assert builds["status"] == "ok"
    branches = builds["output"]
    assert list(branches) == ["pkg", "docs", "sdist"]
    assert all(branch["status"] == "ok" for branch in branches.values())

    # The group's record holds {STEP_ID: output}; a single-step branch is that step's record.
    pkg, docs, sdist = branches["pkg"], branches["docs"], branches["sdist"]
    assert list(pkg["output"]) == ["layout", "wheel"]
    dist = Path(run.step("workspace")["output"]["stdout"]) / "dist"
    assert pkg["output"]["wheel"]["values"]["path"] == str(dist / "calc-0.3.0-py3-none-any.whl")
    assert docs["output"]["values"]["path"] == str(dist / "calc-0.3.0-docs.html")
    assert sdist["output"]["values"]["path"] == str(dist / "calc-0.3.0.tar.gz")

    # max_parallelism: 2: pkg and docs start together, sdist when one of them has ended.
    assert max(parse_time(b["started_at"]) for b in (pkg, docs)) <= min(
        parse_time(b["ended_at"]) for b in (pkg, docs)
    )
    assert parse_time(sdist["started_at"]) >= min(parse_time(b["ended_at"]) for b in (pkg, docs))
    assert ordered_after(run.step("artefacts"), builds)
    assert run.step("verdict")["status"] == "skipped"
    assert not dist.exists(), "cleanup removed the workspace"


def test_parallel_builds_with_a_broken_build_finishes_the_others_and_cleans_up(
    runner: ExampleRunner, tmp_path: Path
) -> None:
    original = (EXAMPLES_DIR / "parallel-builds.yaml").read_text(encoding="utf-8")
    typo = original.replace('-C "$WORKSPACE/src" calc\n', '-C "$WORKSPACE/src" calc-src\n')
    assert typo != original
    broken = tmp_path / "parallel-builds.yaml"
    broken.write_text(typo, encoding="utf-8")
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()

    run = runner.run(str(broken), env={"TMPDIR": str(own_tmp)})
    assert run.returncode == 1, run.stderr
    builds = run.step("builds")
    assert builds["status"] == "failed"
    assert builds["error"]["code"] == "PARALLEL_BRANCH_FAILED"
    assert builds["error"]["cause"]["step_path"] == "builds.sdist"
    statuses = {branch_id: record["status"] for branch_id, record in builds["output"].items()}
    assert statuses == {"pkg": "ok", "docs": "ok", "sdist": "failed"}, "continue: all ran"

    assert run.step("artefacts")["status"] == "skipped"
    assert run.step("summary")["output"] == "2 of 3 builds ok"
    assert run.step("cleanup")["status"] == "ok"
    assert not list(own_tmp.iterdir()), "the workspace is removed even when a build failed"
    assert run.document["error"]["step_path"] == "verdict"
    assert "2 of 3 builds ok: 1 of 3 branches failed" in run.step("verdict")["output"]["stderr"]


ROUTES = {
    "dev": ("default", {"plan": "dry run: would deploy web 1.4.2 to dev (1 replica)"}),
    "staging": (
        1,
        {
            "staging-deploy": "replica web-1: 1.4.2",
            "smoke-test": "smoke test passed: GET /healthz 200",
        },
    ),
    "prod": (
        0,
        {
            "canary": "canary: web 1.4.2 on 1 of 3 replicas",
            "canary-check": "canary healthy: 0 errors in 200 requests",
            "rollout": "\n".join(f"replica web-{n}: 1.4.2" for n in (1, 2, 3)),
        },
    ),
}


@pytest.mark.parametrize("environment", list(ROUTES))
def test_route_runs_the_case_of_each_environment(runner: ExampleRunner, environment: str) -> None:
    run = runner.run("route.yaml", "-i", f"environment={environment}")
    assert run.returncode == 0, run.stderr
    matched, steps = ROUTES[environment]
    assert run.outputs == {
        "environment": environment,
        "matched": matched,
        "steps_run": len(steps),
        "running": "nothing deployed" if environment == "dev" else "web 1.4.2",
    }
    deploy = run.step("deploy")
    assert deploy["status"] == "ok"
    assert deploy["output"]["matched"] == matched
    records = deploy["output"]["steps"]
    assert list(records) == list(steps), "only the matched case's steps ran"
    assert {step_id: record["output"]["stdout"] for step_id, record in records.items()} == steps
    assert all(record["status"] == "ok" for record in records.values())
    assert all(f"[deploy.{matched}.{step_id}]" in run.stderr for step_id in steps)
    assert not Path(run.step("servers")["output"]["stdout"]).exists()


def test_route_defaults_to_the_dry_run_and_refuses_an_unknown_environment(
    runner: ExampleRunner,
) -> None:
    run = runner.default_run("route.yaml")
    assert run.outputs["environment"] == "dev"
    assert run.outputs["matched"] == "default"

    done = runner.drawer("route.yaml", "run", "--no-progress", "-i", "environment=qa")
    assert done.returncode == 2, done.stdout + done.stderr
    assert '"environment"' in done.stderr
    assert "dry run" not in done.stdout + done.stderr, "nothing ran"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_builds_every_component_with_the_sub_drawer(runner: ExampleRunner) -> None:
    run = runner.default_run("release.yaml")
    names = ["core", "cli", "plugins"]
    workspace = Path(run.step("workspace")["output"]["stdout"])
    results = run.results("components")
    assert [result["item"] for result in results] == names
    builds = list(iteration_steps(results, "build"))
    assert all(build["status"] == "ok" for build in builds)
    for name, build in zip(names, builds, strict=True):
        output = build["output"]
        assert set(output) == {"archive", "checksum", "size"}, "the sub-drawer's outputs"
        assert output["archive"] == str(workspace / f"{name}-2.1.0.tar.gz")
        assert re.fullmatch(r"[0-9a-f]{64}", output["checksum"])
        assert isinstance(output["size"], int) and output["size"] > 0

    checksums = [build["output"]["checksum"] for build in builds]
    assert len(set(checksums)) == 3
    assert run.outputs == {
        "version": "2.1.0",
        "components": names,
        "checksums": checksums,
        "bytes": [build["output"]["size"] for build in builds],
        "sha256sums": [f"{s}  {n}-2.1.0.tar.gz" for s, n in zip(checksums, names, strict=True)],
    }
    assert run.step("verify")["status"] == "ok"
    assert not workspace.exists(), "cleanup removed the workspace"


def test_build_one_on_its_own_gives_the_checksum_the_release_reported(
    runner: ExampleRunner, tmp_path: Path
) -> None:
    release = runner.default_run("release.yaml")
    reported = {
        result["item"]: result["steps"]["build"]["output"]["checksum"]
        for result in release.results("components")
    }
    run = runner.run(
        "lib/build-one.yaml", "-i", "name=cli", "-i", "version=2.1.0", "-i", f"dest={tmp_path}"
    )
    assert run.returncode == 0, run.stderr
    archive = tmp_path / "cli-2.1.0.tar.gz"
    assert run.outputs == {
        "archive": str(archive),
        "checksum": reported["cli"],
        "size": archive.stat().st_size,
    }
    assert sha256_of(archive) == reported["cli"], "the archive is reproducible"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "cli-2.1.0/PKG-INFO",
            "cli-2.1.0/cli",
            "cli-2.1.0/cli/__init__.py",
        ]
        module = tar.extractfile("cli-2.1.0/cli/__init__.py")
        assert module is not None
        assert '__version__ = "2.1.0"' in module.read().decode()


def test_release_of_another_version_gives_other_archives(runner: ExampleRunner) -> None:
    default = runner.default_run("release.yaml")
    run = runner.run("release.yaml", "-i", "version=2.2.0")
    assert run.returncode == 0, run.stderr
    assert [line.split()[1] for line in run.outputs["sha256sums"]] == [
        "core-2.2.0.tar.gz",
        "cli-2.2.0.tar.gz",
        "plugins-2.2.0.tar.gz",
    ]
    assert not set(run.outputs["checksums"]) & set(default.outputs["checksums"])


def test_build_one_without_its_inputs_exits_2_naming_one(runner: ExampleRunner) -> None:
    done = runner.drawer("lib/build-one.yaml", "run", "--no-progress")
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'missing required input "name"' in done.stderr


GRAPHS = {
    "poll-service.yaml": (
        ["service", "boot", "poll", "probe", "cleanup", "gave-up"],
        "poll (repeat until probe.output.stdout == 'ready', max_iterations 8)",
    ),
    "parallel-builds.yaml": (
        [
            "workspace",
            "builds",
            "pkg",
            "layout",
            "wheel",
            "docs",
            "sdist",
            "artefacts",
            "summary",
            "cleanup",
            "verdict",
        ],
        "builds (parallel, max_parallelism 2)",
    ),
    "route.yaml": (
        [
            "servers",
            "deploy",
            "canary",
            "canary-check",
            "rollout",
            "staging-deploy",
            "smoke-test",
            "plan",
            "state",
            "cleanup",
        ],
        "when inputs.environment == 'staging'",
    ),
    "release.yaml": (
        ["workspace", "components", "build", "collect", "verify", "cleanup"],
        "build (drawer lib/build-one.yaml)",
    ),
    "lib/build-one.yaml": (["sources", "pack"], "pack (run)"),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_of_the_new_examples_names_every_step(runner: ExampleRunner, name: str) -> None:
    step_ids, text_line = GRAPHS[name]
    text = runner.drawer(name, "graph", "--format", "text")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == Path(name).stem
    assert all(any(f"─ {step_id} (" in line for line in lines) for step_id in step_ids)
    assert any(line.endswith(text_line) for line in lines)

    mermaid = runner.drawer(name, "graph", "--format", "mermaid")
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith("flowchart TD\n")
    assert all(f'"{step_id}' in mermaid.stdout for step_id in step_ids)


def test_resume_fetches_only_the_archives_that_failed(
    runner: ExampleRunner, tmp_path: Path
) -> None:
    env = {"DRAWER_HOME": str(tmp_path / "store")}
    failed = runner.run("resume.yaml", env={**env, "BROKEN": "charlie foxtrot"})
    assert failed.returncode == 1
    assert failed.step("fetch")["output"]["failed"] == 2
    assert "charlie: mirror unreachable" in failed.stderr

    resumed = runner.run("resume.yaml", "--resume", "last", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.document["resumed_from"] == failed.document["run_id"]
    # Only commands that ran print; the six archives fetched before are reused.
    assert sorted(re.findall(r"fetched (\w+)\.tar\.gz", resumed.stderr)) == ["charlie", "foxtrot"]
    assert resumed.outputs == {"fetched": 8, "report": "8 of 8 archives fetched"}
    results = resumed.results("fetch")
    assert [result["item"] for result in results][:3] == ["alpha", "bravo", "charlie"]
    assert all(result["status"] == "ok" for result in results)


def test_the_readme_lists_every_example() -> None:
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in ALL_IDS)
