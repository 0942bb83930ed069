"""Coupons at checkout (SPEC §5): scope, discount by kind, the 0.01 floor, the best coupon,
and the coupon states that decide whether a coupon can be used at all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain.coupons import (
    ALL,
    Coupon,
    CouponKind,
    CouponState,
    CouponTemplate,
    Scope,
    Terms,
    with_state,
)
from livecoupon.domain.pricing import (
    MIN_PAYABLE,
    CartLine,
    best_quote,
    cart_total,
    discount_for,
    in_scope_amount,
    quote,
    raw_discount,
    usable_quotes,
)

MIN = 60_000


def threshold(threshold_fen: int, amount_fen: int, scope: Scope = ALL) -> Terms:
    return Terms(CouponKind.THRESHOLD, threshold=threshold_fen, amount=amount_fen, scope=scope)


def no_threshold(amount_fen: int, scope: Scope = ALL) -> Terms:
    return Terms(CouponKind.NO_THRESHOLD, amount=amount_fen, scope=scope)


def percent(tenths: int, max_discount: int | None = None, threshold_fen: int = 0, scope: Scope = ALL) -> Terms:
    return Terms(CouponKind.PERCENT, threshold=threshold_fen, percent_tenths=tenths, max_discount=max_discount,
                 scope=scope)


def coupon(terms: Terms, coupon_id: str = "cp_1", issued_at: int = 0, expires_at: int = 30 * MIN,
           state: CouponState = CouponState.ISSUED, reserved_until: int | None = None) -> Coupon:
    return Coupon(coupon_id=coupon_id, user="u1", campaign="c", template="t", title="T", terms=terms,
                  issued_at=issued_at, expires_at=expires_at, state=state, reserved_until=reserved_until)


def line(price_fen: int, qty: int = 1, product: str = "sku-1", category: str = "beauty") -> CartLine:
    return CartLine(product, category, price_fen, qty)


# --- scope and the in-scope amount E ---------------------------------------------------------------------------


def test_in_scope_amount_sums_price_times_qty_of_covered_lines() -> None:
    cart = [line(5000, 2, "sku-1", "beauty"), line(1999, 3, "sku-2", "food"), line(100, 1, "sku-3", "toys")]
    assert cart_total(cart) == 10000 + 5997 + 100
    assert in_scope_amount(threshold(0, 1), cart) == 16097
    assert in_scope_amount(threshold(0, 1, Scope(products=frozenset({"sku-2"}))), cart) == 5997
    assert in_scope_amount(threshold(0, 1, Scope(categories=frozenset({"beauty", "toys"}))), cart) == 10100


def test_scope_includes_a_line_matching_either_a_product_or_a_category() -> None:
    scope = Scope(products=frozenset({"p1"}), categories=frozenset({"c2"}))
    assert scope.covers("p1", "c1")
    assert scope.covers("p2", "c2")
    assert not scope.covers("p3", "c3")


def test_scope_exclusions_win_over_inclusions() -> None:
    scope = Scope(products=frozenset({"p1"}), exclude_categories=frozenset({"food"}))
    assert not scope.covers("p1", "food")
    assert scope.covers("p1", "beauty")
    only_excludes = Scope(exclude_products=frozenset({"p9"}))
    assert only_excludes.covers("p1", "anything")
    assert not only_excludes.covers("p9", "anything")
    assert ALL.covers("p", "c")


def test_scope_all_round_trips_through_json() -> None:
    assert ALL.is_all and ALL.to_json() == "all"
    scope = Scope(products=frozenset({"b", "a"}), exclude_categories=frozenset({"food"}))
    assert scope.to_json() == {"products": ["a", "b"], "exclude_categories": ["food"]}
    assert Scope.from_json(scope.to_json()) == scope
    assert Scope.from_json("all") == ALL


# --- discount by kind --------------------------------------------------------------------------------------------


def test_threshold_coupon_applies_at_exactly_the_threshold() -> None:
    terms = threshold(9900, 2000)
    assert discount_for(terms, [line(9900)]) == (9900, 2000)
    assert discount_for(terms, [line(9899)]) is None


def test_threshold_is_judged_on_the_in_scope_amount_not_the_cart() -> None:
    terms = threshold(10000, 2000, Scope(products=frozenset({"sku-1001"})))
    cart = [line(6000, 1, "sku-1001"), line(50000, 1, "sku-2")]
    assert discount_for(terms, cart) is None  # E = 60.00 < 100 although the cart is 560.00
    cart.append(line(4000, 1, "sku-1001"))
    assert discount_for(terms, cart) == (10000, 2000)


def test_threshold_and_no_threshold_discount_never_exceeds_in_scope_amount() -> None:
    scope = Scope(products=frozenset({"sku-1"}))
    cart = [line(500, 1, "sku-1"), line(10000, 1, "sku-2")]
    assert discount_for(no_threshold(1000, scope), cart) == (500, 500)  # min(10.00, 5.00)
    assert discount_for(threshold(300, 2000, scope), cart) == (500, 500)


def test_no_threshold_coupon_is_usable_on_any_amount() -> None:
    assert raw_discount(no_threshold(1000), 0) == 0
    assert raw_discount(no_threshold(1000), 1) == 1
    assert raw_discount(no_threshold(1000), 123456) == 1000


def test_percent_discount_is_floored_to_the_fen() -> None:
    # 15 % of 999.99 yuan = 14999.85 fen -> 14999 fen
    assert raw_discount(percent(150), 99999) == 14999
    # 12.5 % of 33.33 yuan = 416.625 fen -> 416 fen
    assert raw_discount(percent(125), 3333) == 416
    # 0.5 % of 1.99 yuan = 0.995 fen -> 0
    assert raw_discount(percent(5), 199) == 0
    assert raw_discount(percent(1000), 4321) == 4321


def test_percent_discount_is_capped_by_max_discount() -> None:
    # 15 % of 1000 yuan = 150 yuan, capped at 50 yuan
    assert raw_discount(percent(150, max_discount=5000), 100000) == 5000
    # 15 % of 300 yuan = 45 yuan, under the cap
    assert raw_discount(percent(150, max_discount=5000), 30000) == 4500


def test_percent_threshold_defaults_to_zero_and_is_judged_on_the_in_scope_amount() -> None:
    assert raw_discount(percent(150), 1) == 0
    terms = percent(200, threshold_fen=20000, scope=Scope(categories=frozenset({"beauty"})))
    cart = [line(19999, 1, "a", "beauty"), line(90000, 1, "b", "food")]
    assert discount_for(terms, cart) is None
    cart.append(line(1, 1, "c", "beauty"))
    assert discount_for(terms, cart) == (20000, 4000)


def test_excluded_lines_do_not_count_toward_percent() -> None:
    terms = percent(100, scope=Scope(exclude_products=frozenset({"gift-card"})))
    cart = [line(10000, 1, "gift-card", "cards"), line(5000, 2, "lipstick", "beauty")]
    assert discount_for(terms, cart) == (10000, 1000)


# --- the 0.01 floor ----------------------------------------------------------------------------------------------


def test_discount_shrinks_to_leave_one_fen_payable() -> None:
    terms = no_threshold(1000)
    q = quote(coupon(terms), [line(500)])
    assert q is not None
    assert (q.in_scope, q.discount, q.payable) == (500, 499, 1)
    exact = quote(coupon(no_threshold(500)), [line(500)])
    assert exact is not None and (exact.discount, exact.payable) == (499, 1)


def test_floor_is_on_the_whole_cart_payable() -> None:
    scope = Scope(products=frozenset({"sku-1"}))
    q = quote(coupon(no_threshold(1000, scope)), [line(500, 1, "sku-1"), line(1, 1, "sku-2")])
    assert q is not None
    assert (q.in_scope, q.discount, q.payable) == (500, 500, 1)  # the out-of-scope 0.01 already remains


def test_percent_100_leaves_one_fen() -> None:
    q = quote(coupon(percent(1000)), [line(2000, 3)])
    assert q is not None and (q.discount, q.payable) == (5999, 1)
    assert MIN_PAYABLE == 1


# --- the best coupon ---------------------------------------------------------------------------------------------


def test_best_coupon_is_the_largest_discount() -> None:
    cart = [line(20000)]  # 200 yuan
    coupons = [
        coupon(threshold(19900, 5000), "cp_a"),  # 50 off
        coupon(percent(300, max_discount=8000), "cp_b"),  # 30 % of 200 = 60 off
        coupon(no_threshold(1000), "cp_c"),  # 10 off
        coupon(threshold(30000, 10000), "cp_d"),  # not usable: 200 < 300
    ]
    quotes = usable_quotes(coupons, cart, at_ms=0)
    assert [(q.coupon.coupon_id, q.discount, q.payable) for q in quotes] == [
        ("cp_b", 6000, 14000), ("cp_a", 5000, 15000), ("cp_c", 1000, 19000)]
    best = best_quote(coupons, cart, at_ms=0)
    assert best is not None and best.coupon.coupon_id == "cp_b"


def test_best_coupon_tie_goes_to_the_one_expiring_first_then_issued_first() -> None:
    cart = [line(10000)]
    terms = no_threshold(1000)
    late = coupon(terms, "cp_a", issued_at=0, expires_at=20 * MIN)
    early_second = coupon(terms, "cp_b", issued_at=2 * MIN, expires_at=10 * MIN)
    early_first = coupon(terms, "cp_c", issued_at=1 * MIN, expires_at=10 * MIN)
    quotes = usable_quotes([late, early_second, early_first], cart, at_ms=5 * MIN)
    assert [q.coupon.coupon_id for q in quotes] == ["cp_c", "cp_b", "cp_a"]


def test_best_coupon_tie_in_the_same_millisecond_goes_to_the_one_issued_first() -> None:
    """Two decisions of one event (a newcomer's first comment "扣1": first_visit, then comment) are issued in the
    same millisecond, in campaign-file order: the first issued wins, whichever id sorts first."""
    cart = [line(10000)]
    first, second = coupon(no_threshold(1000), "cp_z"), coupon(no_threshold(1000), "cp_a")
    assert best_quote([first, second], cart, at_ms=MIN).coupon.coupon_id == "cp_z"  # type: ignore[union-attr]
    assert [q.coupon.coupon_id for q in usable_quotes([second, first], cart, at_ms=MIN)] == ["cp_a", "cp_z"]


def test_discount_after_floor_decides_the_best() -> None:
    # on a 5.00 cart a 10-off and a 20-off coupon both take 4.99: a tie, so the one expiring first wins
    cart = [line(500)]
    ten = coupon(no_threshold(1000), "cp_ten", expires_at=5 * MIN)
    twenty = coupon(no_threshold(2000), "cp_twenty", expires_at=9 * MIN)
    best = best_quote([twenty, ten], cart, at_ms=0)
    assert best is not None and (best.coupon.coupon_id, best.discount) == ("cp_ten", 499)


def test_no_usable_coupon_gives_no_best() -> None:
    assert best_quote([coupon(threshold(10000, 1000))], [line(9999)], at_ms=0) is None
    assert best_quote([], [line(9999)], at_ms=0) is None


def test_only_issued_unexpired_coupons_are_quoted() -> None:
    terms = no_threshold(1000)
    cart = [line(10000)]
    coupons = [
        coupon(terms, "cp_issued", expires_at=10 * MIN),
        coupon(terms, "cp_expired", expires_at=5 * MIN - 1),
        coupon(terms, "cp_redeemed", state=CouponState.REDEEMED),
        coupon(terms, "cp_reserved", state=CouponState.RESERVED, reserved_until=15 * MIN),
        coupon(terms, "cp_lapsed", state=CouponState.RESERVED, reserved_until=5 * MIN - 1),
    ]
    ids = [q.coupon.coupon_id for q in usable_quotes(coupons, cart, at_ms=5 * MIN)]
    assert ids == ["cp_issued", "cp_lapsed"]


# --- lifecycle values --------------------------------------------------------------------------------------------


def test_issued_coupon_expires_only_past_its_validity() -> None:
    c = coupon(no_threshold(1000), issued_at=0, expires_at=15 * MIN)
    assert c.effective_state(15 * MIN) is CouponState.ISSUED
    assert c.is_usable(15 * MIN)
    assert c.effective_state(15 * MIN + 1) is CouponState.EXPIRED
    assert not c.is_usable(15 * MIN + 1)


def test_reservation_lapses_back_to_issued_after_its_deadline() -> None:
    c = coupon(no_threshold(1000), expires_at=60 * MIN, state=CouponState.RESERVED, reserved_until=20 * MIN)
    assert c.effective_state(20 * MIN) is CouponState.RESERVED
    assert c.effective_state(20 * MIN + 1) is CouponState.ISSUED


def test_lapsed_reservation_past_validity_is_expired() -> None:
    c = coupon(no_threshold(1000), expires_at=10 * MIN, state=CouponState.RESERVED, reserved_until=15 * MIN)
    assert c.effective_state(12 * MIN) is CouponState.RESERVED  # the order may still be paid
    assert c.effective_state(15 * MIN + 1) is CouponState.EXPIRED


def test_reserved_without_deadline_and_redeemed_stay_put() -> None:
    reserved = coupon(no_threshold(1000), expires_at=MIN, state=CouponState.RESERVED)
    assert reserved.effective_state(10**12) is CouponState.RESERVED
    redeemed = coupon(no_threshold(1000), expires_at=MIN, state=CouponState.REDEEMED)
    assert redeemed.effective_state(10**12) is CouponState.REDEEMED


def test_with_state_replaces_state_order_and_deadline() -> None:
    c = coupon(no_threshold(1000))
    reserved = with_state(c, CouponState.RESERVED, order_id="o1", reserved_until=15 * MIN)
    assert (reserved.state, reserved.order_id, reserved.reserved_until) == (CouponState.RESERVED, "o1", 15 * MIN)
    back = with_state(reserved, CouponState.ISSUED)
    assert (back.state, back.order_id, back.reserved_until) == (CouponState.ISSUED, None, None)
    assert c.state is CouponState.ISSUED  # frozen: the original is untouched


def test_template_expiry_from_valid_for_or_valid_until() -> None:
    by_duration = CouponTemplate("a", "A", no_threshold(1000), valid_for_ms=15 * MIN)
    assert by_duration.expires_at(issued_at_ms=1_000) == 1_000 + 15 * MIN
    assert not by_duration.is_past_validity(10**15)
    fixed = CouponTemplate("b", "B", no_threshold(1000), valid_until_ms=50 * MIN)
    assert fixed.expires_at(issued_at_ms=1_000) == 50 * MIN
    assert not fixed.is_past_validity(50 * MIN)
    assert fixed.is_past_validity(50 * MIN + 1)


def test_face_value_is_amount_or_max_discount() -> None:
    assert threshold(9900, 2000).face_value == 2000
    assert no_threshold(1000).face_value == 1000
    assert percent(150, max_discount=5000).face_value == 5000
    assert percent(150).face_value is None
    assert percent(125).percent == 12.5


# --- properties --------------------------------------------------------------------------------------------------

PRODUCTS = ["p1", "p2", "p3"]
CATEGORIES = ["c1", "c2"]

lines = st.builds(CartLine, st.sampled_from(PRODUCTS), st.sampled_from(CATEGORIES),
                  st.integers(min_value=0, max_value=200_000), st.integers(min_value=1, max_value=5))
carts = st.lists(lines, min_size=1, max_size=5)
names = st.frozensets(st.sampled_from(PRODUCTS), max_size=2)
cats = st.frozensets(st.sampled_from(CATEGORIES), max_size=1)
scopes = st.builds(Scope, names, cats, names, cats)
money = st.integers(min_value=0, max_value=100_000)
terms_st = st.one_of(
    st.builds(threshold, money, st.integers(min_value=1, max_value=100_000), scopes),
    st.builds(no_threshold, st.integers(min_value=1, max_value=100_000), scopes),
    st.builds(percent, st.integers(min_value=1, max_value=1000),
              st.one_of(st.none(), st.integers(min_value=1, max_value=100_000)), money, scopes),
)


def reference_discount(terms: Terms, cart: list[CartLine]) -> int | None:
    """SPEC §5 written out independently, on yuan-free integer fen."""
    e = sum(ln.price * ln.qty for ln in cart if terms.scope.covers(ln.product, ln.category))
    total = sum(ln.price * ln.qty for ln in cart)
    if terms.kind is CouponKind.NO_THRESHOLD:
        off = min(terms.amount, e)
    elif e < terms.threshold:
        return None
    elif terms.kind is CouponKind.THRESHOLD:
        off = min(terms.amount, e)
    else:
        off = (e * terms.percent_tenths) // 1000
        if terms.max_discount is not None:
            off = min(off, terms.max_discount)
    return max(0, min(off, total - 1))


@settings(max_examples=200, deadline=None)
@given(terms_st, carts)
def test_discount_matches_spec_and_stays_within_bounds(terms: Terms, cart: list[CartLine]) -> None:
    q = quote(coupon(terms), cart)
    assert (None if q is None else q.discount) == reference_discount(terms, cart)
    if q is None:
        return
    total = cart_total(cart)
    assert 0 <= q.discount <= q.in_scope
    assert q.payable == total - q.discount
    if total >= 1:
        assert q.payable >= 1
    if terms.kind is not CouponKind.PERCENT:
        assert q.discount <= terms.amount
    elif terms.max_discount is not None:
        assert q.discount <= terms.max_discount


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(terms_st, st.integers(min_value=0, max_value=5), st.integers(min_value=5, max_value=9)),
                min_size=1, max_size=6), carts)
def test_best_coupon_has_the_largest_discount_among_usable(
        specs: list[tuple[Terms, int, int]], cart: list[CartLine]) -> None:
    coupons = [coupon(t, f"cp_{i}", issued_at=issued * MIN, expires_at=expires * MIN)
               for i, (t, issued, expires) in enumerate(specs)]
    usable = [d for c in coupons if (d := reference_discount(c.terms, cart)) is not None]
    best = best_quote(coupons, cart, at_ms=5 * MIN)
    if not usable:
        assert best is None
        return
    assert best is not None and best.discount == max(usable)
    rivals = [c for c in coupons if reference_discount(c.terms, cart) == best.discount]
    assert (best.coupon.expires_at, best.coupon.issued_at) == min((c.expires_at, c.issued_at) for c in rivals)
