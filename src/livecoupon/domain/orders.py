"""Orders placed at checkout and what they did to their coupon (SPEC §5)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from livecoupon.domain.pricing import CartLine

RESERVATION_MS = 15 * 60_000


class OrderState(enum.StrEnum):
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    LAPSED = "lapsed"  # its coupon reservation ran out before payment


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    user: str
    cart: tuple[CartLine, ...]
    coupon_id: str | None
    subtotal: int  # fen
    discount: int  # fen
    payable: int  # fen
    state: OrderState
    created_at: int  # ms
    reserved_until: int | None = None
    room: str | None = None  # the live room it was placed from, when known

    def has_lapsed(self, at_ms: int) -> bool:
        """Whether it waits for payment on a coupon reservation that ran out before ``at_ms`` (written so or not)."""
        return self.state is OrderState.CREATED and self.reserved_until is not None and at_ms > self.reserved_until

    def lapsed(self) -> Order:
        return self.moved(OrderState.LAPSED, reserved_until=self.reserved_until)

    def moved(self, state: OrderState, *, reserved_until: int | None = None, room: str | None = None) -> Order:
        """The order in ``state``, held by ``reserved_until`` (None: no reservation), in ``room`` where given.
        Built field by field: ``dataclasses.replace`` costs ~8 µs, and paying builds two."""
        return Order(self.order_id, self.user, self.cart, self.coupon_id, self.subtotal, self.discount, self.payable,
                     state, self.created_at, reserved_until, self.room if room is None else room)
