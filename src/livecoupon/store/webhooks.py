"""What became of each coupon's merchant webhook: the port the sender writes through, in memory and on SQLite.

The decision log is the webhooks' outbox: every coupon issued from the position webhooks were
first turned on, less those delivered or dead, is still owed (after a crash too). So the sender
needs only three facts kept: the dead letters, the coupons delivered, and that position.
:class:`WebhookOutcomes` is that port; PostgreSQL's adapter is in :mod:`.postgres_webhooks`.
Every adapter passes tests/integration/test_webhook_outcomes.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from livecoupon.store.relational import chunks


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A coupon the merchant never accepted, and the exact body that was sent."""

    coupon_id: str
    url: str
    attempts: int
    last_error: str
    at: str  # ISO
    body: bytes

    def to_json(self) -> dict[str, Any]:
        return {"coupon_id": self.coupon_id, "url": self.url, "attempts": self.attempts,
                "last_error": self.last_error, "at": self.at}


class WebhookOutcomes(Protocol):
    """The dead letters, the coupons delivered, and the decision-log position webhooks are on.

    Blocking calls, made from one thread at a time (the sender's own, never its event loop).
    """

    def open(self, log_position: int) -> int:
        """Ready to use (tables created if missing). The first call ever records ``log_position``:
        returns the position recorded, from which issued coupons are owed a webhook."""
        ...

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    def bury(self, letter: DeadLetter) -> None:
        """Keep a dead letter; one buried again replaces the earlier one (its attempts, error and time)."""
        ...

    def delivered(self, coupon_id: str, at: str) -> None:
        """The merchant accepted the coupon: remember it, and drop its dead letter if it had one."""
        ...

    def settled(self, coupon_ids: Collection[str]) -> set[str]:
        """Of ``coupon_ids``, those delivered or dead: owed nothing more."""
        ...

    def close(self) -> None: ...


def oldest_first(letters: Collection[DeadLetter]) -> list[DeadLetter]:
    return sorted(letters, key=lambda letter: (letter.at, letter.coupon_id))


class MemoryWebhookOutcomes:
    """For tests, and a service without a store file: gone with the process."""

    def __init__(self) -> None:
        self._dead: dict[str, DeadLetter] = {}
        self._delivered: set[str] = set()
        self._since: int | None = None

    def open(self, log_position: int) -> int:
        if self._since is None:
            self._since = log_position
        return self._since

    def dead_letters(self) -> list[DeadLetter]:
        return oldest_first(self._dead.values())

    def bury(self, letter: DeadLetter) -> None:
        self._dead[letter.coupon_id] = letter

    def delivered(self, coupon_id: str, at: str) -> None:
        self._dead.pop(coupon_id, None)
        self._delivered.add(coupon_id)

    def settled(self, coupon_ids: Collection[str]) -> set[str]:
        return {cid for cid in coupon_ids if cid in self._delivered or cid in self._dead}

    def close(self) -> None:
        pass


_SQLITE_SCHEMA = """CREATE TABLE IF NOT EXISTS webhook_dead_letters (
    coupon_id TEXT PRIMARY KEY, url TEXT NOT NULL, attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL, at TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_delivered (coupon_id TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_since (one INTEGER PRIMARY KEY CHECK (one = 1), position INTEGER NOT NULL);"""


class SqliteWebhookOutcomes:
    """Three tables in the service's SQLite file, beside its store, on a connection of their own."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"webhook outcomes in {self.path} are not open")
        return self._conn

    def open(self, log_position: int) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(_SQLITE_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO webhook_since VALUES (1, ?)", (log_position,))
        return int(self._db.execute("SELECT position FROM webhook_since").fetchone()[0])

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._db.execute("SELECT coupon_id, url, attempts, last_error, at, body FROM webhook_dead_letters "
                                "ORDER BY at, coupon_id")
        return [DeadLetter(cid, url, attempts, error, at, bytes(body)) for cid, url, attempts, error, at, body in rows]

    def bury(self, letter: DeadLetter) -> None:
        self._db.execute("INSERT OR REPLACE INTO webhook_dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                         (letter.coupon_id, letter.url, letter.attempts, letter.last_error, letter.at, letter.body))

    def delivered(self, coupon_id: str, at: str) -> None:
        with self._db:  # both or neither
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO webhook_delivered VALUES (?, ?)", (coupon_id, at))
            self._db.execute("DELETE FROM webhook_dead_letters WHERE coupon_id = ?", (coupon_id,))

    def settled(self, coupon_ids: Collection[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(coupon_ids)):
            marks = ",".join("?" * len(chunk))
            for table in ("webhook_delivered", "webhook_dead_letters"):
                found.update(row[0] for row in self._db.execute(
                    f"SELECT coupon_id FROM {table} WHERE coupon_id IN ({marks})", chunk))
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
