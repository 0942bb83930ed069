"""The store port: everything the core needs to keep, behind one Protocol.

Backends (``memory``, ``sqlite``, later ``redis``/``postgres``) implement it and pass
the same contract tests. Every limit and every state change moves atomically inside
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
def collector_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector around a big batch: its fresh rows are not
    garbage, and collecting them costs ~40% of a 100,000-user issue (measured)."""
    paused = size > BIG_BATCH and gc.isenabled()
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


class Store(Protocol):
    """The port. Methods called inside ``unit_of_work()`` commit together."""

    def unit_of_work(self) -> AbstractContextManager[None]:
        """A transaction: writes inside commit together, or not at all (SQLite)."""

    # -- issuing (SPEC §4 steps 2-4) --------------------------------------------------
    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        """Decide each request in order, atomically and idempotently.

        A request whose ``coupon_id`` was decided before gets the recorded decision
        back and changes nothing.
        """

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        """The requests whose user passes ``per_user`` and ``min_interval`` now."""

    def mark_visited(self, campaign: str, user: str) -> bool:
        """Record that ``user`` joined a room of ``campaign``; True the first time."""

    def decisions(self, campaign: str) -> Iterator[DecisionRecord]:
        """Every decision of the campaign, in decision order."""

    def totals(self, campaign: str) -> CampaignTotals: ...

    # -- the ledger ------------------------------------------------------------------
    def coupon(self, coupon_id: str) -> Coupon | None: ...

    def coupons_of(self, user: str) -> list[Coupon]: ...

    def history(self, coupon_id: str) -> list[HistoryEntry]: ...

    def move_coupon(self, coupon: Coupon, expected: CouponState, entry: HistoryEntry) -> bool:
        """Compare-and-set: store ``coupon`` only if its stored state is ``expected``."""

    def insert_order(self, order: Order) -> bool:
        """Store a new order; False if the order id exists."""

    def order(self, order_id: str) -> Order | None: ...

    def move_order(self, order: Order, expected: OrderState) -> bool:
        """Compare-and-set on the order's state."""

    def acknowledge(self, acks: Sequence[tuple[str, str]], at: int) -> int:
        """Viewers' clients confirmed they showed these ``(coupon_id, user)`` coupons.

        Acks naming a coupon that is not the user's are ignored; returns how many were new.
        """

    def unacknowledged(self, user: str, room: str) -> list[Coupon]:
        """Issued coupons of ``user`` from ``room`` that no client has acknowledged yet."""

    # -- idempotency keys and the event log -------------------------------------------
    def recall(self, key: str) -> StoredAnswer | None: ...

    def remember(self, key: str, answer: StoredAnswer) -> None: ...

    def append_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Append accepted events to the durable log the engine is rebuilt from."""

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        """The log in order, from the position after ``after`` (0: all of it)."""

    def log_position(self) -> int:
        """The position of the last entry of the log (0 when empty)."""

    # -- snapshots of the engine ------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (and drop those it makes useless)."""

    def latest_snapshot(self, fingerprint: str) -> Snapshot | None: ...

    def close(self) -> None: ...
