"""The text an idempotency key's fingerprint hashes is written piece by piece, and must stay what
``json.dumps(request, sort_keys=True)`` wrote: keys remembered before still have to match their repeats."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from livecoupon.domain.pricing import CartLine
from livecoupon.service_layer.checkout import created_request, moved_request

ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=20)  # lone surrogates and controls included
LINES = st.lists(st.builds(CartLine, ANY_TEXT, ANY_TEXT, st.integers(-(2**70), 2**70), st.integers(0, 10**6)),
                 min_size=1, max_size=4)


@given(ANY_TEXT, ANY_TEXT, st.none() | ANY_TEXT, st.none() | ANY_TEXT, LINES)
def test_a_creation_is_written_as_json_dumps_wrote_it(order_id: str, user: str, coupon_id: str | None,
                                                       room: str | None, cart: list[CartLine]) -> None:
    request = {"op": "create", "order_id": order_id, "user": user, "coupon_id": coupon_id, "room": room,
               "cart": [[line.product, line.category, line.price, line.qty] for line in cart]}
    assert created_request(order_id, user, coupon_id, room, cart) == json.dumps(request, sort_keys=True)


@given(st.sampled_from(["pay", "cancel", "refund"]) | ANY_TEXT, ANY_TEXT)
def test_a_move_is_written_as_json_dumps_wrote_it(op: str, order_id: str) -> None:
    assert moved_request(op, order_id) == json.dumps({"op": op, "order_id": order_id}, sort_keys=True)


def test_a_known_fingerprint_text_is_unchanged() -> None:
    cart = [CartLine("sku-1", "dress", 12_000, 1)]
    assert created_request("o-1", "小明", None, "room-1", cart) == (
        '{"cart": [["sku-1", "dress", 12000, 1]], "coupon_id": null, "op": "create", "order_id": "o-1", '
        '"room": "room-1", "user": "\\u5c0f\\u660e"}')
    assert moved_request("pay", "o-1") == '{"op": "pay", "order_id": "o-1"}'
