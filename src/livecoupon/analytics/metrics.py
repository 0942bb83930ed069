"""What the coupons did: per-trigger and per-variant metrics from decisions and orders.

The inputs are the decision log (from a replay or the live store) and the ``order``
events of the stream. Metric names follow SPEC §6.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from livecoupon.analytics.offpolicy import offer_metrics
from livecoupon.analytics.stats import Lift, holm, ratio_lift, srm_p_value, welch_lift
from livecoupon.domain.campaign import Campaign, Experiment
from livecoupon.domain.commands import PublishCampaign
from livecoupon.domain.coupons import CouponKind, CouponTemplate
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import CHECKOUT_ORDERS, MERCHANT_REPORTS, Event, seconds, told_by
from livecoupon.domain.money import fen_to_yuan
from livecoupon.domain.orders import RESERVATION_MS


@dataclass(frozen=True, slots=True)
class OrderSeen:
    """An ``order`` event, as analytics counts it (on air or not)."""

    room: str
    user: str
    at: int
    amount: int  # fen paid
    order_id: str
    coupon_id: str | None
    # how long after its coupon expired the order may still have used it (None: however long), as the ledger judged
    # it: a platform's report not at all (SPEC §5: an issued coupon past its validity is expired); an order paid at
    # this checkout within a reservation made before then; the merchant's coupon system's report whenever it says
    late_ms: int | None = 0


def orders_of(events: Iterable[Event], campaign: Campaign) -> list[OrderSeen]:
    """Distinct orders (first of each order id per room) of the campaign's rooms."""
    seen: set[tuple[str, str]] = set()
    orders = []
    for e in events:
        if e.type != "order" or not campaign.listens_to(e.room) or e.order_id is None or e.user is None:
            continue
        if (e.room, e.order_id) in seen:
            continue
        seen.add((e.room, e.order_id))
        late_ms = None if told_by(e, MERCHANT_REPORTS) else RESERVATION_MS if told_by(e, CHECKOUT_ORDERS) else 0
        orders.append(OrderSeen(e.room, e.user, e.ts, e.amount, e.order_id, e.coupon_id, late_ms))
    return orders


def discount_of(template: CouponTemplate | None, paid: int) -> int:
    """What a redeemed coupon cost, in fen, judged from the amount the order paid."""
    if template is None:
        return 0
    terms = template.terms
    if terms.kind is not CouponKind.PERCENT:
        return terms.amount
    if terms.percent_tenths >= 1000:
        return terms.max_discount or 0
    before = paid * 1000 // (1000 - terms.percent_tenths)  # the paid amount was after the discount
    off = before - paid
    return off if terms.max_discount is None else min(off, terms.max_discount)


def _ratio(n: float, d: float) -> float:
    return round(n / d, 6) if d else 0.0


def redemptions(decisions: Sequence[DecisionRecord], orders: Sequence[OrderSeen]) -> dict[str, list[OrderSeen]]:
    """The orders that used each issued coupon (SPEC §1: a coupon is consumed by a paid order), by coupon id, in
    time: its holder's orders naming it, placed after it was issued and while it was valid, as the ledger judged
    each (:attr:`OrderSeen.late_ms`: an order paid at this checkout within a reservation made before it expired).
    A second such order used it again after a refund gave it back (SPEC §5). An order naming a coupon otherwise
    (another user's, one not yet issued, one expired) used nothing of ours: counted, it made one coupon's cost
    several times its face, and the report disagreed with the coupon's own state."""
    issued = {d.coupon_id: d for d in decisions if d.issued}
    used: dict[str, list[OrderSeen]] = defaultdict(list)
    for order in sorted(orders, key=lambda o: o.at):
        d = issued.get(order.coupon_id or "")
        if d is not None and order.user == d.user and order.at >= d.at and (
                d.expires_at is None or order.late_ms is None or order.at <= d.expires_at + order.late_ms):
            used[d.coupon_id].append(order)
    return used


def trigger_metrics(campaign: Campaign, decisions: Sequence[DecisionRecord],
                    redeeming: dict[str, list[OrderSeen]]) -> dict[str, dict[str, Any]]:
    """Per trigger; ``redeeming``: the orders that used each coupon (:func:`redemptions`)."""
    result: dict[str, dict[str, Any]] = {}
    names = [t.name for t in campaign.triggers] + sorted({d.trigger for d in decisions}
                                                         - {t.name for t in campaign.triggers})
    for name in names:
        mine = [d for d in decisions if d.trigger == name]
        issued = [d for d in mine if d.issued]
        used = [(d, o) for d in issued for o in redeeming.get(d.coupon_id, ())]
        redeemed = sum(1 for d in issued if d.coupon_id in redeeming)
        gmv = sum(o.amount for _, o in used)
        cost = sum(discount_of(campaign.coupons.get(d.template or ""), o.amount) for d, o in used)
        result[name] = {
            "decisions": len(mine), "issued": len(issued),
            "suppressed": dict(Counter(d.reason.value for d in mine if d.reason is not None)),
            "redeemed": redeemed, "redemption_rate": _ratio(redeemed, len(issued)),
            "orders": len(used), "gmv": fen_to_yuan(gmv), "aov": fen_to_yuan(round(gmv / len(used))) if used else 0.0,
            "discount_cost": fen_to_yuan(cost),
        }
    return result


def control_of(experiment: Experiment) -> str:
    """The holdout variant if there is one, else the first."""
    return next((v.name for v in experiment.variants if v.coupon is None), experiment.variants[0].name)


Versions = Sequence[tuple[int | None, Campaign]]  # a campaign's in order: (None, its file), (when, ms; one published)


def versions_in(campaign: Campaign, events: Iterable[Event]) -> list[tuple[int | None, Campaign]]:
    """``campaign``'s file, then the versions a log's operator entries published, in order."""
    return [(None, campaign), *((e.ts, e.command.campaign) for e in events if isinstance(e.command, PublishCampaign)
                                and e.command.campaign.campaign == campaign.campaign)]


def current_phase(experiment: Experiment, versions: Versions) -> tuple[Experiment, int | None]:
    """The experiment as it stands (the latest version's), and since when (ms: the publish that last changed its
    variants, weights, salt or trigger; None: as the file set it). A room takes a version at its next broadcast."""
    since: int | None = None
    current: Experiment | None = None
    for at, version in versions:
        found = next((e for e in version.experiments if e.name == experiment.name), None)
        if found is not None and found != current:
            current, since = found, at
    return (experiment, None) if current is None else (current, since)


def experiment_metrics(campaign: Campaign, experiment: Experiment, decisions: Sequence[DecisionRecord],
                       orders: Sequence[OrderSeen], versions: Versions = ()) -> dict[str, Any]:
    """Per-variant exposure, conversion and order value, lifts against control, SRM: of the experiment's current
    allocation only. After a publish changed it (1:1, then 1:9), users of both allocations pooled were judged
    against the last weights: a false sample-ratio alarm, and a lift from whatever changed between the two."""
    experiment, since = current_phase(experiment, versions)
    exposures: dict[str, DecisionRecord] = {}
    for d in decisions:  # the first exposure in time, whatever order the log lists them in
        if d.trigger == experiment.trigger and d.experiment == experiment.name and (
                since is None or d.broadcast >= since) and (d.user not in exposures or d.at < exposures[d.user].at):
            exposures[d.user] = d
    by_user: dict[tuple[str, str], list[OrderSeen]] = defaultdict(list)
    for o in orders:
        by_user[(o.room, o.user)].append(o)
    window = campaign.attribution_window_ms
    converted: dict[str, list[float]] = {v.name: [] for v in experiment.variants}
    buyers: dict[str, list[list[float]]] = {v.name: [] for v in experiment.variants}  # each converted user's orders
    for user, first in exposures.items():
        attributed = [o for o in by_user.get((first.room, user), ()) if first.at < o.at <= first.at + window]
        variant = first.variant or ""
        converted.setdefault(variant, []).append(1.0 if attributed else 0.0)
        if attributed:
            buyers.setdefault(variant, []).append([o.amount / 100 for o in attributed])
    control = control_of(experiment)
    amounts = {name: [a for orders in users for a in orders] for name, users in buyers.items()}  # every order's
    variants: dict[str, dict[str, Any]] = {}
    for v in experiment.variants:
        users, paid = converted[v.name], amounts[v.name]
        variants[v.name] = {
            "coupon": v.coupon, "users": len(users), "converted": int(sum(users)),
            "conversion": _ratio(sum(users), len(users)), "orders": len(paid),
            "aov": round(sum(paid) / len(paid), 2) if paid else 0.0,
        }
        if v.name != control:
            variants[v.name]["lift"] = {
                "conversion": _lift(welch_lift(users, converted[control]), users, converted[control]),
                "aov": _lift(ratio_lift(buyers[v.name], buyers[control]), paid, amounts[control])}
    _adjust(variants)
    srm = srm_p_value([variants[v.name]["users"] for v in experiment.variants],
                      [v.weight for v in experiment.variants])
    return {"trigger": experiment.trigger, "control": control, "variants": variants, "srm_p_value": srm,
            "srm_flag": srm is not None and srm < 0.001, "since": None if since is None else seconds(since)}


def _lift(lift: Lift | None, variant: Sequence[float], control: Sequence[float]) -> dict[str, Any]:
    """SPEC §6 lift of the means of ``variant`` and ``control``; ``ci95`` and ``p_value`` are null where the data
    cannot carry a test (``lift`` None: fewer than two users a side, or no spread), ``diff`` too when a side is
    empty."""
    if lift is not None:
        return lift.to_json()
    diff = sum(variant) / len(variant) - sum(control) / len(control) if variant and control else None
    return {"diff": diff, "ci95": None, "p_value": None}


def _adjust(variants: dict[str, dict[str, Any]]) -> None:
    """Holm correction across the variants compared with control, per metric."""
    for metric in ("conversion", "aov"):
        lifts = [lift for v in variants.values() if (lift := v.get("lift", {}).get(metric)) is not None
                 and lift["p_value"] is not None]
        for lift, adjusted in zip(lifts, holm([lift["p_value"] for lift in lifts]), strict=True):
            lift["p_value_holm"] = adjusted


def campaign_metrics(campaign: Campaign, decisions: Sequence[DecisionRecord], events: Iterable[Event],
                     versions: Versions | None = None) -> dict[str, Any]:
    """The whole ``metrics.json``; ``versions``: the campaign's, its file first (default: ``campaign`` as the file,
    then what the ``events``' operator entries published)."""
    events = list(events)
    if versions is None:
        versions = versions_in(campaign, events)
    orders = orders_of(events, campaign)
    redeeming = redemptions(decisions, orders)
    return {
        "campaign": campaign.campaign,
        "triggers": trigger_metrics(campaign, decisions, redeeming),
        "experiments": {e.name: experiment_metrics(campaign, e, decisions, orders, versions)
                        for e in campaign.experiments},
        "offers": offer_metrics(campaign, decisions, orders),
        "totals": {"decisions": len(decisions), "issued": sum(1 for d in decisions if d.issued),
                   "orders": len(orders), "gmv": fen_to_yuan(sum(o.amount for o in orders)),
                   "orders_with_coupon": sum(len(used) for used in redeeming.values())},
    }
