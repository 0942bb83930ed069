"""Answers to the operator's three questions, and what to change next.

Which trigger redeems best; how face value moves order value; how timing moves
conversion — then recommendations closing the loop issue → redeem → analyse → optimise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from statistics import median
from typing import Any

from livecoupon.analytics.metrics import OrderSeen
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.money import fen_to_yuan

TIMING_BUCKET_MS = 5 * 60_000


def trigger_ranking(triggers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Triggers that issued anything, best redemption rate first."""
    rows = [{"trigger": name} | m for name, m in triggers.items() if m["issued"]]
    rows.sort(key=lambda r: (-r["redemption_rate"], -r["gmv"], r["trigger"]))
    for row in rows:
        cost = row["discount_cost"]
        row["roi"] = round(row["gmv"] / cost, 2) if cost else None
    return rows


def face_value_effect(campaign: Campaign, decisions: Sequence[DecisionRecord],
                      redeeming: dict[str, list[OrderSeen]]) -> list[dict[str, Any]]:
    """Orders that redeemed a coupon, grouped by the coupon's face value; ``redeeming``: the orders that used each
    coupon (:func:`~livecoupon.analytics.metrics.redemptions`, as the key metrics count them: an order naming
    another user's coupon, or one long expired, used none)."""
    issued_by_face: dict[int, int] = defaultdict(int)
    amounts: dict[int, list[int]] = defaultdict(list)
    redeemed: dict[int, int] = defaultdict(int)  # distinct coupons: a refunded coupon may be used again
    for d in decisions:
        if d.issued and d.template in campaign.coupons:
            face = campaign.coupons[d.template].terms.face_value or 0
            issued_by_face[face] += 1
            used = redeeming.get(d.coupon_id, ())
            amounts[face].extend(o.amount for o in used)
            redeemed[face] += 1 if used else 0
    return [{"face_value": fen_to_yuan(face), "issued": issued_by_face[face], "redeemed": redeemed[face],
             "orders": len(amounts[face]),
             "redemption_rate": round(redeemed[face] / issued_by_face[face], 4) if issued_by_face[face] else 0.0,
             "aov": fen_to_yuan(round(sum(amounts[face]) / len(amounts[face]))) if amounts[face] else 0.0}
            for face in sorted(issued_by_face)]


def timing_effect(campaign: Campaign, decisions: Sequence[DecisionRecord],
                  orders: Sequence[OrderSeen]) -> dict[str, Any]:
    """Conversion of issued coupons by when in the broadcast they were issued."""
    by_user: dict[tuple[str, str], list[int]] = defaultdict(list)
    for o in orders:
        by_user[(o.room, o.user)].append(o.at)
    window = campaign.attribution_window_ms
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    delays: list[float] = []
    for d in decisions:
        if not d.issued:
            continue
        later = [t for t in by_user.get((d.room, d.user), ()) if d.at < t <= d.at + window]
        bucket = buckets[(d.at - d.broadcast) // TIMING_BUCKET_MS]
        bucket[0] += 1
        if later:
            bucket[1] += 1
            delays.append((min(later) - d.at) / 60_000)
    rows = [{"minute": b * TIMING_BUCKET_MS // 60_000, "issued": n, "converted": c,
             "conversion": round(c / n, 4) if n else 0.0} for b, (n, c) in sorted(buckets.items())]
    return {"buckets": rows, "median_minutes_to_order": round(median(delays), 2) if delays else None}


def _clearly_above(best: dict[str, Any], second: dict[str, Any]) -> bool:
    """Whether ``best`` redeems more than ``second`` beyond chance: a one-sided two-proportion z-test at 5 % (a
    0.2-point gap between two triggers was called "redeems best")."""
    n1, n2 = best["issued"], second["issued"]
    r1, r2 = best["redeemed"], second["redeemed"]
    pooled = (r1 + r2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return se > 0 and (r1 / n1 - r2 / n2) / se > 1.6448536269514722


def recommendations(metrics: dict[str, Any], ranking: list[dict[str, Any]]) -> list[str]:
    """Plain advice, Chinese first, each grounded in a figure from this run."""
    advice = []
    if ranking:
        best, worst = ranking[0], ranking[-1]
        if len(ranking) == 1 or _clearly_above(best, ranking[1]):
            advice.append(f"核销率最高的是「{best['trigger']}」({best['redemption_rate']:.1%})，"
                          f"可适当加大其库存或预算 / '{best['trigger']}' redeems best: give it more stock or budget.")
        if len(ranking) > 1 and worst["redemption_rate"] < best["redemption_rate"] / 2:
            advice.append(f"「{worst['trigger']}」核销率仅 {worst['redemption_rate']:.1%}，建议调整时机、门槛或面额 / "
                          f"'{worst['trigger']}' redeems poorly: revisit its timing, threshold or face value.")
    for name, m in metrics["triggers"].items():
        suppressed = m["suppressed"]
        if m["decisions"] and suppressed.get("out_of_stock", 0) > 0.2 * m["decisions"]:
            advice.append(f"「{name}」有 {suppressed['out_of_stock']} 次因库存不足未发出，库存偏紧 / "
                          f"'{name}' ran out of stock {suppressed['out_of_stock']} times.")
        if m["decisions"] and suppressed.get("min_interval", 0) + suppressed.get("per_user_cap", 0) > 0.3 * m[
                "decisions"]:
            advice.append(f"「{name}」三成以上被频控拦截，可考虑放宽 min_interval 或 per_user / "
                          f"over 30% of '{name}' was held back by frequency caps.")
    for name, e in metrics["experiments"].items():
        if e["srm_flag"]:
            advice.append(f"实验「{name}」分流比例异常 (SRM p={e['srm_p_value']:.2g})，结论不可信，请先排查分流 / "
                          f"experiment '{name}' has a sample-ratio mismatch: fix assignment before trusting it.")
            continue
        winners = sorted(((lift["diff"], variant) for variant, v in e["variants"].items()
                          if (lift := (v.get("lift") or {}).get("conversion")) and lift["p_value"] is not None
                          and lift.get("p_value_holm", lift["p_value"]) < 0.05 and lift["diff"] > 0), reverse=True)
        if len(winners) == 1:
            (diff, variant), = winners
            advice.append(f"实验「{name}」中「{variant}」转化率显著高于对照 (+{diff:.1%}) ，可全量 / "
                          f"'{variant}' beats control in '{name}': roll it out.")
        elif winners:  # only one can ship: none of them was tested against the others
            names = "、".join(f"「{v}」" for _, v in winners)
            advice.append(f"实验「{name}」中 {names} 转化率都显著高于对照，彼此之间尚未比出高下，"
                          f"请继续让它们相互对比后再全量其一 / {', '.join(repr(v) for _, v in winners)} each beat "
                          f"control in '{name}', but not each other yet: test them against one another before "
                          "rolling one out.")
    if not advice:
        advice.append("数据量尚不足以给出可靠建议，请继续积累 / Not enough data yet for a confident recommendation.")
    return advice
