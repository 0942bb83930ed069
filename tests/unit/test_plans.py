"""A version as the engine reads it (engine/plans.py) says what its campaign says."""

from __future__ import annotations

from dataclasses import replace

from engine_fixtures import campaign
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.engine.plans import Plan

NEWCOMER = "  - {name: newcomer, when: first_visit, coupon: c10}"
times = st.one_of(st.none(), st.integers(0, 50))


@given(times, times, st.integers(-5, 55))
@settings(max_examples=300, deadline=None)  # a busy machine is not a wrong answer
def test_a_plan_is_scheduled_exactly_when_its_campaign_is(starts_at: int | None, ends_at: int | None,
                                                          at: int) -> None:
    """The engine asks its plan at every viewer's event (compiled), the campaign's method is the rule."""
    version = replace(campaign(NEWCOMER), starts_at=starts_at, ends_at=ends_at)
    for plan in (Plan(1, version), Plan(1, version).silent()):
        assert plan.scheduled(at) == version.scheduled(at)
