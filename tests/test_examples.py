"""Every drawer in examples/ validates and runs as a user runs it, and does what it says."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(
    path for pattern in ("*.yaml", "*.yml", "*.json") for path in EXAMPLES_DIR.glob(pattern)
)
EXPECTED_EXAMPLES = {
    "process-files.yaml",
    "build-dag.yaml",
    "fan-out.yaml",
    "tolerate-failures.yaml",
    "nested-loops.yaml",
    "inputs.yaml",
}
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

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.cache: dict[str, ExampleRun] = {}

    def env(self, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DRAWER_") and key != "GITHUB_ACTIONS"
        }
        env["TMPDIR"] = str(self.tmpdir)
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
    return ExampleRunner(tmp_path_factory.mktemp("examples-tmp"))


def example_ids() -> list[str]:
    return [path.name for path in EXAMPLES]


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


@pytest.mark.parametrize("example", EXAMPLES, ids=example_ids())
def test_example_has_a_header_saying_what_it_shows(example: Path) -> None:
    lines = example.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith(f"# {example.stem}: "), "first line: # NAME: what it shows"
    header = "\n".join(line for line in lines if line.startswith("#"))
    assert "cd examples" in header, "the header says to run it from examples/"


@pytest.mark.parametrize("example", EXAMPLES, ids=example_ids())
def test_example_validates_without_problems(example: Path, runner: ExampleRunner) -> None:
    done = runner.drawer(example.name, "validate", "--json")
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
