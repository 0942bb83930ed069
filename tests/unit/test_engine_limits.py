"""What happens once a trigger fires for a user (SPEC §4 steps 1-4): experiments and
holdouts, per_user / min_interval caps, template validity, stock and budget."""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import campaign, ev, expected_variant, outcomes, records, watch

SAY = '  - {name: say, when: host_says, phrases: ["发券"], coupon: c10, cooldown: 0}'
KOU1 = '  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}'


def say(t: float, room: str = "r1") -> dict[str, Any]:
    return ev("transcript", t, room=room, text="发券")


def by_ts(*parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((e for part in parts for e in part), key=lambda e: e["ts"])


# -- per_user ---------------------------------------------------------------------------

def test_per_user_caps_coupons_per_broadcast() -> None:
    camp = campaign(SAY, tail="limits: {per_user: 2}")
    events = by_ts([ev("live_start", 0)], watch("u", 1, 30), [say(10), say(20), say(30)],
                   [ev("live_start", 40)], watch("u", 41, 50), [say(50)])
    assert outcomes(camp, events) == [(10, "u", "say", "c10"), (20, "u", "say", "c10"),
                                      (30, "u", "say", "per_user_cap"), (50, "u", "say", "c10")]


def test_per_user_counts_all_triggers_together_per_room() -> None:
    triggers = "  - {name: newcomer, when: first_visit, coupon: c20}\n" + SAY
    camp = campaign(triggers, rooms='["r1", "r2"]', tail="limits: {per_user: 1}")
    events = [ev("live_start", 0), ev("live_start", 0, room="r2"), ev("join", 1, "u"), ev("join", 2, "u", room="r2"),
              say(10), say(20, "r2")]
    assert outcomes(camp, events) == [(1, "u", "newcomer", "c20"), (10, "u", "say", "per_user_cap"),
                                      (20, "u", "say", "c10")]


def test_only_issued_coupons_count_toward_per_user() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m}
  none: {title: gone, kind: no_threshold, amount: 10, valid_for: 15m, stock: 0}
"""
    triggers = '  - {name: first, when: host_says, phrases: ["发券"], coupon: none, cooldown: 0}\n' + SAY
    camp = campaign(triggers, coupons=coupons, tail="limits: {per_user: 1, min_interval: 1h}")
    events = [ev("live_start", 0), ev("join", 1, "u"), say(10)]
    assert outcomes(camp, events) == [(10, "u", "first", "out_of_stock"), (10, "u", "say", "c10")]


# -- min_interval -----------------------------------------------------------------------

@pytest.mark.parametrize(("second", "result"), [(119.999, "min_interval"), (120, "c10")])
def test_min_interval_exactly_equal_allows(second: float, result: str) -> None:
    camp = campaign(SAY, tail="limits: {min_interval: 2m}")
    events = by_ts([ev("live_start", 0)], watch("u", 0, 120), [say(0), say(second)])
    assert outcomes(camp, events) == [(0, "u", "say", "c10"), (second, "u", "say", result)]


def test_min_interval_counts_from_the_last_issued_coupon_only() -> None:
    camp = campaign(SAY, tail="limits: {min_interval: 2m}")
    events = by_ts([ev("live_start", 0)], watch("u", 0, 240), [say(0), say(100), say(120), say(239.999)])
    assert outcomes(camp, events) == [(0, "u", "say", "c10"), (100, "u", "say", "min_interval"),
                                      (120, "u", "say", "c10"), (239.999, "u", "say", "min_interval")]


def test_min_interval_is_campaign_wide_across_rooms_and_broadcasts() -> None:
    camp = campaign(SAY, rooms='["r1", "r2"]', tail="limits: {min_interval: 2m}")
    events = by_ts([ev("live_start", 0), ev("live_start", 0, room="r2")], watch("u", 0, 100),
                   watch("u", 0, 100, room="r2"), [say(10), say(60, "r2"), ev("live_start", 90), ev("join", 91, "u"),
                                                   say(100)])
    assert [(t, room_result) for t, _, _, room_result in outcomes(camp, events)] == [
        (10, "c10"), (60, "min_interval"), (100, "min_interval")]


def test_per_user_is_checked_before_min_interval() -> None:
    camp = campaign(SAY, tail="limits: {per_user: 1, min_interval: 10m}")
    events = [ev("live_start", 0), ev("join", 0, "u"), say(1), say(2)]
    assert outcomes(camp, events) == [(1, "u", "say", "c10"), (2, "u", "say", "per_user_cap")]


# -- template validity, stock, budget ---------------------------------------------------

def test_issued_coupon_expires_valid_for_after_issue() -> None:
    camp = campaign(SAY)
    got = records(camp, [ev("live_start", 0), ev("join", 1, "u"), say(10.5)])
    assert [(r["ts"], r["coupon"], r["expires_at"]) for r in got] == [(10_500, "c10", 10_500 + 900_000)]


@pytest.mark.parametrize(("at", "result"), [(1_700_000_000, "late"), (1_700_000_000.001, "template_expired")])
def test_template_past_valid_until_is_suppressed(at: float, result: str) -> None:
    coupons = """
coupons:
  late: {title: late, kind: no_threshold, amount: 10, valid_until: "2023-11-15T06:13:20+08:00", stock: 0}
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m}
"""
    triggers = '  - {name: say, when: host_says, phrases: ["发券"], coupon: late, cooldown: 0}'
    camp = campaign(triggers, coupons=coupons.replace("stock: 0", "stock: 5"))
    got = records(camp, [ev("live_start", at - 5), ev("join", at - 5, "u"), say(at)])
    if result == "late":
        assert [(r["coupon"], r["expires_at"]) for r in got] == [("late", 1_700_000_000_000)]
    else:
        assert [r["reason"] for r in got] == ["template_expired"]
    # template validity is judged before stock
    camp = campaign(triggers, coupons=coupons)
    got = records(camp, [ev("live_start", at - 5), ev("join", at - 5, "u"), say(at)])
    assert [r.get("reason") for r in got] == ["out_of_stock" if result == "late" else "template_expired"]


def test_stock_is_shared_by_triggers_rooms_and_broadcasts_and_serves_the_longest_watching_first() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 3}
"""
    triggers = SAY + '\n  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}'
    camp = campaign(triggers, coupons=coupons, rooms='["r1", "r2"]')
    events = [ev("live_start", 0), ev("live_start", 0, room="r2"), ev("comment", 1, "x", room="r2", text="扣1"),
              ev("join", 3, "b"), ev("join", 2, "c"), ev("join", 3, "a"), say(5)]
    events.sort(key=lambda e: e["ts"])
    assert outcomes(camp, events) == [(1, "x", "kou1", "c10"), (5, "c", "say", "c10"), (5, "a", "say", "c10"),
                                      (5, "b", "say", "out_of_stock")]


def test_stock_is_checked_before_budget() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 1}
"""
    camp = campaign(SAY, coupons=coupons, tail="limits: {budget: 10}")
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b"), say(5)]
    assert outcomes(camp, events) == [(5, "a", "say", "c10"), (5, "b", "say", "out_of_stock")]


def test_min_interval_is_checked_before_stock() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 1}
"""
    camp = campaign(SAY, coupons=coupons, tail="limits: {min_interval: 10m}")
    events = [ev("live_start", 0), ev("join", 1, "a"), say(5), ev("join", 6, "b"), say(7)]
    assert outcomes(camp, events) == [(5, "a", "say", "c10"), (7, "a", "say", "min_interval"),
                                      (7, "b", "say", "out_of_stock")]


def test_budget_exactly_reached_is_allowed_and_counts_face_values() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m}
  pct: {title: pct, kind: percent, percent: 12.5, max_discount: 25.5, valid_for: 15m}
  big: {title: big, kind: threshold, threshold: 500, amount: 4.5, valid_for: 15m}
"""
    triggers = (SAY + '\n  - {name: pct, when: host_says, phrases: ["折扣"], coupon: pct, cooldown: 0}'
                + '\n  - {name: big, when: host_says, phrases: ["大额"], coupon: big, cooldown: 0}')
    camp = campaign(triggers, coupons=coupons, tail="limits: {budget: 50}")
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b"),
              ev("transcript", 5, text="折扣"),  # 25.5 + 0 -> a; 51 > 50 -> b over
              say(6),  # 25.5 + 10 -> a: 35.5; 45.5 -> b
              ev("transcript", 7, text="大额"),  # 45.5 + 4.5 = 50 exactly -> a; b over
              say(8)]
    assert outcomes(camp, events) == [
        (5, "a", "pct", "pct"), (5, "b", "pct", "over_budget"),
        (6, "a", "say", "c10"), (6, "b", "say", "c10"),
        (7, "a", "big", "big"), (7, "b", "big", "over_budget"),
        (8, "a", "say", "over_budget"), (8, "b", "say", "over_budget")]


def test_budget_is_campaign_wide() -> None:
    camp = campaign(SAY, rooms='["r1", "r2"]', tail="limits: {budget: 20}")
    events = [ev("live_start", 0), ev("live_start", 0, room="r2"), ev("join", 1, "a"), ev("join", 1, "b", room="r2"),
              say(2), say(3, "r2"), ev("live_start", 4), ev("join", 5, "c"), say(6)]
    assert outcomes(camp, events) == [(2, "a", "say", "c10"), (3, "b", "say", "c10"), (6, "c", "say", "over_budget")]


# -- experiments ------------------------------------------------------------------------

EXPERIMENT = """
experiments:
  - name: kou-value
    trigger: kou1
    salt: SALT
    variants:
      - {name: control, weight: 1, coupon: null}
      - {name: ten, coupon: c10}
      - {name: twenty, weight: 2, coupon: c20}
"""
WEIGHTS = [("control", 1.0), ("ten", 1.0), ("twenty", 2.0)]
COUPON_OF = {"ten": "c10", "twenty": "c20"}
USERS = [f"user-{i}" for i in range(24)]


def commenting(users: list[str]) -> list[dict[str, Any]]:
    return [ev("live_start", 0), *[ev("comment", 1 + i, u, text="扣1") for i, u in enumerate(users)]]


@pytest.mark.parametrize(("salt_line", "salt"), [("salt: kv-1", "kv-1"), ("", "kou-value")])
def test_experiment_assigns_variants_by_sha256_bucket(salt_line: str, salt: str) -> None:
    camp = campaign(KOU1, tail=EXPERIMENT.replace("salt: SALT", salt_line))
    expected_variants = {u: expected_variant(salt, u, WEIGHTS) for u in USERS}
    assert set(expected_variants.values()) == {"control", "ten", "twenty"}  # the scenario covers every arm
    expected = []
    for i, user in enumerate(USERS):
        variant = expected_variants[user]
        line: dict[str, Any] = {"ts": (1 + i) * 1000, "room": "r1", "user": user, "trigger": "kou1"}
        if variant == "control":
            line["reason"] = "holdout"
        else:
            line.update(coupon=COUPON_OF[variant], expires_at=(1 + i) * 1000 + 900_000)
        line.update(experiment="kou-value", variant=variant)
        expected.append(line)
    got = records(camp, commenting(USERS))
    for line in got:
        line.pop("coupon_id", None)
    assert got == expected


def test_experiment_never_assigns_a_zero_weight_variant() -> None:
    tail = """
experiments:
  - name: e
    trigger: kou1
    variants:
      - {name: zero, weight: 0, coupon: c20}
      - {name: main, weight: 3, coupon: c10}
      - {name: never, weight: 0, coupon: null}
"""
    got = outcomes(campaign(KOU1, tail=tail), commenting(USERS))
    assert [result for _, _, _, result in got] == ["c10"] * len(USERS)


def test_holdout_is_decided_before_the_caps() -> None:
    camp = campaign(KOU1, tail=EXPERIMENT.replace("SALT", "s") + "limits: {per_user: 0}")
    got = outcomes(camp, commenting(USERS))
    expected = ["holdout" if expected_variant("s", u, WEIGHTS) == "control" else "per_user_cap" for u in USERS]
    assert [result for _, _, _, result in got] == expected


def test_holdout_counts_toward_no_limit_but_uses_up_the_trigger() -> None:
    tail = """
limits: {per_user: 1, min_interval: 1h, budget: 10}
experiments:
  - {name: e, trigger: kou1, variants: [{name: control, coupon: null}]}
"""
    camp = campaign(KOU1 + "\n" + SAY, tail=tail)
    events = [ev("live_start", 0), ev("comment", 1, "u", text="扣1"), ev("comment", 2, "u", text="扣1"), say(3)]
    assert outcomes(camp, events) == [(1, "u", "kou1", "holdout"), (3, "u", "say", "c10")]


def test_experiment_on_an_audience_trigger_assigns_each_user() -> None:
    tail = EXPERIMENT.replace("trigger: kou1", "trigger: say").replace("SALT", "x")
    camp = campaign(SAY, tail=tail)
    users = USERS[:8]
    events = [ev("live_start", 0), *[ev("join", 1 + i, u) for i, u in enumerate(users)], say(20)]
    expected = []
    for user in users:
        variant = expected_variant("x", user, WEIGHTS)
        expected.append((user, variant, "holdout" if variant == "control" else COUPON_OF[variant]))
    got = records(camp, events)
    assert [(r["user"], r["variant"], r.get("reason", r.get("coupon"))) for r in got] == expected
