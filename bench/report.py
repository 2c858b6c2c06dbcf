"""Turn the raw runs into results: median and spread, ratios, targets, a table.

``summarise`` builds what goes to ``bench/results/latest.json``;
``markdown`` renders it as ``docs/benchmarks.md``.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("off", "on")
# Set by ``run.py --snapshot`` to the commit it extracted and runs on.
SNAPSHOT_ENV = "SFSYNC_BENCH_SNAPSHOT"
SCENARIOS = ("bulk_up", "bulk_down", "latency_up", "latency_down", "memory")
METRICS = ("records_per_s", "api_calls_per_record", "p50_ms", "p95_ms", "p99_ms")
SERVICES = ("contacts", "salesforce")
TITLES = {
    "bulk_up": "Bulk up (import → Salesforce)",
    "bulk_down": "Bulk down (Collections → platform)",
    "latency_up": "Single change, platform → Salesforce",
    "latency_down": "Single change, Salesforce → platform",
    "memory": "Memory (peak RSS during bulk up and down)",
}


@dataclass(frozen=True)
class Target:
    scenario: str
    metric: str
    bound: float
    below: bool  # True: the figure must stay at or under the bound

    def met(self, value: float) -> bool:
        return value <= self.bound if self.below else value >= self.bound

    @property
    def text(self) -> str:
        return f"{'≤' if self.below else '≥'} {self.bound:g}"


# From issue #5, for the batching-on run. "p50 < 100 ms" is taken as ≤ 100.
TARGETS = (
    Target("bulk_up", "api_calls_per_record", 0.01, below=True),
    Target("bulk_down", "api_calls_per_record", 0.02, below=True),
    Target("bulk_up", "records_per_s", 1000, below=False),
    Target("bulk_down", "records_per_s", 500, below=False),
    Target("latency_up", "p50_ms", 100, below=True),
    Target("latency_up", "p99_ms", 500, below=True),
    Target("latency_down", "p50_ms", 100, below=True),
    Target("latency_down", "p99_ms", 500, below=True),
    Target("memory", "peak_rss_mb.contacts", 250, below=True),
    Target("memory", "peak_rss_mb.salesforce", 250, below=True),
)


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "values": values,
    }


def summarise(
    runs: dict[str, dict[str, list[dict]]], settings: dict[str, Any]
) -> dict[str, Any]:
    """``runs[scenario][mode]`` holds the raw dict of each repetition."""
    scenarios: dict[str, Any] = {}
    memory_runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for scenario, by_mode in runs.items():
        entry: dict[str, Any] = {}
        for mode, repetitions in by_mode.items():
            if not repetitions:
                continue
            entry[mode] = _metrics(repetitions)
            entry[mode]["runs"] = repetitions
            if scenario.startswith("bulk"):
                memory_runs[mode] += repetitions
        if "on" in entry and "off" in entry:
            entry["ratio_on_off"] = _ratios(entry["on"], entry["off"])
        scenarios[scenario] = entry
    memory: dict[str, Any] = {}
    for mode, repetitions in memory_runs.items():
        if repetitions:
            memory[mode] = {"peak_rss_mb": _rss(repetitions)}
    if "on" in memory and "off" in memory:
        memory["ratio_on_off"] = {
            f"peak_rss_mb.{name}": _ratio(
                memory["on"]["peak_rss_mb"][name]["median"],
                memory["off"]["peak_rss_mb"][name]["median"],
            )
            for name in SERVICES
        }
    if memory:
        scenarios["memory"] = memory
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "settings": settings,
        "scenarios": scenarios,
    }
    results["targets"] = [_target_result(target, scenarios) for target in TARGETS]
    return results


def _metrics(repetitions: list[dict]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name in METRICS:
        values = [run[name] for run in repetitions if run.get(name) is not None]
        if values:
            metrics[name] = spread(values)
    if any("peak_rss_mb" in run for run in repetitions):
        metrics["peak_rss_mb"] = _rss(repetitions)
    metrics["complete"] = all(run.get("complete", True) for run in repetitions)
    return metrics


def _rss(repetitions: list[dict]) -> dict[str, Any]:
    return {
        name: spread([run["peak_rss_mb"][name] for run in repetitions])
        for name in SERVICES
    }


def _ratios(on: dict[str, Any], off: dict[str, Any]) -> dict[str, float | None]:
    ratios = {
        name: _ratio(on[name]["median"], off[name]["median"])
        for name in METRICS
        if name in on and name in off
    }
    if "peak_rss_mb" in on and "peak_rss_mb" in off:
        for name in SERVICES:
            ratios[f"peak_rss_mb.{name}"] = _ratio(
                on["peak_rss_mb"][name]["median"], off["peak_rss_mb"][name]["median"]
            )
    return ratios


def _ratio(on: float, off: float) -> float | None:
    return round(on / off, 3) if off else None


def lookup(entry: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The spread of ``metric`` (dotted for per-service RSS) in a mode entry."""
    found: Any = entry
    for part in metric.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


def _target_result(target: Target, scenarios: dict[str, Any]) -> dict[str, Any]:
    on = scenarios.get(target.scenario, {}).get("on")
    figure = lookup(on, target.metric) if on else None
    value = figure["median"] if figure else None
    return {
        "scenario": target.scenario,
        "metric": target.metric,
        "target": target.text,
        "on_median": value,
        "met": None if value is None else target.met(value),
    }


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the product's files differed from it."""
    snapshot = os.environ.get(SNAPSHOT_ENV)
    if snapshot:
        return {"commit": snapshot, "uncommitted_changes_in": [], "snapshot": True}
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "src", "config")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes_in": sorted(
            {line[3:] for line in changed.splitlines() if line}
        ),
    }


# -- docs/benchmarks.md -------------------------------------------------------

UNITS = {
    "records_per_s": "records/s",
    "api_calls_per_record": "API calls/record",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "peak_rss_mb.contacts": "peak RSS MiB, contacts",
    "peak_rss_mb.salesforce": "peak RSS MiB, salesforce",
}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    s = results["settings"]
    targets = {(t["scenario"], t["metric"]): t for t in results["targets"]}
    code = results["code"]
    dirty = code["uncommitted_changes_in"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`) from its last full run; the raw",
        "figures of every repetition are in `bench/results/latest.json`. Each run",
        "rewrites everything above **Notes** and keeps the notes.",
        "",
        f"- date: {results['date']}",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
        f"Python {m['python']}, Linux {m['kernel']}",
        f"- code: commit {code['commit']}"
        + (f", with uncommitted changes in {', '.join(dirty)}" if dirty else ""),
        f"- runs: {s['rows']} export rows for the bulk runs, "
        f"{_times(s['bulk_repetitions'])} each; {s['edits']} edits each way, "
        f"one every {s['spacing_ms']:g} ms, {_times(s['latency_repetitions'])}",
        "",
        "Batching is switched by `SFSYNC_BATCHING` (0 = off, 1 = on) in the",
        "services' environment. The debounce has no window to set to its",
        "minimum: a change runs at once, and changes arriving while it runs",
        "collapse into one more run.",
        "Each cell is the median of the repetitions, with min–max in brackets.",
        "",
        "| scenario | figure | batching off | batching on | on/off "
        "| target (on) | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        entry = results["scenarios"].get(scenario)
        if not entry:
            continue
        for metric in _shown_metrics(scenario):
            off = lookup(entry.get("off", {}), metric)
            on = lookup(entry.get("on", {}), metric)
            if off is None and on is None:
                continue
            ratio = entry.get("ratio_on_off", {}).get(metric)
            target = targets.get((scenario, metric))
            met = "" if target is None else _met_text(target["met"])
            lines.append(
                f"| {TITLES[scenario]} | {UNITS[metric]} | {_cell(off)} "
                f"| {_cell(on)} | {'' if ratio is None else f'{ratio:g}'} "
                f"| {target['target'] if target else ''} | {met} |"
            )
    incomplete = [
        f"{scenario} ({mode})"
        for scenario, entry in results["scenarios"].items()
        for mode in MODES
        if entry.get(mode, {}).get("complete") is False
    ]
    lines += ["", "## How each figure is taken", "", *HOW_MEASURED]
    if incomplete:
        lines += [
            "",
            "Runs that did not finish within their timeout (their figures count "
            f"the time until the timeout): {', '.join(incomplete)}.",
        ]
    return "\n".join(lines) + "\n"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} repetitions"


def _shown_metrics(scenario: str) -> tuple[str, ...]:
    if scenario.startswith("bulk"):
        return ("records_per_s", "api_calls_per_record")
    if scenario.startswith("latency"):
        return ("p50_ms", "p95_ms", "p99_ms", "api_calls_per_record")
    return ("peak_rss_mb.contacts", "peak_rss_mb.salesforce")


def _cell(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return "–"
    median, low, high = figure["median"], figure["min"], figure["max"]
    if low == high:
        return _number(median)
    return f"{_number(median)} ({_number(low)}–{_number(high)})"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[met]


HOW_MEASURED = [
    "- Every run starts clean: a new emulator with its own data dir and a high",
    "  API limit, a new RabbitMQ vhost `sfsync-bench`, Redis db 5 flushed, a new",
    "  SQLite file; one `contacts` and one `salesforce` service process.",
    "- **Bulk up**: the rows of `data/contacts.csv` that the platform accepts go",
    "  through `sfsync.importer` to the `create_many` RPC in chunks of 200. The",
    "  clock runs from the first chunk until every accepted contact is linked on",
    "  both sides (polled every 100 ms).",
    "- **Bulk down**: the same rows are created in Salesforce by the sales user",
    "  through sObject Collections, 200 per call. The clock runs from the first",
    "  call until every created Contact is on the platform, linked to its",
    "  Salesforce id.",
    "- **API calls per record**: REST calls the integration user (the sync) made,",
    "  counted by the emulator (`/_emulator/stats`), from the start of the",
    "  scenario until the count has been still for a second, divided by the",
    "  records synced. Logins and streaming are not REST calls.",
    "- **Single change**: edits go one at a time round a pool of 50 linked",
    "  contacts, a new Title each; the other side is read every 5 ms (the",
    "  `contacts` RPC `get`, or a REST get as the sales user) until it shows it.",
    "  The latency runs from just before the write is sent (so it includes the",
    "  write call) to the first read showing the new value; an edit not seen",
    "  within 10 s counts as 10 s.",
    "- **Memory**: `VmHWM` of each service process, read from `/proc` at the end",
    "  of each bulk run (each run has fresh processes).",
]


NOTES_HEADING = "## Notes"


def write(results: dict[str, Any], json_path: Path, docs_path: Path | None) -> None:
    import json

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if docs_path is not None:
        text = markdown(results)
        if docs_path.exists():
            # The notes are written by people reading the figures: kept.
            _, marker, notes = docs_path.read_text(encoding="utf-8").partition(
                NOTES_HEADING
            )
            text += f"\n{marker}{notes}" if marker else ""
        docs_path.write_text(text, encoding="utf-8")
