"""The engine's side of personalised offers: what each policy learns as events are applied.

The policies themselves are pure (:mod:`livecoupon.domain.offers`); this keeps, in event
order, what they learn from: which offer reached whom, the orders that followed within
the attribution window, and who has ordered. All of it is engine state, so snapshots and
replays carry it. The budget's price comes from the store's own count of what was spent.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from livecoupon.domain.campaign import Campaign, Trigger
from livecoupon.domain.coupons import CouponTemplate
from livecoupon.domain.decisions import Decision, Reason
from livecoupon.domain.events import Profile
from livecoupon.domain.offers import Policy, segment_of

LEVEL_KEYS = ("level", "member_level", "vip")  # profile keys read as the member level


@dataclass(frozen=True, slots=True)
class _Reached:
    at: int
    room: str
    trigger: int
    segment: str
    arm: int


@dataclass(slots=True)
class OfferBook:
    campaign: Campaign
    policies: dict[int, Policy] = field(default_factory=dict)  # trigger index -> its policy
    indexes: dict[str, int] = field(default_factory=dict)  # trigger name -> index
    last: dict[str, _Reached] = field(default_factory=dict)  # user -> the latest offer that reached them
    buyers: set[str] = field(default_factory=set)
    _segments: dict[str, str] = field(default_factory=dict)  # coupon id -> segment, until decided

    @classmethod
    def of(cls, campaign: Campaign) -> OfferBook:
        book = cls(campaign)
        book.policies = {t.index: Policy.of(t.offer, campaign.coupons) for t in campaign.triggers
                         if t.offer is not None}
        book.indexes = {t.name: t.index for t in campaign.triggers}
        return book

    def choose(self, trigger: Trigger, user: str, coupon_id: str, profile: Profile | None,
               watched_ms: int | None, spent: int, at: int) -> tuple[CouponTemplate | None, float]:
        """The policy's arm for one user and its propensity, with ``spent`` fen of the budget gone;
        random draws from the decision's own id."""
        policy = self.policies[trigger.index]
        level = next((profile[k] for k in LEVEL_KEYS if profile and k in profile), None)
        segment = segment_of(level, watched_ms, user in self.buyers, user in self.last)
        draw = random.Random(f"{self.campaign.seed}:{self.campaign.campaign}:offer:{coupon_id}")
        choice = policy.choose(draw, segment, spent, self.campaign.limits.budget, at)
        self._segments[coupon_id] = segment
        return choice.arm, choice.propensity

    def decided(self, decisions: Sequence[Decision]) -> None:
        """Count each offer that reached its user (issued, or nothing offered)."""
        for d in decisions:
            r = d.request
            segment = self._segments.pop(r.coupon_id, None)
            if segment is not None and d.reason in (Reason.OUT_OF_STOCK, Reason.TEMPLATE_EXPIRED):
                policy = self.policies[self.indexes[r.trigger]]
                policy.run_out(policy.index_of(r.template))  # no use offering it again
            if segment is None or not (d.issued or d.reason is Reason.NO_OFFER):
                continue
            index = self.indexes[r.trigger]
            arm = self.policies[index].index_of(r.template)
            self.policies[index].offered(segment, arm)
            self.last[r.user] = _Reached(r.at, r.room, index, segment, arm)
        self._segments.clear()  # choices that reached no decision (a lottery's losers) are forgotten

    def ordered(self, room: str, user: str, at: int, amount: int) -> None:
        """An order: it follows the user's latest offer if in its room and attribution window."""
        self.buyers.add(user)
        reached = self.last.get(user)
        if reached is not None and reached.room == room and 0 < at - reached.at <= self.campaign.attribution_window_ms:
            self.policies[reached.trigger].followed(reached.segment, reached.arm, amount)
