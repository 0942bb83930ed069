"""Steps 2-4 of a decision (SPEC §4): caps, supply, issue, and the coupon id."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import msgspec

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponState, CouponTemplate, Terms
from livecoupon.domain.decisions import (
    Decision,
    DecisionRecord,
    IssueCounters,
    IssueRequest,
    Reason,
    cap_reason,
    coupon_id_for,
    coupon_of,
    decide_one,
    device_key_for,
    knows_device,
    learnt_elsewhere,
    supply_reason,
)

MIN = 60_000
DWELL10 = CouponTemplate("dwell10", "观望鼓励券", Terms(CouponKind.NO_THRESHOLD, amount=1000), valid_for_ms=15 * MIN)
BONUS = CouponTemplate("bonus", "满万福利", Terms(CouponKind.THRESHOLD, threshold=19900, amount=5000),
                       valid_for_ms=60 * MIN, stock=2)
PCT15 = CouponTemplate("pct15", "直播专享85折", Terms(CouponKind.PERCENT, percent_tenths=150, max_discount=5000),
                       valid_until_ms=100 * MIN)


def request(user: str = "u1", at: int = 0, template: CouponTemplate | None = DWELL10, room: str = "room-1",
            broadcast: int = 0, trigger: str = "dwell") -> IssueRequest:
    cid = coupon_id_for("c", room, broadcast, trigger, str(at), user)
    return IssueRequest(cid, "c", room, broadcast, trigger, user, template, at)


def test_reason_values_are_the_spec_words() -> None:
    assert [r.value for r in Reason] == ["holdout", "no_offer", "blocked", "risk", "device_cap", "per_user_cap",
                                         "min_interval", "template_expired", "out_of_stock", "over_budget"]


def test_holdout_issues_nothing_and_moves_nothing() -> None:
    counters = IssueCounters()
    d = decide_one(request(template=None), Limits(per_user=0), counters)
    assert (d.issued, d.reason, d.expires_at) == (False, Reason.HOLDOUT, None)
    assert counters == IssueCounters()


def test_issue_moves_every_counter_and_sets_expiry() -> None:
    counters = IssueCounters()
    d = decide_one(request(at=5 * MIN), Limits(), counters)
    assert d.issued and d.reason is None and d.expires_at == 20 * MIN
    assert counters.in_broadcast == {("room-1", 0, "u1"): 1}
    assert counters.last_issued == {"u1": 5 * MIN}
    assert counters.stock_used == {"dwell10": 1}
    assert counters.budget_spent == 1000


def test_per_user_cap_counts_this_rooms_current_broadcast_only() -> None:
    limits = Limits(per_user=2)
    counters = IssueCounters()
    assert decide_one(request(at=0), limits, counters).issued
    assert decide_one(request(at=1), limits, counters).issued
    assert decide_one(request(at=2), limits, counters).reason is Reason.PER_USER_CAP
    assert decide_one(request(at=3, broadcast=10 * MIN), limits, counters).issued  # next broadcast
    assert decide_one(request(at=4, room="room-2"), limits, counters).issued  # another room
    assert decide_one(request("u2", at=5), limits, counters).issued  # another user
    assert counters.in_broadcast[("room-1", 0, "u1")] == 2


def test_min_interval_is_campaign_wide_and_exact_gap_is_allowed() -> None:
    limits = Limits(min_interval_ms=2 * MIN)
    counters = IssueCounters()
    assert decide_one(request(at=0), limits, counters).issued
    assert decide_one(request(at=2 * MIN - 1, room="room-2"), limits, counters).reason is Reason.MIN_INTERVAL
    assert decide_one(request(at=2 * MIN, room="room-2"), limits, counters).issued
    assert decide_one(request("u2", at=2 * MIN + 1), limits, counters).issued
    assert counters.last_issued == {"u1": 2 * MIN, "u2": 2 * MIN + 1}


def test_suppressed_decisions_do_not_count_toward_limits() -> None:
    limits = Limits(per_user=1, min_interval_ms=MIN)
    counters = IssueCounters()
    assert decide_one(request(at=0), limits, counters).issued
    assert decide_one(request(at=MIN), limits, counters).reason is Reason.PER_USER_CAP
    # the suppressed decision at MIN did not move the interval clock
    assert cap_reason(Limits(min_interval_ms=MIN), counters, request(at=MIN, broadcast=1)) is None


def test_per_user_is_checked_before_min_interval() -> None:
    counters = IssueCounters(in_broadcast={("room-1", 0, "u1"): 1}, last_issued={"u1": 0})
    assert cap_reason(Limits(per_user=1, min_interval_ms=MIN), counters, request(at=1)) is Reason.PER_USER_CAP
    assert cap_reason(Limits(per_user=2, min_interval_ms=MIN), counters, request(at=1)) is Reason.MIN_INTERVAL


def test_template_past_valid_until_is_expired() -> None:
    counters = IssueCounters()
    assert supply_reason(Limits(), counters, PCT15, at=100 * MIN) is None
    assert supply_reason(Limits(), counters, PCT15, at=100 * MIN + 1) is Reason.TEMPLATE_EXPIRED
    d = decide_one(request(at=99 * MIN, template=PCT15), Limits(), counters)
    assert d.issued and d.expires_at == 100 * MIN


def test_stock_runs_out_after_the_last_coupon() -> None:
    counters = IssueCounters()
    assert decide_one(request("u1", template=BONUS), Limits(), counters).issued
    assert decide_one(request("u2", template=BONUS), Limits(), counters).issued
    assert decide_one(request("u3", template=BONUS), Limits(), counters).reason is Reason.OUT_OF_STOCK
    assert counters.stock_used == {"bonus": 2}
    assert decide_one(request("u3"), Limits(), counters).issued  # other templates have their own stock


def test_budget_may_be_spent_exactly_up_to_the_limit() -> None:
    limits = Limits(budget=11000)  # 110 yuan
    counters = IssueCounters()
    assert decide_one(request("u1", template=BONUS), limits, counters).issued  # 50
    assert decide_one(request("u2", template=PCT15), limits, counters).issued  # 50 (max_discount): 100 spent
    assert decide_one(request("u3", template=BONUS), limits, counters).reason is Reason.OVER_BUDGET
    assert decide_one(request("u3"), limits, counters).issued  # 10 more: exactly 110
    assert counters.budget_spent == 11000
    assert decide_one(request("u4"), limits, counters).reason is Reason.OVER_BUDGET


def test_supply_order_is_validity_then_stock_then_budget() -> None:
    expired_and_empty = CouponTemplate("x", "X", Terms(CouponKind.NO_THRESHOLD, amount=100), valid_until_ms=0, stock=0)
    counters = IssueCounters(budget_spent=10**9)
    assert supply_reason(Limits(budget=1), counters, expired_and_empty, at=1) is Reason.TEMPLATE_EXPIRED
    assert supply_reason(Limits(budget=1), counters, expired_and_empty, at=0) is Reason.OUT_OF_STOCK
    assert supply_reason(Limits(budget=1), counters, DWELL10, at=0) is Reason.OVER_BUDGET


def test_caps_come_before_supply() -> None:
    counters = IssueCounters(in_broadcast={("room-1", 0, "u1"): 1}, stock_used={"bonus": 2})
    assert decide_one(request(template=BONUS), Limits(per_user=1), counters).reason is Reason.PER_USER_CAP


def test_coupon_id_is_derived_from_the_decision() -> None:
    key = "\x1f".join(("c", "room-1", "0", "dwell", "f1", "u1"))
    expected = "cp_" + hashlib.sha256(key.encode()).hexdigest()[:24]
    assert coupon_id_for("c", "room-1", 0, "dwell", "f1", "u1") == expected
    assert len(expected) == 27
    variations = [("c", "room-1", 0, "dwell", "f1", "u2"), ("c", "room-1", 1, "dwell", "f1", "u1"),
                  ("c", "room-2", 0, "dwell", "f1", "u1"), ("c", "room-1", 0, "dwell", "f2", "u1"),
                  ("c", "room-1", 0, "kou1", "f1", "u1"), ("d", "room-1", 0, "dwell", "f1", "u1")]
    others = {coupon_id_for(*v) for v in variations}
    assert expected not in others and len(others) == 6


def test_coupon_of_an_issue_carries_the_template_terms() -> None:
    req = request(at=3 * MIN, template=BONUS, trigger="milestone")
    decision = decide_one(req, Limits(), IssueCounters())
    c = coupon_of(decision)
    assert (c.coupon_id, c.user, c.campaign, c.template, c.title, c.room, c.trigger) == (
        req.coupon_id, "u1", "c", "bonus", "满万福利", "room-1", "milestone")
    assert (c.terms, c.issued_at, c.expires_at, c.state) == (BONUS.terms, 3 * MIN, 63 * MIN, CouponState.ISSUED)
    assert Decision(req, Reason.OVER_BUDGET).issued is False


def test_a_record_travels_as_json_and_reads_back_the_same_in_either_build() -> None:
    """The bus carries records as JSON that msgspec reads back (cluster/wire.py): it reads only a Python
    class's fields, so records stay out of the compiled modules, whose decisions make them."""
    req = request(at=3 * MIN, template=BONUS, trigger="milestone")
    records = [decide_one(req, Limits(), IssueCounters()).record(), Decision(request(user="u2"), Reason.RISK).record()]
    assert msgspec.json.decode(msgspec.json.encode(records), type=list[DecisionRecord]) == records


def test_what_the_rooms_told_fills_the_device_and_gives_the_latest_risk() -> None:
    """Scaled out: a risk or a device told in another room's events (docs/scaling.md)."""
    for forever in (True, False):
        unknown = replace(request("u1"), device_key=device_key_for("kou1", forever, "room-1", 0, None, "u1"),
                          per_device=1)
        assert not knows_device(unknown) and knows_device(request("u1"))
        filled = learnt_elsewhere(unknown, "phone-1", 0.9)
        assert (filled.device_key, filled.risk) == (device_key_for("kou1", forever, "room-1", 0, "phone-1", "u1"), 0.9)
        known = replace(unknown, device_key=device_key_for("kou1", forever, "room-1", 0, "own", "u1"), risk=0.1)
        later = learnt_elsewhere(known, "phone-1", 0.9)  # the latest risk told anywhere; its engine's own device
        assert (later.device_key, later.risk) == (known.device_key, 0.9)
        assert learnt_elsewhere(known, None, None) is known
    assert learnt_elsewhere(request("u1"), None, None) == request("u1")
