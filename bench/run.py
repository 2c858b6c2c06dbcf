"""The sync's benchmark: bulk up, bulk down, single change latency, memory.

Not a test. ``make bench`` runs it on the real stack (RabbitMQ and Redis as
``make infra`` starts them; the emulator and both services it starts itself,
fresh for every run), each scenario with batching off and on
(``SFSYNC_BATCHING``), and writes ``bench/results/latest.json`` and
``docs/benchmarks.md``. ``--quick`` is a smaller run for trying changes; it
writes ``bench/results/quick.json`` and leaves the docs alone.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import report  # noqa: E402
import scenarios  # noqa: E402
from harness import BenchStack, drop_vhost  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
CSV = ROOT / "data" / "contacts.csv"
MODE_ENV = {"off": "0", "on": "1"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark the sync on the real stack, batching off and on.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 rows, 100 edits, one repetition"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="export rows for the bulk runs (default 5000)",
    )
    parser.add_argument(
        "--edits", type=int, default=None, help="single edits each way (default 500)"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=None,
        help="repetitions of each bulk run (default 3)",
    )
    parser.add_argument("--latency-repetitions", type=int, default=1)
    parser.add_argument(
        "--spacing-ms",
        type=float,
        default=75.0,
        help="time from one edit's start to the next",
    )
    parser.add_argument(
        "--scenarios",
        default="bulk_up,bulk_down,latency",
        help="comma-separated subset to run",
    )
    parser.add_argument("--modes", default="off,on")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds one bulk run may take to converge",
    )
    parser.add_argument("--csv", type=Path, default=CSV)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results JSON (default bench/results/latest.json, "
        "quick.json with --quick)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="Markdown table (default docs/benchmarks.md on a "
        "full run, none with --quick)",
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="measure the committed HEAD (extracted under "
        "var/bench-src), not the working tree",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the docs from the results JSON; run nothing",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The RPC proxy's channel closing with broker confirms still on their way
    # warns once per call; that says nothing about what is measured.
    logging.getLogger("amqp").setLevel(logging.ERROR)
    quick = args.quick
    rows = args.rows or (1000 if quick else 5000)
    edits = args.edits or (100 if quick else 500)
    repetitions = args.repetitions or (1 if quick else 3)
    output = args.output or RESULTS_DIR / ("quick.json" if quick else "latest.json")
    docs = args.docs or (None if quick else DOCS)
    if args.snapshot and not os.environ.get(report.SNAPSHOT_ENV):
        return _run_on_snapshot(args, output, docs, argv or sys.argv[1:])
    if args.report_only:
        results = json.loads(output.read_text())
        report.write(results, output, docs)
        return 0
    chosen = set(args.scenarios.split(","))
    modes = [mode for mode in args.modes.split(",") if mode in MODE_ENV]
    settings: dict[str, Any] = {
        "rows": rows,
        "edits": edits,
        "bulk_repetitions": repetitions,
        "latency_repetitions": args.latency_repetitions,
        "spacing_ms": args.spacing_ms,
        "quick": quick,
    }
    valid = scenarios.valid_rows(args.csv, rows)
    _say(f"{len(valid)} of the first {rows} export rows pass the platform's checks")
    runs: dict[str, dict[str, list[dict]]] = {}
    started = time.monotonic()
    try:
        # Modes alternate within each repetition, so drift hits both alike.
        for number in range(1, repetitions + 1):
            for scenario in ("bulk_up", "bulk_down"):
                if scenario not in chosen:
                    continue
                for mode in modes:
                    run = _bulk(args, scenario, mode, number, valid)
                    runs.setdefault(scenario, {}).setdefault(mode, []).append(run)
        if "latency" in chosen:
            for number in range(1, args.latency_repetitions + 1):
                for mode in modes:
                    both = _latency(args, mode, number, valid, edits)
                    for direction, run in both.items():
                        key = f"latency_{direction}"
                        runs.setdefault(key, {}).setdefault(mode, []).append(run)
    finally:
        drop_vhost()
    settings["total_s"] = round(time.monotonic() - started, 1)
    results = report.summarise(runs, settings)
    report.write(results, output, docs)
    _say(f"done in {settings['total_s']:.0f} s; results in {output}")
    for target in results["targets"]:
        _say(
            f"target {target['scenario']} {target['metric']} {target['target']}: "
            f"{target['on_median']} -> "
            f"{ {True: 'met', False: 'missed', None: 'not run'}[target['met']] }"
        )
    return 0


def _run_on_snapshot(
    args: argparse.Namespace, output: Path, docs: Path | None, argv: list[str]
) -> int:
    """Run again on ``git archive HEAD``, so edits in progress in the working
    tree (other people's too) cannot change the code measured mid-run.

    The benchmark's own files come from the working tree.
    """
    source = ROOT / "var" / "bench-src"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    for path in (ROOT / "bench").glob("*.py"):
        shutil.copy(path, source / "bench" / path.name)
    _say(f"measuring commit {commit}, extracted to {source}")
    env = dict(os.environ, PYTHONPATH=str(source / "src"))
    env[report.SNAPSHOT_ENV] = commit
    command = [sys.executable, str(source / "bench" / "run.py"), *argv]
    command += ["--output", str(output), "--work-dir", str(args.work_dir.resolve())]
    command += ["--csv", str(args.csv.resolve())]
    if docs is not None:
        command += ["--docs", str(docs)]
    return subprocess.run(command, env=env, check=False).returncode


# Batches are as big as the workers in flight: let the sync run many.
MAX_WORKERS = {"off": "10", "on": "200"}


def _env(mode: str) -> dict[str, str]:
    return {"SFSYNC_BATCHING": MODE_ENV[mode], "SYNC_MAX_WORKERS": MAX_WORKERS[mode]}


def _bulk(
    args: argparse.Namespace, scenario: str, mode: str, number: int, rows: list
) -> dict:
    work_dir = args.work_dir / f"{scenario}-{mode}-{number}"
    _say(f"{scenario}, batching {mode}, repetition {number}: {len(rows)} rows")
    with BenchStack(work_dir, _env(mode)) as bench:
        measure = scenarios.bulk_up if scenario == "bulk_up" else scenarios.bulk_down
        run = measure(bench, rows, args.timeout)
    # Other work on the machine slows every figure: kept with each run.
    run["load_average_1m"] = round(os.getloadavg()[0], 2)
    _say(
        f"  {run['records']} records in {run['elapsed_s']:.1f} s "
        f"({run['records_per_s']:.0f}/s), {run['api_calls']} API calls "
        f"({run['api_calls_per_record']:.3f}/record), peak RSS {run['peak_rss_mb']}"
        + ("" if run["complete"] else "; DID NOT FINISH in time")
    )
    return run


def _latency(
    args: argparse.Namespace, mode: str, number: int, rows: list, edits: int
) -> dict[str, dict]:
    work_dir = args.work_dir / f"latency-{mode}-{number}"
    _say(f"latency, batching {mode}, repetition {number}: {edits} edits each way")
    with BenchStack(work_dir, _env(mode)) as bench:
        both = scenarios.latency(bench, rows, edits, args.spacing_ms / 1000)
    for run in both.values():
        run["load_average_1m"] = round(os.getloadavg()[0], 2)
    for direction, run in both.items():
        _say(
            f"  {direction}: p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, "
            f"p99 {run['p99_ms']} ms, {run['timeouts']} timeouts"
        )
    return both


def _say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
