"""The embedded store: one SQLite file in WAL mode, safe across threads and processes.

Every unit of work is a ``BEGIN IMMEDIATE`` transaction, so writers are serialised by
SQLite's own lock; the SQL itself is shared with PostgreSQL (:mod:`.relational`).

The write-ahead log is copied into the database file by a thread of its own
(:class:`Checkpoints`), not by whichever commit crosses SQLite's threshold: that commit
waited for the copy and its fsync (tens of ms, up to 200 ms measured), and every request
behind it with it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

from livecoupon.store.port import Spoiled
from livecoupon.store.relational import ConcurrentUpdate, RelationalStore, json_bytes

__all__ = ["ConcurrentUpdate", "SqliteStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, name TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL,
    threshold INTEGER NOT NULL, amount INTEGER NOT NULL, percent_tenths INTEGER NOT NULL, max_discount INTEGER,
    scope TEXT NOT NULL,
    UNIQUE (campaign, name, title, kind, threshold, amount, percent_tenths, max_discount, scope));
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY, coupon_id TEXT NOT NULL UNIQUE, campaign TEXT NOT NULL,
    room TEXT NOT NULL, broadcast INTEGER NOT NULL, trigger TEXT NOT NULL, user TEXT NOT NULL,
    template TEXT, template_id INTEGER REFERENCES templates (id), at INTEGER NOT NULL, reason TEXT,
    expires_at INTEGER, experiment TEXT, variant TEXT,
    state TEXT, order_id TEXT, reserved_until INTEGER, device_key TEXT, propensity REAL);
CREATE INDEX IF NOT EXISTS coupons_by_user ON decisions (user, at) WHERE reason IS NULL;
CREATE INDEX IF NOT EXISTS coupons_by_broadcast ON decisions (campaign, room, broadcast, user) WHERE reason IS NULL;
CREATE INDEX IF NOT EXISTS coupons_by_time ON decisions (campaign, at) WHERE reason IS NULL;
CREATE INDEX IF NOT EXISTS coupons_by_trigger ON decisions (campaign, trigger, template_id) WHERE reason IS NULL;
CREATE INDEX IF NOT EXISTS coupons_by_device ON decisions (campaign, device_key)
    WHERE reason IS NULL AND device_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS coupon_history (
    seq INTEGER PRIMARY KEY, coupon_id TEXT NOT NULL, at INTEGER NOT NULL, state TEXT NOT NULL,
    action TEXT NOT NULL, order_id TEXT, detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS history_by_coupon ON coupon_history (coupon_id, seq);
CREATE TABLE IF NOT EXISTS template_stock (
    campaign TEXT NOT NULL, template TEXT NOT NULL, issued INTEGER NOT NULL,
    PRIMARY KEY (campaign, template)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaign_budget (
    campaign TEXT PRIMARY KEY, spent INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_shares (
    campaign TEXT NOT NULL, share TEXT NOT NULL, spent INTEGER NOT NULL,
    PRIMARY KEY (campaign, share)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS visits (
    campaign TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (campaign, user)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, user TEXT NOT NULL, cart TEXT NOT NULL, coupon_id TEXT,
    subtotal INTEGER NOT NULL, discount INTEGER NOT NULL, payable INTEGER NOT NULL,
    state TEXT NOT NULL, created_at INTEGER NOT NULL, reserved_until INTEGER, room TEXT);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, log TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS events_by_log ON events (log, seq);
CREATE TABLE IF NOT EXISTS engine_snapshots (
    log TEXT NOT NULL, fingerprint TEXT NOT NULL, position INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (log, fingerprint, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_confirmations (
    coupon_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acknowledgements (
    coupon_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roster (campaign TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
"""


def _migrations(db: sqlite3.Connection) -> str:
    """What a store file written by an earlier version needs before ``SCHEMA`` applies."""
    wanted = [("decisions", "device_key", "TEXT"), ("decisions", "propensity", "REAL"), ("orders", "room", "TEXT"),
              ("events", "log", "TEXT NOT NULL DEFAULT ''")]
    steps = []
    for table, column, kind in wanted:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if columns and column not in columns:
            steps.append(f"ALTER TABLE {table} ADD COLUMN {column} {kind};")
    return "".join(steps)



CHECKPOINT_SECONDS = 0.25  # between the background checkpoints
# Pages in the log past which a commit checkpoints by itself (SQLite's default: 1,000). The background copies
# keep up, but the log only restarts from its beginning when a commit finds it copied whole, which commits
# that never pause may not give it: then the commit crossing this restarts it.
WAL_BOUND = 10_000


class Checkpoints:
    """One thread for the process that copies each open store's write-ahead log into its database file
    every ``seconds``, on connections of its own. PASSIVE: it never waits for, nor blocks, a writer or a
    reader; the log restarts from its beginning at the next commit once it was copied whole. A store is
    forgotten when it is closed or collected; with none left, the thread ends."""

    def __init__(self, seconds: float = CHECKPOINT_SECONDS) -> None:
        self._seconds = seconds
        # Re-entrant: a store collected while this thread holds it (any allocation may run the collector, and
        # creating the thread allocates) is forgotten by its finalizer right there, on the same thread
        self._lock = threading.RLock()
        self._files: dict[int, str] = {}  # id of a store -> its file
        self._thread: threading.Thread | None = None

    def watch(self, store: SqliteStore) -> None:
        key = id(store)
        with self._lock:
            self._files[key] = store.path
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="livecoupon-checkpoints", daemon=True)
                self._thread.start()
        weakref.finalize(store, self.forget, key)

    def forget(self, key: int) -> None:
        with self._lock:
            self._files.pop(key, None)

    def _run(self) -> None:
        opened: dict[str, sqlite3.Connection] = {}
        failed: set[str] = set()  # files it could not copy (gone, or not a file): their commits copy them
        while True:
            time.sleep(self._seconds)
            with self._lock:
                files = set(self._files.values()) - failed
                if not files:
                    self._thread = None
            for path in [p for p in opened if p not in files]:
                opened.pop(path).close()
            if not files:
                return
            for path in files:
                try:
                    db = opened.get(path) or opened.setdefault(path, _existing(path))
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (sqlite3.Error, ValueError):
                    failed.add(path)


def _existing(path: str) -> sqlite3.Connection:
    """A connection to ``path`` that never creates the file."""
    return sqlite3.connect(Path(path).resolve().as_uri() + "?mode=rw", uri=True, isolation_level=None,
                           check_same_thread=False)


CHECKPOINTS = Checkpoints()


def holds_a_store(path: str | Path) -> bool:
    """Whether ``path`` is a SQLite file a livecoupon service wrote (its log and its decisions), read without a write:
    opening it as a store adds the schema to whatever database it is (export's ``--db`` mistyped to another app's)."""
    db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()
    return {"events", "decisions"} <= tables


class SqliteStore(RelationalStore):
    """The store on one SQLite file."""

    BEGIN_WRITE = "BEGIN IMMEDIATE"
    BEGIN_READ = "BEGIN DEFERRED"
    # json_each keeps each element's text as written; ordered by key (the index), whatever order it scans in. The
    # array is bound as msgspec's UTF-8 bytes, which the CAST reads as the text they are: a str would be decoded from
    # them and encoded back by the driver (~2% of an ingesting server's CPU, with Chinese comments)
    APPEND_EVENTS = "INSERT INTO events (log, body) SELECT ?, value FROM json_each(CAST(? AS TEXT)) ORDER BY key"

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self.path = str(path)
        self._synchronous = synchronous
        self._db.executescript("BEGIN IMMEDIATE;" + _migrations(self._db) + SCHEMA + "COMMIT;")
        CHECKPOINTS.watch(self)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute(f"PRAGMA wal_autocheckpoint={WAL_BOUND}")
        return db

    def close(self) -> None:
        CHECKPOINTS.forget(id(self))
        super().close()

    def _run(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:  # this thread's connection as it is: a file's is never lost (``_db`` checks, ~1 µs a statement)
            db: sqlite3.Connection = self._local.db
        except AttributeError:
            db = self._db
        cursor: sqlite3.Cursor = db.execute(sql, args)
        return cursor

    def _json_array(self, entries: list[dict[str, Any]]) -> bytes:
        return json_bytes(entries)

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        cursor: sqlite3.Cursor = self._db.executemany(sql, rows)
        return cursor.rowcount

    def _hint(self, index: str) -> str:
        return f"INDEXED BY {index}"

    def guarded(self) -> AbstractContextManager[None]:
        """No SAVEPOINT and RELEASE (two statements a checkout call, each a hop of the GIL): whether the block
        wrote is the connection's count of changed rows (INSERT, UPDATE and DELETE), read before and after."""
        assert self.in_transaction(), "a guarded block lives inside a unit of work"
        return _Guarded(self._db)


class _Guarded:
    """:meth:`SqliteStore.guarded`'s block (a class: a generator's context manager costs ~3× as much)."""

    __slots__ = ("_db", "_changes")

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._changes = 0

    def __enter__(self) -> None:
        self._changes = self._db.total_changes

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and self._db.total_changes != self._changes:
            raise Spoiled("a guarded block raised after it had written") from exc
