"""What the relational stores share: the ledger, the log and the claims, written once in SQL
both SQLite and PostgreSQL read (``?`` placeholders, ``ON CONFLICT DO NOTHING``, ``IS NOT
DISTINCT FROM``, the ``"user"`` column quoted). A backend gives connections, transactions,
its schema, and a lock that makes a campaign's claims atomic across processes.

Counters still move by conditional writes (``… WHERE issued = :seen``): a write that finds
its row changed under it fails loudly instead of over-issuing.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from types import TracebackType
from typing import Any

import msgspec

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import (
    REFUND_KEPT,
    REFUNDED_BY_MERCHANT,
    Coupon,
    CouponKind,
    CouponState,
    CouponTemplate,
    HistoryEntry,
    Scope,
    Terms,
)
from livecoupon.domain.decisions import (
    Decision,
    DecisionRecord,
    IssueCounters,
    IssueRequest,
    Reason,
    cap_reason,
    decide_one,
)
from livecoupon.domain.orders import Order, OrderState
from livecoupon.domain.pricing import CartLine
from livecoupon.store.port import CampaignTotals, Snapshot, StoredAnswer, collector_paused

_CHUNK = 900  # stays under SQLite's bound-parameter limit
_SMALL_BATCH = 64
_LOG_PAGE = 5_000
TRIGGER_SHARE, ROOM_SHARE = "trigger:", "room:"  # the keys of budget_shares: a trigger's, a room's
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_TERMS_KEPT = 1_024  # distinct coupon terms kept read (a campaign has a handful of templates)


def json_text(value: Any) -> str:
    """JSON text for a column (a log entry, an order's cart, an answer's body, a history entry's detail): compact,
    as msgspec writes it ~10× faster than ``json.dumps``."""
    return _encode(value).decode()


def json_bytes(value: Any) -> bytes:
    """:func:`json_text` as the UTF-8 bytes msgspec writes, for a driver that binds them as text without a copy."""
    return _encode(value)


def _logged(body: str) -> dict[str, Any]:
    """A log entry read back: by msgspec (a restart re-applies thousands: 0.98 s for 24,848 with ``json.loads``
    against 0.1, measured), by the standard parser where msgspec refuses what it wrote (a lone surrogate)."""
    try:
        entry: dict[str, Any] = _decode(body)
    except msgspec.DecodeError:
        entry = json.loads(body)
    return entry


# A coupon is an issuing decision joined with the terms it was issued under.
COUPON_COLUMNS = ("d.coupon_id, d.campaign, d.room, d.trigger, d.\"user\", d.template, t.title, t.kind, t.threshold, "
                  "t.amount, t.percent_tenths, t.max_discount, t.scope, d.at, d.expires_at, d.state, d.order_id, "
                  "d.reserved_until, c.at")
COUPON_SELECT = (f"SELECT {COUPON_COLUMNS} FROM decisions d JOIN templates t ON t.id = d.template_id "
                 "LEFT JOIN ledger_confirmations c ON c.coupon_id = d.coupon_id")


Query = tuple[str, Sequence[Any]]

DECISION_COLUMNS = ("coupon_id, campaign, room, broadcast, trigger, \"user\", template, template_id, at, reason, "
                    "expires_at, experiment, variant, state, device_key, propensity")
INSERT_DECISION = f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
INTERN_TEMPLATE = ("INSERT INTO templates (campaign, name, title, kind, threshold, amount, percent_tenths, "
                   "max_discount, scope) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")
TEMPLATE_ID = ("SELECT id FROM templates WHERE campaign=? AND name=? AND title=? AND kind=? AND threshold=? AND "
               "amount=? AND percent_tenths=? AND max_discount IS NOT DISTINCT FROM ? AND scope=?")


LATEST_SNAPSHOT = ("SELECT position, body FROM engine_snapshots WHERE log = ? AND fingerprint = ? "
                   "ORDER BY position DESC LIMIT 1")


class Reads:
    """Queries to run together, each with what consumes its rows."""

    def __init__(self) -> None:
        self.queries: list[tuple[Query, Callable[[list[tuple[Any, ...]]], None]]] = []

    def add(self, query: Query, consume: Callable[[list[tuple[Any, ...]]], None]) -> None:
        self.queries.append((query, consume))


class _Work:
    """A unit of work's block: BEGIN, then COMMIT (ROLLBACK if it raises); inside another, it only nests. A class: a
    generator's context manager costs ~3× as much, and a checkout call enters several."""

    __slots__ = ("_store", "_outer")

    def __init__(self, store: RelationalStore) -> None:
        self._store = store
        self._outer = False

    def __enter__(self) -> None:
        store = self._store
        depth = getattr(store._local, "depth", 0)
        if depth:
            store._local.depth = depth + 1
            return
        store._run(store.BEGIN_WRITE)
        local = store._local
        local.depth, local.serial = 1, getattr(local, "serial", 0) + 1
        self._outer = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        store = self._store
        if not self._outer:
            store._local.depth -= 1
            return
        try:
            if kind is None:
                store._run("COMMIT")
            else:
                store._run("ROLLBACK")
                store._template_ids.clear()  # ids interned inside the rolled-back transaction are gone
        finally:
            store._local.depth = 0


class ConcurrentUpdate(RuntimeError):
    """A conditional write found its row changed under it: the transaction is rolled back."""


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """``items`` in slices small enough to bind in one SQLite statement."""
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# An operator's command in the log, as written (compact JSON, ``type`` first): what a gateway starting looks for
# among millions of events (the campaign versions published). PostgreSQL indexes only these entries, a partial
# index with this very predicate, which the query repeats word for word so that the planner may use it: a scan
# of the whole log was 1.4 s at 10,000,000 entries.
_OPERATOR = '{"type":"operator"'
OPERATOR_ENTRY = f"substr(body, 1, {len(_OPERATOR)}) = '{_OPERATOR}'"  # (no LIKE: psycopg reads % as a placeholder)


# A decision record's columns, and its rows as records. The reason by a look-up: ``Reason(reason)`` was half of
# turning 490,000 rows into records (an unknown one still fails, as it did).
_RECORD_COLUMNS = ('coupon_id, room, broadcast, trigger, "user", at, template, reason, expires_at, experiment, '
                   "variant, propensity")
_REASONS: dict[str | None, Reason | None] = {None: None, "": None} | {r.value: r for r in Reason}


def _records(rows: Iterable[Sequence[Any]]) -> Iterator[DecisionRecord]:
    reason_of = _REASONS.__getitem__
    for (coupon_id, room, broadcast, trigger, user, at, template, reason, expires_at, experiment, variant,
         propensity) in rows:
        yield DecisionRecord(coupon_id, room, broadcast, trigger, user, at, template, reason_of(reason), expires_at,
                             experiment, variant, propensity)


class RelationalStore(ABC):
    """The store port over SQL. Each thread gets its own connection; ``unit_of_work`` nests."""

    def __init__(self, log: str = "") -> None:
        """``log`` names this store's event log and snapshots (a partition's, in a scaled-out deployment);
        everything else — claims, coupons, orders — is shared by every log of the same database."""
        self.log = log
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._template_ids: dict[tuple[str, CouponTemplate], int] = {}

    # -- what a backend provides -------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any:
        """A new connection in autocommit mode (transactions are begun explicitly)."""

    @abstractmethod
    def _run(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Execute one statement; a cursor with ``fetchone``, ``fetchall``, ``rowcount`` and iteration."""

    @abstractmethod
    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Execute one statement per row; how many rows it changed in all."""

    BEGIN_WRITE = "BEGIN"
    BEGIN_READ = "BEGIN"
    # Log entries (a JSON array of them) as rows, in the array's order: the database's own JSON functions
    APPEND_EVENTS: str

    def _is_lost(self, db: Any) -> bool:
        """Whether a connection was lost (a server restart, a failover); never, for an embedded file."""
        return False

    def _lock_query(self, campaign: str) -> Query | None:
        """Inside a transaction: the statement that holds the campaign's claims until it ends (None where
        the transaction itself already excludes other writers)."""
        return None

    def _fetch(self, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
        """Each query's rows, run in order (a backend may send them together: one round trip)."""
        return [self._run(sql, args).fetchall() for sql, args in queries]

    def _write(self, statements: Sequence[Query]) -> list[int]:
        """Each statement's row count, run in order (a backend may send them together)."""
        return [self._run(sql, args).rowcount for sql, args in statements]

    def _hint(self, index: str) -> str:
        """An index the planner should use (SQLite's ``INDEXED BY``); nothing elsewhere."""
        return ""

    # -- connections and transactions --------------------------------------------------
    @property
    def _db(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is not None and self._is_lost(db):
            with self._all_lock:  # lost (a PostgreSQL restart or failover): this thread opens a new one
                self._all.remove(db)
            db = None
        if db is None:
            db = self._connect()
            self._local.db, self._local.depth = db, 0
            with self._all_lock:
                self._all.append(db)
        return db

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A read transaction: every read inside sees the same committed moment."""
        self._run(self.BEGIN_READ)
        try:
            yield
        finally:
            self._run("COMMIT")

    def unit_of_work(self) -> AbstractContextManager[None]:
        return _Work(self)

    def in_transaction(self) -> bool:
        """Whether this thread is inside a unit of work."""
        return bool(getattr(self._local, "depth", 0))

    def transaction(self) -> int:
        """This thread's current (or latest) unit of work, numbered: what a lock held until it ends names."""
        return int(getattr(self._local, "serial", 0))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        assert getattr(self._local, "depth", 0), "a savepoint lives inside a unit of work"
        self._run("SAVEPOINT call")
        try:
            yield
        except BaseException:
            self._run("ROLLBACK TO SAVEPOINT call")
            self._run("RELEASE SAVEPOINT call")
            self._template_ids.clear()
            raise
        self._run("RELEASE SAVEPOINT call")

    def guarded(self) -> AbstractContextManager[None]:
        return self.savepoint()

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    # -- issuing -----------------------------------------------------------------------
    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        if not requests:
            return []
        with collector_paused(len(requests)), self.unit_of_work():
            return self._issue(requests, limits)

    def _issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        """Read everything the requests are decided on (the lock first), decide, write it all: on
        PostgreSQL each phase is one round trip, which is what the campaign's lock is held for."""
        campaign = requests[0].campaign
        assert all(r.campaign == campaign for r in requests), "one campaign per batch"
        reads = self._claiming(campaign)
        known: dict[str, Decision] = {}
        self._read_known(requests, reads, known)
        counters = IssueCounters()
        self._read_counters(requests, limits, reads, counters)
        self._run_reads(reads)
        fresh = [r for r in requests if r.coupon_id not in known]
        before = IssueCounters(stock_used=dict(counters.stock_used), budget_spent=counters.budget_spent,
                               trigger_spent=dict(counters.trigger_spent), room_spent=dict(counters.room_spent))
        made: dict[str, Decision] = {}
        for request in fresh:
            if request.coupon_id not in made:
                made[request.coupon_id] = decide_one(request, limits, counters)
        self._write_decisions(list(made.values()), self._supply_moves(campaign, before, counters))
        return [known.get(r.coupon_id) or made[r.coupon_id] for r in requests]

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        if not requests:
            return []
        with self.unit_of_work():
            reads = self._claiming(requests[0].campaign)
            counters = IssueCounters()
            self._read_counters(requests, limits, reads, counters)
            self._run_reads(reads)
            return [r for r in requests if cap_reason(limits, counters, r) is None]

    def _claiming(self, campaign: str) -> Reads:
        """The reads of a claim, starting with the campaign's lock (where the backend needs one)."""
        reads = Reads()
        lock = self._lock_query(campaign)
        if lock is not None:
            reads.add(lock, lambda rows: None)
        return reads

    def _run_reads(self, reads: Reads) -> None:
        for (_, consume), rows in zip(reads.queries, self._fetch([q for q, _ in reads.queries]), strict=True):
            consume(rows)

    def _read_known(self, requests: Sequence[IssueRequest], reads: Reads, known: dict[str, Decision]) -> None:
        by_id = {r.coupon_id: r for r in requests}

        def consume(rows: list[tuple[Any, ...]]) -> None:
            for coupon_id, reason, expires_at in rows:
                known[coupon_id] = Decision(by_id[coupon_id], Reason(reason) if reason else None, expires_at)

        for chunk in chunks(list(by_id)):
            reads.add((f"SELECT coupon_id, reason, expires_at FROM decisions WHERE coupon_id IN ({_marks(len(chunk))})",
                       chunk), consume)

    def _read_counters(self, requests: Sequence[IssueRequest], limits: Limits, reads: Reads,
                       counters: IssueCounters) -> None:
        """The reads that fill ``counters`` for ``requests`` (run with the others, then consumed)."""
        campaign = requests[0].campaign
        if limits.per_user is not None:
            self._read_broadcast_counts(requests, reads, counters)
        self._read_device_counts(requests, reads, counters)
        if limits.min_interval_ms is not None:
            self._read_last_issued(requests, limits.min_interval_ms, reads, counters)
        for name in {r.template.name for r in requests if r.template is not None}:
            def stock(rows: list[tuple[Any, ...]], name: str = name) -> None:
                counters.stock_used[name] = rows[0][0] if rows else 0
            reads.add(("SELECT issued FROM template_stock WHERE campaign=? AND template=?", (campaign, name)), stock)

        def budget(rows: list[tuple[Any, ...]]) -> None:
            counters.budget_spent = rows[0][0] if rows else 0
        reads.add(("SELECT spent FROM campaign_budget WHERE campaign=?", (campaign,)), budget)
        for trigger in {r.trigger for r in requests if r.trigger_budget is not None}:
            def trigger_spent(rows: list[tuple[Any, ...]], trigger: str = trigger) -> None:
                counters.trigger_spent[trigger] = int(rows[0][0])
            reads.add(self._share_spent(campaign, TRIGGER_SHARE + trigger, "d.trigger=?", trigger,
                                        self._hint("coupons_by_trigger")), trigger_spent)
        if limits.room_budget is not None:
            for room in {r.room for r in requests}:
                def room_spent(rows: list[tuple[Any, ...]], room: str = room) -> None:
                    counters.room_spent[room] = int(rows[0][0])
                reads.add(self._share_spent(campaign, ROOM_SHARE + room, "d.room=?", room), room_spent)

    def _share_spent(self, campaign: str, share: str, where: str, value: str, hint: str = "") -> Query:
        """Fen of face value a budget share (a trigger's, a room's) has issued: its counter in
        ``budget_shares``, kept like ``campaign_budget`` (one row read per claim); a share without a row
        yet (a store written before the counters, or its first coupon) is summed from its decisions
        once (:meth:`_face_issued`), and its counter starts from that."""
        total, args = self._face_issued(campaign, where, value, hint)
        return (f"SELECT COALESCE((SELECT spent FROM budget_shares WHERE campaign=? AND share=?), ({total}))",
                (campaign, share, *args))

    def _face_issued(self, campaign: str, where: str, value: str, hint: str = "") -> Query:
        """Fen of face value issued by the campaign's decisions matching ``where``, summed
        (``coupons_by_trigger`` covers a trigger's: O(its coupons))."""
        return ("SELECT COALESCE(SUM(CASE WHEN t.kind = 'percent' THEN COALESCE(t.max_discount, 0) "
                f"ELSE t.amount END), 0) FROM decisions d {hint} JOIN templates t ON t.id = d.template_id "
                f"WHERE d.campaign=? AND d.reason IS NULL AND {where}", (campaign, value))

    def _read_broadcast_counts(self, requests: Sequence[IssueRequest], reads: Reads,
                               counters: IssueCounters) -> None:
        campaign = requests[0].campaign
        for room, broadcast in {(r.room, r.broadcast) for r in requests}:
            users = sorted({r.user for r in requests if (r.room, r.broadcast) == (room, broadcast)})
            base = (f"SELECT \"user\", count(*) FROM decisions {self._hint('coupons_by_broadcast')} "
                    "WHERE campaign=? AND room=? AND broadcast=? AND reason IS NULL")

            def consume(rows: list[tuple[Any, ...]], room: str = room, broadcast: int = broadcast) -> None:
                counters.in_broadcast.update(((room, broadcast, user), n) for user, n in rows)

            if len(users) <= _SMALL_BATCH:
                reads.add((f"{base} AND \"user\" IN ({_marks(len(users))}) GROUP BY \"user\"",
                           (campaign, room, broadcast, *users)), consume)
            else:
                reads.add((f"{base} GROUP BY \"user\"", (campaign, room, broadcast)), consume)

    def _read_device_counts(self, requests: Sequence[IssueRequest], reads: Reads, counters: IssueCounters) -> None:
        keys = sorted({r.device_key for r in requests if r.device_key is not None})
        for chunk in chunks(keys):
            reads.add((f"SELECT device_key, count(*) FROM decisions {self._hint('coupons_by_device')} WHERE "
                       f"campaign=? AND device_key IN ({_marks(len(chunk))}) AND reason IS NULL AND device_key IS NOT "
                       "NULL GROUP BY device_key", (requests[0].campaign, *chunk)),
                      lambda rows: counters.on_device.update(rows))

    def _read_last_issued(self, requests: Sequence[IssueRequest], interval: int, reads: Reads,
                          counters: IssueCounters) -> None:
        campaign = requests[0].campaign
        users = sorted({r.user for r in requests})
        if len(users) <= _SMALL_BATCH:
            query: Query = (f"SELECT \"user\", max(at) FROM decisions {self._hint('coupons_by_user')} "
                            f"WHERE \"user\" IN ({_marks(len(users))}) AND reason IS NULL AND campaign=? "
                            "GROUP BY \"user\"", (*users, campaign))
        else:
            since = min(r.at for r in requests) - interval
            query = (f"SELECT \"user\", max(at) FROM decisions {self._hint('coupons_by_time')} "
                     "WHERE campaign=? AND at > ? AND reason IS NULL GROUP BY \"user\"", (campaign, since))
        reads.add(query, lambda rows: counters.last_issued.update(rows))

    def _write_decisions(self, made: Sequence[Decision], moves: Sequence[tuple[Query, str]] = ()) -> None:
        """The decisions and the supply counters they moved, written together; a counter found changed
        under the writer (``moves``: each statement and what to say if it moved no row) rolls all back."""
        rows = self._decision_rows(made)
        if rows:
            self._many(INSERT_DECISION, rows)
        for changed, (_, complaint) in zip(self._write([q for q, _ in moves]), moves, strict=True):
            if changed != 1:
                raise ConcurrentUpdate(complaint)

    def _decision_rows(self, made: Sequence[Decision]) -> list[tuple[Any, ...]]:
        """The ``decisions`` rows of ``made``, in :data:`DECISION_COLUMNS`' order."""
        rows = []
        ids: dict[tuple[str, int], int] = {}  # by template object: hashing a template's terms per row is dear
        for d in made:
            r, template = d.request, d.request.template
            issued = d.reason is None
            template_id = None
            if issued and template is not None:
                template_id = ids.get((r.campaign, id(template)))
                if template_id is None:
                    template_id = ids[r.campaign, id(template)] = self._template_id(r.campaign, template)
            rows.append((r.coupon_id, r.campaign, r.room, r.broadcast, r.trigger, r.user,
                         template.name if template is not None else None, template_id,
                         r.at, None if issued else d.reason.value, d.expires_at, r.experiment, r.variant,  # type: ignore[union-attr]
                         "issued" if issued else None, r.device_key, r.propensity))
        return rows

    def _template_id(self, campaign: str, template: CouponTemplate) -> int:
        """The row holding this template's terms, interned: coupons keep the terms they were issued under."""
        key = (campaign, template)
        found = self._template_ids.get(key)
        if found is None:
            t = template.terms
            terms = (campaign, template.name, template.title, t.kind.value, t.threshold, t.amount, t.percent_tenths,
                     t.max_discount, json.dumps(t.scope.to_json(), ensure_ascii=False, sort_keys=True))
            found = self._template_ids[key] = self._intern_template(terms)
        return found

    def _intern_template(self, terms: Sequence[Any]) -> int:
        """The id of the ``templates`` row of these terms, inserted if new, in the caller's transaction (a
        backend may commit it on a connection of its own)."""
        self._run(INTERN_TEMPLATE, terms)
        return int(self._run(TEMPLATE_ID, terms).fetchone()[0])

    @staticmethod
    def _supply_moves(campaign: str, before: IssueCounters, after: IssueCounters) -> list[tuple[Query, str]]:
        """Upserts of the stock and budget counters, each conditional on the value the decisions were made on."""
        moves: list[tuple[Query, str]] = []
        for template, used in after.stock_used.items():
            seen = before.stock_used.get(template, 0)
            if used != seen:
                moves.append((("INSERT INTO template_stock (campaign, template, issued) VALUES (?, ?, ?) "
                               "ON CONFLICT (campaign, template) DO UPDATE SET issued = excluded.issued "
                               "WHERE template_stock.issued = ?", (campaign, template, used, seen)),
                              f"stock of {template} changed under the writer"))
        if after.budget_spent != before.budget_spent:
            moves.append((("INSERT INTO campaign_budget (campaign, spent) VALUES (?, ?) "
                           "ON CONFLICT (campaign) DO UPDATE SET spent = excluded.spent "
                           "WHERE campaign_budget.spent = ?", (campaign, after.budget_spent, before.budget_spent)),
                          f"budget of {campaign} changed under the writer"))
        for prefix, spent, seen_before in ((TRIGGER_SHARE, after.trigger_spent, before.trigger_spent),
                                           (ROOM_SHARE, after.room_spent, before.room_spent)):
            for name, value in spent.items():
                seen = seen_before.get(name, 0)
                if value != seen:
                    moves.append((("INSERT INTO budget_shares (campaign, share, spent) VALUES (?, ?, ?) "
                                   "ON CONFLICT (campaign, share) DO UPDATE SET spent = excluded.spent "
                                   "WHERE budget_shares.spent = ?", (campaign, prefix + name, value, seen)),
                                  f"budget share {prefix}{name} changed under the writer"))
        return moves

    def mark_visited(self, campaign: str, user: str) -> bool:
        with self.unit_of_work():
            cur = self._run(*visit_query(campaign, user))
            return bool(cur.rowcount == 1)

    def decisions(self, campaign: str | None = None, trigger: str | None = None,
                  user: str | None = None) -> Iterator[DecisionRecord]:
        """The campaign's decisions in decision order (every campaign's, with None; ``trigger``'s, ``user``'s alone)."""
        conditions = {"campaign=?": campaign, "trigger=?": trigger, '"user"=?': user}
        where = " AND ".join(condition for condition, value in conditions.items() if value is not None)
        args = tuple(value for value in conditions.values() if value is not None)
        where = f"WHERE {where}" if where else ""
        yield from _records(self._run(f"SELECT {_RECORD_COLUMNS} FROM decisions {where} ORDER BY seq", args).fetchall())

    def spent(self, campaign: str, trigger: str | None = None) -> int:
        if trigger is not None:
            query = self._share_spent(campaign, TRIGGER_SHARE + trigger, "d.trigger=?", trigger,
                                      self._hint("coupons_by_trigger"))
            return int(self._run(*query).fetchone()[0])
        row = self._run("SELECT spent FROM campaign_budget WHERE campaign=?", (campaign,)).fetchone()
        return int(row[0]) if row else 0

    def recorded(self, coupon_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        found: dict[str, DecisionRecord] = {}
        for chunk in chunks(list(coupon_ids)):
            rows = self._run(f"SELECT {_RECORD_COLUMNS} FROM decisions WHERE coupon_id IN ({_marks(len(chunk))})",
                             chunk)
            found |= {r.coupon_id: r for r in _records(rows)}
        return found

    def stock_used(self, campaign: str) -> dict[str, int]:
        return {str(t): int(n) for t, n in self._run("SELECT template, issued FROM template_stock WHERE campaign=?",
                                                     (campaign,))}

    def totals(self, campaign: str) -> CampaignTotals:
        stock = self.stock_used(campaign)
        spent = self._run("SELECT spent FROM campaign_budget WHERE campaign=?", (campaign,)).fetchone()
        issued, suppressed = self._run(
            "SELECT count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL) "
            "FROM decisions WHERE campaign=?", (campaign,)).fetchone()
        return CampaignTotals(spent[0] if spent else 0, stock, issued, suppressed)

    # -- the ledger --------------------------------------------------------------------
    def coupon(self, coupon_id: str) -> Coupon | None:
        row = self._run(f"{COUPON_SELECT} WHERE d.coupon_id=?", (coupon_id,)).fetchone()
        return _coupon_from_row(row) if row else None

    def coupons_of(self, user: str) -> list[Coupon]:
        rows = self._run(f"{COUPON_SELECT} WHERE d.\"user\"=? AND d.reason IS NULL ORDER BY d.seq", (user,))
        return [_coupon_from_row(row) for row in rows]

    def history(self, coupon_id: str) -> list[HistoryEntry]:
        """The issue (from the decision itself), then every change appended since."""
        issued = self._run("SELECT at FROM decisions WHERE coupon_id=? AND reason IS NULL",
                                  (coupon_id,)).fetchone()
        if issued is None:
            return []
        rows = self._run("SELECT coupon_id, at, state, action, order_id, detail FROM coupon_history "
                                "WHERE coupon_id=? ORDER BY seq", (coupon_id,))
        return [HistoryEntry(coupon_id, issued[0], CouponState.ISSUED, "issued")] + [
            HistoryEntry(cid, at, CouponState(state), action, order_id, json.loads(detail))
            for cid, at, state, action, order_id, detail in rows]

    def move_coupon(self, coupon: Coupon, expected: CouponState, entry: HistoryEntry) -> bool:
        with self.unit_of_work():
            moved = self._run(
                "UPDATE decisions SET state=?, order_id=?, reserved_until=? WHERE coupon_id=? AND state=?",
                (coupon.state.value, coupon.order_id, coupon.reserved_until, coupon.coupon_id, expected.value))
            if moved.rowcount != 1:
                return False
            self._append_history(entry)
            return True

    def redeem(self, entry: HistoryEntry) -> str | None:
        with self.unit_of_work():
            rows = self._run(
                "UPDATE decisions SET state=?, reserved_until=NULL WHERE coupon_id=? AND state=? AND order_id=? "
                "AND (reserved_until IS NULL OR reserved_until >= ?) RETURNING room",
                (CouponState.REDEEMED.value, entry.coupon_id, CouponState.RESERVED.value, entry.order_id,
                 entry.at)).fetchall()
            if not rows:
                return None
            self._append_history(entry)
            return str(rows[0][0])

    def _append_history(self, entry: HistoryEntry) -> None:
        self._run("INSERT INTO coupon_history (coupon_id, at, state, action, order_id, detail) VALUES (?,?,?,?,?,?)",
                  (entry.coupon_id, entry.at, entry.state.value, entry.action, entry.order_id,
                   json_text(entry.detail)))

    def insert_order(self, order: Order) -> bool:
        cart = json_text([[line.product, line.category, line.price, line.qty] for line in order.cart])
        cur = self._run(
            "INSERT INTO orders (order_id, \"user\", cart, coupon_id, subtotal, discount, payable, state, "
            "created_at, reserved_until, room) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (order.order_id, order.user, cart, order.coupon_id, order.subtotal, order.discount, order.payable,
             order.state.value, order.created_at, order.reserved_until, order.room))
        return bool(cur.rowcount == 1)

    def order(self, order_id: str) -> Order | None:
        row = self._run(f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE order_id=?", (order_id,)).fetchone()
        return None if row is None else _order_from_row(row)

    def refunded_orders(self) -> set[str]:
        rows = self._run("SELECT order_id FROM orders WHERE state=? UNION SELECT order_id FROM coupon_history "
                         "WHERE action IN (?, ?) AND order_id IS NOT NULL",
                         (OrderState.REFUNDED.value, REFUNDED_BY_MERCHANT, REFUND_KEPT))
        return {str(order_id) for (order_id,) in rows}

    def move_order(self, order: Order, expected: OrderState) -> bool:
        cur = self._run("UPDATE orders SET state=?, reserved_until=? WHERE order_id=? AND state=?",
                               (order.state.value, order.reserved_until, order.order_id, expected.value))
        return bool(cur.rowcount == 1)

    def acknowledge(self, acks: Sequence[tuple[str, str]], at: int) -> int:
        with self.unit_of_work():
            return self._many("INSERT INTO acknowledgements SELECT coupon_id, CAST(? AS BIGINT) FROM decisions "
                              "WHERE coupon_id=? AND \"user\"=? AND reason IS NULL ON CONFLICT DO NOTHING",
                              [(at, coupon_id, user) for coupon_id, user in acks])

    def confirm(self, coupon_ids: Sequence[str], at: int) -> list[str]:
        """The merchant's ledger confirmed these coupons; the ids confirmed just now, not before."""
        fresh = []
        with self.unit_of_work():
            for coupon_id in coupon_ids:
                cur = self._run("INSERT INTO ledger_confirmations VALUES (?, ?) ON CONFLICT DO NOTHING",
                                (coupon_id, at))
                if cur.rowcount == 1:
                    fresh.append(coupon_id)
        return fresh

    def unconfirmed(self, campaign: str) -> list[Coupon]:
        """Issued coupons of ``campaign`` the merchant's ledger has not confirmed, in issue order."""
        rows = self._run(f"{COUPON_SELECT} WHERE d.campaign=? AND d.reason IS NULL AND c.at IS NULL ORDER BY d.seq",
                         (campaign,))
        return [_coupon_from_row(row) for row in rows]

    def unacknowledged(self, user: str, room: str) -> list[Coupon]:
        rows = self._run(
            f"{COUPON_SELECT} WHERE d.\"user\"=? AND d.room=? AND d.reason IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM acknowledgements a WHERE a.coupon_id = d.coupon_id) ORDER BY d.seq",
            (user, room))
        return [_coupon_from_row(row) for row in rows]

    # -- idempotency keys and the event log ----------------------------------------------
    def recall(self, key: str) -> StoredAnswer | None:
        row = self._run("SELECT fingerprint, status, body FROM answers WHERE key=?", (key,)).fetchone()
        return None if row is None else _answer_from_row(row)

    def order_and_answer(self, order_id: str, key_head: str,
                         key_tail: str) -> tuple[Order | None, StoredAnswer | None]:
        row = self._run(f"SELECT {_ORDER_COLUMNS}, a.fingerprint, a.status, a.body FROM (SELECT 1) AS one "
                        "LEFT JOIN orders o ON o.order_id = ? LEFT JOIN answers a "
                        "ON a.key = ? || COALESCE(o.\"user\", '') || ?",
                        (order_id, key_head, key_tail)).fetchone()
        return _order_and_answer(row)

    def order_answer_and_coupon(self, order_id: str, key: str,
                                coupon_id: str | None) -> tuple[Order | None, StoredAnswer | None, Coupon | None]:
        # a decision without a template is no coupon (a suppression), as for coupon()
        row = self._run(f"SELECT {_ORDER_COLUMNS}, a.fingerprint, a.status, a.body, {COUPON_COLUMNS} "
                        "FROM (SELECT 1) AS one LEFT JOIN orders o ON o.order_id = ? LEFT JOIN answers a ON a.key = ? "
                        "LEFT JOIN decisions d ON d.coupon_id = ? AND d.template_id IS NOT NULL "
                        "LEFT JOIN templates t ON t.id = d.template_id "
                        "LEFT JOIN ledger_confirmations c ON c.coupon_id = d.coupon_id",
                        (order_id, key, coupon_id)).fetchone()
        order, answer = _order_and_answer(row[:_ANSWER_END])
        return order, answer, None if row[_ANSWER_END] is None else _coupon_from_row(row[_ANSWER_END:])

    def remember(self, key: str, answer: StoredAnswer) -> None:
        self._run("INSERT INTO answers VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                         (key, answer.fingerprint, answer.status, json_text(answer.body)))

    def append_events(self, events: Iterable[dict[str, Any]]) -> None:
        """The batch in one statement: msgspec writes the array, the database splits it (:attr:`APPEND_EVENTS`),
        and each row's body is its element's text as written, so the log reads as it did with a row inserted at a
        time. A row at a time, SQLite gave the interpreter up and took it back for every row (waiting each time on
        whatever thread held it meanwhile), and psycopg bound each row in Python: 17 µs a row against 1 µs."""
        entries = events if isinstance(events, list) else list(events)
        self._run(self.APPEND_EVENTS, (self.log, self._json_array(entries)))

    def _json_array(self, entries: list[dict[str, Any]]) -> str | bytes:
        """The entries as one JSON array, bound as :attr:`APPEND_EVENTS` reads it: text, unless the store says."""
        return json_text(entries)

    def events(self, after: int = 0, log: str | None = None) -> Iterator[dict[str, Any]]:
        """The log in pages, so a long one is never held in memory at once (``log``: another partition's)."""
        for _, entry in self.sequenced(after, log):
            yield entry

    def sequenced(self, after: int = 0, log: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """:meth:`events` with each entry's place in the database's one sequence, which orders the entries of
        every log as they were written (scaled out: two partitions' rounds that claim the same limits write in the
        order they took the campaign's lock)."""
        name = self.log if log is None else log
        while True:
            rows = self._run("SELECT seq, body FROM events WHERE log = ? AND seq > ? ORDER BY seq LIMIT ?",
                             (name, after, _LOG_PAGE)).fetchall()
            for seq, body in rows:
                yield seq, _logged(body)
            if len(rows) < _LOG_PAGE:
                return
            after = rows[-1][0]

    def operator_events(self, action: str) -> list[dict[str, Any]]:
        """Every logged operator command ``action`` (say, ``publish``), in every log, in the order each log
        took them (a campaign-wide one is in each partition's log: the caller dedupes by its id)."""
        pattern = '{"type":"operator",%"action":"' + action + '"%'
        rows = self._run(f"SELECT body FROM events WHERE {OPERATOR_ENTRY} AND body LIKE ? ORDER BY log, seq",
                         (pattern,)).fetchall()
        return [event for (body,) in rows if (event := _logged(body)).get("action") == action]

    def last_entries(self, logs: Iterable[str]) -> list[dict[str, Any]]:
        """Each log's last entry, if it has any (a log's times never go back: its latest time), read backwards on
        the log's index, however long it is."""
        found = []
        for name in logs:
            row = self._run("SELECT body FROM events WHERE log = ? ORDER BY seq DESC LIMIT 1", (name,)).fetchone()
            if row is not None:
                found.append(_logged(row[0]))
        return found

    def log_names(self) -> list[str]:
        """Every log in the database: one on a single machine, one per partition scaled out."""
        return [name for (name,) in self._run("SELECT DISTINCT log FROM events").fetchall()]

    def log_position(self) -> int:
        row = self._run("SELECT max(seq) FROM events WHERE log = ?", (self.log,)).fetchone()
        return int(row[0] or 0)

    def roster(self) -> dict[str, int]:
        """The deployment's campaigns (every partition's log follows one roster: a campaign joins on the bus)."""
        rows = self._run("SELECT campaign, position FROM roster").fetchall()
        return {campaign: int(position) for campaign, position in rows}

    def enrol(self, campaign: str, position: int) -> None:
        self._run("INSERT INTO roster (campaign, position) VALUES (?, ?) ON CONFLICT DO NOTHING", (campaign, position))

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the new snapshot and the one before it (should the newest be unreadable)."""
        with self.unit_of_work():
            self._run("INSERT INTO engine_snapshots (log, fingerprint, position, body) VALUES (?, ?, ?, ?) "
                      "ON CONFLICT DO NOTHING", (self.log, snapshot.fingerprint, snapshot.position, snapshot.body))
            self._run("DELETE FROM engine_snapshots WHERE log = ? AND position < (SELECT min(position) FROM (SELECT "
                      "position FROM engine_snapshots WHERE log = ? ORDER BY position DESC LIMIT 2) AS newest)",
                      (self.log, self.log))

    def latest_snapshot(self, fingerprint: str) -> Snapshot | None:
        row = self._run(LATEST_SNAPSHOT, (self.log, fingerprint)).fetchone()
        return Snapshot(row[0], fingerprint, row[1]) if row else None


_ORDER_COLUMNS = ('o.order_id, o."user", o.cart, o.coupon_id, o.subtotal, o.discount, o.payable, o.state, '
                  "o.created_at, o.reserved_until, o.room")


_ORDER_END = _ORDER_COLUMNS.count(",") + 1  # where an order's columns end in a row that goes on
_ANSWER_END = _ORDER_END + 3  # an order's columns, then an answer's fingerprint, status and body


def _order_and_answer(row: Sequence[Any]) -> tuple[Order | None, StoredAnswer | None]:
    """An order's columns (all NULL: none), then an answer's (the same)."""
    answer = row[_ORDER_END:_ANSWER_END]
    return (None if row[0] is None else _order_from_row(row), None if answer[0] is None else _answer_from_row(answer))


def _answer_from_row(row: Sequence[Any]) -> StoredAnswer:
    fingerprint, status, body = row
    return StoredAnswer(fingerprint, status, _decode(body))


def _order_from_row(row: Sequence[Any]) -> Order:
    """An order from the first columns of ``row`` (``_ORDER_COLUMNS``)."""
    (order_id, user, cart, coupon_id, subtotal, discount, payable, state, created_at, reserved_until,
     room) = row[:_ORDER_END]
    lines = tuple(CartLine(p, c, price, qty) for p, c, price, qty in _decode(cart))
    return Order(order_id, user, lines, coupon_id, subtotal, discount, payable, OrderState(state), created_at,
                 reserved_until, room)


def _coupon_from_row(row: Sequence[Any]) -> Coupon:
    (coupon_id, campaign, room, trigger, user, template, title, kind, threshold, amount, percent_tenths,
     max_discount, scope, issued_at, expires_at, state, order_id, reserved_until, confirmed_at) = row
    terms = _terms(kind, threshold, amount, percent_tenths, max_discount, scope)
    return Coupon(coupon_id, user, campaign, template, title, terms, issued_at, expires_at, CouponState(state),
                  order_id, reserved_until, room, trigger, confirmed_at)


@lru_cache(maxsize=_TERMS_KEPT)
def _terms(kind: str, threshold: int, amount: int, percent_tenths: int, max_discount: int | None,
           scope: str) -> Terms:
    """A template row's terms, parsed once (its scope is JSON): every coupon read at checkout needs them."""
    return Terms(CouponKind(kind), threshold, amount, percent_tenths, max_discount, Scope.from_json(json.loads(scope)))


def visit_query(campaign: str, user: str) -> Query:
    """A user's first visit recorded, or nothing where it was (the row count says which)."""
    return "INSERT INTO visits VALUES (?, ?) ON CONFLICT DO NOTHING", (campaign, user)
