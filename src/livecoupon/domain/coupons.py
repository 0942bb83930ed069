"""Coupon templates, issued coupons and their lifecycle (SPEC §3, §5)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CouponKind(enum.StrEnum):
    THRESHOLD = "threshold"  # 满减券
    PERCENT = "percent"  # 折扣券
    NO_THRESHOLD = "no_threshold"  # 无门槛券


class CouponState(enum.StrEnum):
    ISSUED = "issued"
    RESERVED = "reserved"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which cart lines a coupon applies to. Empty includes mean "everything"."""

    products: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    exclude_products: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()

    @property
    def is_all(self) -> bool:
        return not (self.products or self.categories or self.exclude_products or self.exclude_categories)

    def covers(self, product: str, category: str) -> bool:
        if product in self.exclude_products or category in self.exclude_categories:
            return False
        if not (self.products or self.categories):
            return True
        return product in self.products or category in self.categories

    def to_json(self) -> str | dict[str, list[str]]:
        if self.is_all:
            return "all"
        parts = {
            "products": self.products,
            "categories": self.categories,
            "exclude_products": self.exclude_products,
            "exclude_categories": self.exclude_categories,
        }
        return {key: sorted(values) for key, values in parts.items() if values}

    @classmethod
    def from_json(cls, data: object) -> Scope:
        if data == "all" or data is None:
            return cls()
        assert isinstance(data, dict)
        return cls(**{key: frozenset(values) for key, values in data.items()})


ALL = Scope()


@dataclass(frozen=True, slots=True)
class Terms:
    """What a coupon is worth: the discount terms shared by templates and issued coupons.

    ``percent_tenths`` is the percentage in tenths (12.5 % is 125).
    """

    kind: CouponKind
    threshold: int = 0  # fen
    amount: int = 0  # fen; threshold and no_threshold
    percent_tenths: int = 0
    max_discount: int | None = None  # fen; percent only
    scope: Scope = ALL

    @property
    def face_value(self) -> int | None:
        """The face value counted against a budget, in fen (None: uncapped percent)."""
        if self.kind is CouponKind.PERCENT:
            return self.max_discount
        return self.amount

    @property
    def percent(self) -> float:
        return self.percent_tenths / 10


@dataclass(frozen=True, slots=True)
class CouponTemplate:
    """A coupon as the campaign file defines it, before it is issued to anyone."""

    name: str
    title: str
    terms: Terms
    valid_for_ms: int | None = None
    valid_until_ms: int | None = None
    stock: int | None = None

    def expires_at(self, issued_at_ms: int) -> int:
        if self.valid_until_ms is not None:
            return self.valid_until_ms
        assert self.valid_for_ms is not None
        return issued_at_ms + self.valid_for_ms

    def is_past_validity(self, at_ms: int) -> bool:
        return self.valid_until_ms is not None and at_ms > self.valid_until_ms


@dataclass(frozen=True, slots=True)
class Coupon:
    """One coupon in one user's account. Its terms are frozen at issue time."""

    coupon_id: str
    user: str
    campaign: str
    template: str
    title: str
    terms: Terms
    issued_at: int  # ms
    expires_at: int  # ms
    state: CouponState = CouponState.ISSUED
    order_id: str | None = None
    reserved_until: int | None = None
    room: str = ""
    trigger: str = ""
    confirmed_at: int | None = None  # when the merchant's ledger confirmed it (campaigns with a ledger)

    def is_expired(self, at_ms: int) -> bool:
        return at_ms > self.expires_at

    def has_lapsed(self, at_ms: int) -> bool:
        """Whether it is held by a reservation that ran out before ``at_ms`` (written so or not)."""
        return self.state is CouponState.RESERVED and self.reserved_until is not None and at_ms > self.reserved_until

    def effective_state(self, at_ms: int) -> CouponState:
        """The state as seen at ``at_ms``: lapsed reservations and expiry applied."""
        state = CouponState.ISSUED if self.has_lapsed(at_ms) else self.state
        if state is CouponState.ISSUED and self.is_expired(at_ms):
            return CouponState.EXPIRED
        return state

    def is_usable(self, at_ms: int) -> bool:
        return self.effective_state(at_ms) is CouponState.ISSUED


REFUNDED_BY_MERCHANT = "refunded_by_merchant"  # the merchant's system refunded the order that redeemed the coupon
REFUND_KEPT = "refund_kept"  # its order refunded after the coupon expired: it stays redeemed


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One append to a coupon's history."""

    coupon_id: str
    at: int
    state: CouponState
    action: str  # issued, reserved, redeemed, released, lapsed, refunded, refund_kept (expired: as seen, below)
    order_id: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


def history_seen(coupon: Coupon, history: list[HistoryEntry], at_ms: int) -> list[HistoryEntry]:
    """The coupon's history as seen at ``at_ms``: what time alone changed and nothing has written yet appended,
    each when it happened — a reservation that ran out (``lapsed``, at its end), validity that ended (``expired``)
    — so the last entry's state is always :meth:`Coupon.effective_state`'s."""
    seen = list(history)
    if coupon.has_lapsed(at_ms):
        assert coupon.reserved_until is not None
        seen.append(HistoryEntry(coupon.coupon_id, coupon.reserved_until, CouponState.ISSUED, "lapsed",
                                 coupon.order_id))
    if coupon.effective_state(at_ms) is CouponState.EXPIRED:
        since = max(coupon.expires_at, seen[-1].at) if seen else coupon.expires_at
        seen.append(HistoryEntry(coupon.coupon_id, since, CouponState.EXPIRED, "expired"))
    return seen


def with_state(coupon: Coupon, state: CouponState, *, order_id: str | None = None,
               reserved_until: int | None = None) -> Coupon:
    c = coupon  # built field by field: ``dataclasses.replace`` costs ~8 µs, twice per checkout pair
    return Coupon(c.coupon_id, c.user, c.campaign, c.template, c.title, c.terms, c.issued_at, c.expires_at, state,
                  order_id, reserved_until, c.room, c.trigger, c.confirmed_at)
