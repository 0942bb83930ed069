"""Which worker applies which partition: leases in PostgreSQL, with an epoch that fences.

Each partition has one row: its owner, an epoch raised at every takeover, when the lease
expires, and how far into the bus (the stream sequence) its log has applied. A worker
renews its leases every second; one that stops renewing loses them when they expire and
the others take them over, raising the epoch. Every transaction a worker writes for a
partition ends by advancing ``applied`` *where owner and epoch are still its own*
(:meth:`PartitionStore.seal`): a worker that was paused past its lease and wakes up finds no
row, raises :class:`~livecoupon.service_layer.service.Fenced`, and its transaction rolls
back — so a partition's log is only ever written by its current owner, and a takeover
(which cannot lock that row before the old owner's transaction ends) sees everything the previous
owner committed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg

from livecoupon.service_layer.service import Fenced
from livecoupon.store.postgres import PostgresStore, Reconnecting, schema_name

LEASE_SECONDS = 5.0  # a dead worker's partitions move within this, plus one renewal period
RENEW_SECONDS = 1.0

_TABLES = """
CREATE TABLE IF NOT EXISTS partitions (
    partition INTEGER PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch', applied BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Lease:
    partition: int
    epoch: int
    applied: int  # the last stream sequence the partition's log holds


class LeaseBook:
    """The ``partitions`` and ``workers`` tables of one deployment, over a connection of its own that is
    opened again after it is lost (a PostgreSQL restart or failover). Call it from one thread at a time."""

    def __init__(self, url: str, name: str, partitions: int, worker: str, lease_s: float = LEASE_SECONDS) -> None:
        self.worker, self.lease_s = worker, lease_s
        self._pg = Reconnecting(url, f"SET search_path TO {schema_name(name)}")
        self._do = self._pg.do
        self.partitions = self._do(lambda db: prepare(db, name, partitions))

    def rebalance(self, held: dict[int, int]) -> tuple[list[Lease], list[int], list[int]]:
        """One renewal round: renew ``held`` (partition → epoch), take free or expired partitions up to a fair
        share of the live workers. Returns (taken, lost, surplus): the leases taken, the partitions this worker
        no longer holds, and those it holds beyond its share (to release once drained)."""
        return self._do(lambda db: self._rebalance(db, held))

    def _rebalance(self, db: psycopg.Connection[Any], held: dict[int, int]) -> tuple[list[Lease], list[int], list[int]]:
        ttl = f"{self.lease_s} seconds"
        with db.transaction():
            db.execute("INSERT INTO workers (id, seen_at) VALUES (%s, now()) "
                       "ON CONFLICT (id) DO UPDATE SET seen_at = now()", (self.worker,))
            db.execute("DELETE FROM workers WHERE seen_at < now() - %s::interval", (ttl,))
            live = _count(db.execute("SELECT count(*) FROM workers"))
            renewed = {p for (p,) in db.execute(
                "UPDATE partitions SET expires_at = now() + %s::interval WHERE owner = %s AND "
                "(partition, epoch) IN (SELECT * FROM unnest(%s::int[], %s::bigint[])) RETURNING partition",
                (ttl, self.worker, list(held), list(held.values())))}
            lost = [p for p in held if p not in renewed]
            share = math.ceil(self.partitions / max(live, 1))
            want = share - len(renewed)
            taken: list[Lease] = []
            if want > 0:
                taken = [Lease(p, e, a) for p, e, a in db.execute(
                    "UPDATE partitions SET owner = %s, epoch = epoch + 1, expires_at = now() + %s::interval "
                    "WHERE partition IN (SELECT partition FROM partitions WHERE owner IS NULL OR expires_at < now() "
                    "ORDER BY partition LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING partition, epoch, applied",
                    (self.worker, ttl, want))]
            surplus = sorted(renewed, reverse=True)[:max(0, len(renewed) - share)]
        return taken, lost, surplus

    def release(self, partition: int, epoch: int) -> None:
        """Give a partition up (drained, or on a clean shutdown): the next worker need not wait out the lease."""
        self._do(lambda db: db.execute("UPDATE partitions SET owner = NULL, expires_at = 'epoch' "
                                       "WHERE partition = %s AND owner = %s AND epoch = %s",
                                       (partition, self.worker, epoch)))

    def release_all(self) -> None:
        """Give up every partition this worker holds (a clean shutdown)."""
        self._do(lambda db: db.execute("UPDATE partitions SET owner = NULL, expires_at = 'epoch' WHERE owner = %s",
                                       (self.worker,)))

    def leave(self) -> None:
        self._do(lambda db: db.execute("DELETE FROM workers WHERE id = %s", (self.worker,)))

    def close(self) -> None:
        self._pg.close()


def prepare(db: psycopg.Connection[Any], name: str, partitions: int) -> int:
    """Create the deployment's lease tables if need be; its partition count (fixed by its first start)."""
    schema = schema_name(name)
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"schema:{schema}",))
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        db.execute(f"SET search_path TO {schema}")
        db.execute(_TABLES)
        db.execute("INSERT INTO partitions (partition) SELECT generate_series(0, %s - 1) "
                   "WHERE NOT EXISTS (SELECT 1 FROM partitions)", (partitions,))
        return _count(db.execute("SELECT count(*) FROM partitions"))


def deployment_partitions(url: str, name: str, partitions: int) -> int:
    """How many partitions deployment ``name`` has (``partitions`` if this is its first start)."""
    with psycopg.connect(url, autocommit=True) as db:
        return prepare(db, name, partitions)


def _count(cursor: Any) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


class PartitionStore(PostgresStore):
    """A partition's view of the deployment's store: its own log and snapshots, everything else shared."""

    def seal(self, partition: int, worker: str, epoch: int, applied: int) -> None:
        """Inside the partition's write transaction, last: still ours? Then the log holds the bus up to ``applied``."""
        changed = self._run("UPDATE partitions SET applied = ? "
                            "WHERE partition = ? AND owner = ? AND epoch = ?",
                            (applied, partition, worker, epoch)).rowcount
        if changed != 1:
            raise Fenced(f"partition {partition} is no longer held by {worker} at epoch {epoch}")
