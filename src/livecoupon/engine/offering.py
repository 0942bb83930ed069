"""The engine's side of personalised offers: what each policy learns as events are applied.

The policies themselves are pure (:mod:`livecoupon.domain.offers`); this keeps, in event
order, what they learn from and tell users apart by: which offer reached whom, the orders that
followed within the attribution window, who has ordered, and which devices offers reached. All of
it is engine state, so snapshots and replays carry it. The budget a policy paces is the tighter of
the campaign's and the trigger's own ``budget``, by the store's own counts of what each has spent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from livecoupon.domain.campaign import Campaign, Trigger
from livecoupon.domain.coupons import CouponTemplate
from livecoupon.domain.decisions import Decision, Reason
from livecoupon.domain.events import Profile
from livecoupon.domain.offers import Context, Policy
from livecoupon.engine.rooms import Room

LEVEL_KEYS = ("level", "member_level", "vip")  # profile keys read as the member level


@dataclass(frozen=True, slots=True)
class _Reached:
    at: int
    room: str
    trigger: str
    segment: str
    arm: int


@dataclass(frozen=True, slots=True)
class _Pending:
    """A choice made, until its decision says whether it reached the user."""

    segment: str
    device: str | None


@dataclass(slots=True)
class OfferBook:
    campaign: Campaign
    policies: dict[str, Policy] = field(default_factory=dict)  # trigger name -> its policy
    last: dict[str, _Reached] = field(default_factory=dict)  # user -> the latest offer that reached them
    chosen: dict[str, _Reached] = field(default_factory=dict)  # user -> the latest choice for them, reached or not
    took: set[str] = field(default_factory=set)  # users an order followed an offer of
    buyers: set[str] = field(default_factory=set)
    devices: dict[str, str] = field(default_factory=dict)  # device -> the first user an offer reached on it
    _pending: dict[str, _Pending] = field(default_factory=dict)  # coupon id -> its choice, until decided

    @classmethod
    def of(cls, campaign: Campaign) -> OfferBook:
        book = cls(campaign)
        book.adopt(campaign)
        return book

    def adopt(self, campaign: Campaign) -> None:
        """A newly published version: a policy whose offer (arms and their coupons) is unchanged keeps
        what it learnt; a changed or new one starts afresh. Policies of triggers the version dropped stay,
        for rooms still on air with the version before."""
        self.campaign = campaign
        for trigger in campaign.triggers:
            if trigger.offer is None:
                continue
            policy = Policy.of(trigger.offer, campaign.coupons)
            known = self.policies.get(trigger.name)
            if known is None or (known.offer, known.templates) != (policy.offer, policy.templates):
                self.policies[trigger.name] = policy

    def choose(self, trigger: Trigger, user: str, coupon_id: str, room: Room, profile: Profile | None,
               device: str | None, campaign_spent: int, trigger_spent: int,
               at: int) -> tuple[CouponTemplate | None, float]:
        """The policy's arm for one user and its propensity, with ``campaign_spent`` fen of the
        campaign's budget and ``trigger_spent`` of the trigger's own gone; random draws from the
        decision's own id."""
        context = self.context(user, room, profile, device, at)
        draw = random.Random(f"{self.campaign.seed}:{self.campaign.campaign}:offer:{coupon_id}")
        left = self.left(trigger, campaign_spent, trigger_spent)
        choice = self.policies[trigger.name].choose(draw, context.segment, left, at)
        self._pending[coupon_id] = _Pending(context.segment, device)
        return choice.arm, choice.propensity

    def assigned(self, trigger: Trigger, user: str, coupon_id: str, room: Room, profile: Profile | None,
                 device: str | None, template: CouponTemplate | None, at: int) -> None:
        """An experiment gave this user one of the trigger's arms at random, not the policy: what
        follows teaches the policy as much as its own exploration does (the arm is independent of
        the user), so the offer is counted like one of its own."""
        if template in self.policies[trigger.name].templates:
            self._pending[coupon_id] = _Pending(self.context(user, room, profile, device, at).segment, device)

    def context(self, user: str, room: Room, profile: Profile | None, device: str | None, at: int) -> Context:
        level = next((str(profile[k]) for k in LEVEL_KEYS if profile and k in profile), None)
        viewer = room.present(user, at)
        reached = self.last.get(user)
        history = "first" if reached is None else "took" if user in self.took else "ignored"
        owner = None if device is None else self.devices.get(device, user)
        return Context(level, at - viewer.joined_at if viewer else None,
                       user in room.last_comment or user in room.gifts, user in self.buyers, history,
                       "-" if owner is None else "own" if owner == user else "shared")

    def left(self, trigger: Trigger, campaign_spent: int, trigger_spent: int) -> int | None:
        """Fen the policy may still spend: the tighter of the campaign's budget and the trigger's own."""
        budget, own = self.campaign.limits.budget, trigger.budget
        lefts = ([] if budget is None else [budget - campaign_spent]) + \
                ([] if own is None else [own - trigger_spent])
        return min(lefts, default=None)

    def firing(self, trigger: Trigger, stock_used: Callable[[], dict[str, int]], at: int) -> dict[int, int]:
        """Before a firing of ``trigger`` decides: its arms whose coupon is out of stock (``stock_used``: coupons issued
        of each template, read only where an arm has a stock) or past its validity are no longer offered, for good;
        what each other arm with a stock has left. (An arm was dropped only once a decision came back
        ``out_of_stock``: the viewer it was chosen for got nothing while other arms were there, and so did each
        viewer of an audience who drew it.)"""
        policy = self.policies[trigger.name]
        used = stock_used() if any(t is not None and t.stock is not None for t in policy.templates) else {}
        left: dict[int, int] = {}
        for index, template in enumerate(policy.templates):
            if template is None:
                continue
            remaining = None if template.stock is None else template.stock - used.get(template.name, 0)
            if template.is_past_validity(at) or (remaining is not None and remaining <= 0):
                policy.run_out(index)
            elif remaining is not None:
                left[index] = remaining
        return left

    def taken(self, trigger: Trigger, template: CouponTemplate | None, left: dict[int, int], held: list[int]) -> None:
        """A coupon of ``template`` chosen in the firing: once the firing's choices have taken an arm's last ones, its
        later choices leave the arm out (``held``: until the firing is decided, as a cap may yet refuse some)."""
        policy = self.policies[trigger.name]
        if template is None or template not in policy.templates:
            return
        index = policy.index_of(template)
        if index in left:
            left[index] -= 1
            if left[index] == 0 and index not in policy.exhausted:
                policy.run_out(index)
                if index in policy.exhausted:
                    held.append(index)

    def release(self, trigger: Trigger, held: list[int]) -> None:
        """The firing decided: the arms it held back are offered again where stock is left (the next firing reads
        the stock afresh)."""
        self.policies[trigger.name].exhausted.difference_update(held)

    def decided(self, decisions: Sequence[Decision]) -> None:
        """Count each choice decided, its coupon issued or refused (a cap, the stock, the budget), as the value of
        choosing that arm: counting only the coupons that got through kept every "nothing" and left out the users
        a coupon is refused to (risky ones, heavy buyers past their cap), so "nothing" learnt their orders and the
        coupons did not. What reached the user (issued, or nothing offered) is what tells them apart later."""
        if not self._pending:
            return  # no policy chose since the last decisions: none of these is an offer (most decisions)
        for d in decisions:
            r = d.request
            policy = self.policies.get(r.trigger)
            pending = self._pending.pop(r.coupon_id, None)
            if pending is None or policy is None or r.template not in policy.templates:
                continue  # (not an arm of this policy: decided under a version whose offer differed)
            arm = policy.index_of(r.template)
            if d.reason in (Reason.OUT_OF_STOCK, Reason.TEMPLATE_EXPIRED):
                policy.run_out(arm)  # no use offering it again
            policy.offered(pending.segment, arm)
            choice = self.chosen[r.user] = _Reached(r.at, r.room, r.trigger, pending.segment, arm)
            if not (d.issued or d.reason in (Reason.NO_OFFER, Reason.HOLDOUT)):
                continue
            self.last[r.user] = choice
            if pending.device is not None:
                self.devices.setdefault(pending.device, r.user)
        self._pending.clear()  # choices that reached no decision (a lottery's losers) are forgotten

    def ordered(self, room: str, user: str, at: int, amount: int) -> None:
        """An order: it follows the user's latest choice, and the latest offer that reached them, if in its room
        and attribution window."""
        self.buyers.add(user)
        choice = self.chosen.get(user)
        if choice is not None and self._follows(choice, room, at):
            self.policies[choice.trigger].followed(choice.segment, choice.arm, amount)
        reached = self.last.get(user)
        if reached is not None and self._follows(reached, room, at):
            self.took.add(user)

    def _follows(self, offer: _Reached, room: str, at: int) -> bool:
        return offer.room == room and 0 < at - offer.at <= self.campaign.attribution_window_ms
