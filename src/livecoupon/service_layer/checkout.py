"""Checkout: quotes, orders and what they do to coupons (SPEC §5).

Every state-changing call takes an idempotency key, scoped to its caller and user (one
viewer's key never collides with another's); the first answer given to a key (success
or refusal) is stored in the same transaction as the change and returned again for
every repeat. Coupon and order states move by compare-and-set in the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string  # what json.dumps writes for a str, ASCII only
from typing import Any

from livecoupon.delivery.messages import iso
from livecoupon.domain.coupons import REFUND_KEPT, REFUNDED_BY_MERCHANT, Coupon, CouponState, HistoryEntry, with_state
from livecoupon.domain.money import MAX_YUAN, fen_to_yuan
from livecoupon.domain.orders import RESERVATION_MS, Order, OrderState
from livecoupon.domain.pricing import CartLine, Quote, cart_total, quote, usable_quotes
from livecoupon.errors import Forbidden, Malformed, NotFound, Refused, key_reused
from livecoupon.store.port import CheckoutStore, StoredAnswer

Answer = tuple[int, dict[str, Any]]
# An order's times as text: its answer is written on create and again on each move (~3-9 µs a conversion
# here, 0.4 µs a look-up).
_iso = lru_cache(maxsize=4_096)(iso)


@dataclass(frozen=True, slots=True)
class QuoteResult:
    best: Quote | None
    usable: list[Quote]
    subtotal: int


def quote_json(q: Quote) -> dict[str, Any]:
    c = q.coupon
    return {"coupon_id": c.coupon_id, "title": c.title, "discount": fen_to_yuan(q.discount),
            "payable": fen_to_yuan(q.payable), "in_scope": fen_to_yuan(q.in_scope)}


def order_json(order: Order) -> dict[str, Any]:
    return {"order_id": order.order_id, "user": order.user, "state": order.state.value,
            "coupon_id": order.coupon_id, "subtotal": fen_to_yuan(order.subtotal),
            "discount": fen_to_yuan(order.discount), "payable": fen_to_yuan(order.payable),
            "created_at": _iso(order.created_at), "room": order.room,
            "reserved_until": None if order.reserved_until is None else _iso(order.reserved_until)}


def created_request(order_id: str, user: str, coupon_id: str | None, room: str | None,
                    cart: Sequence[CartLine]) -> str:
    """An order's creation as the text its key's fingerprint hashes: what ``json.dumps(…, sort_keys=True)``
    writes for ``{"op": "create", "order_id", "user", "coupon_id", "room", "cart": [[product, category, price,
    qty], …]}`` (keys stored before must still match), written piece by piece (~10 µs less a call)."""
    lines = json.dumps([[line.product, line.category, line.price, line.qty] for line in cart])
    return (f'{{"cart": {lines}, "coupon_id": {_json_or_null(coupon_id)}, "op": "create", "order_id": '
            f'{_json_string(order_id)}, "room": {_json_or_null(room)}, "user": {_json_string(user)}}}')


def moved_request(op: str, order_id: str) -> str:
    """``{"op": op, "order_id": order_id}`` as ``json.dumps(…, sort_keys=True)`` writes it (see ``created_request``)."""
    return f'{{"op": {_json_string(op)}, "order_id": {_json_string(order_id)}}}'


def _json_or_null(text: str | None) -> str:
    return "null" if text is None else _json_string(text)


class Checkout:
    """Quotes carts and moves orders; ``clock`` gives the service's time in ms."""

    def __init__(self, store: CheckoutStore, clock: Callable[[], int], reservation_ms: int = RESERVATION_MS,
                 on_paid: Callable[[Order], None] | None = None, needs_confirmation: bool = False) -> None:
        """``on_paid`` hears each order as it is paid, inside the paying transaction. With
        ``needs_confirmation`` (a campaign with a merchant ledger) a coupon counts only once the
        merchant's system confirmed it: until then it is not listed, quoted or reservable."""
        self.store = store
        self.clock = clock
        self.reservation_ms = reservation_ms
        self.on_paid = on_paid
        self.needs_confirmation = needs_confirmation
        self._paying: str | None = None  # the order being paid while ``on_paid`` hears it (known, not looked up)

    # -- reading ------------------------------------------------------------------------
    def coupons_of(self, user: str) -> list[Coupon]:
        coupons = self.store.coupons_of(user)
        return [c for c in coupons if self.counts(c)] if self.needs_confirmation else coupons

    def counts(self, coupon: Coupon) -> bool:
        """Whether the coupon is in the user's account yet (confirmed, where a merchant ledger must confirm)."""
        return not self.needs_confirmation or coupon.confirmed_at is not None

    def quote(self, user: str, cart: Sequence[CartLine]) -> QuoteResult:
        quotes = usable_quotes(self.coupons_of(user), cart, self.clock())
        return QuoteResult(quotes[0] if quotes else None, quotes, cart_total(cart))

    def order(self, order_id: str, owner: str | None = None) -> Order:
        """The order as it stands now (lapsed once its coupon's reservation ran out, before anything writes it so);
        with ``owner`` (a viewer's own user), another user's order is a 403."""
        order = self.store.order(order_id)
        known = self._known(order_id, order) if owner is None else self._owned(order_id, order, owner)
        return known.lapsed() if known.has_lapsed(self.clock()) else known

    # -- changing -----------------------------------------------------------------------
    def create_order(self, order_id: str, user: str, cart: Sequence[CartLine], coupon_id: str | None,
                     key: str, caller: str = "", room: str | None = None) -> Answer:
        """``caller`` scopes the idempotency key (who asked: the platform, or a viewer)."""
        request = created_request(order_id, user, coupon_id, room, cart)
        with self.store.unit_of_work():
            existing, seen, coupon = self.store.order_answer_and_coupon(order_id, f"{caller}\x1f{user}\x1f{key}",
                                                                        coupon_id)
            return self._once(f"{caller}\x1f{user}", key, request, seen,
                              lambda: self._create(order_id, user, tuple(cart), room, existing, coupon_id, coupon))

    def pay(self, order_id: str, key: str, caller: str = "", owner: str | None = None) -> Answer:
        return self._act("pay", order_id, key, caller, owner, self._pay)

    def cancel(self, order_id: str, key: str, caller: str = "", owner: str | None = None) -> Answer:
        return self._act("cancel", order_id, key, caller, owner, self._cancel)

    def refund(self, order_id: str, key: str, caller: str = "", owner: str | None = None) -> Answer:
        return self._act("refund", order_id, key, caller, owner, self._refund)

    def _act(self, op: str, order_id: str, key: str, caller: str, owner: str | None,
             act: Callable[[Order], Answer]) -> Answer:
        """``act`` on the order as read here, with its key's answer, inside the same unit of work (one read)."""
        with self.store.unit_of_work():
            stored, seen = self.store.order_and_answer(order_id, f"{caller}\x1f", f"\x1f{key}")
            if owner is not None:
                self._owned(order_id, stored, owner)
            user = stored.user if stored is not None else ""
            return self._once(f"{caller}\x1f{user}", key, moved_request(op, order_id), seen,
                              lambda: act(self._known(order_id, stored)))

    def _owned(self, order_id: str, order: Order | None, owner: str) -> Order:
        """The order, if ``owner`` (a viewer's own user) may see it: 404 where there is none, else 403."""
        if order is None:
            raise NotFound("unknown_order", f"no order {order_id!r}", "order_id")
        if order.user != owner:
            raise Forbidden("not_your_order", f"order {order_id!r} belongs to another user", "order_id")
        return order

    @staticmethod
    def _known(order_id: str, order: Order | None) -> Order:
        if order is None:
            raise NotFound("unknown_order", f"no order {order_id!r}", "order_id")
        return order

    def redeemed_elsewhere(self, order_id: str, user: str, coupon_id: str, at: int, by_merchant: bool = False) -> bool:
        """A platform reported a paid order that used ``coupon_id`` (a posted ``order`` event), or the merchant's
        coupon system did (``by_merchant``: its ``coupon.redeemed``).

        An order paid through this checkout already moved its coupon. Otherwise the user's own coupon, if
        issued, or reserved by an order of this checkout (which can then no longer pay with it), becomes
        redeemed by that order, once: an order that used it before (a report sent again after its refund)
        changes nothing. A platform's order is held to what checkout holds an order to: a coupon expired at its
        time, or not yet confirmed by the merchant's system (SPEC §6: until then it cannot be redeemed), is not
        redeemed by it; the merchant's own report is its system's word (it holds the coupon, and judged it when it
        was used). Anything else (another user's coupon, one unknown, redeemed already) changes nothing in the
        ledger either, and the order still counts for analytics. True if the coupon moved.
        """
        if order_id == self._paying or self.store.order(order_id) is not None:
            return False
        coupon = self.store.coupon(coupon_id)
        if coupon is None or coupon.user != user:
            return False
        if coupon.state not in (CouponState.ISSUED, CouponState.RESERVED):
            return False
        if not by_merchant and (coupon.effective_state(at) is CouponState.EXPIRED or not self.counts(coupon)):
            return False
        if any(h.order_id == order_id for h in self.store.history(coupon_id)):
            return False  # a report sent again (a webhook redelivered after its refund): the order used it once
        # A coupon reserved by an order of this checkout is used all the same (the shop's order is paid already): that
        # order can no longer pay with it (it was ignored, and both orders then had the discount)
        entry = HistoryEntry(coupon_id, at, CouponState.REDEEMED, "redeemed_by_platform", order_id)
        return self.store.move_coupon(with_state(coupon, CouponState.REDEEMED, order_id=order_id), coupon.state, entry)

    def refunded_elsewhere(self, order_id: str, coupon_id: str, at: int) -> bool:
        """The merchant's system refunded the order that redeemed ``coupon_id``: the coupon goes back to
        ``issued`` while still valid, else stays ``redeemed`` with the refund recorded. True if it went back."""
        order = self.store.order(order_id)
        if order is not None:  # paid at this checkout: refunded by the merchant, so here as well (the coupon went back
            # while the order stayed paid, and its refund later took the coupon from whichever order held it then)
            return order.state is OrderState.PAID and self._refunded(order)[1] is True
        coupon = self.store.coupon(coupon_id)
        if coupon is None or coupon.state is not CouponState.REDEEMED or coupon.order_id != order_id:
            return False
        return self._give_back(coupon, at, REFUNDED_BY_MERCHANT)

    def _once(self, scope: str, key: str, request: str, seen: StoredAnswer | None,
              act: Callable[[], Answer]) -> Answer:
        """Inside a unit of work: the answer ``seen`` under the key already, else ``act``'s, remembered;
        ``request`` is the call as JSON text, whose hash a repeat must match."""
        if not key:
            raise Malformed("missing_idempotency_key", "idempotency_key must not be empty", "idempotency_key")
        fingerprint = hashlib.sha256(request.encode()).hexdigest()
        if seen is not None:
            if seen.fingerprint != fingerprint:
                raise key_reused()
            return seen.status, seen.body
        try:
            status, body = act()
        except (Refused, NotFound) as refusal:
            status, body = refusal.status, refusal.to_json()
        self.store.remember(f"{scope}\x1f{key}", StoredAnswer(fingerprint, status, body))
        return status, body

    def _create(self, order_id: str, user: str, cart: tuple[CartLine, ...], room: str | None,
                existing: Order | None, coupon_id: str | None, coupon: Coupon | None) -> Answer:
        """``existing``, ``coupon``: the order and the coupon as read with the key's answer."""
        now = self.clock()
        if existing is not None:
            raise Refused("order_exists", f"order {order_id!r} already exists", "order_id")
        subtotal = cart_total(cart)
        if subtotal > MAX_YUAN * 100:  # paid, its ``order`` event would be one the log cannot read back (SPEC's money)
            raise Refused("cart_too_large", f"订单合计不能超过 {MAX_YUAN:,} 元 / an order totals at most {MAX_YUAN:,} "
                          "yuan", "cart")
        if coupon_id is None:
            order = Order(order_id, user, cart, None, subtotal, 0, subtotal, OrderState.CREATED, now, None, room)
        else:
            priced = self._reserve(order_id, user, cart, coupon_id, self._current(coupon, now), now)
            order = Order(order_id, user, cart, coupon_id, subtotal, priced.discount, priced.payable,
                          OrderState.CREATED, now, now + self.reservation_ms, room)
        if not self.store.insert_order(order):
            raise Refused("order_exists", f"order {order_id!r} already exists", "order_id")
        return 201, order_json(order)

    def _reserve(self, order_id: str, user: str, cart: tuple[CartLine, ...], coupon_id: str, coupon: Coupon | None,
                 now: int) -> Quote:
        if coupon is None:
            raise Refused("unknown_coupon", f"no coupon {coupon_id!r}", "coupon_id")
        if coupon.user != user:
            raise Refused("not_your_coupon", f"coupon {coupon_id!r} belongs to another user", "coupon_id")
        if not self.counts(coupon):
            raise Refused("coupon_unconfirmed", f"coupon {coupon_id!r} is not yet confirmed by the merchant's "
                          "coupon system", "coupon_id")
        state = coupon.effective_state(now)
        if state is not CouponState.ISSUED:
            raise Refused(f"coupon_{state.value}", f"coupon {coupon_id!r} is {state.value}", "coupon_id")
        priced = quote(coupon, cart)
        if priced is None:
            raise Refused("coupon_not_applicable",
                          f"coupon {coupon_id!r} needs an in-scope amount of at least "
                          f"{fen_to_yuan(coupon.terms.threshold):.2f}", "coupon_id")
        reserved = with_state(coupon, CouponState.RESERVED, order_id=order_id,
                              reserved_until=now + self.reservation_ms)
        entry = HistoryEntry(coupon_id, now, CouponState.RESERVED, "reserved", order_id)
        if not self.store.move_coupon(reserved, CouponState.ISSUED, entry):
            raise Refused("coupon_reserved", f"coupon {coupon_id!r} was just taken by another order", "coupon_id")
        return priced

    def _current(self, coupon: Coupon | None, now: int) -> Coupon | None:
        """The coupon as just read, or, where its reservation lapsed, released (and its order marked lapsed)."""
        if coupon is None or not coupon.has_lapsed(now):
            return coupon
        assert coupon.reserved_until is not None
        self._lapse(coupon, coupon.reserved_until)  # recorded when it lapsed, not when someone next looked
        return self.store.coupon(coupon.coupon_id)

    def _lapsed(self, order: Order, now: int) -> None:
        """An order whose reservation ran out, written lapsed (its coupon released, if still held for it)."""
        coupon = self.store.coupon(order.coupon_id) if order.coupon_id is not None else None
        if coupon is not None and coupon.state is CouponState.RESERVED and coupon.order_id == order.order_id:
            self._current(coupon, now)
        else:
            self.store.move_order(order.lapsed(), OrderState.CREATED)

    def _lapse(self, coupon: Coupon, at: int) -> None:
        entry = HistoryEntry(coupon.coupon_id, at, CouponState.ISSUED, "lapsed", coupon.order_id)
        self.store.move_coupon(with_state(coupon, CouponState.ISSUED), CouponState.RESERVED, entry)
        order = self.store.order(coupon.order_id) if coupon.order_id else None
        if order is not None and order.state is OrderState.CREATED:
            self.store.move_order(order.lapsed(), OrderState.CREATED)

    def _pay(self, order: Order) -> Answer:
        now, order_id = self.clock(), order.order_id
        if order.state is OrderState.LAPSED:  # as the payment that found it lapsing was answered
            raise _reservation_lapsed(order_id)
        if order.state is not OrderState.CREATED:
            raise Refused(f"order_{order.state.value}", f"order {order_id!r} is {order.state.value}", "order_id")
        coupon_room = None
        if order.coupon_id is not None:  # redeemed by compare-and-set, unread: the coupon is read only if it fails
            coupon_room = self.store.redeem(HistoryEntry(order.coupon_id, now, CouponState.REDEEMED, "redeemed",
                                                         order_id))
            if coupon_room is None:
                coupon = self.store.coupon(order.coupon_id)
                if coupon is not None and coupon.state is CouponState.REDEEMED and coupon.order_id != order_id:
                    raise Refused("coupon_redeemed", f"coupon {coupon.coupon_id!r} was redeemed by order "
                                  f"{coupon.order_id!r} meanwhile", "coupon_id")
                self._current(coupon, now)  # a lapsed reservation is released
                raise _reservation_lapsed(order_id)
        paid = order.moved(OrderState.PAID)
        if not self.store.move_order(paid, OrderState.CREATED):
            raise Refused("order_changed", f"order {order_id!r} changed during payment", "order_id")
        if self.on_paid is not None:  # an order placed outside a room counts in its coupon's (as it was redeemed)
            self._paying = order_id
            try:
                self.on_paid(paid if paid.room is not None or coupon_room is None
                             else order.moved(OrderState.PAID, room=coupon_room))
            finally:
                self._paying = None
        return 200, order_json(paid)

    def _cancel(self, order: Order) -> Answer:
        now, order_id = self.clock(), order.order_id
        if order.state is not OrderState.CREATED:
            hint = "; refund a paid order instead" if order.state is OrderState.PAID else ""
            raise Refused(f"order_{order.state.value}", f"order {order_id!r} is {order.state.value}{hint}",
                          "order_id")
        if order.has_lapsed(now):  # lapsed already, as it reads
            self._lapsed(order, now)
            raise Refused("order_lapsed", f"order {order_id!r} lapsed: its coupon reservation ran out",
                          "order_id")
        if order.coupon_id is not None:
            coupon = self.store.coupon(order.coupon_id)
            if coupon is not None and coupon.state is CouponState.RESERVED and coupon.order_id == order_id:
                entry = HistoryEntry(coupon.coupon_id, now, CouponState.ISSUED, "released", order_id)
                self.store.move_coupon(with_state(coupon, CouponState.ISSUED), CouponState.RESERVED, entry)
        cancelled = order.moved(OrderState.CANCELLED)
        if not self.store.move_order(cancelled, OrderState.CREATED):
            raise Refused("order_changed", f"order {order_id!r} changed during cancel", "order_id")
        return 200, order_json(cancelled)

    def _refund(self, order: Order) -> Answer:
        refunded, coupon_back = self._refunded(order)
        return 200, order_json(refunded) | {"coupon_returned": coupon_back}

    def _refunded(self, order: Order) -> tuple[Order, bool | None]:
        """A paid order refunded, and whether its coupon went back (None: it had none)."""
        now, order_id = self.clock(), order.order_id
        if order.state is not OrderState.PAID:
            raise Refused(f"order_{order.state.value}", f"only a paid order can be refunded; {order_id!r} is "
                          f"{order.state.value}", "order_id")
        coupon = self.store.coupon(order.coupon_id) if order.coupon_id is not None else None
        coupon_back: bool | None = None
        if coupon is not None:  # taken back only while this order holds it (the shop's system may have taken it)
            mine = coupon.state is CouponState.REDEEMED and coupon.order_id == order_id
            coupon_back = mine and self._give_back(coupon, now, "refunded")
        refunded = order.moved(OrderState.REFUNDED, reserved_until=order.reserved_until)
        if not self.store.move_order(refunded, OrderState.PAID):
            raise Refused("order_changed", f"order {order_id!r} changed during refund", "order_id")
        return refunded, coupon_back

    def _give_back(self, coupon: Coupon, at: int, action: str) -> bool:
        """A redeemed coupon whose order was refunded: ``issued`` again while still valid (``action`` in its
        history), else kept ``redeemed`` with the refund recorded (``refund_kept``). True if it went back."""
        back = not coupon.is_expired(at)
        entry = HistoryEntry(coupon.coupon_id, at, CouponState.ISSUED if back else CouponState.REDEEMED,
                             action if back else REFUND_KEPT, coupon.order_id, {} if back else {"why": "expired"})
        moved = with_state(coupon, CouponState.ISSUED) if back else coupon
        return self.store.move_coupon(moved, CouponState.REDEEMED, entry) and back


def _reservation_lapsed(order_id: str) -> Refused:
    return Refused("reservation_lapsed", f"the coupon reservation of order {order_id!r} lapsed; create the order "
                   "again", "order_id")
