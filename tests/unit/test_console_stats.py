"""The consoles' counters: the campaign's, and each room's for its host."""

from __future__ import annotations

from livecoupon.campaign_file import parse_campaign
from livecoupon.delivery.console import LiveStats
from livecoupon.domain.decisions import DecisionRecord, Reason
from livecoupon.store.port import CampaignTotals

CAMPAIGN = parse_campaign("""
campaign: c
rooms: "*"
coupons: {c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m}}
triggers: [{name: newcomer, when: first_visit, coupon: c10}]
""")


def record(room: str, user: str, reason: Reason | None = None) -> DecisionRecord:
    return DecisionRecord(f"{room}-{user}", room, 0, "newcomer", user, 60_000, "c10", reason,
                          None if reason else 960_000)


def test_a_room_counts_only_its_own_decisions() -> None:
    stats = LiveStats(lambda: CAMPAIGN)
    stats.add([record("r1", "a"), record("r1", "b", Reason.RISK), record("r2", "c"), record("r2", "d")])
    totals = CampaignTotals(3_000, {"c10": 3}, 3, 1)
    everyone = stats.snapshot(totals, {}, set(), 120_000, 0)
    r1 = stats.of_room("r1").snapshot(totals, {}, set(), 120_000, 0)
    assert (everyone["issued"], everyone["suppressed"]) == (3, {"risk": 1})
    assert (r1["issued"], r1["suppressed"], r1["triggers"]["newcomer"]["issued"]) == (1, {"risk": 1}, 1)
    assert stats.of_room("nowhere").snapshot(totals, {}, set(), 120_000, 0)["issued"] == 0
