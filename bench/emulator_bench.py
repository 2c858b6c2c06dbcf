"""Benchmark of the emulator alone: REST calls and streaming events per second.

Not a test. Run `.venv/bin/python bench/emulator_bench.py`; it prints JSON and
writes bench/results/emulator.json. Each figure is measured over several
repetitions and reported as median, min and max; the whole run takes well
under two minutes.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from sfsync.testing.emulator import EmulatorProcess, start_emulator

REPETITIONS = 5
REST_SECONDS = 1.0
EVENTS_PER_ROUND = 2000
COLLECTION_SIZE = 200
RESULTS = Path(__file__).resolve().parent / "results" / "emulator.json"
V = "/services/data/v59.0"


def _session(emulator: EmulatorProcess) -> requests.Session:
    session = emulator.session()
    user = emulator.users["integration"]
    token = session.post(
        f"{emulator.http_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "username": user["username"],
            "password": user["password"],
        },
        timeout=10,
    ).json()["access_token"]
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _rate(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
        "stdev": round(statistics.pstdev(samples), 1),
    }


def rest_rate(session: requests.Session, base: str, kind: str) -> float:
    """Sequential keep-alive calls of one kind completed per second."""
    record_id = session.post(
        f"{base}{V}/sobjects/Contact", json={"LastName": "Bench"}, timeout=10
    ).json()["id"]
    calls = 0
    started = time.perf_counter()
    deadline = started + REST_SECONDS
    while time.perf_counter() < deadline:
        if kind == "create":
            response = session.post(
                f"{base}{V}/sobjects/Contact",
                json={"LastName": f"Bench {calls}"},
                timeout=10,
            )
        elif kind == "update":
            response = session.patch(
                f"{base}{V}/sobjects/Contact/{record_id}",
                json={"Title": str(calls)},
                timeout=10,
            )
        else:
            url = f"{base}{V}/sobjects/Contact/{record_id}"
            response = session.get(url, timeout=10)
        response.raise_for_status()
        calls += 1
    return calls / (time.perf_counter() - started)


def streaming_rate(session: requests.Session, base: str) -> float:
    """Change events delivered to one long-polling client per second."""
    url = f"{base}/cometd/59.0"
    handshake = session.post(
        url,
        json=[{"channel": "/meta/handshake", "version": "1.0",
               "supportedConnectionTypes": ["long-polling"]}],
        timeout=10,
    ).json()[0]  # fmt: skip
    client_id = handshake["clientId"]
    connect = {
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
    }
    session.post(
        url,
        json=[
            {"channel": "/meta/subscribe", "clientId": client_id,
             "subscription": "/data/ContactChangeEvent"},
            connect,
        ],
        timeout=10,
    )  # fmt: skip
    records = [{"attributes": {"type": "Contact"}, "LastName": "Stream"}]
    started = time.perf_counter()
    for _ in range(EVENTS_PER_ROUND // COLLECTION_SIZE):
        session.post(
            f"{base}{V}/composite/sobjects",
            json={"records": records * COLLECTION_SIZE},
            timeout=30,
        ).raise_for_status()
    received = 0
    deadline = time.perf_counter() + 30
    while received < EVENTS_PER_ROUND:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {received} of {EVENTS_PER_ROUND} events came")
        replies = session.post(url, json=[connect], timeout=30).json()
        received += sum(1 for r in replies if r["channel"].startswith("/data/"))
    elapsed = time.perf_counter() - started
    session.post(
        url,
        json=[{"channel": "/meta/disconnect", "clientId": client_id}],
        timeout=10,
    )
    return received / elapsed


def main() -> None:
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu": platform.machine()},
        "repetitions": REPETITIONS,
        "client": "one sequential keep-alive requests.Session (client cost included)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        emulator = start_emulator(Path(tmp) / "emulator", connect_timeout=1.0)
        try:
            for scheme, base in (("http", emulator.http_url),
                                 ("https", emulator.https_url)):  # fmt: skip
                session = _session(emulator)
                for kind in ("create", "get", "update"):
                    samples = [
                        rest_rate(session, base, kind) for _ in range(REPETITIONS)
                    ]
                    results[f"rest_{kind}_per_second_{scheme}"] = _rate(samples)
                    print(f"{scheme} {kind}: done", file=sys.stderr, flush=True)
            session = _session(emulator)
            samples = [
                streaming_rate(session, emulator.http_url) for _ in range(REPETITIONS)
            ]
            results["cdc_events_per_second"] = _rate(samples)
            results["cdc_events_note"] = (
                f"{EVENTS_PER_ROUND} events per repetition, written through "
                f"Collections of {COLLECTION_SIZE}, write to delivery"
            )
        finally:
            emulator.stop()
    text = json.dumps(results, indent=2)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
