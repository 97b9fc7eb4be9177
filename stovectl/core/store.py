"""Durable intent and history in SQLite (DESIGN §2 rule 6).

Locks, countdown deadlines and pending re-arms are committed with
``synchronous=FULL`` before a command is acknowledged, so a crash or a power
cut right after the reply loses nothing. The history keeps every event for the
operator (``stovectl history``). Calls are synchronous and short; they run on
the event loop on purpose, so an acknowledgement can never overtake its write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stovectl.core.events import Event, Kind, Result

SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    burner TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    reason TEXT,
    source TEXT NOT NULL,
    since REAL NOT NULL,
    rearm_at REAL  -- no longer written: pending re-arms are timers (purpose 'rearm')
);
CREATE TABLE IF NOT EXISTS countdowns (
    burner TEXT PRIMARY KEY,
    due REAL NOT NULL,
    source TEXT NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    burner TEXT,
    device TEXT,
    actor TEXT,
    reason TEXT,
    result TEXT,
    latency_ms REAL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_time ON history (time);
CREATE TABLE IF NOT EXISTS request_ids (
    device TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS command_ids (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS command_ids_time ON command_ids (time);
CREATE TABLE IF NOT EXISTS discovery_topics (
    topic TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS timers (
    burner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    due REAL NOT NULL,
    monotonic_due REAL,
    boot TEXT,
    source TEXT NOT NULL,
    started REAL NOT NULL,
    PRIMARY KEY (burner, purpose)
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    schedule TEXT PRIMARY KEY,
    time REAL NOT NULL
);
"""
MIGRATE_TIMERS = """
INSERT OR IGNORE INTO timers (burner, purpose, due, source, started)
    SELECT burner, 'countdown', due, source, started FROM countdowns;
DELETE FROM countdowns;
INSERT OR IGNORE INTO timers (burner, purpose, due, source, started)
    SELECT burner, 'rearm', rearm_at, source, since FROM intents
    WHERE rearm_at IS NOT NULL AND mode = 'pulse';
UPDATE intents SET rearm_at = NULL WHERE rearm_at IS NOT NULL;
"""
"""Countdowns and pending re-arms kept by older versions become timers."""
COMMAND_IDS_KEPT_SECONDS = 7 * 24 * 3600
"""How long a remote command id is remembered, so a replay is recognised."""


@dataclass(frozen=True)
class StoredIntent:
    burner: str
    mode: str
    reason: str | None
    source: str
    since: float


@dataclass(frozen=True)
class StoredTimer:
    """A safety deadline on disk (DESIGN §2 rule 9).

    ``due`` is wall-clock; ``monotonic_due`` is on the system's monotonic clock of
    boot ``boot``, which a daemon restarted on the same boot can still trust.
    """

    burner: str
    purpose: str
    due: float
    monotonic_due: float | None
    boot: str | None
    source: str
    started: float


class Store:
    """The daemon's SQLite database; one connection, used from the event loop only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        db.executescript(MIGRATE_TIMERS)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes inside go to disk together, with one sync: a command for many
        burners must not make the first cut wait for one sync per burner. Nothing is
        durable before the block ends, so the relays are asked only after it (they are
        driven from tasks, which run once the block returned to the event loop)."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            self.db.execute("COMMIT")  # what was written is meant, even if a step failed

    def save_intent(self, intent: StoredIntent) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?, ?, NULL)",
            (intent.burner, intent.mode, intent.reason, intent.source, intent.since),
        )

    def intents(self) -> dict[str, StoredIntent]:
        rows = self.db.execute("SELECT burner, mode, reason, source, since FROM intents").fetchall()
        return {row[0]: StoredIntent(*row) for row in rows}

    def save_timer(self, timer: StoredTimer) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO timers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (timer.burner, timer.purpose, timer.due, timer.monotonic_due, timer.boot,
             timer.source, timer.started),
        )

    def delete_timer(self, burner: str, purpose: str) -> None:
        self.db.execute("DELETE FROM timers WHERE burner = ? AND purpose = ?", (burner, purpose))

    def timers(self) -> dict[tuple[str, str], StoredTimer]:
        rows = self.db.execute("SELECT * FROM timers").fetchall()
        return {(row[0], row[1]): StoredTimer(*row) for row in rows}

    def last_schedule_run(self, schedule: str) -> float | None:
        """When a calendar schedule last ran (wall clock), so a missed run is noticed."""
        row = self.db.execute(
            "SELECT time FROM schedule_runs WHERE schedule = ?", (schedule,)
        ).fetchone()
        return None if row is None else float(row[0])

    def save_schedule_run(self, schedule: str, time: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO schedule_runs VALUES (?, ?)", (schedule, time))

    def count_events(
        self, kind: Kind, burner: str, source: str, since: float
    ) -> int:
        """How many ``kind`` events from ``source`` ``burner`` had since ``since``."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM history WHERE kind = ? AND burner = ? AND source = ?"
            " AND time >= ?", (kind.value, burner, source, since),
        ).fetchone()
        return int(row[0])

    def load_request_id(self, device: str) -> int | None:
        """The last miIO request id used with ``device``, so a restart does not reuse it."""
        row = self.db.execute(
            "SELECT last_id FROM request_ids WHERE device = ?", (device,)
        ).fetchone()
        return None if row is None else int(row[0])

    def save_request_id(self, device: str, request_id: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO request_ids VALUES (?, ?)", (device, request_id)
        )

    def first_sight_of_command(self, command_id: str, now: float) -> bool:
        """Remember a remote command id; False if it was seen before (a replay or duplicate)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO command_ids VALUES (?, ?)", (command_id, now)
        )
        if cursor.rowcount == 1:
            self.db.execute(
                "DELETE FROM command_ids WHERE time < ?", (now - COMMAND_IDS_KEPT_SECONDS,)
            )
            return True
        return False

    def discovery_topics(self) -> set[str]:
        """The Home Assistant discovery topics published last, to remove those now gone."""
        return {row[0] for row in self.db.execute("SELECT topic FROM discovery_topics")}

    def save_discovery_topics(self, topics: set[str]) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.execute("DELETE FROM discovery_topics")
            self.db.executemany(
                "INSERT INTO discovery_topics VALUES (?)", [(topic,) for topic in sorted(topics)]
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def record(self, event: Event) -> None:
        self.db.execute(
            "INSERT INTO history (time, kind, source, burner, device, actor, reason, result,"
            " latency_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.time, event.kind.value, event.source, event.burner, event.device,
             event.actor, event.reason, event.result.value if event.result else None,
             event.latency_ms, event.message),
        )

    def history(
        self, since: float | None = None, burner: str | None = None, limit: int = 200
    ) -> list[Event]:
        query = "SELECT time, kind, source, burner, device, actor, reason, result, latency_ms,"
        query += " message FROM history WHERE time >= ?"
        params: list[Any] = [since or 0.0]
        if burner is not None:
            query += " AND burner = ?"
            params.append(burner)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = self.db.execute(query, params).fetchall()
        return [
            Event(
                time=row[0], kind=Kind(row[1]), source=row[2], burner=row[3], device=row[4],
                actor=row[5], reason=row[6], result=Result(row[7]) if row[7] else None,
                latency_ms=row[8], message=row[9],
            )
            for row in reversed(rows)
        ]
