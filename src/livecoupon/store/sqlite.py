"""The embedded store: one SQLite file in WAL mode, safe across threads and processes.

Every unit of work is a ``BEGIN IMMEDIATE`` transaction, so writers are serialised by
SQLite's own lock; the SQL itself is shared with PostgreSQL (:mod:`.relational`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from livecoupon.store.relational import ConcurrentUpdate, RelationalStore

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



class SqliteStore(RelationalStore):
    """The store on one SQLite file."""

    BEGIN_WRITE = "BEGIN IMMEDIATE"
    BEGIN_READ = "BEGIN DEFERRED"

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        self.path = str(path)
        self._synchronous = synchronous
        self._db.executescript("BEGIN IMMEDIATE;" + _migrations(self._db) + SCHEMA + "COMMIT;")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _run(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self._db.execute(sql, args)
        return cursor

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        cursor: sqlite3.Cursor = self._db.executemany(sql, rows)
        return cursor.rowcount

    def _hint(self, index: str) -> str:
        return f"INDEXED BY {index}"
