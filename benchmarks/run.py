"""Benchmarks for drawer against simple baselines; prints a table and writes results.json.

Usage: python benchmarks/run.py [--quick] [--repeats N] [--only NAME] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TIME_BIN = "/usr/bin/time"

FAN_ITEMS = 1_000
FAN_PARALLELISM = 8
EFF_ITEMS = 32
EFF_SLEEP = 0.5
SCALE_ITEMS = 100_000
SCALE_PARALLELISM = 100
FILE_LINES = 1_000_000
STARTUP_STEPS = 200
EDIT_STEPS = 2_000
SHARD_ITEMS = 10_000
SHARD_COUNT = 4
VALIDATE_STEPS = 5_000
BENCHMARKS = (
    "fan-out", "store", "efficiency", "scale", "start-up", "edit", "shard", "validate",
)  # fmt: skip


@dataclass
class Row:
    """One table row: drawer's value against a baseline, with a target and a verdict."""

    name: str
    unit: str
    drawer: float
    baseline: float | None
    ratio: float | None
    target: str
    passed: bool | None
    detail: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- commands and timing


def drawer_command() -> list[str]:
    """The `drawer` console script of this interpreter, else the one on PATH, else `-m drawer`.

    A pyenv shim on PATH adds ~80 ms of bash per call, so the script installed next to
    `sys.executable` (what the shim would exec) is preferred.
    """
    beside = Path(sys.executable).parent / "drawer"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("drawer")
    if found and "/shims/" not in found:
        return [found]
    return [sys.executable, "-m", "drawer"]


def use_bytecode_cache(workdir: Path, enable: bool) -> str:
    """Let child Pythons cache bytecode under the temp dir, as an installed package would.

    With PYTHONDONTWRITEBYTECODE set and an editable install, every drawer start would
    recompile drawer's own modules; PYTHONPYCACHEPREFIX keeps the cache out of src/.
    """
    if not enable:
        return "as-is" + (" (no writes)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return "cached in temp dir"


def timed(
    argv: Sequence[str],
    cwd: Path,
    stdout: Any = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> float:
    """Wall seconds of one process; raises when it exits non-zero."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, check=False, env=env
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def median_of(
    measure: Callable[[], float], repeats: int, warmup: bool = True
) -> tuple[float, list[float]]:
    """Median of `repeats` measurements after one discarded warm-up run."""
    if warmup:
        measure()
    samples = [measure() for _ in range(repeats)]
    return statistics.median(samples), samples


def interleaved(
    measures: Sequence[Callable[[], float]], repeats: int
) -> list[tuple[float, list[float]]]:
    """Medians of several measurements taken in turn (A B A B ...), after one warm-up each.

    Alternating keeps a drifting machine load from favouring one side.
    """
    for measure in measures:
        measure()
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for measure, taken in zip(measures, samples, strict=True):
            taken.append(measure())
    return [(statistics.median(taken), taken) for taken in samples]


def run_with_peak_rss(argv: Sequence[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process, via /usr/bin/time -v when present."""
    if os.access(TIME_BIN, os.X_OK):
        report = cwd / "time.txt"
        start = time.perf_counter()
        done = subprocess.run(
            [TIME_BIN, "-v", "-o", str(report), *argv],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
        for line in report.read_text().splitlines():
            if "Maximum resident set size" in line:
                return elapsed, int(line.rsplit(":", 1)[1]) / 1024
        raise RuntimeError(f"no peak RSS in {report}")
    # Fallback: a fresh wrapper process whose only child is drawer, so RUSAGE_CHILDREN is drawer's.
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "elapsed = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(code, elapsed, peak)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *argv], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] != "0":
        raise RuntimeError(f"{' '.join(argv)} exited {out[0]}")
    return float(out[1]), int(out[2]) / 1024


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- drawer files


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def fan_file(workdir: Path, shell: str | None) -> Path:
    shell_line = f"        shell: {shell}\n" if shell else ""
    return write(workdir / f"fan_{shell or 'default'}.yaml", (
        "steps:\n"
        "  - id: fan\n"
        "    kind: for_each\n"
        f"    over: {{range: [0, {FAN_ITEMS}]}}\n"
        f"    parallelism: {FAN_PARALLELISM}\n"
        "    steps:\n"
        "      - id: t\n"
        f"{shell_line}"
        "        run: true ${item}\n"
    ))  # fmt: skip


def efficiency_file(workdir: Path, max_processes: int | None = None) -> Path:
    execution = f"execution: {{max_processes: {max_processes}}}\n" if max_processes else ""
    return write(workdir / f"efficiency_{max_processes or 'default'}.yaml", (
        f"{execution}"
        "steps:\n"
        "  - id: sleeps\n"
        "    kind: for_each\n"
        f"    over: {{range: [0, {EFF_ITEMS}]}}\n"
        f"    parallelism: {EFF_ITEMS}\n"
        "    steps:\n"
        "      - id: s\n"
        f"        run: sleep {EFF_SLEEP}\n"
    ))  # fmt: skip


def scale_file(workdir: Path, name: str, over: str, collect: str) -> Path:
    return write(workdir / f"{name}.yaml", (
        "steps:\n"
        "  - id: scale\n"
        "    kind: for_each\n"
        f"    over: {over}\n"
        f"    parallelism: {SCALE_PARALLELISM}\n"
        f"    collect: {collect}\n"
        "    steps:\n"
        '      - {id: v, kind: value, value: "${item}"}\n'
    ))  # fmt: skip


def startup_file(workdir: Path, count: int = STARTUP_STEPS) -> Path:
    """A valid file of `count` top-level steps: run, value and for_each, with refs and deps."""
    lines = ["name: startup", "steps:"]
    for n in range(1, count + 1):
        sid = f"s{n}"
        kind = n % 10
        if n > 1 and kind == 5:
            lines += [
                f"  - id: {sid}",
                "    kind: for_each",
                "    over: [a, b, c]",
                "    parallelism: 2",
                "    steps:",
                f"      - id: {sid}_echo",
                "        run: echo ${item} ${index}",
                f'      - {{id: {sid}_v, kind: value, value: "${{{sid}_echo.output.stdout}}"}}',
            ]
        elif kind in (0, 3, 7):
            lines += [
                f"  - id: {sid}",
                "    kind: value",
                f'    value: {{n: {n}, label: "step {n}"}}',
            ]
        else:
            lines += [f"  - id: {sid}", f"    run: echo {n}"]
            if n > 2 and kind == 2:
                lines[-1] = f"    run: echo ${{s{n - 1}.output.stdout}} {n}"
                lines.append(f"    depends_on: [s{n - 1}, s{n - 2}]")
            elif n > 1 and kind == 9:
                lines.append("    shell: sh")
                lines.append(f'    env: {{PREV: "${{s{n - 1}.status}}"}}')
    return write(workdir / "startup.yaml", "\n".join(lines) + "\n")


# ---------------------------------------------------------------- benchmarks


def bench_fanout(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    rows = []
    for shell, base_argv in (
        ("sh", ["sh", "-c", "true {}"]),
        (None, ["bash", "-e", "-o", "pipefail", "-c", "true {}"]),
    ):
        path = fan_file(workdir, shell)
        argv = [*drawer, str(path), "run", "--quiet", "--no-progress"]
        (ours, our_samples), (theirs, their_samples) = interleaved(
            [
                lambda argv=argv: timed(argv, workdir),
                lambda b=base_argv: timed_xargs_argv(FAN_ITEMS, b, workdir),
            ],
            repeats,
        )
        ratio = ours / theirs
        label = "sh" if shell else "bash (default)"
        rows.append(Row(
            name=f"fan-out {FAN_ITEMS} x true, P={FAN_PARALLELISM}, {label}", unit="s",
            drawer=ours, baseline=theirs, ratio=ratio, target="<= 1.5x xargs",
            passed=ratio <= 1.5,
            detail={"drawer_samples": our_samples, "xargs_samples": their_samples,
                    "xargs": f"seq {FAN_ITEMS} | xargs -P {FAN_PARALLELISM} -I{{}} "
                             f"{' '.join(base_argv[:-1])} '{base_argv[-1]}'"},
        ))  # fmt: skip
    rows.append(bench_supervision(drawer, workdir, repeats))
    return rows


def bench_supervision(drawer: list[str], workdir: Path, repeats: int) -> Row:
    """The sh fan-out with drawer a subreaper and its watchdog running (the default) and
    with both off (`DRAWER_SUPERVISE=off`): what ending escaped processes costs."""
    path = fan_file(workdir, "sh")
    argv = [*drawer, str(path), "run", "--quiet", "--no-progress", "--no-store"]
    off = {**os.environ, "DRAWER_SUPERVISE": "off"}
    (ours, our_samples), (theirs, their_samples) = interleaved(
        [lambda: timed(argv, workdir), lambda: timed(argv, workdir, env=off)], repeats
    )
    ratio = ours / theirs
    return Row(
        name=f"fan-out {FAN_ITEMS} x true, P={FAN_PARALLELISM}, sh: subreaper + watchdog vs off",
        unit="s", drawer=ours, baseline=theirs, ratio=ratio,
        target="<= 1.05x off", passed=ratio <= 1.05,
        detail={"on_samples": our_samples, "off_samples": their_samples},
    )  # fmt: skip


def fresh_store(workdir: Path, name: str) -> Path:
    """An empty run store for one sample (the one in workdir would grow run after run)."""
    store = workdir / name
    shutil.rmtree(store, ignore_errors=True)
    return store


def bench_store(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    """The fan-out run with its records written to SQLite and without (`--no-store`)."""
    path = fan_file(workdir, "sh")
    base = [*drawer, str(path), "run", "--quiet", "--no-progress"]

    def recorded() -> float:
        return timed([*base, "--store", str(fresh_store(workdir, "store-fanout"))], workdir)

    (ours, our_samples), (theirs, their_samples) = interleaved(
        [recorded, lambda: timed([*base, "--no-store"], workdir)], repeats
    )
    ratio = ours / theirs
    return [
        Row(
            name=f"store: fan-out {FAN_ITEMS} x true, P={FAN_PARALLELISM}, sh, vs --no-store",
            unit="s", drawer=ours, baseline=theirs, ratio=ratio,
            target="<= 1.1x --no-store", passed=ratio <= 1.1,
            detail={"store_samples": our_samples, "no_store_samples": their_samples},
        )
    ]  # fmt: skip


def shard_file(workdir: Path, executor: str = "local") -> Path:
    executor_lines = (
        f"    executor: {executor}\n    dask: {{chunk_size: 250}}\n" if executor == "dask" else ""
    )
    return write(workdir / f"shard_{executor}.yaml", (
        "steps:\n"
        "  - id: work\n"
        "    kind: for_each\n"
        f"    over: {{range: [0, {SHARD_ITEMS}]}}\n"
        f"    parallelism: {FAN_PARALLELISM}\n"
        f"{executor_lines}"
        "    steps:\n"
        "      - id: t\n"
        "        shell: sh\n"
        "        run: true ${item}\n"
        "outputs:\n"
        "  done: ${work.output.succeeded}\n"
    ))  # fmt: skip


def sharded_run(drawer: list[str], path: Path, workdir: Path, together: bool) -> float:
    """Every shard as its own process (all at once, or one after another: the slowest one
    alone is what N machines would take), then `drawer merge`; wall seconds."""
    parts = [workdir / f"part-{index}.json" for index in range(1, SHARD_COUNT + 1)]
    argv = [*drawer, str(path), "run", "--quiet", "--no-progress", "--no-store"]
    commands = [
        [*argv, "--shard", f"{index}/{SHARD_COUNT}", "--output", str(part)]
        for index, part in enumerate(parts, 1)
    ]
    if together:
        start = time.perf_counter()
        running = [subprocess.Popen(c, cwd=workdir, stdout=subprocess.DEVNULL) for c in commands]
        if any(process.wait() != 0 for process in running):
            raise RuntimeError("a shard failed")
        slowest = time.perf_counter() - start
    else:
        slowest = max(timed(command, workdir) for command in commands)
    merged = workdir / "merged.json"
    merge = timed([*drawer, "merge", *map(str, parts), "--output", str(merged)], workdir)
    if json.loads(merged.read_text())["outputs"]["done"] != SHARD_ITEMS:
        raise RuntimeError("the merged run is incomplete")
    return slowest + merge


def bench_shard(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    """10,000 items of a CPU-light command: one process, 4 shards side by side on this
    machine, the slowest shard alone (what 4 machines would take), and the Dask executor."""
    path = shard_file(workdir)
    local_argv = [*drawer, str(path), "run", "--quiet", "--no-progress", "--no-store"]
    runs = max(1, min(repeats, 3))
    local = statistics.median(timed(local_argv, workdir) for _ in range(runs))
    together = statistics.median(sharded_run(drawer, path, workdir, True) for _ in range(runs))
    apart = statistics.median(sharded_run(drawer, path, workdir, False) for _ in range(runs))
    label = f"shard: {SHARD_ITEMS:,} x true, P={FAN_PARALLELISM}"
    rows = [
        Row(name=f"{label}, one process (local executor)", unit="s", drawer=local,
            baseline=None, ratio=None, target="(info)", passed=None),
        Row(name=f"{label}, {SHARD_COUNT} shards side by side here + merge", unit="s",
            drawer=together, baseline=local, ratio=together / local, target="(info)",
            passed=None),
        Row(name=f"{label}, slowest shard alone + merge (= {SHARD_COUNT} machines)",
            unit="s", drawer=apart, baseline=local, ratio=apart / local, target="(info)",
            passed=None),
    ]  # fmt: skip
    try:
        import distributed  # noqa: F401
    except ImportError:
        return rows
    dask_path = shard_file(workdir, "dask")
    dask_argv = [*drawer, str(dask_path), "run", "--quiet", "--no-progress", "--no-store"]
    on_dask = statistics.median(timed(dask_argv, workdir) for _ in range(runs))
    rows.append(Row(
        name=f"{label}, Dask executor (LocalCluster, chunks of 250)", unit="s", drawer=on_dask,
        baseline=local, ratio=on_dask / local, target="(info)", passed=None,
    ))  # fmt: skip
    return rows


def timed_xargs_argv(
    count: int, command: list[str], cwd: Path, parallelism: int = FAN_PARALLELISM
) -> float:
    """Wall seconds of `seq COUNT | xargs -P N -I{} COMMAND...` (a real two-process pipeline)."""
    start = time.perf_counter()
    seq = subprocess.Popen(["seq", str(count)], cwd=cwd, stdout=subprocess.PIPE)
    xargs = subprocess.run(
        ["xargs", "-P", str(parallelism), "-I{}", *command],
        cwd=cwd,
        stdin=seq.stdout,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    assert seq.stdout is not None
    seq.stdout.close()
    seq.wait()
    elapsed = time.perf_counter() - start
    if xargs.returncode != 0:
        raise RuntimeError(f"xargs exited {xargs.returncode}")
    return elapsed


def bench_efficiency(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    """Span of 32 concurrent sleeps: as configured by default, and with max_processes raised."""
    rows = []
    for max_processes in (None, EFF_ITEMS):
        path = efficiency_file(workdir, max_processes)
        out = workdir / "efficiency.json"
        loop_durations: list[float] = []

        def once(path: Path = path, out: Path = out, loops: list[float] = loop_durations) -> float:
            with out.open("wb") as stream:
                timed([*drawer, str(path), "run", "--json"], workdir, stdout=stream)
            record = json.loads(out.read_text())["steps"]["sleeps"]
            starts, ends = [], []
            for result in record["output"]["results"]:
                for step in result["steps"].values():
                    starts.append(parse_rfc3339(step["started_at"]))
                    ends.append(parse_rfc3339(step["ended_at"]))
            loops.append(record["duration"])
            return max(ends) - min(starts)

        span, spans = median_of(once, repeats)
        reference, reference_samples = median_of(
            lambda: timed_xargs_argv(
                EFF_ITEMS, ["bash", "-e", "-o", "pipefail", "-c", f"sleep {EFF_SLEEP}"], workdir,
                parallelism=EFF_ITEMS,
            ),
            repeats,
        )  # fmt: skip
        ratio = span / EFF_SLEEP
        setting = f"max_processes={max_processes}" if max_processes else "default max_processes"
        rows.append(Row(
            name=f"efficiency {EFF_ITEMS} x sleep {EFF_SLEEP}, P={EFF_ITEMS}, {setting}",
            unit="s", drawer=span, baseline=EFF_SLEEP, ratio=ratio,
            # With the default max_processes (max(16, 4 x CPUs): 16 here) 32 sleeps run in two
            # waves by design; the loop's own efficiency is the row with the cap raised.
            target="<= 1.1x ideal" if max_processes else "(info: 2 waves of 16)",
            passed=ratio <= 1.1 if max_processes else None,
            detail={"span_samples": spans, "loop_duration_samples": loop_durations[1:],
                    "measure": "first iteration start to last iteration end (ms timestamps)",
                    "note": f"same sleeps via xargs -P {EFF_ITEMS} bash -c: {reference:.3f} s "
                            f"({reference / EFF_SLEEP:.2f}x ideal)",
                    "xargs_reference_s": reference, "xargs_reference_samples": reference_samples,
                    "xargs_reference": f"seq {EFF_ITEMS} | xargs -P {EFF_ITEMS} -I{{}} "
                                       f"bash -e -o pipefail -c 'sleep {EFF_SLEEP}' (wall)"},
        ))  # fmt: skip
    return rows


def bench_scale(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    write(workdir / "items.txt", "".join(f"{n}\n" for n in range(FILE_LINES)))
    cases = (
        (
            "scale_range",
            f"{{range: [0, {SCALE_ITEMS}]}}",
            "all",
            SCALE_ITEMS,
            300.0,
            f"scale {SCALE_ITEMS:,} value items, P={SCALE_PARALLELISM}, collect all",
        ),
        (
            "scale_file",
            "{file: items.txt}",
            "none",
            FILE_LINES,
            200.0,
            f"scale {FILE_LINES:,}-line file, P={SCALE_PARALLELISM}, collect none",
        ),
    )
    rows = []
    for name, over, collect, items, rss_limit, label in cases:
        path = scale_file(workdir, name, over, collect)
        doc = workdir / f"{name}.json"
        argv = [*drawer, str(path), "run", "--quiet", "--no-progress", "--output", str(doc)]
        for recorded in (True, False):
            samples = []
            for _ in range(repeats):
                store = ["--store", str(fresh_store(workdir, "store-scale"))]
                wall, rss = run_with_peak_rss(
                    [*argv, *(store if recorded else ["--no-store"])], workdir
                )
                record = json.loads(doc.read_text())["steps"]["scale"]
                if record["status"] != "ok" or record["output"]["succeeded"] != items:
                    raise RuntimeError(f"{name}: unexpected record {record['status']}")
                samples.append({"wall": wall, "loop": record["duration"], "rss_mb": rss})
            loop = statistics.median(s["loop"] for s in samples)
            wall = statistics.median(s["wall"] for s in samples)
            rss = max(s["rss_mb"] for s in samples)
            rate, wall_rate = items / loop, items / wall
            how = "store on" if recorded else "--no-store"
            rows.append(Row(
                name=f"{label}, {how}: items/s (loop)", unit="items/s", drawer=rate,
                baseline=None, ratio=None, target=">= 20,000 items/s", passed=rate >= 20_000,
                detail={"samples": samples, "items": items},
            ))  # fmt: skip
            rows.append(Row(
                name=f"{label}, {how}: items/s (whole process)", unit="items/s",
                drawer=wall_rate, baseline=None, ratio=None, target="(info)", passed=None,
                detail={"wall_s": wall},
            ))  # fmt: skip
            rows.append(Row(
                name=f"{label}, {how}: peak RSS", unit="MB", drawer=rss, baseline=None,
                ratio=None, target=f"< {rss_limit:.0f} MB", passed=rss < rss_limit,
            ))  # fmt: skip
    return rows


def bench_startup(drawer: list[str], workdir: Path, runs: int) -> list[Row]:
    path = startup_file(workdir)
    check = subprocess.run(
        [*drawer, str(path), "validate"], cwd=workdir, capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"generated start-up file is invalid:\n{check.stderr}")
    (bare, bare_samples), (version, version_samples), (validate, validate_samples) = interleaved(
        [
            lambda: timed([sys.executable, "-c", "pass"], workdir),
            lambda: timed([*drawer, "--version"], workdir),
            lambda: timed([*drawer, str(path), "validate"], workdir),
        ],
        runs,
    )
    over = (version - bare) * 1000
    return [
        Row(name="start-up: drawer --version", unit="s", drawer=version, baseline=bare,
            ratio=version / bare, target="<= bare python + 150 ms", passed=over <= 150,
            detail={"over_bare_ms": over, "samples": version_samples,
                    "bare_samples": bare_samples}),
        Row(name=f"start-up: drawer FILE validate ({STARTUP_STEPS} steps)", unit="s",
            drawer=validate, baseline=bare, ratio=validate / bare, target="(info)", passed=None,
            detail={"over_bare_ms": (validate - bare) * 1000, "samples": validate_samples,
                    "output": check.stdout.strip()}),
    ]  # fmt: skip


def edit_file(workdir: Path, count: int = EDIT_STEPS) -> Path:
    """A long drawer file with comments, blank lines and several step shapes."""
    lines = ["# A long drawer file for the edit benchmark.", "name: big", "steps:"]
    for index in range(count):
        lines += [f"  - id: s{index}   # step {index}", f"    run: echo {index}"]
        if index % 3 == 0:
            lines.append("    timeout: 30s")
        if index % 5 == 0:
            lines.append("    retry: {attempts: 2}")
        lines.append("")
    return write(workdir / "edit.yaml", "\n".join(lines) + "\n")


def bench_edit(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    """`set` on a 2,000-step file: in process (edit + validation), the CLI, and a ruamel.yaml
    load-and-dump of the same edit for comparison."""
    import io

    from ruamel.yaml import YAML

    from drawer.assign import apply_assignments

    path = edit_file(workdir)
    text = path.read_text()
    target = f"s{EDIT_STEPS // 2}.timeout=5s"

    def in_process() -> float:
        start = time.perf_counter()
        apply_assignments(text, path, [target], as_string=False)
        return time.perf_counter() - start

    def cli() -> float:
        path.write_text(text)
        return timed([*drawer, str(path), "set", target], workdir)

    def round_trip() -> float:
        start = time.perf_counter()
        yaml = YAML()
        data = yaml.load(text)
        data["steps"][EDIT_STEPS // 2]["timeout"] = "5s"
        yaml.dump(data, io.StringIO())
        return time.perf_counter() - start

    (inside, inside_samples), (wall, wall_samples), (ruamel, ruamel_samples) = interleaved(
        [in_process, cli, round_trip], repeats
    )
    path.write_text(text)
    return [
        Row(name=f"edit: set on a {EDIT_STEPS:,}-step file, in process (edit + validation)",
            unit="s", drawer=inside, baseline=ruamel, ratio=inside / ruamel,
            target="< 0.5 s in process", passed=inside < 0.5,
            detail={"samples": inside_samples, "ruamel_round_trip_samples": ruamel_samples,
                    "baseline": "ruamel.yaml round-trip load + dump of the same edit"}),
        Row(name=f"edit: drawer FILE set on a {EDIT_STEPS:,}-step file (CLI wall time)",
            unit="s", drawer=wall, baseline=ruamel, ratio=wall / ruamel, target="(info)",
            passed=None, detail={"samples": wall_samples}),
    ]  # fmt: skip


# ---------------------------------------------------------------- output


def validate_file(workdir: Path, count: int = VALIDATE_STEPS) -> Path:
    """A DAG list: every step depends_on the one before and refers to the first."""
    lines = ["steps:", "  - id: s0", "    run: echo 0"]
    for index in range(1, count):
        lines += [
            f"  - id: s{index}",
            f"    depends_on: [s{index - 1}]",
            "    run: echo ${s0.output.stdout}",
        ]
    return write(workdir / "validate.yaml", "\n".join(lines) + "\n")


def bench_validate(drawer: list[str], workdir: Path, repeats: int) -> list[Row]:
    """`drawer FILE validate` on a 5,000-step depends_on chain (issue 11 item 22: it took
    5 s and 620 MB when each step kept a set of its ancestors)."""
    path = validate_file(workdir)
    samples = [run_with_peak_rss([*drawer, str(path), "validate"], workdir) for _ in range(repeats)]
    wall = statistics.median(sample[0] for sample in samples)
    rss = max(sample[1] for sample in samples)
    label = f"validate, {VALIDATE_STEPS:,}-step depends_on chain"
    return [
        Row(name=f"{label}: wall", unit="s", drawer=wall, baseline=None, ratio=None,
            target="< 3 s", passed=wall < 3.0),
        Row(name=f"{label}: peak RSS", unit="MB", drawer=rss, baseline=None, ratio=None,
            target="< 150 MB", passed=rss < 150),
    ]  # fmt: skip


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:,.0f}/s"


def verdict(passed: bool | None) -> str:
    return "info" if passed is None else ("PASS" if passed else "FAIL")


def print_table(rows: list[Row]) -> None:
    headers = ("benchmark", "drawer", "baseline", "ratio", "target", "result")
    table = [
        (row.name, fmt(row.drawer, row.unit), fmt(row.baseline, row.unit),
         "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target, verdict(row.passed))
        for row in rows
    ]  # fmt: skip
    widths = [max(len(str(line[i])) for line in (headers, *table)) for i in range(len(headers))]
    for n, line in enumerate((headers, *table)):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
    for row in rows:
        if "note" in row.detail:
            print(f"  note, {row.name}: {row.detail['note']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 repetition instead of 3")
    parser.add_argument("--repeats", type=int, help="repetitions of the wall-time rows")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS,
        help="run only this benchmark (repeatable); results.json then holds only its rows",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--no-pyc-cache", action="store_true",
        help="keep the environment's bytecode setting (PYTHONDONTWRITEBYTECODE) as it is",
    )  # fmt: skip
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    startup_runs = 5 if args.quick else 15
    drawer = drawer_command()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="drawer-bench-") as temp:
        workdir = Path(temp)
        bytecode = use_bytecode_cache(workdir, not args.no_pyc_cache)
        version = subprocess.run(
            [*drawer, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        load_before = os.getloadavg()
        print(
            f"{version} via {' '.join(drawer)}; Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; repeats={repeats}; bytecode={bytecode}; "
            f"load average {load_before[0]:.2f}",
            flush=True,
        )
        steps: list[tuple[str, Callable[[], list[Row]]]] = [
            ("fan-out", lambda: bench_fanout(drawer, workdir, repeats)),
            ("store", lambda: bench_store(drawer, workdir, repeats)),
            ("efficiency", lambda: bench_efficiency(drawer, workdir, repeats)),
            ("edit", lambda: bench_edit(drawer, workdir, repeats)),
            ("scale", lambda: bench_scale(drawer, workdir, repeats)),
            ("start-up", lambda: bench_startup(drawer, workdir, startup_runs)),
            ("shard", lambda: bench_shard(drawer, workdir, repeats)),
            ("validate", lambda: bench_validate(drawer, workdir, repeats)),
        ]
        for label, bench in steps:
            if args.only and label not in args.only:
                continue
            print(f"... {label}", flush=True)
            rows.extend(bench())
    load_after = os.getloadavg()
    print_table(rows)
    results = {
        "drawer": version,
        "command": drawer,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "repeats": repeats,
        "bytecode": bytecode,
        "load_average": {"before": load_before, "after": load_after},
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "rows": [asdict(row) | {"result": verdict(row.passed)} for row in rows],
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
