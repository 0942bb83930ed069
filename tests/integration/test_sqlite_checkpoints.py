"""The embedded store's write-ahead log is copied into its file by a thread of its own, not by a commit."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import time
from pathlib import Path

from livecoupon.store.sqlite import CHECKPOINTS, WAL_BOUND, SqliteStore


def events_in_file(path: Path, tmp_path: Path) -> int:
    """The events the database file holds by itself, without its log (what a checkpoint copied)."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(path, alone)
    with sqlite3.connect(alone) as db:
        try:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:  # not even the schema copied yet
            return 0


def test_the_log_is_copied_without_a_commit_crossing_sqlites_threshold(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_BOUND
        with store.unit_of_work():
            store.append_events([{"type": "heartbeat", "n": i} for i in range(2_000)])  # far under the bound
        deadline = time.monotonic() + 30
        while events_in_file(path, tmp_path) < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert events_in_file(path, tmp_path) == 2_000
    finally:
        store.close()


def test_a_store_closed_or_collected_is_forgotten(tmp_path: Path) -> None:
    closed, dropped = SqliteStore(tmp_path / "a.db"), SqliteStore(tmp_path / "b.db")
    assert {id(closed), id(dropped)} <= set(CHECKPOINTS._files)
    closed.close()
    key = id(dropped)
    del dropped
    gc.collect()
    assert key not in CHECKPOINTS._files and id(closed) not in CHECKPOINTS._files
