"""SQLite persistence of the emulated org: records, events, sessions, counters.

Everything is loaded into memory at start; every change is written through.
Callers batch the statements of one operation and then call `commit()`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    sobject TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    channel TEXT NOT NULL,
    replay_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (channel, replay_id)
);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """Thin write-through layer over one SQLite file (WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level="DEFERRED")
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash can
        # lose the last commits, which is fine for an emulator.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def load_records(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self.conn.execute("SELECT sobject, data FROM records ORDER BY rowid")
        return [(sobject, json.loads(data)) for sobject, data in rows]

    def save_record(self, sobject: str, record: dict[str, Any]) -> None:
        # An upsert keeps the rowid, so load order stays insertion order.
        self.conn.execute(
            "INSERT INTO records (id, sobject, data) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (record["Id"], sobject, json.dumps(record)),
        )

    def load_sessions(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT token, user_id FROM sessions")
        return dict(rows.fetchall())

    def load_session_times(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT token, created_ms FROM sessions")
        return dict(rows.fetchall())

    def delete_sessions(self, tokens: list[str]) -> None:
        self.conn.executemany(
            "DELETE FROM sessions WHERE token = ?", [(t,) for t in tokens]
        )

    def save_session(self, token: str, user_id: str, created_ms: int) -> None:
        self.conn.execute(
            "INSERT INTO sessions (token, user_id, created_ms) VALUES (?, ?, ?)",
            (token, user_id, created_ms),
        )

    def get_value(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_value(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def load_events(self) -> list[tuple[str, int, int, dict[str, Any]]]:
        rows = self.conn.execute(
            "SELECT channel, replay_id, created_ms, data FROM events "
            "ORDER BY channel, replay_id"
        )
        return [(ch, rid, ms, json.loads(data)) for ch, rid, ms, data in rows]

    def save_event(
        self, channel: str, replay_id: int, created_ms: int, data: dict[str, Any]
    ) -> None:
        self.conn.execute(
            "INSERT INTO events (channel, replay_id, created_ms, data) "
            "VALUES (?, ?, ?, ?)",
            (channel, replay_id, created_ms, json.dumps(data)),
        )

    def delete_events_upto(self, channel: str, replay_id: int) -> None:
        self.conn.execute(
            "DELETE FROM events WHERE channel = ? AND replay_id <= ?",
            (channel, replay_id),
        )
