"""The measured scenarios: bulk up, bulk down, single change latency.

Each takes a started ``BenchStack`` and returns the raw figures of one run as
a flat dict; memory (peak RSS of each service) is read at the end of the bulk
runs. Times are ``perf_counter`` seconds on this process's clock.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from harness import BenchStack

from sfsync.importer import ExportRow, Importer, read_export
from sfsync.mapping import EXTERNAL_ID_FIELD, SALESFORCE_NAMES

COLLECTION_SIZE = 200
BULK_POLL_S = 0.1
LATENCY_POLL_S = 0.005
LATENCY_TIMEOUT_S = 10.0
LATENCY_POOL = 50
LINKED_IN_SALESFORCE = f"FROM Contact WHERE {EXTERNAL_ID_FIELD} != null"


def valid_rows(csv_path: Path, limit: int) -> list[ExportRow]:
    """The first ``limit`` rows of the export that the platform accepts."""
    return [row for row in read_export(csv_path, limit=limit) if row.error is None]


def bulk_up(bench: BenchStack, rows: list[ExportRow], timeout_s: float) -> dict:
    """Import ``rows`` into the platform; wait until each is linked both ways.

    The clock starts before the first chunk goes to ``create_many`` and stops
    when every accepted contact has its Salesforce id on the platform and its
    ``Platform_Id__c`` in Salesforce.
    """
    calls_before = bench.sync_api_calls()
    started = time.perf_counter()
    report = Importer(bench.rpc.contacts.create_many).run(iter(rows))
    imported = time.perf_counter()
    accepted = report.imported
    done = bench.wait_for(
        lambda: (
            _linked_on_platform(bench) >= accepted
            and _linked_in_salesforce(bench) >= accepted
        ),
        timeout_s,
        BULK_POLL_S,
    )
    calls = bench.quiet_api_calls() - calls_before
    elapsed = (done or time.perf_counter()) - started
    return {
        "records": accepted,
        "rejected_by_import": len(report.rejected),
        "complete": done is not None,
        "linked_on_platform": _linked_on_platform(bench),
        "linked_in_salesforce": _linked_in_salesforce(bench),
        "import_s": round(imported - started, 3),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(accepted / elapsed, 1),
        "api_calls": calls,
        "api_calls_per_record": round(calls / max(accepted, 1), 4),
        "peak_rss_mb": bench.peak_rss_mb(),
    }


def bulk_down(bench: BenchStack, rows: list[ExportRow], timeout_s: float) -> dict:
    """The sales user creates ``rows`` through sObject Collections, 200 a call.

    The clock starts before the first call; ``records_per_s`` counts until
    every created Contact is on the platform (linked to its Salesforce id);
    ``settled_s`` until the sync has also written each platform id back.
    """
    assert bench.sales is not None
    calls_before = bench.sync_api_calls()
    started = time.perf_counter()
    created = 0
    refused: list[str] = []
    for first in range(0, len(rows), COLLECTION_SIZE):
        chunk = rows[first : first + COLLECTION_SIZE]
        response = bench.sales.request(
            "POST",
            f"{bench.sales.base_path}/composite/sobjects",
            "Contact collection",
            json={
                "allOrNone": False,
                "records": [_as_salesforce_record(row) for row in chunk],
            },
        )
        for row, result in zip(chunk, response.json(), strict=True):
            if result.get("success"):
                created += 1
            else:
                refused.append(f"line {row.line}: {result.get('errors')}")
    loaded = time.perf_counter()
    on_platform = bench.wait_for(
        lambda: _linked_on_platform(bench) >= created, timeout_s, BULK_POLL_S
    )
    settled = None
    if on_platform is not None:
        remaining = max(1.0, timeout_s - (on_platform - started))
        settled = bench.wait_for(
            lambda: _linked_in_salesforce(bench) >= created, remaining, BULK_POLL_S
        )
    calls = bench.quiet_api_calls() - calls_before
    elapsed = (on_platform or time.perf_counter()) - started
    return {
        "records": created,
        "refused_by_salesforce": len(refused),
        "refused_examples": refused[:3],
        "complete": on_platform is not None and settled is not None,
        "linked_on_platform": _linked_on_platform(bench),
        "linked_in_salesforce": _linked_in_salesforce(bench),
        "load_s": round(loaded - started, 3),
        "elapsed_s": round(elapsed, 3),
        "settled_s": round(settled - started, 3) if settled else None,
        "records_per_s": round(created / elapsed, 1),
        "api_calls": calls,
        "api_calls_per_record": round(calls / max(created, 1), 4),
        "peak_rss_mb": bench.peak_rss_mb(),
    }


def latency(
    bench: BenchStack, rows: list[ExportRow], edits: int, spacing_s: float
) -> dict[str, dict]:
    """``edits`` single edits each way, one at a time, ``spacing_s`` apart.

    Each edit writes a new Title on one side (platform RPC ``update`` or a
    REST PATCH as the sales user) and polls the other side every 5 ms until
    it reads that Title. The latency runs from just before the write is sent
    to the first read that shows it, so it includes the write call itself;
    ``write_ms`` gives that part. Edits go round a pool of records, so no
    two edits of one record are closer than the pool's turn.
    """
    pool = _linked_pool(bench, rows[:LATENCY_POOL])
    time.sleep(1.0)  # let the creations' own traffic end
    calls_before = bench.quiet_api_calls()
    up = _edit_series(bench, pool, edits, spacing_s, "up")
    calls_between = bench.quiet_api_calls()
    down = _edit_series(bench, pool, edits, spacing_s, "down")
    calls_after = bench.quiet_api_calls()
    up["api_calls_per_record"] = round((calls_between - calls_before) / edits, 4)
    down["api_calls_per_record"] = round((calls_after - calls_between) / edits, 4)
    return {"up": up, "down": down}


def _linked_pool(bench: BenchStack, rows: list[ExportRow]) -> list[dict[str, Any]]:
    results = bench.rpc.contacts.create_many([row.data for row in rows])
    ids = [result["id"] for result in results if "id" in result]
    linked = bench.wait_for(
        lambda: _linked_on_platform(bench) >= len(ids), 120.0, BULK_POLL_S
    )
    if linked is None:
        raise RuntimeError("the latency pool was not linked within 120 s")
    return [
        {"id": contact["id"], "salesforce_id": contact["salesforce_id"]}
        for contact in bench.rpc.contacts.get_many(ids)
    ]


def _edit_series(
    bench: BenchStack,
    pool: list[dict[str, Any]],
    edits: int,
    spacing_s: float,
    direction: str,
) -> dict[str, Any]:
    assert bench.sales is not None
    sales = bench.sales
    latencies: list[float] = []
    writes: list[float] = []
    timeouts = 0
    for number in range(edits):
        contact = pool[number % len(pool)]
        title = f"bench {direction} {number}"
        started = time.perf_counter()
        if direction == "up":
            bench.rpc.contacts.update(contact["id"], {"title": title})

            def arrived(sf_id: str = contact["salesforce_id"], title: str = title):
                record = sales.get("Contact", sf_id, fields=["Title"])
                return record is not None and record.get("Title") == title

        else:
            sales.update("Contact", contact["salesforce_id"], {"Title": title})

            def arrived(contact_id: int = contact["id"], title: str = title):
                found = bench.rpc.contacts.get(contact_id)
                return found is not None and found.get("title") == title

        written = time.perf_counter()
        seen = bench.wait_for(arrived, LATENCY_TIMEOUT_S, LATENCY_POLL_S)
        if seen is None:
            timeouts += 1
            seen = time.perf_counter()
        latencies.append((seen - started) * 1000)
        writes.append((written - started) * 1000)
        pause = started + spacing_s - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "records": edits,
        "complete": timeouts == 0,
        "timeouts": timeouts,
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(latencies), 1),
        "write_ms_p50": round(statistics.median(writes), 1),
    }


def _as_salesforce_record(row: ExportRow) -> dict[str, Any]:
    """A row as a data loader sends it: the export's own columns."""
    record: dict[str, Any] = {"attributes": {"type": "Contact"}}
    for name in SALESFORCE_NAMES:
        record[name] = row.values.get(name) or None
    record["HasOptedOutOfEmail"] = row.values.get("HasOptedOutOfEmail") == "true"
    return record


def _linked_on_platform(bench: BenchStack) -> int:
    return int(bench.rpc.contacts.count(linked=True))


def _linked_in_salesforce(bench: BenchStack) -> int:
    assert bench.sales is not None
    return bench.sales.count(LINKED_IN_SALESFORCE)
