"""The embedded store's write-ahead log is copied into its file by a thread of its own, not by a commit."""

from __future__ import annotations

import gc
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from livecoupon.store import sqlite as sqlite_module
from livecoupon.store.sqlite import CHECKPOINTS, WAL_BOUND, Checkpoints, SqliteStore


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


def test_a_store_collected_while_another_is_watched_is_forgotten_on_the_spot(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating the checkpoints' thread allocates, so the collector may run there and a collected store's finalizer
    forget it, on the thread that holds the lock: it must not wait for itself (a test run hung so, once)."""
    checkpoints, forgotten = Checkpoints(seconds=0.01), SqliteStore(tmp_path / "gone.db")
    checkpoints.watch(forgotten)  # (its thread ends once nothing is left to copy)
    checkpoints._thread = None

    thread = threading.Thread

    def collected_meanwhile(*args: Any, **kwargs: Any) -> threading.Thread:
        checkpoints.forget(id(forgotten))  # what the finalizer of a store collected right here does
        return thread(*args, **kwargs)

    store = SqliteStore(tmp_path / "kept.db")
    monkeypatch.setattr(sqlite_module.threading, "Thread", collected_meanwhile)
    watching = thread(target=checkpoints.watch, args=(store,), daemon=True)
    watching.start()
    watching.join(timeout=30)
    try:
        assert not watching.is_alive(), "watch waited on its own lock"
        assert set(checkpoints._files) == {id(store)}
    finally:
        forgotten.close()
        store.close()
