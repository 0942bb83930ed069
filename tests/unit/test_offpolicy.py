"""Off-policy estimates of offers: unbiased where they should be, intervals that cover, rewards attributed once."""

from __future__ import annotations

import random

from engine_fixtures import campaign, ev, run

from livecoupon.analytics.metrics import campaign_metrics
from livecoupon.analytics.offpolicy import Logged, estimates
from livecoupon.domain.events import parse_event

TRUTH = {"c10": 30.0, "c20": 55.0, None: 12.0}  # mean order value (yuan) that follows each arm


def logged_data(seed: int, n: int = 1_500) -> list[Logged]:
    """A logging policy that prefers c10 (60%), with exact propensities, and noisy rewards."""
    rng = random.Random(seed)
    probs = {"c10": 0.6, "c20": 0.25, None: 0.15}
    arms = list(probs)
    out = []
    for _ in range(n):
        arm = rng.choices(arms, weights=[probs[a] for a in arms])[0]
        buys = rng.random() < 0.4
        reward = rng.expovariate(0.4 / TRUTH[arm]) if buys else 0.0
        out.append(Logged(arm, probs[arm], reward, 10.0 if arm == "c10" else 20.0 if arm == "c20" else 0.0))
    return out


def test_the_95_percent_intervals_cover_each_arms_true_value_in_nine_seeds_of_ten() -> None:
    covered = {(method, arm): 0 for method in ("ips", "snips", "dr") for arm in TRUTH}
    seeds = 60
    for seed in range(seeds):
        data = logged_data(seed)
        for arm, truth in TRUTH.items():
            found = estimates(data, arm)
            for method in ("ips", "snips", "dr"):
                lo, hi = found[method]["ci95"]
                covered[(method, arm)] += lo <= truth <= hi
    assert all(hits / seeds >= 0.9 for hits in covered.values()), covered


def test_an_arm_never_logged_has_no_snips_and_ips_of_zero() -> None:
    data = [Logged("c10", 1.0, 5.0, 10.0) for _ in range(10)]
    found = estimates(data, "c20")
    assert found["ips"]["value"] == 0 and "snips" not in found


def test_metrics_json_carries_each_offer_trigger_its_arms_policy_value_and_estimates() -> None:
    camp = campaign("  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, c20, null], explore: 1}}\n",
                    tail="limits: {budget: 100000}")
    events = [ev("live_start", 0)]
    for i in range(90):
        user = f"u{i}"
        events += [ev("join", 1 + i, user), ev("comment", 1.5 + i, user, text="要券"),
                   {"type": "order", "room": "r1", "ts": 2 + i, "user": user, "order_id": f"o{i}", "amount": 50}]
    decisions = [d.record() for d in run(camp, events)]
    metrics = campaign_metrics(camp, decisions, [parse_event(e) for e in events])
    offer = metrics["offers"]["pick"]
    assert offer["decisions"] == 90 and set(offer["arms"]) == {"c10", "c20", "null"}
    assert sum(a["decisions"] for a in offer["arms"].values()) == 90
    assert offer["policy"]["value"] == 50.0  # every offer was followed by a 50-yuan order
    for arm in offer["arms"].values():
        assert arm["mean_propensity"] == round(1 / 3, 4)
        assert set(arm["estimate"]) == {"ips", "snips", "dr"}
    assert offer["spend"]["budget"] == 100000.0


def test_a_choice_whose_coupon_was_then_refused_still_counts_for_its_arm() -> None:
    # arms c10 and nothing, chosen at random; viewers of risk 0.9 are refused the coupon (max_risk), never "nothing".
    # Every viewer orders what they would have whatever the arm (risky ones 500 yuan, the others 50), so both arms
    # are worth the same: leaving out the refused choices made "nothing" look worth several times the coupon
    camp = campaign("  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, null], explore: 1}}\n",
                    tail="limits: {max_risk: 0.5}")
    events: list[dict[str, object]] = [ev("live_start", 0)]
    for i in range(400):
        user, risky = f"u{i}", i % 4 == 0
        events += [dict(ev("join", 1 + i, user), risk=0.9 if risky else 0.1), ev("comment", 1.5 + i, user, text="要券"),
                   {"type": "order", "room": "r1", "ts": 2 + i, "user": user, "order_id": f"o{i}",
                    "amount": 500 if risky else 50}]
    decisions = [d.record() for d in run(camp, events)]
    assert any(d.reason is not None and d.reason.value == "risk" for d in decisions)
    offer = campaign_metrics(camp, decisions, [parse_event(e) for e in events])["offers"]["pick"]
    assert offer["decisions"] == 400
    value = 0.25 * 500 + 0.75 * 50
    for arm in ("c10", "null"):
        lo, hi = offer["arms"][arm]["estimate"]["snips"]["ci95"]
        assert lo <= value <= hi, (arm, offer["arms"][arm]["estimate"])


def test_the_report_shows_each_offer_trigger() -> None:
    from livecoupon.analytics.metrics import orders_of
    from livecoupon.analytics.report import render_report

    camp = campaign("  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, null], explore: 0.5}}\n")
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("comment", 2, "u", text="要券")]
    decisions = [d.record() for d in run(camp, events)]
    parsed = [parse_event(e) for e in events]
    html = render_report(camp, campaign_metrics(camp, decisions, parsed), decisions, orders_of(parsed, camp))
    assert "千人千面 · pick" in html and "SNIPS" in html
