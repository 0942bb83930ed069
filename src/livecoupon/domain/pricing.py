"""What a coupon takes off a cart (SPEC §5). All amounts in fen."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from livecoupon.domain.coupons import Coupon, CouponKind, Terms

MIN_PAYABLE = 1  # fen: an order never costs less than 0.01


@dataclass(frozen=True, slots=True)
class CartLine:
    product: str
    category: str
    price: int  # fen
    qty: int

    @property
    def total(self) -> int:
        return self.price * self.qty


@dataclass(frozen=True, slots=True)
class Quote:
    """One coupon applied to one cart."""

    coupon: Coupon
    in_scope: int
    discount: int
    payable: int


def cart_total(cart: Iterable[CartLine]) -> int:
    return sum(line.total for line in cart)


def in_scope_amount(terms: Terms, cart: Iterable[CartLine]) -> int:
    """E in SPEC §5: the sum of price × qty over the lines the coupon's scope covers."""
    return sum(line.total for line in cart if terms.scope.covers(line.product, line.category))


def raw_discount(terms: Terms, in_scope: int) -> int | None:
    """The discount before the 0.01 floor, or None when the coupon is not usable."""
    if terms.kind is CouponKind.NO_THRESHOLD:
        return min(terms.amount, in_scope)
    if in_scope < terms.threshold:
        return None
    if terms.kind is CouponKind.THRESHOLD:
        return min(terms.amount, in_scope)
    off = in_scope * terms.percent_tenths // 1000
    return off if terms.max_discount is None else min(off, terms.max_discount)


def discount_for(terms: Terms, cart: Sequence[CartLine]) -> tuple[int, int] | None:
    """(in-scope amount, discount) with the 0.01 floor applied; None if not usable."""
    in_scope = in_scope_amount(terms, cart)
    off = raw_discount(terms, in_scope)
    if off is None:
        return None
    total = cart_total(cart)
    return in_scope, max(0, min(off, total - MIN_PAYABLE))


def quote(coupon: Coupon, cart: Sequence[CartLine]) -> Quote | None:
    priced = discount_for(coupon.terms, cart)
    if priced is None:
        return None
    in_scope, off = priced
    return Quote(coupon, in_scope, off, cart_total(cart) - off)


def usable_quotes(coupons: Iterable[Coupon], cart: Sequence[CartLine], at_ms: int) -> list[Quote]:
    """Quotes for every coupon usable on this cart at ``at_ms``, best first.

    Best is the largest discount; ties go to the coupon that expires first, then to
    the one issued first: ``coupons`` in the order they were issued (two decisions of one
    event are issued in the same millisecond, in campaign-file order), which the sort keeps.
    """
    quotes = [q for c in coupons if c.is_usable(at_ms) and (q := quote(c, cart)) is not None]
    quotes.sort(key=lambda q: (-q.discount, q.coupon.expires_at, q.coupon.issued_at))
    return quotes


def best_quote(coupons: Iterable[Coupon], cart: Sequence[CartLine], at_ms: int) -> Quote | None:
    quotes = usable_quotes(coupons, cart, at_ms)
    return quotes[0] if quotes else None
