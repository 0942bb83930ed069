"""A coupon's and an order's change of state touch only what they name (they are built field by field)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from livecoupon.domain.coupons import Coupon, CouponKind, CouponState, Terms, with_state
from livecoupon.domain.orders import Order, OrderState
from livecoupon.domain.pricing import CartLine

names = st.text(min_size=1, max_size=8)
times = st.integers(0, 2**41)
maybe = st.none() | names


@given(st.builds(Coupon, names, names, names, names, names, st.just(Terms(CouponKind.THRESHOLD, 100, 20)), times,
                 times, st.sampled_from(CouponState), maybe, st.none() | times, names, names, st.none() | times),
       st.sampled_from(CouponState), maybe, st.none() | times)
def test_with_state_is_replace_of_the_three_fields(coupon: Coupon, state: CouponState, order_id: str | None,
                                                   reserved_until: int | None) -> None:
    assert with_state(coupon, state, order_id=order_id, reserved_until=reserved_until) == dataclasses.replace(
        coupon, state=state, order_id=order_id, reserved_until=reserved_until)


@given(st.builds(Order, names, names, st.just((CartLine("p", "c", 100, 1),)), maybe, times, times, times,
                 st.sampled_from(OrderState), times, st.none() | times, maybe),
       st.sampled_from(OrderState), st.none() | times, maybe)
def test_moved_is_replace_of_state_reservation_and_a_given_room(order: Order, state: OrderState,
                                                                reserved_until: int | None, room: str | None) -> None:
    moved = order.moved(state, reserved_until=reserved_until, room=room)
    assert moved == dataclasses.replace(order, state=state, reserved_until=reserved_until,
                                        room=order.room if room is None else room)
