"""Replay's claims (``MemoryClaims``: no coupon into an account) decide exactly as the whole in-memory store,
the reference the store contract holds every backend to."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
from livecoupon.domain.decisions import Decision, IssueRequest, coupon_id_for
from livecoupon.store.memory import MemoryClaims, MemoryStore

TEMPLATES = [
    CouponTemplate("ten", "十元券", Terms(CouponKind.NO_THRESHOLD, amount=1000), valid_for_ms=600_000, stock=4),
    CouponTemplate("pct", "九折", Terms(CouponKind.PERCENT, percent_tenths=100, max_discount=2000),
                   valid_until_ms=900_000),
    None,  # a holdout
]

requests = st.builds(
    lambda user, trigger, firing, template, at, device, risk, budget: IssueRequest(
        coupon_id_for("c", "r", 1, trigger, firing, user), "c", "r", 1, trigger, user, TEMPLATES[template],
        at * 60_000, device_key=None if device is None else f"{trigger}\x1f{device}",
        per_device=None if device is None else 2, risk=risk, trigger_budget=budget),
    st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["t1", "t2"]), st.sampled_from(["", "f1", "f2"]),
    st.integers(0, 2), st.integers(0, 20), st.sampled_from([None, "phone", "tablet"]),
    st.sampled_from([None, 0.2, 0.9]), st.sampled_from([None, 2500]))
limits = st.builds(Limits, per_user=st.sampled_from([None, 1, 3]), min_interval_ms=st.sampled_from([None, 120_000]),
                   budget=st.sampled_from([None, 5000]), max_risk=st.sampled_from([None, 0.5]))


def outcome(decisions: list[Decision]) -> list[tuple[str, str | None, int | None]]:
    return [(d.request.coupon_id, d.reason and d.reason.value, d.expires_at) for d in decisions]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(requests, max_size=6), max_size=8), limits)
def test_the_claims_alone_decide_as_the_whole_store(batches: list[list[IssueRequest]], limits: Limits) -> None:
    """Batches with repeated coupon ids (answered as first decided), stock, budgets, caps, devices and risk."""
    claims, store = MemoryClaims(), MemoryStore()
    first: dict[str, tuple[str, str | None, int | None]] = {}
    for batch in batches:
        assert ([r.coupon_id for r in claims.passing_caps(batch, limits)]
                == [r.coupon_id for r in store.passing_caps(batch, limits)])
        made = outcome(claims.issue(batch, limits))
        assert made == outcome(store.issue(batch, limits))
        for decided in made:
            first.setdefault(decided[0], decided)
    spent = [claims.spent("c", trigger) for trigger in (None, "t1", "t2")]
    assert spent == [store.spent("c", trigger) for trigger in (None, "t1", "t2")]
    again = [r for batch in batches for r in batch]  # every request once more: its first decision, nothing spent
    assert outcome(claims.issue(again, limits)) == [first[r.coupon_id] for r in again]
    assert [claims.spent("c", trigger) for trigger in (None, "t1", "t2")] == spent


def test_a_first_visit_is_counted_once_per_campaign() -> None:
    claims = MemoryClaims()
    assert [claims.mark_visited("c", "u"), claims.mark_visited("c", "u"), claims.mark_visited("d", "u")] == [
        True, False, True]
