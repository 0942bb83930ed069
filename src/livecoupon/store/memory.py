"""The in-memory store: the reference for the contract tests; its claims alone are replay's backend."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import REFUND_KEPT, REFUNDED_BY_MERCHANT, Coupon, CouponState, HistoryEntry, with_state
from livecoupon.domain.decisions import (
    Decision,
    DecisionRecord,
    IssueCounters,
    IssueRequest,
    cap_reason,
    coupon_of,
    decide_one,
)
from livecoupon.domain.orders import Order, OrderState
from livecoupon.store.port import CampaignTotals, Snapshot, StoredAnswer, collector_paused


class MemoryClaims:
    """The claims alone (SPEC §4 steps 2-4, idempotent by coupon id, and first visits), in dictionaries, for one
    thread: what a replay's engines decide against. No coupon goes into an account (the replay writes its
    decisions out itself), so an issued one costs its decision alone, not a coupon, its history and a lock as in
    :class:`MemoryStore`: ~5 µs less a coupon issued, measured on a replay issuing 20,000 (docs/benchmarks.md)."""

    def __init__(self) -> None:
        self._counters: dict[str, IssueCounters] = defaultdict(IssueCounters)
        self._decisions: dict[str, Decision] = {}
        self._visited: set[tuple[str, str]] = set()

    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        return [self._issue_one(request, limits) for request in requests]

    def _issue_one(self, request: IssueRequest, limits: Limits) -> Decision:
        known = self._decisions.get(request.coupon_id)
        if known is not None:
            return known
        decision = decide_one(request, limits, self._counters[request.campaign])
        self._decisions[request.coupon_id] = decision
        self._made(decision)
        return decision

    def _made(self, decision: Decision) -> None:
        """A new decision, recorded by the claims: what else keeps it."""

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        return [r for r in requests if cap_reason(limits, self._counters[r.campaign], r) is None]

    def mark_visited(self, campaign: str, user: str) -> bool:
        key = (campaign, user)
        if key in self._visited:
            return False
        self._visited.add(key)
        return True

    def spent(self, campaign: str, trigger: str | None = None) -> int:
        counters = self._counters[campaign]
        return counters.budget_spent if trigger is None else counters.trigger_spent.get(trigger, 0)

    def stock_used(self, campaign: str) -> dict[str, int]:
        return dict(self._counters[campaign].stock_used)


class MemoryStore(MemoryClaims):
    """Every port in dictionaries behind one re-entrant lock; nothing outlives the process."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._campaign_decisions: dict[str, list[Decision]] = defaultdict(list)
        self._coupons: dict[str, Coupon] = {}
        self._by_user: dict[str, list[str]] = defaultdict(list)
        self._history: dict[str, list[HistoryEntry]] = defaultdict(list)
        self._orders: dict[str, Order] = {}
        self._answers: dict[str, StoredAnswer] = {}
        self._events: list[dict[str, Any]] = []
        self._acked: dict[str, int] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._roster: dict[str, int] = {}

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        with self._lock:
            yield

    def savepoint(self) -> AbstractContextManager[None]:
        return self.unit_of_work()  # nothing is ever undone here: a savepoint only serialises

    def guarded(self) -> AbstractContextManager[None]:
        return self.unit_of_work()

    def issue(self, requests: Sequence[IssueRequest], limits: Limits) -> list[Decision]:
        with collector_paused(len(requests)), self._lock:
            return super().issue(requests, limits)

    def _made(self, decision: Decision) -> None:
        self._campaign_decisions[decision.request.campaign].append(decision)
        if decision.issued:
            coupon = coupon_of(decision)
            self._coupons[coupon.coupon_id] = coupon
            self._by_user[coupon.user].append(coupon.coupon_id)
            self._history[coupon.coupon_id].append(
                HistoryEntry(coupon.coupon_id, coupon.issued_at, CouponState.ISSUED, "issued"))

    def passing_caps(self, requests: Sequence[IssueRequest], limits: Limits) -> list[IssueRequest]:
        with self._lock:
            return super().passing_caps(requests, limits)

    def mark_visited(self, campaign: str, user: str) -> bool:
        with self._lock:
            return super().mark_visited(campaign, user)

    def stock_used(self, campaign: str) -> dict[str, int]:
        with self._lock:
            return super().stock_used(campaign)

    def decisions(self, campaign: str, trigger: str | None = None) -> Iterator[DecisionRecord]:
        with self._lock:
            snapshot = list(self._campaign_decisions.get(campaign, ()))
        return (d.record() for d in snapshot if trigger is None or d.request.trigger == trigger)

    def recorded(self, coupon_ids: Sequence[str]) -> dict[str, DecisionRecord]:
        with self._lock:
            return {cid: self._decisions[cid].record() for cid in coupon_ids if cid in self._decisions}

    def totals(self, campaign: str) -> CampaignTotals:
        with self._lock:
            counters = self._counters[campaign]
            made = self._campaign_decisions.get(campaign, [])
            issued = sum(1 for d in made if d.issued)
            return CampaignTotals(counters.budget_spent, dict(counters.stock_used), issued, len(made) - issued)

    def coupon(self, coupon_id: str) -> Coupon | None:
        return self._coupons.get(coupon_id)

    def coupons_of(self, user: str) -> list[Coupon]:
        with self._lock:
            return [self._coupons[cid] for cid in self._by_user.get(user, ())]

    def history(self, coupon_id: str) -> list[HistoryEntry]:
        with self._lock:
            return list(self._history.get(coupon_id, ()))

    def move_coupon(self, coupon: Coupon, expected: CouponState, entry: HistoryEntry) -> bool:
        with self._lock:
            stored = self._coupons.get(coupon.coupon_id)
            if stored is None or stored.state is not expected:
                return False
            self._coupons[coupon.coupon_id] = coupon
            self._history[coupon.coupon_id].append(entry)
            return True

    def redeem(self, entry: HistoryEntry) -> str | None:
        with self._lock:
            stored = self._coupons.get(entry.coupon_id)
            if (stored is None or stored.state is not CouponState.RESERVED or stored.order_id != entry.order_id
                    or (stored.reserved_until is not None and stored.reserved_until < entry.at)):
                return None
            self._coupons[entry.coupon_id] = with_state(stored, CouponState.REDEEMED, order_id=entry.order_id)
            self._history[entry.coupon_id].append(entry)
            return stored.room

    def insert_order(self, order: Order) -> bool:
        with self._lock:
            if order.order_id in self._orders:
                return False
            self._orders[order.order_id] = order
            return True

    def order(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def refunded_orders(self) -> set[str]:
        with self._lock:
            return ({o.order_id for o in self._orders.values() if o.state is OrderState.REFUNDED}
                    | {h.order_id for entries in self._history.values() for h in entries
                       if h.action in (REFUNDED_BY_MERCHANT, REFUND_KEPT) and h.order_id is not None})

    def move_order(self, order: Order, expected: OrderState) -> bool:
        with self._lock:
            stored = self._orders.get(order.order_id)
            if stored is None or stored.state is not expected:
                return False
            self._orders[order.order_id] = order
            return True

    def acknowledge(self, acks: Sequence[tuple[str, str]], at: int) -> int:
        new = 0
        with self._lock:
            for coupon_id, user in acks:
                coupon = self._coupons.get(coupon_id)
                if coupon is not None and coupon.user == user and coupon_id not in self._acked:
                    self._acked[coupon_id] = at
                    new += 1
        return new

    def confirm(self, coupon_ids: Sequence[str], at: int) -> list[str]:
        fresh = []
        with self._lock:
            for coupon_id in coupon_ids:
                coupon = self._coupons.get(coupon_id)
                if coupon is not None and coupon.confirmed_at is None:
                    self._coupons[coupon_id] = replace(coupon, confirmed_at=at)
                    fresh.append(coupon_id)
        return fresh

    def unconfirmed(self, campaign: str) -> list[Coupon]:
        with self._lock:
            return [c for c in self._coupons.values() if c.campaign == campaign and c.confirmed_at is None]

    def unacknowledged(self, user: str, room: str) -> list[Coupon]:
        with self._lock:
            return [c for c in self.coupons_of(user) if c.room == room and c.coupon_id not in self._acked]

    def recall(self, key: str) -> StoredAnswer | None:
        return self._answers.get(key)

    def order_and_answer(self, order_id: str, key_head: str,
                         key_tail: str) -> tuple[Order | None, StoredAnswer | None]:
        with self._lock:
            order = self._orders.get(order_id)
            return order, self._answers.get(f"{key_head}{order.user if order is not None else ''}{key_tail}")

    def order_answer_and_coupon(self, order_id: str, key: str,
                                coupon_id: str | None) -> tuple[Order | None, StoredAnswer | None, Coupon | None]:
        with self._lock:
            coupon = None if coupon_id is None else self._coupons.get(coupon_id)
            return self._orders.get(order_id), self._answers.get(key), coupon

    def remember(self, key: str, answer: StoredAnswer) -> None:
        with self._lock:
            self._answers.setdefault(key, answer)

    def append_events(self, events: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._events.extend(events)

    def events(self, after: int = 0) -> Iterator[dict[str, Any]]:
        return iter(self._events[after:])

    def log_position(self) -> int:
        return len(self._events)

    def roster(self) -> dict[str, int]:
        return dict(self._roster)

    def enrol(self, campaign: str, position: int) -> None:
        with self._lock:
            self._roster.setdefault(campaign, position)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots[snapshot.fingerprint] = snapshot

    def latest_snapshot(self, fingerprint: str) -> Snapshot | None:
        return self._snapshots.get(fingerprint)

    def close(self) -> None:
        pass
