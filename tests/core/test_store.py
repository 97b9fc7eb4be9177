"""The SQLite store: intent and history survive a restart, and writes are durable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from stovectl.core.events import Event, Kind, Result
from stovectl.core.store import COMMAND_IDS_KEPT_SECONDS, Store, StoredIntent, StoredTimer


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "stovectl.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    opened = Store(db_path)
    opened.open()
    yield opened
    opened.close()


def reopen(store: Store) -> Store:
    """Close ``store`` as a stopping daemon would and open a new one on the same file."""
    store.close()
    again = Store(store.path)
    again.open()
    return again


def event(
    time: float, burner: str | None = "left", kind: Kind = Kind.SHUTOFF, source: str = "cli"
) -> Event:
    return Event(
        kind=kind, source=source, time=time, burner=burner, device="sim", actor="alice",
        reason="timer", result=Result.VERIFIED, latency_ms=12.5, message=f"at {time}",
    )


def test_open_creates_the_file_and_its_folders(db_path: Path, store: Store) -> None:
    """Opening a store in a folder that does not exist creates the folders and the file."""
    assert db_path.is_file()


def test_writes_are_synchronous_full_in_wal_mode(store: Store) -> None:
    """The connection commits with synchronous=FULL (2) on a write-ahead log."""
    assert store.db.execute("PRAGMA synchronous").fetchone() == (2,)
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_closed_store_refuses_use(store: Store) -> None:
    """Using a store after close raises instead of silently losing a write."""
    store.close()
    with pytest.raises(RuntimeError, match="not open"):
        store.intents()


def test_intents_survive_reopening(store: Store) -> None:
    """A saved lock and a pulse are read back after close and reopen."""
    lock = StoredIntent("left", "locked", "hazard", "mqtt", 1000.0)
    pulse = StoredIntent("right", "pulse", None, "cli", 1001.5)
    store.save_intent(lock)
    store.save_intent(pulse)

    again = reopen(store)
    try:
        assert again.intents() == {"left": lock, "right": pulse}
    finally:
        again.close()


def test_save_intent_replaces_the_burners_intent(store: Store) -> None:
    """Saving a burner's intent again replaces the earlier one."""
    store.save_intent(StoredIntent("left", "locked", "manual", "cli", 1000.0))
    armed = StoredIntent("left", "armed", None, "cli", 1010.0)
    store.save_intent(armed)

    assert store.intents() == {"left": armed}


def test_a_batch_is_one_transaction_kept_even_when_a_step_fails(store: Store) -> None:
    """Writes in a batch (nested ones included) are committed together at its end; what was
    written before a step raised is kept, since it was meant."""
    lock = StoredIntent("left", "locked", "child", "cli", 1000.0)
    with pytest.raises(RuntimeError, match="step"), store.batch():
        store.save_intent(lock)
        with store.batch():
            store.save_intent(StoredIntent("right", "pulse", None, "cli", 1000.0))
        assert store.db.in_transaction
        raise RuntimeError("a later step failed")
    assert not store.db.in_transaction
    again = reopen(store)
    try:
        assert set(again.intents()) == {"left", "right"}
    finally:
        again.close()


def test_timers_survive_reopening(store: Store) -> None:
    """Saved safety deadlines are read back after close and reopen, with both clock readings."""
    left = StoredTimer("left", "countdown", 1900.0, 55.5, "boot-a", "cli", 1000.0)
    right = StoredTimer("right", "max_on", 2500.0, None, None, "failsafe", 1100.0)
    store.save_timer(left)
    store.save_timer(right)

    again = reopen(store)
    try:
        assert again.timers() == {("left", "countdown"): left, ("right", "max_on"): right}
    finally:
        again.close()


def test_save_timer_replaces_and_delete_removes(store: Store) -> None:
    """A burner has one timer per purpose: saving replaces it, deleting removes only that one."""
    store.save_timer(StoredTimer("left", "countdown", 1900.0, None, None, "cli", 1000.0))
    shorter = StoredTimer("left", "countdown", 1300.0, None, None, "mqtt", 1010.0)
    max_on = StoredTimer("left", "max_on", 9000.0, None, None, "failsafe", 1000.0)
    store.save_timer(shorter)
    store.save_timer(max_on)
    assert store.timers() == {("left", "countdown"): shorter, ("left", "max_on"): max_on}

    store.delete_timer("left", "countdown")

    assert store.timers() == {("left", "max_on"): max_on}


def test_countdowns_of_an_older_database_become_timers(tmp_path: Path) -> None:
    """A countdown written by an earlier version (its own table) is kept as a timer on open."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE countdowns (burner TEXT PRIMARY KEY, due REAL NOT NULL,"
                   " source TEXT NOT NULL, started REAL NOT NULL)")
        db.execute("INSERT INTO countdowns VALUES ('left', 1900.0, 'cli', 1000.0)")
    store = Store(path)
    store.open()
    try:
        assert store.timers() == {
            ("left", "countdown"): StoredTimer("left", "countdown", 1900.0, None, None, "cli",
                                               1000.0)
        }
    finally:
        store.close()


def test_pending_rearms_of_an_older_database_become_timers(tmp_path: Path) -> None:
    """A re-arm an earlier version kept in the intent (wall time only) is kept as a timer on
    open, and the intent no longer carries it; a lock's stray re-arm time is dropped."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE intents (burner TEXT PRIMARY KEY, mode TEXT NOT NULL,"
                   " reason TEXT, source TEXT NOT NULL, since REAL NOT NULL, rearm_at REAL)")
        db.execute("INSERT INTO intents VALUES ('right', 'pulse', NULL, 'cli', 1001.5, 1006.5)")
        db.execute("INSERT INTO intents VALUES ('left', 'locked', 'child', 'cli', 1000.0, 9.0)")
    for _ in range(2):  # opening again changes nothing more
        store = Store(path)
        store.open()
        try:
            assert store.timers() == {
                ("right", "rearm"): StoredTimer("right", "rearm", 1006.5, None, None, "cli",
                                                1001.5)
            }
            assert store.intents() == {
                "right": StoredIntent("right", "pulse", None, "cli", 1001.5),
                "left": StoredIntent("left", "locked", "child", "cli", 1000.0),
            }
            assert store.db.execute("SELECT count(*) FROM intents WHERE rearm_at IS NOT NULL"
                                    ).fetchone() == (0,)
        finally:
            store.close()


def test_schedule_runs_are_remembered(store: Store) -> None:
    """The last run of each schedule is kept, replaced by the next, and unknown ones are None."""
    assert store.last_schedule_run("night") is None
    store.save_schedule_run("night", 1000.0)
    store.save_schedule_run("night", 2000.0)
    assert store.last_schedule_run("night") == 2000.0
    again = reopen(store)
    try:
        assert again.last_schedule_run("night") == 2000.0
    finally:
        again.close()


def test_count_events_counts_one_kind_source_and_burner_since(store: Store) -> None:
    """Failsafe trips are counted per burner and source, from a given time on."""
    for time, source, burner in [(1000.0, "failsafe", "left"), (2000.0, "failsafe", "left"),
                                 (2001.0, "cli", "left"), (2002.0, "failsafe", "right")]:
        store.record(event(time, burner=burner, source=source))
    assert store.count_events(Kind.SHUTOFF, "left", "failsafe", 1500.0) == 1
    assert store.count_events(Kind.SHUTOFF, "left", "failsafe", 0.0) == 2


def test_history_survives_reopening_with_every_field(store: Store) -> None:
    """Recorded events read back after reopening, field for field, oldest first."""
    first, second = event(1000.0), event(1001.0, burner=None, kind=Kind.STARTUP)
    unresolved = Event(Kind.COUNTDOWN_SET, "cli", 1002.0, burner="right")
    for item in (first, second, unresolved):
        store.record(item)

    again = reopen(store)
    try:
        assert again.history() == [first, second, unresolved]
    finally:
        again.close()


def test_history_since_keeps_events_from_then_on(store: Store) -> None:
    """history(since=t) returns the events at or after t."""
    for time in (1000.0, 1001.0, 1002.0):
        store.record(event(time))

    assert [e.time for e in store.history(since=1001.0)] == [1001.0, 1002.0]


def test_history_filters_by_burner(store: Store) -> None:
    """history(burner=b) returns only that burner's events."""
    store.record(event(1000.0, burner="left"))
    store.record(event(1001.0, burner="right"))
    store.record(event(1002.0, burner="left"))

    assert [(e.burner, e.time) for e in store.history(burner="left")] == [
        ("left", 1000.0),
        ("left", 1002.0),
    ]


def test_history_limit_keeps_the_newest_in_time_order(store: Store) -> None:
    """history(limit=n) returns the newest n events, oldest of them first."""
    for time in range(1000, 1010):
        store.record(event(float(time)))

    assert [e.time for e in store.history(limit=3)] == [1007.0, 1008.0, 1009.0]


def test_a_command_id_is_new_once_even_across_reopening(store: Store) -> None:
    """A remote command id is first seen once; the same id after a restart is a replay."""
    assert store.first_sight_of_command("abc", now=1000.0)
    assert not store.first_sight_of_command("abc", now=1001.0)

    reopened = reopen(store)

    assert not reopened.first_sight_of_command("abc", now=1002.0)
    assert reopened.first_sight_of_command("abd", now=1002.0)


def test_command_ids_are_forgotten_after_a_week(store: Store) -> None:
    """Ids older than COMMAND_IDS_KEPT_SECONDS are pruned when a new id arrives."""
    store.first_sight_of_command("old", now=0.0)
    store.first_sight_of_command("new", now=COMMAND_IDS_KEPT_SECONDS + 1.0)

    assert store.first_sight_of_command("old", now=COMMAND_IDS_KEPT_SECONDS + 2.0)


def test_discovery_topics_are_replaced_as_a_whole(store: Store) -> None:
    """Saving discovery topics replaces the previous set, and the set survives reopening."""
    store.save_discovery_topics({"homeassistant/button/a/config", "homeassistant/lock/b/config"})
    store.save_discovery_topics({"homeassistant/button/a/config"})

    assert reopen(store).discovery_topics() == {"homeassistant/button/a/config"}
