"""A backtest: what a campaign would have decided over a recorded stream, trigger by trigger.

Operators check a changed campaign against what really happened before they publish it: the
service's own log (or any recording) replayed with the candidate, beside the campaign running
now, so the difference in coupons, face value and reach is in front of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.money import fen_to_yuan
from livecoupon.engine.replay import replay


def outcome(campaign: Campaign, lines: Sequence[str]) -> dict[str, Any]:
    """Per trigger: decisions, coupons issued, face value (yuan), users reached, suppression reasons."""
    records = [d.record() for d in replay(campaign, lines).decisions]
    return {"triggers": _per_trigger(campaign, records),
            "totals": {"decisions": len(records), "issued": sum(1 for r in records if r.issued),
                       "face_value": _face(campaign, records),
                       "users": len({r.user for r in records if r.issued})}}


def compare(current: Campaign, candidate: Campaign, lines: Sequence[str]) -> dict[str, Any]:
    """The candidate's outcome over ``lines``, the current campaign's, and the candidate minus the current."""
    now, then = outcome(current, lines), outcome(candidate, lines)
    diff = {key: round(then["totals"][key] - now["totals"][key], 2) for key in now["totals"]}
    return {"candidate": then, "current": now, "difference": diff}


def _per_trigger(campaign: Campaign, records: Sequence[DecisionRecord]) -> dict[str, Any]:
    grouped: dict[str, list[DecisionRecord]] = defaultdict(list)
    for r in records:
        grouped[r.trigger].append(r)
    out = {}
    for trigger in [t.name for t in campaign.triggers] + sorted(set(grouped) - {t.name for t in campaign.triggers}):
        mine = grouped.get(trigger, [])
        out[trigger] = {"decisions": len(mine), "issued": sum(1 for r in mine if r.issued),
                        "face_value": _face(campaign, mine), "users": len({r.user for r in mine if r.issued}),
                        "suppressed": dict(Counter(r.reason.value for r in mine if r.reason is not None))}
    return out


def _face(campaign: Campaign, records: Sequence[DecisionRecord]) -> float:
    fen = sum(campaign.coupons[r.template].terms.face_value or 0 for r in records
              if r.issued and r.template in campaign.coupons)
    return fen_to_yuan(fen)
