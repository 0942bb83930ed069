"""The per-user triggers of SPEC §4: first_visit, dwell, flash_sale, comment, and the
order in which one event's or one timer's firings are decided."""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import apply_live, by_ts, campaign, ev, outcomes, room_outcomes, run, watch

from livecoupon.store.memory import MemoryStore

NEWCOMER = "  - {name: newcomer, when: first_visit, coupon: c10}"
DWELL = "  - {name: stay, when: dwell, after: 5m, coupon: c20}"
FLASH = "  - {name: flash, when: flash_sale, coupon: c30}"
KOU1 = '  - {name: kou1, when: comment, keywords: ["扣1", "Want It"], coupon: c10}'


# -- first_visit ------------------------------------------------------------------------

def test_first_visit_once_per_user_forever_across_rooms_and_broadcasts() -> None:
    camp = campaign(NEWCOMER, rooms='["r1", "r2"]')
    events = [ev("live_start", 0, room="r1"), ev("live_start", 0, room="r2"),
              ev("join", 10, "u", room="r1"), ev("join", 20, "u", room="r2"), ev("join", 25, "v", room="r2"),
              ev("leave", 30, "u", room="r1"), ev("join", 40, "u", room="r1"),
              ev("live_end", 50, room="r1"), ev("live_start", 60, room="r1"), ev("join", 70, "u", room="r1"),
              ev("join", 80, "v", room="r1")]
    assert room_outcomes(camp, events) == [("r1", (10, "u", "newcomer", "c10")), ("r2", (25, "v", "newcomer", "c10"))]


def test_first_visit_history_outlives_a_restart() -> None:
    camp = campaign(NEWCOMER)
    store = MemoryStore()
    _, first = apply_live(camp, [ev("live_start", 0), ev("join", 10, "u")], store)
    _, after_restart = apply_live(camp, [ev("live_start", 100), ev("join", 110, "u"), ev("join", 120, "v")], store)
    assert [d.request.user for d in first] == ["u"]
    assert [(d.request.user, d.request.at) for d in after_restart] == [("v", 120_000)]


def test_first_visit_for_a_viewer_first_seen_off_air_comes_at_the_first_on_air_join() -> None:
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0), ev("live_end", 10), ev("join", 20, "u"), ev("comment", 21, "u", text="hi"),
              ev("live_start", 30), ev("order", 35, "u", order_id="o1", amount=5), ev("heartbeat", 40, "u")]
    assert outcomes(camp, events) == [(40, "u", "newcomer", "c10")]


@pytest.mark.parametrize(("kind", "extra"), [
    ("heartbeat", {}), ("comment", {"text": "hi"}), ("like", {}), ("follow", {}), ("gift", {"value": 1}),
])
def test_first_visit_fires_at_an_implied_join(kind: str, extra: dict[str, Any]) -> None:
    camp = campaign(NEWCOMER)
    assert outcomes(camp, [ev("live_start", 0), ev(kind, 7.25, "u", **extra)]) == [(7.25, "u", "newcomer", "c10")]


def test_leave_and_order_are_not_joins_for_first_visit() -> None:
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0), ev("leave", 1, "u"), ev("order", 2, "u", order_id="o1", amount=9.9),
              ev("join", 3, "u")]
    assert outcomes(camp, events) == [(3, "u", "newcomer", "c10")]


def test_first_visit_ignores_rooms_the_campaign_does_not_list() -> None:
    camp = campaign(NEWCOMER, rooms='["r1"]')
    events = [ev("live_start", 0, room="other"), ev("join", 1, "u", room="other"), ev("live_start", 2),
              ev("join", 3, "u")]
    assert room_outcomes(camp, events) == [("r1", (3, "u", "newcomer", "c10"))]


def test_first_visit_suppressed_still_uses_it_up() -> None:
    camp = campaign(NEWCOMER, tail="limits: {per_user: 0}")
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("live_start", 10), ev("join", 11, "u")]
    assert outcomes(camp, events) == [(1, "u", "newcomer", "per_user_cap")]


# -- dwell ------------------------------------------------------------------------------

def dwell_outcomes(events: list[dict[str, Any]], triggers: str = DWELL, **kwargs: Any) -> list[tuple[float, str]]:
    return [(t, user) for t, user, trigger, _ in outcomes(campaign(triggers, **kwargs), by_ts(events))
            if trigger == "stay"]


def test_dwell_fires_exactly_at_join_plus_after() -> None:
    events = [ev("live_start", 0), *watch("u", 10.5, 400)]
    assert dwell_outcomes(events) == [(310.5, "u")]


def test_dwell_issues_the_coupon_with_its_expiry() -> None:
    decisions = run(campaign(DWELL), by_ts([ev("live_start", 0), *watch("u", 0, 330)]))
    assert [(d.request.at, d.request.template and d.request.template.name, d.expires_at) for d in decisions] == [
        (300_000, "c20", 300_000 + 15 * 60_000)]


def test_dwell_timer_fires_before_an_event_at_the_same_ms() -> None:
    # kou1 is first in the file, but the dwell timer due at 300 fires before the
    # comment at 300 is applied.
    camp = campaign(KOU1 + "\n" + DWELL)
    events = by_ts([ev("live_start", 0), *watch("u", 0, 270), ev("join", 0, "v"),
                    ev("comment", 300, "v", text="扣1")])
    assert outcomes(camp, events) == [(300, "u", "stay", "c20"), (300, "v", "kou1", "c10")]


@pytest.mark.parametrize("last", [
    ev("leave", 300, "u"), ev("live_end", 300), ev("live_start", 300), ev("order", 300, "u", order_id="o", amount=1),
])
def test_dwell_due_at_the_ts_of_an_interrupting_event_still_fires(last: dict[str, Any]) -> None:
    assert dwell_outcomes([ev("live_start", 0), *watch("u", 0, 270), last]) == [(300, "u")]


@pytest.mark.parametrize(("order_at", "fires"), [
    (9.999, True),  # before the join
    (10, False),  # at the join
    (200, False),
    (309.999, False),  # the last ms of [join, join + after)
    (310, True),  # exactly join + after: not in the window
])
def test_dwell_is_prevented_by_an_order_in_join_to_join_plus_after(order_at: float, fires: bool) -> None:
    events = [ev("live_start", 0), *watch("u", 10, 400), ev("order", order_at, "u", order_id="o1", amount=5)]
    assert dwell_outcomes(events) == ([(310, "u")] if fires else [])


def test_dwell_order_in_another_room_does_not_prevent() -> None:
    events = [ev("live_start", 0), ev("live_start", 0, room="r2"), *watch("u", 0, 330),
              ev("order", 100, "u", room="r2", order_id="o1", amount=5)]
    assert dwell_outcomes(events, rooms='["r1", "r2"]') == [(300, "u")]


def test_dwell_clock_restarts_after_an_order_prevented_it() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 180), ev("order", 100, "u", order_id="o1", amount=5),
              ev("leave", 200, "u"), *watch("u", 400, 760)]
    assert dwell_outcomes(events) == [(700, "u")]


def test_dwell_is_interrupted_by_a_leave_and_restarts_at_the_next_join() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 180), ev("leave", 200, "u"), *watch("u", 250, 600)]
    assert dwell_outcomes(events) == [(550, "u")]


def test_dwell_is_interrupted_by_live_end_and_restarts_in_the_next_broadcast() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 180), ev("live_end", 200), ev("heartbeat", 230, "u"),
              ev("live_start", 250), *watch("u", 260, 600)]
    assert dwell_outcomes(events) == [(560, "u")]


def test_dwell_is_interrupted_by_live_start() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 180), ev("live_start", 200), *watch("u", 200, 600)]
    assert dwell_outcomes(events) == [(500, "u")]


@pytest.mark.parametrize(("gap_end", "expected"), [
    (90, [(300, "u")]),  # heartbeat at 30 then 90: 60 s apart, still present
    (90.001, [(390.001, "u")]),  # 60.001 s apart: timed out, the heartbeat is a new join
])
def test_dwell_is_interrupted_by_a_presence_timeout(gap_end: float, expected: list[tuple[float, str]]) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("heartbeat", 30, "u"), *watch("u", gap_end, 420)]
    events[3]["type"] = "heartbeat"
    assert dwell_outcomes(events) == expected


@pytest.mark.parametrize(("last_seen", "fires"), [(240, True), (239.999, False)])
def test_dwell_needs_presence_at_the_due_time(last_seen: float, fires: bool) -> None:
    events = [ev("live_start", 0), *watch("u", 0, 210), ev("heartbeat", last_seen, "u"), ev("join", 400, "v")]
    assert dwell_outcomes(events) == ([(300, "u")] if fires else [])


def test_dwell_rejoin_in_the_same_ms_makes_one_decision() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("leave", 0, "u"), *watch("u", 0, 330)]
    assert dwell_outcomes(events) == [(300, "u")]


def test_dwell_a_join_from_a_present_user_does_not_restart_the_clock() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 330), ev("join", 100, "u")]
    assert dwell_outcomes(events) == [(300, "u")]


def test_dwell_at_most_one_decision_per_user_per_broadcast_and_again_in_the_next() -> None:
    events = [ev("live_start", 0), *watch("u", 0, 300), ev("leave", 310, "u"), *watch("u", 320, 700),
              ev("live_start", 800), *watch("u", 800, 1200)]
    assert dwell_outcomes(events) == [(300, "u"), (1100, "u")]


def test_dwell_suppressed_decision_still_uses_up_the_broadcast() -> None:
    camp = campaign(NEWCOMER + "\n" + DWELL, tail="limits: {per_user: 1}")
    events = by_ts([ev("live_start", 0), *watch("u", 0, 300), ev("leave", 310, "u"), *watch("u", 320, 700)])
    assert outcomes(camp, events) == [(0, "u", "newcomer", "c10"), (300, "u", "stay", "per_user_cap")]


def test_dwell_timers_of_several_users_fire_in_due_order() -> None:
    events = [ev("live_start", 0), *watch("b", 0, 360), *watch("a", 0, 360), *watch("c", 20, 360)]
    # a and b are both due at 300: ties go to the order their timers were set (b joined first in file order)
    assert dwell_outcomes(events) == [(300, "b"), (300, "a"), (320, "c")]


def test_dwell_timer_ties_fire_in_the_order_they_were_set_not_in_file_order() -> None:
    triggers = ("  - {name: short, when: dwell, after: 30s, coupon: c10}\n"
                "  - {name: long, when: dwell, after: 60s, coupon: c20}")
    events = by_ts([ev("live_start", 0), *watch("u", 0, 100, every=20), *watch("v", 30, 100, every=20)])
    got = [(t, user, trigger) for t, user, trigger, _ in outcomes(campaign(triggers), events)]
    # at 60 both u's "long" (set at 0) and v's "short" (set at 30) are due: u's was set first
    assert got == [(30, "u", "short"), (60, "u", "long"), (60, "v", "short"), (90, "v", "long")]


def test_dwell_clock_starts_at_an_implied_join() -> None:
    events = [ev("live_start", 0), ev("comment", 10, "u", text="hi"), *watch("u", 40, 340)[1:]]
    assert dwell_outcomes(events) == [(310, "u")]


def test_dwell_timer_is_not_set_by_off_air_events() -> None:
    events = [ev("live_start", 0), ev("live_end", 1), *watch("u", 10, 290), ev("live_start", 300),
              ev("heartbeat", 310, "u"), ev("join", 320, "v")]
    assert dwell_outcomes(events) == []


def test_dwell_with_two_triggers_fires_both_in_file_order() -> None:
    triggers = DWELL + "\n  - {name: stay2, when: dwell, after: 300, coupon: c10}"
    camp = campaign(triggers)
    events = by_ts([ev("live_start", 0), *watch("u", 0, 330)])
    assert outcomes(camp, events) == [(300, "u", "stay", "c20"), (300, "u", "stay2", "c10")]


# -- flash_sale -------------------------------------------------------------------------

def flash_outcomes(events: list[dict[str, Any]], triggers: str = FLASH) -> list[tuple[float, str]]:
    return [(t, user) for t, user, trigger, _ in outcomes(campaign(triggers), events) if trigger == "flash"]


def test_flash_sale_window_is_ts_to_ts_plus_duration() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("join", 1, "v"), ev("join", 1, "w"),
              ev("comment", 99.999, "u", text="hi"), ev("flash_sale", 100, duration=60, product="sku-1"),
              ev("like", 100, "u"), ev("follow", 120, "u"), ev("gift", 159.999, "v", value=1),
              ev("comment", 160, "w", text="late")]
    assert flash_outcomes(events) == [(100, "u"), (159.999, "v")]


def test_flash_sale_counts_only_interactions_applied_after_the_sale_event() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("join", 1, "v"), ev("comment", 100, "u", text="a"),
              ev("flash_sale", 100, duration=10), ev("comment", 100, "v", text="b")]
    assert flash_outcomes(events) == [(100, "v")]


def test_flash_sale_joins_and_heartbeats_do_not_count() -> None:
    events = [ev("live_start", 0), ev("flash_sale", 10, duration=60), ev("join", 11, "u"),
              ev("heartbeat", 12, "u"), ev("leave", 13, "u"), ev("order", 14, "u", order_id="o", amount=1),
              ev("like", 15, "x", count=2), ev("follow", 16, "u")]
    assert flash_outcomes(events) == [(15, "x"), (16, "u")]


def test_flash_sale_overlapping_sales_each_count_once() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("join", 1, "v"),
              ev("flash_sale", 100, duration=60), ev("comment", 110, "u", text="a"),
              ev("flash_sale", 130, duration=60), ev("comment", 140, "u", text="b"), ev("like", 140, "v"),
              ev("comment", 150, "u", text="c"), ev("like", 170, "v"), ev("like", 190, "v")]
    camp = campaign(FLASH)
    decisions = [d for d in run(camp, events) if d.request.trigger == "flash"]
    got = [(d.request.at / 1000, d.request.user) for d in decisions]
    assert got == [(110, "u"), (140, "u"), (140, "v"), (140, "v")]
    assert len({d.request.coupon_id for d in decisions}) == 4


def test_flash_sale_ends_at_live_end_and_at_live_start() -> None:
    events = [ev("live_start", 0), ev("flash_sale", 10, duration=600), ev("live_end", 20), ev("live_start", 30),
              ev("comment", 40, "u", text="a"), ev("flash_sale", 50, duration=600), ev("live_start", 60),
              ev("comment", 70, "v", text="b")]
    assert flash_outcomes(events) == []


def test_flash_sale_each_sale_gives_another_decision() -> None:
    events = [ev("live_start", 0), ev("flash_sale", 10, duration=5), ev("like", 11, "u"),
              ev("flash_sale", 20, duration=5), ev("like", 21, "u"), ev("like", 22, "u")]
    assert flash_outcomes(events) == [(11, "u"), (21, "u")]


def test_flash_sale_off_air_is_not_applied() -> None:
    events = [ev("live_start", 0), ev("live_end", 5), ev("flash_sale", 10, duration=600), ev("live_start", 20),
              ev("comment", 30, "u", text="a")]
    assert flash_outcomes(events) == []


# -- comment keywords -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "fires"), [
    ("我要扣1！", True),
    ("扣 1", True),
    ("扣\u30001", True),  # ideographic space is a separator
    ("WANT-IT!!", True),
    ("want_it", True),  # _ is punctuation (Pc)
    ("Ｗａｎｔ ｉｔ", True),  # NFKC folds full width
    ("扣一", False),
    ("抠1", False),  # a homophone: no pinyin for comments
    ("kou1", False),
    ("扣", False),
])
def test_comment_keyword_is_a_normalised_substring(text: str, fires: bool) -> None:
    events = [ev("live_start", 0), ev("comment", 5, "u", text=text)]
    assert outcomes(campaign(KOU1), events) == ([(5, "u", "kou1", "c10")] if fires else [])


def test_comment_once_per_user_per_broadcast() -> None:
    events = [ev("live_start", 0), ev("comment", 5, "u", text="扣1"), ev("comment", 6, "u", text="扣1"),
              ev("comment", 7, "v", text="扣1"), ev("live_end", 8), ev("comment", 9, "u", text="扣1"),
              ev("live_start", 10), ev("comment", 11, "u", text="扣1")]
    assert outcomes(campaign(KOU1), events) == [
        (5, "u", "kou1", "c10"), (7, "v", "kou1", "c10"), (11, "u", "kou1", "c10")]


@pytest.mark.parametrize("end", [[ev("live_end", 1)], []])
def test_a_broadcast_begun_in_the_same_ms_as_the_one_before_is_another_broadcast(end: list[dict[str, Any]]) -> None:
    """A restart within a second, stamped in whole seconds: its decisions took the earlier broadcast's coupon ids, and
    the store answered them as already made, so they were in neither output."""
    events = [ev("live_start", 1), ev("comment", 1, "u", text="扣1"), *end, ev("live_start", 1),
              ev("comment", 1, "u", text="扣1"), ev("comment", 1, "v", text="扣1")]
    decisions = run(campaign(KOU1), events)
    assert [(d.request.user, d.issued) for d in decisions] == [("u", True), ("u", True), ("v", True)]
    assert len({d.request.coupon_id for d in decisions}) == 3
    assert [d.request.broadcast for d in decisions] == [1000, 1001, 1001]  # named by its start, a ms on


def test_comment_trigger_ignores_transcripts() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 5, text="扣1")]
    assert outcomes(campaign(KOU1), events) == []


# -- decision order ---------------------------------------------------------------------

TRIGGERS_BY_NAME = {
    "kou1": KOU1,
    "newcomer": NEWCOMER,
    "flash": FLASH,
    "crowd": "  - {name: crowd, when: online_reached, count: 2, source: present, coupon: c20}",
}


@pytest.mark.parametrize("order", [
    ["kou1", "newcomer", "flash", "crowd"],
    ["crowd", "flash", "newcomer", "kou1"],
    ["flash", "kou1", "crowd", "newcomer"],
])
def test_one_event_through_an_implied_join_decides_in_campaign_file_order(order: list[str]) -> None:
    camp = campaign("\n".join(TRIGGERS_BY_NAME[name] for name in order))
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("flash_sale", 2, duration=60),
              ev("comment", 3, "u", text="扣1")]
    got = [(t, user, trigger) for t, user, trigger, _ in outcomes(camp, events) if t == 3]
    expected_by_name = {"kou1": [(3, "u", "kou1")], "newcomer": [(3, "u", "newcomer")],
                        "flash": [(3, "u", "flash")], "crowd": [(3, "a", "crowd"), (3, "u", "crowd")]}
    assert got == [item for name in order for item in expected_by_name[name]]
