"""The store's ports: narrow Protocols, each the few methods one use needs.

Backends (``memory``, ``sqlite``, ``postgres``) implement them all and pass the same
contract tests. Every limit and every state change moves atomically inside
the backend: callers never read a counter and write it back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import Coupon, CouponState, HistoryEntry
from livecoupon.domain.decisions import Decision, DecisionRecord, IssueRequest
from livecoupon.domain.orders import Order, OrderState

BIG_BATCH = 5_000


@contextmanager
def collector_paused(size: int | None = None) -> Iterator[None]:
    """Pause the cyclic garbage collector around a big batch (``size`` items; None: whatever its size, for work
    known to make millions of objects, none garbage): its fresh rows are not garbage, and collecting them
    costs ~40% of a 100,000-user issue (measured)."""
    paused = (size is None or size > BIG_BATCH) and gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The first answer given to an idempotency key, returned again on repeats."""

    fingerprint: str
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The engine's state as of log ``position`` (see :mod:`livecoupon.engine.snapshots`)."""

    position: int
    fingerprint: str
    body: bytes


@dataclass(frozen=True, slots=True)
class CampaignTotals:
    budget_spent: int  # fen
    stock_used: dict[str, int]  # template -> coupons issued
    issued: int
    suppressed: int


class Spoiled(RuntimeError):
    """A block under :meth:`UnitOfWork.guarded` raised after it had written: its unit of work can only roll back."""


class UnitOfWork(Protocol):
    def unit_of_work(self) -> AbstractContextManager[None]:
        """A transaction: writes inside commit together, or not at all (SQLite, PostgreSQL)."""

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a unit of work: if the block raises, its own writes are undone and the rest of the
        transaction stands (SQL's SAVEPOINT; the memory store, which never undoes, only serialises)."""

    def guarded(self) -> AbstractContextManager[None]:
        """Inside a unit of work, around a block that refuses (raises) before it writes, if at all: a block
        that raises having written nothing leaves the transaction as it was; one that raises having written
        either has its writes undone (a savepoint) or raises :class:`Spoiled` from its exception (the unit of
        work can then only roll back). Where the backend can tell whether a block wrote (SQLite counts the rows
        it changed), it costs no statement; elsewhere it is :meth:`savepoint`."""


class ClaimsLedger(Protocol):
    """What the engine needs: SPEC §4 steps 2-4, decided atomically, and first visits."""

    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        """Decide each request in order, atomically and idempotently.

        A request whose ``coupon_id`` was decided before gets the recorded decision
        back and changes nothing.
        """

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        """The requests whose user passes step 2 now (blocklist, risk, device, per_user, min_interval)."""

    def mark_visited(self, campaign: str, user: str) -> bool:
        """Record that ``user`` joined a room of ``campaign``; True the first time."""

    def spent(self, campaign: str, trigger: str | None = None) -> int:
        """Fen of face value the campaign has issued (what ``limits.budget`` counts), or one of its
        triggers with a ``budget`` of its own has."""

    def stock_used(self, campaign: str) -> dict[str, int]:
        """Coupons of each template the campaign has issued (what a template's ``stock`` counts)."""


class DecisionLog(Protocol):
    def decisions(self, campaign: str, trigger: str | None = None) -> Iterator[DecisionRecord]:
        """Every decision of the campaign (``trigger``'s alone, if given), in decision order."""

    def recorded(self, coupon_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        """The decisions already made under these coupon ids."""

    def totals(self, campaign: str) -> CampaignTotals: ...


class CouponLedger(Protocol):
    """Coupons in users' accounts, their states and histories, and which ones viewers have seen."""

    def coupon(self, coupon_id: str) -> Coupon | None: ...

    def coupons_of(self, user: str) -> list[Coupon]:
        """The user's coupons in the order they were issued (a quote's last tie-break, SPEC §5)."""
        ...

    def history(self, coupon_id: str) -> list[HistoryEntry]: ...

    def move_coupon(self, coupon: Coupon, expected: CouponState, entry: HistoryEntry) -> bool:
        """Compare-and-set: store ``coupon`` only if its stored state is ``expected``."""

    def redeem(self, entry: HistoryEntry) -> str | None:
        """Compare-and-set without reading the coupon first: the coupon ``entry`` names, if reserved for
        ``entry.order_id`` and not lapsed at ``entry.at`` (held until then or later, or with no end), becomes
        redeemed by that order, ``entry`` appended to its history; its room, or None (nothing changed)."""

    def acknowledge(self, acks: Sequence[tuple[str, str]], at: int) -> int:
        """Viewers' clients confirmed they showed these ``(coupon_id, user)`` coupons.

        Acks naming a coupon that is not the user's are ignored; returns how many were new.
        """

    def unacknowledged(self, user: str, room: str) -> list[Coupon]:
        """Issued coupons of ``user`` from ``room`` that no client has acknowledged yet."""

    def confirm(self, coupon_ids: Sequence[str], at: int) -> list[str]:
        """The merchant's ledger confirmed these coupons; the ids confirmed just now, not before."""

    def unconfirmed(self, campaign: str) -> list[Coupon]:
        """Issued coupons of ``campaign`` the merchant's ledger has not confirmed yet, in issue order."""


class OrderBook(Protocol):
    """Orders, and the first answer given to each idempotency key."""

    def insert_order(self, order: Order) -> bool:
        """Store a new order; False if the order id exists."""

    def order(self, order_id: str) -> Order | None: ...

    def move_order(self, order: Order, expected: OrderState) -> bool:
        """Compare-and-set on the order's state."""

    def refunded_orders(self) -> set[str]:
        """The ids of the orders refunded: at this checkout, or reported refunded by the merchant's coupon system."""

    def recall(self, key: str) -> StoredAnswer | None: ...

    def order_and_answer(self, order_id: str, key_head: str,
                         key_tail: str) -> tuple[Order | None, StoredAnswer | None]:
        """The order (None: no such order) and the answer remembered under ``key_head + its user + key_tail``
        ("" for the user where there is no order), in one read: paying, cancelling and refunding read the order
        and the answer its key, scoped by the order's user, may already have."""

    def order_answer_and_coupon(self, order_id: str, key: str,
                                coupon_id: str | None) -> tuple[Order | None, StoredAnswer | None, Coupon | None]:
        """What creating an order reads, in one read: the order ``order_id`` if it exists already, the answer
        remembered under ``key``, and the coupon ``coupon_id`` (as :meth:`CouponLedger.coupon`); None for each
        there is none of."""

    def remember(self, key: str, answer: StoredAnswer) -> None: ...


class EventLog(Protocol):
    """The durable log the engine is rebuilt from: events and operator commands, in order."""

    def append_events(self, events: Iterable[dict[str, Any]]) -> None: ...

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """The log in order, from the position after ``after`` (0: all of it)."""

    def log_position(self) -> int:
        """The position of the last entry of the log (0 when empty)."""


class Roster(Protocol):
    """The campaigns a deployment's log is applied to (docs/campaign.md, "Several campaigns")."""

    def roster(self) -> dict[str, int]:
        """Each campaign the deployment's log has been applied to, and the log position of its ``start`` entry
        (0: it has run since the log began; scaled out, 1: it joined on the bus)."""

    def enrol(self, campaign: str, position: int) -> None:
        """Record that ``campaign`` runs from log ``position`` on (inside the unit of work that logged its start)."""


class SnapshotStore(Protocol):
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (and drop those it makes useless)."""

    def latest_snapshot(self, fingerprint: str) -> Snapshot | None: ...


class CheckoutStore(UnitOfWork, CouponLedger, OrderBook, Protocol):
    """What checkout needs."""


class Store(UnitOfWork, ClaimsLedger, DecisionLog, CouponLedger, OrderBook, EventLog, Roster, SnapshotStore,
            Protocol):
    """Every port at once, as one backend provides them; methods called inside ``unit_of_work()``
    commit together. Each user of the store names only the ports it needs."""

    def close(self) -> None: ...
