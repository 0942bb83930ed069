"""How the personalised offers did, honestly: per-arm results and off-policy estimates (SPEC §4, issue 11).

Every offer decision logged its arm and the exact probability the policy chose it with, so
the value of *other* policies can be estimated from the same data without running them:

- **IPS** (inverse propensity scoring): mean over decisions of 1{arm = a} · reward / propensity;
- **SNIPS**: the same, normalised by the sum of the weights (lower variance, slightly biased);
- **DR** (doubly robust): a per-arm mean-reward model, corrected by the IPS term of its error.

Each comes with a normal 95% interval (SNIPS by the delta method). The reward of a decision is
the order value (yuan) the user placed in the same room within the attribution window after
it, counted for the user's latest offer before the order (as the policy itself learns). The
policy actually run is valued on-policy: its mean reward, with its interval.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livecoupon.domain.campaign import OFFER, Campaign, Trigger
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import seconds
from livecoupon.domain.money import fen_to_yuan

if TYPE_CHECKING:
    from livecoupon.analytics.metrics import OrderSeen

Z95 = 1.959963984540054
PHASES = 4  # runs of decisions the report shows the arms' shares in


@dataclass(frozen=True, slots=True)
class Logged:
    """One offer decision as evaluation sees it."""

    arm: str | None
    propensity: float
    reward: float  # yuan
    face: float  # yuan issued (0 when nothing was issued)
    at: int = 0  # ms


def logged_offers(campaign: Campaign, trigger: Trigger, decisions: Sequence[DecisionRecord],
                  orders: Sequence[OrderSeen]) -> list[Logged]:
    """Every choice the trigger's policy made (issued, nothing offered, or its coupon then refused by a cap, stock or
    budget), with the reward that followed each. A choice whose coupon was refused stays: leaving those out kept
    every "nothing" and only the coupons that got through, which selects users by their arm (a risky heavy buyer is
    refused a coupon, never "nothing") and made "nothing" look worth several coupons that did nothing either way.
    An experiment's fixed variants are left out: their arm was certain for their users, every other arm impossible,
    which no estimate of another arm's worth can weigh."""
    fixed = {(e.trigger, v.name) for e in campaign.experiments for v in e.variants if v.coupon != OFFER}
    offers = sorted((d for d in decisions if d.propensity is not None and (d.trigger, d.variant) not in fixed),
                    key=lambda d: d.at)
    latest: dict[str, list[DecisionRecord]] = defaultdict(list)  # user -> every offer of the campaign, in time
    for d in offers:
        latest[d.user].append(d)
    reward: dict[str, int] = defaultdict(int)
    window = campaign.attribution_window_ms
    for order in orders:
        before = [d for d in latest.get(order.user, ()) if d.at < order.at]
        if before and before[-1].room == order.room and order.at - before[-1].at <= window:
            reward[before[-1].coupon_id] += order.amount
    face = {name: fen_to_yuan(t.terms.face_value or 0) for name, t in campaign.coupons.items()}
    return [Logged(d.template, d.propensity or 1.0, fen_to_yuan(reward[d.coupon_id]),
                   face.get(d.template or "", 0.0) if d.issued else 0.0, d.at)
            for d in offers if d.trigger == trigger.name]


def _interval(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n)
    return {"value": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)]}


def estimates(logged: Sequence[Logged], arm: str | None) -> dict[str, Any]:
    """IPS, SNIPS and DR estimates of always offering ``arm``, per decision (yuan of orders)."""
    if not logged:
        return {}
    by_arm: dict[str | None, list[float]] = defaultdict(list)
    for x in logged:
        by_arm[x.arm].append(x.reward)
    model = {a: sum(r) / len(r) for a, r in by_arm.items()}
    predicted = model.get(arm, 0.0)
    weights = [(1.0 / x.propensity if x.arm == arm else 0.0) for x in logged]
    ips_terms = [w * x.reward for w, x in zip(weights, logged, strict=True)]
    dr_terms = [predicted + w * (x.reward - predicted) for w, x in zip(weights, logged, strict=True)]
    total_w = sum(weights)
    result: dict[str, Any] = {"ips": _interval(ips_terms), "dr": _interval(dr_terms)}
    if total_w > 0:
        snips = sum(ips_terms) / total_w
        n = len(logged)
        scaled = [(t - snips * w) / (total_w / n) for t, w in zip(ips_terms, weights, strict=True)]
        spread = _interval(scaled)
        half = spread["ci95"][1] - spread["value"]
        result["snips"] = {"value": round(snips, 4), "ci95": [round(snips - half, 4), round(snips + half, 4)]}
    return result


def phases(trigger: Trigger, logged: Sequence[Logged], parts: int = PHASES) -> list[dict[str, Any]]:
    """How the policy's choices moved: its arms' shares in each of ``parts`` equal runs of its
    decisions, in time order (learning shows as the shares leaving the cold start's cheapest arm)."""
    assert trigger.offer is not None
    n = len(logged)
    k = min(parts, n)  # fewer decisions than parts: one run each
    out = []
    for part in range(k):
        run = logged[part * n // k:(part + 1) * n // k]
        counts = {arm or "null": 0 for arm in trigger.offer.arms}
        for x in run:
            counts[x.arm or "null"] += 1
        out.append({"from": seconds(run[0].at), "to": seconds(run[-1].at), "decisions": len(run),
                    "shares": {arm: round(c / len(run), 4) for arm, c in counts.items()}})
    return out


def offer_metrics(campaign: Campaign, decisions: Sequence[DecisionRecord],
                  orders: Sequence[OrderSeen]) -> dict[str, Any]:
    """Per offer trigger: arms, how their shares moved, the policy's own value, off-policy estimates
    of each fixed arm, and spend against the budget the policy paces (the trigger's own, if set)."""
    out: dict[str, Any] = {}
    face = {name: t.terms.face_value or 0 for name, t in campaign.coupons.items()}
    spent = sum(face.get(d.template or "", 0) for d in decisions if d.issued)
    for trigger in campaign.triggers:
        if trigger.offer is None:
            continue
        logged = logged_offers(campaign, trigger, decisions, orders)
        arms: dict[str, Any] = {}
        for arm in trigger.offer.arms:
            mine = [x for x in logged if x.arm == arm]
            arms[arm or "null"] = {
                "decisions": len(mine), "share": round(len(mine) / len(logged), 4) if logged else 0.0,
                "mean_propensity": round(sum(x.propensity for x in mine) / len(mine), 4) if mine else None,
                "converted": sum(1 for x in mine if x.reward > 0),
                "reward": round(sum(x.reward for x in mine), 2), "face_value": round(sum(x.face for x in mine), 2),
                "estimate": estimates(logged, arm)}
        own = trigger.budget is not None
        budget = trigger.budget if own else campaign.limits.budget
        plan = trigger.offer.plan_ms
        planned = None  # what the plan meant to have spent by the latest decision (yuan)
        if budget is not None and plan is not None and logged:
            planned = fen_to_yuan(round(budget * min(1.0, (logged[-1].at - logged[0].at) / plan)))
        out[trigger.name] = {
            "decisions": len(logged), "arms": arms, "phases": phases(trigger, logged),
            "policy": _interval([x.reward for x in logged]) if logged else {},
            "spend": {"spent": fen_to_yuan(sum(face.get(d.template or "", 0) for d in decisions
                                               if d.issued and d.trigger == trigger.name) if own else spent),
                      "budget": None if budget is None else fen_to_yuan(budget),
                      "of": "trigger" if own else "campaign",
                      "plan_minutes": None if plan is None else plan / 60_000, "planned": planned},
        }
    return out
