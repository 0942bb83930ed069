"""Personalised offers (SPEC §4): arms chosen by a policy, exact propensities, learning, replay."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import campaign, ev, run, to_lines

from livecoupon.analytics.metrics import campaign_metrics
from livecoupon.campaign_file import CampaignError
from livecoupon.domain.events import parse_event
from livecoupon.domain.offers import Offer, Policy
from livecoupon.engine.engine import Engine
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.store.memory import MemoryStore

ASK = "  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, c20, null], explore: %s}}\n"


def asking(users: int, *, start: float = 1, with_orders: bool = False) -> list[dict[str, Any]]:
    """Each user joins and asks for a coupon; ``with_orders``: then orders (amount 0 until a test sets it)."""
    events: list[dict[str, Any]] = [ev("live_start", 0)]
    for i in range(users):
        user, t = f"u{i:04d}", start + i
        events += [ev("join", t, user), ev("comment", t + 0.1, user, text="要券")]
        if with_orders:
            events.append({"type": "order", "room": "r1", "ts": t + 0.5, "user": user, "order_id": f"o{i}",
                           "amount": 0})
    return events


def test_each_decision_records_its_arm_and_exact_propensity(tmp_path: Path) -> None:
    camp = campaign(ASK % 0.3)
    made = run(camp, asking(300))
    assert len(made) == 300
    arms = Counter(d.request.template.name if d.request.template else None for d in made)
    assert set(arms) <= {"c10", "c20", None}
    for d in made:
        p = d.request.propensity
        assert p is not None and (p == pytest.approx(0.1) or p == pytest.approx(0.1 + 0.7))
    assert all(d.reason is not None and d.reason.value == "no_offer" for d in made if d.request.template is None)
    write_outputs(replay(camp, [json.dumps(e) for e in asking(300)]), tmp_path)
    lines = [json.loads(x) for f in ("issued.jsonl", "suppressed.jsonl")
             for x in (tmp_path / f).read_text().splitlines()]
    assert len(lines) == 300 and all({"arm", "propensity"} <= set(line) for line in lines)
    assert {line["arm"] for line in lines if line.get("reason") == "no_offer"} <= {None}


def test_a_lottery_draws_among_the_viewers_its_policy_offered_a_coupon() -> None:
    """SPEC §4: the policy chooses between steps 1 and 2, and a lottery draws among those passing step 2: a viewer
    offered nothing is decided so (``no_offer``), and never drawn (a drawn winner got a ``no_offer`` line)."""
    lucky = ("  - {name: lucky, when: online_reached, count: 40, audience: lottery, winners: 8,"
             " offer: {arms: [null, c10], explore: 1.0}}\n")
    events = [ev("live_start", 0), *(ev("join", 1 + i / 100, f"u{i:02d}") for i in range(40)),
              ev("online_count", 2, count=40)]
    made = run(campaign(lucky), events)
    nothing = [d for d in made if d.request.template is None]
    drawn = [d for d in made if d.request.template is not None]
    assert nothing and all(d.reason is not None and d.reason.value == "no_offer" for d in nothing)
    assert len(drawn) == 8 and all(d.issued for d in drawn)
    assert len(made) == len(nothing) + 8 and len({d.request.user for d in made}) == len(made)
    assert [d.request.user for d in nothing] == sorted(d.request.user for d in nothing)  # in join order


def test_the_propensities_are_calibrated_under_uniform_exploration() -> None:
    made = run(campaign(ASK % 1.0), asking(3_000))
    weights = Counter()
    for d in made:
        assert d.request.propensity == pytest.approx(1 / 3)
        weights[d.request.template.name if d.request.template else None] += 1 / d.request.propensity
    for arm in ("c10", "c20", None):
        assert weights[arm] / len(made) == pytest.approx(1.0, abs=0.1)


def test_the_policy_learns_which_arm_pays_and_replay_reproduces_its_choices() -> None:
    camp = campaign(ASK % 0.2)
    events = asking(2_000, with_orders=True)
    first = run(camp, events)  # no orders yet: every order is worth 0, so pick the cheapest that gains as much
    arm_of = {d.request.user: (d.request.template.name if d.request.template else None) for d in first}
    for e in events:  # a world where only the 20-yuan coupon makes people buy (for 300 yuan)
        if e["type"] == "order":
            e["amount"] = 300 if arm_of.get(e["user"]) == "c20" else 0
    # the same stream, now with the outcomes: the later choices lean to c20
    learned = run(camp, events)
    late = Counter(d.request.template.name if d.request.template else None for d in learned[1_000:])
    assert late["c20"] > 0.7 * 1_000
    again = run(camp, events)
    assert [(d.request.coupon_id, d.request.template, d.request.propensity) for d in again] == [
        (d.request.coupon_id, d.request.template, d.request.propensity) for d in learned]


def test_the_price_paces_the_budget_as_if_the_requests_to_come_were_like_those_seen() -> None:
    camp = campaign(ASK % 0.1)
    policy = Policy.of(Offer(("c10", "c20", None), 0.1), camp.coupons)
    a, b = "a|-|new|first", "b|-|new|first"
    # level a orders 50 yuan more after either coupon; level b only after the 20-yuan one, 30 yuan more
    outcomes = {(a, 0): 5_000, (a, 1): 5_000, (a, 2): 0, (b, 0): 0, (b, 1): 3_000, (b, 2): 0}
    for _ in range(200):
        for (segment, arm), value in outcomes.items():
            policy.offered(segment, arm)
            if value:
                policy.followed(segment, arm, value)
    policy.demand, policy.requests = {a: 50, b: 50}, 100
    assert policy.pace(10**9) == 0  # plenty: every segment its best coupon
    # 6 yuan a request: paying for b's coupon (1.5 fen of gain a fen) no longer fits; a's c10 (5 a fen) does
    price = policy.pace(600 * 100)
    assert 1.5 <= price < 5
    policy.demand, policy.requests = {a: 50, b: 50}, 96  # the next request re-paces, with 6 yuan a request left
    picks = Counter((segment, policy.choose(random.Random(n), segment, 600 * 100).arm)
                    for n, segment in enumerate((a, b) * 15))
    assert 1.5 <= policy.price < 5
    assert picks[(a, camp.coupons["c10"])] >= 12 and picks[(b, None)] >= 12


def test_spend_never_passes_the_budget() -> None:
    camp = campaign(ASK % 0.1, tail="limits: {budget: 300}")
    made = run(camp, asking(200))
    spent = sum(d.request.template.terms.face_value for d in made if d.issued and d.request.template)
    assert 0 < spent <= 300 * 100


def test_cold_start_holds_the_cheapest_arm_and_only_exploration_tries_coupons() -> None:
    made = run(campaign(ASK % 0.3), asking(300))  # no orders at all: no coupon has shown a gain
    greedy = 0.3 / 3 + 0.7
    assert all(d.request.template is None for d in made if d.request.propensity == pytest.approx(greedy))
    issued = [d for d in made if d.issued]
    assert issued and all(d.request.propensity == pytest.approx(0.1) for d in issued)


def test_once_the_budget_is_gone_the_policy_prices_every_coupon_out() -> None:
    camp = campaign(ASK % 0.2, tail="limits: {budget: 200}")
    events = asking(400, with_orders=True)
    for e in events:
        if e["type"] == "order":
            e["amount"] = 300  # everyone orders: every arm shows the same gain, so the cheapest is held
    made = run(camp, events)
    spent = sum(d.request.template.terms.face_value for d in made if d.issued and d.request.template)
    assert spent <= 200 * 100
    late = made[-100:]  # long after the budget ran out: no coupon is issued, whatever the policy draws
    assert not [d for d in late if d.issued]
    assert {d.reason.value for d in late if d.reason} <= {"no_offer", "over_budget"}


def test_an_arm_out_of_stock_is_no_longer_offered_and_the_propensities_say_so() -> None:
    camp = campaign(ASK % 0.6)
    limited = camp.coupons["c20"]
    camp = replace(camp, coupons=camp.coupons | {"c20": replace(limited, stock=5)})
    made = run(camp, asking(400))
    c20 = [d for d in made if d.request.template is not None and d.request.template.name == "c20"]
    assert len(c20) == 5 and all(d.issued for d in c20)  # no viewer is offered a coupon that is gone
    after = made[made.index(c20[-1]) + 1:]
    assert after and all(d.request.template is None or d.request.template.name == "c10" for d in after)
    assert {round(d.request.propensity or 0, 4) for d in after} <= {round(0.6 / 2, 4), round(0.6 / 2 + 0.4, 4)}


def test_an_experiment_can_put_the_policy_against_fixed_coupons_and_a_holdout(tmp_path: Path) -> None:
    """Every line of an offer trigger carries its arm and propensity (SPEC §6), a fixed variant's too: the arm it gave,
    with certainty. The holdout stays a holdout (not an offer of nothing)."""
    tail = ("experiments:\n  - name: policy-vs-fixed\n    trigger: pick\n    variants:\n"
            "      - {name: control, coupon: null}\n      - {name: fixed, coupon: c10}\n"
            "      - {name: policy, coupon: offer}\n")
    result = replay(campaign(ASK % 0.3, tail=tail), to_lines(asking(600)))
    by_variant: dict[str, list[Any]] = {}
    for d in result.decisions:
        by_variant.setdefault(d.request.variant or "", []).append(d)
    assert all(d.reason and d.reason.value == "holdout" and d.request.propensity == 1.0
               for d in by_variant["control"])
    assert all(d.request.template and d.request.template.name == "c10" and d.request.propensity == 1.0
               for d in by_variant["fixed"])
    assert all(d.request.propensity is not None and d.request.propensity < 1 for d in by_variant["policy"])
    assert any(d.reason and d.reason.value == "no_offer" for d in by_variant["policy"])
    write_outputs(result, tmp_path)
    lines = [json.loads(line) for name in ("issued.jsonl", "suppressed.jsonl")
             for line in (tmp_path / name).read_text().splitlines()]
    assert lines and all("arm" in line and 0 < line["propensity"] <= 1 for line in lines)
    assert {(line["variant"], line["arm"], line["propensity"]) for line in lines if line["variant"] != "policy"} == {
        ("control", None, 1.0), ("fixed", "c10", 1.0)}


def test_an_experiments_fixed_variants_teach_the_policy_as_its_own_offers_do() -> None:
    """Only the fixed 20-yuan variant's users order: the policy, which never explores (explore is
    tiny), learns from them alone that c20 pays, and chooses it for its own users."""
    tail = ("experiments:\n  - name: teach\n    trigger: pick\n    variants:\n"
            "      - {name: fixed, coupon: c20}\n      - {name: policy, coupon: offer}\n")
    camp = campaign(ASK.replace("c10, ", "") % 0.001, tail=tail)
    events = asking(1_200, with_orders=True)
    variant_of = {d.request.user: d.request.variant for d in run(camp, events)}
    for e in events:
        if e["type"] == "order":
            e["amount"] = 300 if variant_of.get(e["user"]) == "fixed" else 0
    made = run(camp, events)
    policy = [d for d in made if d.request.variant == "policy"]
    late = Counter(d.request.template.name if d.request.template else None for d in policy[len(policy) // 2:])
    assert late["c20"] > 0.9 * sum(late.values())
    for e in events:  # the same stream where the fixed users' orders are worth nothing: "nothing" is held
        if e["type"] == "order":
            e["amount"] = 0
    held = [d for d in run(camp, events) if d.request.variant == "policy"]
    assert sum(1 for d in held if d.request.template is not None) < 0.01 * len(held)


def test_the_context_tells_engagement_history_and_shared_devices_apart() -> None:
    camp = campaign(ASK % 0.1)
    engine = Engine(camp, MemoryStore())
    for e in [ev("live_start", 0), ev("join", 1, "a", device="d1", profile={"level": "gold"}),
              ev("join", 2, "b", device="d1"), ev("join", 3, "c", device="d2"), ev("comment", 4, "a", text="要券")]:
        engine.apply(parse_event(e))
    book, room = engine.offers, engine.rooms["r1"]
    a, b, c = (book.context(u, room, engine.facts[u].profile, engine.facts[u].device, 5_000) for u in "abc")
    assert (a.level, a.engaged, a.history, a.device) == ("gold", True, "ignored", "own")  # its 要券 had an offer
    assert (b.level, b.engaged, b.history, b.device) == (None, False, "first", "shared")  # another account on d1
    assert (c.engaged, c.device) == (False, "own") and a.watched_ms == 4_000
    assert a.segment.startswith("gold|") and len({a.segment, b.segment, c.segment}) == 3
    engine.apply(parse_event({"type": "order", "room": "r1", "ts": 6, "user": "a", "order_id": "o1", "amount": 50}))
    assert book.context("a", room, None, "d1", 7_000).history == "took"


def test_a_trigger_with_its_own_budget_paces_on_the_tighter_of_it_and_the_campaigns() -> None:
    camp = campaign("  - {name: pick, when: comment, keywords: [要券], budget: 100,\n"
                    "     offer: {arms: [c10, c20, null], explore: 0.1}}", tail="limits: {budget: 100000}")
    made = run(camp, asking(300))
    spent = sum(d.request.template.terms.face_value for d in made if d.issued and d.request.template)
    assert 0 < spent <= 100 * 100
    engine = Engine(camp, MemoryStore())
    for e in asking(300):
        engine.apply(parse_event(e))
    (trigger,) = camp.triggers
    assert engine.store.spent(camp.campaign, trigger.name) == spent
    assert engine.offers.left(trigger, campaign_spent=spent, trigger_spent=spent) == 100 * 100 - spent  # tighter
    assert engine.offers.left(trigger, campaign_spent=100_000 * 100, trigger_spent=spent) == 0


def test_the_report_shows_how_the_policys_choices_moved() -> None:
    camp = campaign(ASK % 0.2)
    events = asking(800, with_orders=True)
    arm_of = {d.request.user: (d.request.template.name if d.request.template else None) for d in run(camp, events)}
    for e in events:
        if e["type"] == "order":
            e["amount"] = 300 if arm_of.get(e["user"]) == "c20" else 0
    result = replay(camp, to_lines(events))
    records = [d.record() for d in result.decisions]
    parsed = [parse_event(e) for e in events]
    offers = campaign_metrics(camp, records, parsed)["offers"]["pick"]
    phases = offers["phases"]
    assert [p["decisions"] for p in phases] == [200] * 4 and phases[0]["from"] <= phases[-1]["from"]
    assert all(sum(p["shares"].values()) == pytest.approx(1) for p in phases)
    assert phases[-1]["shares"]["c20"] > phases[0]["shares"]["c20"] + 0.3  # it learnt c20 pays
    assert offers["spend"]["of"] == "campaign"


def test_the_spend_is_shown_against_the_trigger_budget_and_what_the_plan_meant_to_spend_by_then() -> None:
    camp = campaign("  - {name: pick, when: comment, keywords: [要券], budget: 100,\n"
                    "     offer: {arms: [c10, c20, null], explore: 0.5, plan: 20m}}", tail="limits: {budget: 100000}")
    events = asking(800)
    records = [d.record() for d in replay(camp, to_lines(events)).decisions]
    spend = campaign_metrics(camp, records, [parse_event(e) for e in events])["offers"]["pick"]["spend"]
    issued = sum(camp.coupons[r.template].terms.face_value or 0 for r in records if r.issued and r.template)
    first, last = records[0].at, records[-1].at
    assert spend == {"spent": issued / 100, "budget": 100.0, "of": "trigger", "plan_minutes": 20.0,
                     "planned": round(100 * (last - first) / (20 * 60_000), 2)}


@pytest.mark.parametrize(("offer", "error"), [
    ("{arms: [c10, nope]}", "triggers[0].offer.arms[1]: 未知的券 / unknown coupon 'nope'"),
    ("{arms: []}", "triggers[0].offer.arms: 至少列出一个候选（券名，或 null 表示不发） / list at least one arm"),
    ("{arms: [c10, c10]}", "triggers[0].offer.arms[1]: 重复列出 / 'c10' is listed twice"),
    ("{arms: [null, c10, null]}", "triggers[0].offer.arms[2]: 重复列出 / null is listed twice"),
    ("{arms: [c10, null], explore: 0}", "triggers[0].offer.explore: 必须大于 0 且不超过 1 / must be in (0, 1]"),
    ("{arms: [c10, null], explore: 1.5}", "triggers[0].offer.explore: 必须大于 0 且不超过 1 / must be in (0, 1]"),
    ("{arms: [c10, null], plan: 0}", "triggers[0].offer.plan: 必须是大于 0 的时长 / must be a duration > 0"),
    ("{arms: [c10, null], plan: soon}", "triggers[0].offer.plan"),
])
def test_offers_are_validated(offer: str, error: str) -> None:
    with pytest.raises(CampaignError) as info:
        campaign(f"  - {{name: pick, when: comment, keywords: [要券], offer: {offer}}}\n")
    assert any(line.startswith(error) for line in info.value.errors), info.value.errors


def test_coupon_and_offer_together_or_offer_variants_without_an_offer_are_errors() -> None:
    with pytest.raises(CampaignError) as both:
        campaign("  - {name: p, when: comment, keywords: [x], coupon: c10, offer: {arms: [c10, null]}}\n")
    assert "triggers[0].offer: coupon 与 offer 只能二选一 / give either coupon or offer, not both" in both.value.errors
    tail = "experiments:\n  - {name: e, trigger: p, variants: [{name: a, coupon: offer}]}\n"
    with pytest.raises(CampaignError) as variant:
        campaign("  - {name: p, when: comment, keywords: [x], coupon: c10}\n", tail=tail)
    assert any("'offer' needs trigger 'p' to have an offer" in e for e in variant.value.errors)


def test_the_policy_learns_from_every_choice_its_coupon_refused_or_not() -> None:
    # as tests/unit/test_offpolicy.py's refused choices: the coupon moves no one, risky viewers (refused it, never
    # "nothing") buy ten times more. Learning only from the coupons that got through, "nothing" learnt the heavy
    # buyers' orders and c10 none of them: c10 looked worth a third of "nothing"
    camp = campaign("  - {name: pick, when: comment, keywords: [要券], offer: {arms: [c10, null], explore: 1}}\n",
                    tail="limits: {max_risk: 0.5}")
    engine = Engine(camp, MemoryStore())
    engine.apply(parse_event(ev("live_start", 0)))
    for i in range(400):
        user, risky = f"u{i}", i % 4 == 0
        joined = dict(ev("join", 1 + i, user), risk=0.9 if risky else 0.1)
        for data in (joined, ev("comment", 1.5 + i, user, text="要券"),
                     {"type": "order", "room": "r1", "ts": 2 + i, "user": user, "order_id": f"o{i}",
                      "amount": 500 if risky else 50}):
            engine.apply(parse_event(data))
    policy = engine.offers.policies["pick"]
    per_arm = {arm: [t for (_, index), t in policy.by_level.items() if index == arm] for arm in (0, 1)}
    offers = {arm: sum(t.offers for t in tallies) for arm, tallies in per_arm.items()}
    value = {arm: sum(t.value for t in tallies) / offers[arm] for arm, tallies in per_arm.items()}
    assert sum(offers.values()) == 400
    assert 0.7 < value[0] / value[1] < 1.4, value


def test_an_audience_s_viewers_are_never_offered_the_coupons_its_earlier_choices_took() -> None:
    # one firing for everyone present, arms c20 (3 in stock) and c10 at explore 1: once three viewers drew c20, the
    # others are offered c10 (they were all offered c20 by chance and got nothing, ~half of 40)
    camp = campaign("  - {name: say, when: host_says, phrases: [发券啦], audience: present, "
                    "offer: {arms: [c20, c10], explore: 1}}\n")
    camp = replace(camp, coupons=camp.coupons | {"c20": replace(camp.coupons["c20"], stock=3)})
    events = [ev("live_start", 0), *[ev("join", 1 + i / 100, f"u{i}") for i in range(40)],
              ev("transcript", 5, text="宝宝们发券啦")]
    made = [d for d in run(camp, events) if d.request.trigger == "say"]
    assert len(made) == 40 and all(d.issued for d in made)
    assert sum(1 for d in made if d.request.template is not None and d.request.template.name == "c20") == 3
    c10 = [d for d in made if d.request.template is not None and d.request.template.name == "c10"]
    assert len(c10) == 37
    later = made[max(i for i, d in enumerate(made) if d.request.template and d.request.template.name == "c20") + 1:]
    assert later and all(d.request.propensity == 1.0 for d in later)  # one arm left: chosen for certain
