"""SQLite persistence for the emulator: write-through, so state survives a restart (even a SIGKILL).

The live state (apps, jobs, directory, pending uploads) is held in memory and written here as it changes;
provisioning-log entries live only here and are queried with SQL, which keeps memory flat at 20,000+ users.
One connection, used under the emulator's lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    ts REAL NOT NULL,
    ts_s INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    sp_id TEXT NOT NULL,
    cycle_id TEXT NOT NULL,
    change_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    status TEXT NOT NULL,
    action TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_job ON logs (job_id, seq);
CREATE INDEX IF NOT EXISTS logs_source ON logs (source_id);
CREATE INDEX IF NOT EXISTS logs_change ON logs (change_id);
CREATE INDEX IF NOT EXISTS logs_cycle ON logs (cycle_id);
"""

LOG_COLUMNS = (
    "id",
    "ts",
    "ts_s",
    "job_id",
    "sp_id",
    "cycle_id",
    "change_id",
    "source_id",
    "target_id",
    "status",
    "action",
    "body",
)

_INSERT_LOG = f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))})"  # noqa: S608


class Store:
    """A thin wrapper over one SQLite database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- key/value ---------------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                "excluded.value",
                (key, json.dumps(value)),
            )

    # -- bulk writes ---------------------------------------------------------------------------------------
    def commit_batch(
        self,
        *,
        users: Iterable[dict] = (),
        logs: Iterable[tuple] = (),
        delete_uploads: Iterable[int] = (),
        kv: dict[str, Any] | None = None,
    ) -> None:
        """Write one processing step atomically."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT INTO users (id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = "
                    "excluded.body",
                    [(u["id"], json.dumps(u)) for u in users],
                )
                db.executemany(_INSERT_LOG, list(logs))
                db.executemany("DELETE FROM uploads WHERE seq = ?", [(s,) for s in delete_uploads])
                for key, value in (kv or {}).items():
                    db.execute(
                        "INSERT INTO kv (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (key, json.dumps(value)),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def add_upload(self, seq: int, body: dict) -> None:
        with self._lock:
            self._db.execute("INSERT INTO uploads (seq, body) VALUES (?, ?)", (seq, json.dumps(body)))

    def delete_uploads(self, seqs: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM uploads WHERE seq = ?", [(s,) for s in seqs])

    # -- reads ---------------------------------------------------------------------------------------------
    def load_users(self) -> list[dict]:
        with self._lock:
            return [json.loads(b) for (b,) in self._db.execute("SELECT body FROM users")]

    def load_uploads(self) -> list[dict]:
        with self._lock:
            return [json.loads(b) for (b,) in self._db.execute("SELECT body FROM uploads ORDER BY seq")]

    def max_log_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM logs").fetchone()
        return int(row[0] or 0)

    def count_logs(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM logs").fetchone()[0])

    def query_logs(self, where: str, params: list[Any], order: str, limit: int) -> list[tuple[int, bytes]]:
        """Return ``(seq, zlib-compressed JSON body)`` rows matching a WHERE clause from the filter parser."""
        sql = f"SELECT seq, body FROM logs WHERE {where} ORDER BY seq {order} LIMIT ?"  # noqa: S608
        with self._lock:
            return list(self._db.execute(sql, [*params, limit]))

    def clear(self, *, keep_keys: Iterable[str]) -> None:
        """Delete the directory, logs and uploads, and every kv entry not in ``keep_keys``."""
        keep = list(keep_keys)
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            db.execute("DELETE FROM users")
            db.execute("DELETE FROM uploads")
            db.execute("DELETE FROM logs")
            db.execute(f"DELETE FROM kv WHERE key NOT IN ({', '.join('?' * len(keep))})", keep)  # noqa: S608
            db.execute("COMMIT")
