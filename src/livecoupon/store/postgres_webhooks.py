"""What became of each coupon's merchant webhook, on PostgreSQL (psycopg 3): the :class:`WebhookOutcomes` port.

The tables are shared by every deployment on the server (schema ``livecoupon_webhooks``, created if
missing); each row names its deployment (``--name``) and the decision log it follows (``""`` for a
single process, ``"p<N>"`` for a scaled-out partition), so services and partitions sharing one
database never see each other's rows, and a partition's next owner sees its last owner's.

A view of one log (a single process, a partition's worker) records its position and owns its rows;
the deployment's view (``log=None``, a gateway) lists and retries the dead letters of every log, and
a coupon it delivers is recorded under the log of its dead letter. Coupon ids are unique within a
deployment, so rows are keyed by deployment and coupon id, the log a column beside them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

from livecoupon.store.postgres import Reconnecting
from livecoupon.store.webhooks import DeadLetter

SCHEMA = "livecoupon_webhooks"

_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.dead_letters (
    deployment TEXT NOT NULL, log TEXT NOT NULL, coupon_id TEXT NOT NULL, url TEXT NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT NOT NULL, at TEXT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (deployment, coupon_id));
CREATE TABLE IF NOT EXISTS {SCHEMA}.delivered (
    deployment TEXT NOT NULL, log TEXT NOT NULL, coupon_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (deployment, coupon_id));
CREATE TABLE IF NOT EXISTS {SCHEMA}.since (
    deployment TEXT NOT NULL, log TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (deployment, log));
"""


class PostgresWebhookOutcomes:
    """Deployment ``name``'s webhook outcomes for decision log ``log`` (None: every log of the deployment)."""

    def __init__(self, url: str, name: str, log: str | None = "") -> None:
        self.url, self.deployment, self.log = url, name, log
        self._pg = Reconnecting(url)
        self._do = self._pg.do

    def open(self, log_position: int) -> int:
        return self._do(lambda db: self._open(db, log_position))

    def _open(self, db: psycopg.Connection[Any], log_position: int) -> int:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"schema:{SCHEMA}",))
            db.execute(_TABLES)
        if self.log is None:
            return 0  # the deployment's view records no position: the partitions' views do
        db.execute(f"INSERT INTO {SCHEMA}.since VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                   (self.deployment, self.log, log_position))
        row = db.execute(f"SELECT position FROM {SCHEMA}.since WHERE deployment = %s AND log = %s",
                         (self.deployment, self.log)).fetchone()
        assert row is not None
        return int(row[0])

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._do(lambda db: db.execute(
            f"SELECT coupon_id, url, attempts, last_error, at, body FROM {SCHEMA}.dead_letters "
            "WHERE deployment = %s AND (%s::text IS NULL OR log = %s) ORDER BY at, coupon_id",
            (self.deployment, self.log, self.log)).fetchall())
        return [DeadLetter(cid, url, attempts, error, at, bytes(body)) for cid, url, attempts, error, at, body in rows]

    def bury(self, letter: DeadLetter) -> None:
        self._do(lambda db: db.execute(
            f"INSERT INTO {SCHEMA}.dead_letters VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (deployment, coupon_id) DO UPDATE SET url = excluded.url, attempts = excluded.attempts, "
            "last_error = excluded.last_error, at = excluded.at, body = excluded.body",
            (self.deployment, self.log or "", letter.coupon_id, letter.url, letter.attempts, letter.last_error,
             letter.at, letter.body)))

    def delivered(self, coupon_id: str, at: str) -> None:
        """One statement: the dead letter goes, the delivery stays, under the dead letter's log if it had one."""
        self._do(lambda db: db.execute(
            f"WITH gone AS (DELETE FROM {SCHEMA}.dead_letters WHERE deployment = %s AND coupon_id = %s "
            "RETURNING log) "
            f"INSERT INTO {SCHEMA}.delivered SELECT %s, coalesce((SELECT log FROM gone), %s), %s, %s "
            "ON CONFLICT DO NOTHING",
            (self.deployment, coupon_id, self.deployment, self.log or "", coupon_id, at)))

    def settled(self, coupon_ids: Collection[str]) -> set[str]:
        ids = list(coupon_ids)
        if not ids:
            return set()
        rows = self._do(lambda db: db.execute(
            f"SELECT coupon_id FROM {SCHEMA}.delivered WHERE deployment = %s AND coupon_id = ANY(%s) UNION "
            f"SELECT coupon_id FROM {SCHEMA}.dead_letters WHERE deployment = %s AND coupon_id = ANY(%s)",
            (self.deployment, ids, self.deployment, ids)).fetchall())
        return {row[0] for row in rows}

    def close(self) -> None:
        self._pg.close()
