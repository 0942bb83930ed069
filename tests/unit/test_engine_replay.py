"""Replay (SPEC §2 "Order of processing", §4 step 4): duplicate ids, unlisted rooms,
where a replay stops, ts rounding, coupon ids, and file order not mattering."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import (
    apply_live,
    by_ts,
    campaign,
    deploy_live,
    ev,
    outcome,
    outcomes,
    record,
    records,
    room_outcomes,
    run,
    to_lines,
    watch,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain.events import parse_event
from livecoupon.engine.engine import Engine
from livecoupon.engine.replay import replay, write_outputs
from livecoupon.engine.rooms import FORGET_AFTER_MS
from livecoupon.store.memory import MemoryStore

NEWCOMER = "  - {name: newcomer, when: first_visit, coupon: c10}"
DWELL = "  - {name: stay, when: dwell, after: 5m, coupon: c20}"
PROBE = '  - {name: probe, when: host_says, phrases: ["发券"], coupon: c10, cooldown: 0}'


# -- duplicate ids ----------------------------------------------------------------------

def test_duplicate_id_keeps_the_first_in_file_order_even_with_a_later_ts() -> None:
    events = [ev("join", 20, "u", id="e1"), ev("join", 10, "v", id="e1"), ev("join", 30, "w", id="e2")]
    # v's join is dropped, so the broadcast begins at u's join and only u and w visit
    assert outcomes(campaign(NEWCOMER), events) == [(20, "u", "newcomer", "c10"), (30, "w", "newcomer", "c10")]


def test_duplicate_ids_are_per_room() -> None:
    camp = campaign(NEWCOMER, rooms='["r1", "r2"]')
    events = [ev("join", 1, "u", id="x"), ev("join", 2, "v", room="r2", id="x"), ev("join", 3, "w", id="x")]
    assert room_outcomes(camp, events) == [("r1", (1, "u", "newcomer", "c10")), ("r2", (2, "v", "newcomer", "c10"))]


@given(st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.sampled_from([None, "x", "y", "z"])),
                max_size=14))
@settings(max_examples=200, deadline=None)  # a busy machine is not a wrong answer
def test_duplicate_ids_are_dropped_per_room_as_live_with_rooms_interleaved(
        lines: list[tuple[str, str | None]]) -> None:
    """Replay keeps the previous line's room at hand: rooms alternating, with and without ids, change nothing."""
    camp = campaign(NEWCOMER, rooms='["r1", "r2"]')  # r3 unlisted: its ids are remembered all the same
    events = [ev("join", 1 + i, f"u{i}", room=room, **({"id": eid} if eid else {}))
              for i, (room, eid) in enumerate(lines)]
    _, made = apply_live(camp, events)
    assert [outcome(d) for d in run(camp, events)] == [outcome(d) for d in made]


def test_a_retried_event_applied_live_is_ignored() -> None:
    camp = campaign('  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}')
    comment = ev("comment", 5, "u", text="扣1", id="c-1")
    _, made = apply_live(camp, [ev("live_start", 0), comment, ev("live_start", 10), dict(comment, ts=11),
                                ev("comment", 12, "u", text="扣1")])
    assert [(d.request.at, d.request.user) for d in made] == [(5_000, "u"), (12_000, "u")]


KOU1 = '  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}'


def test_a_repeat_within_a_broadcast_is_dropped_however_late_whatever_the_order_of_other_lines() -> None:
    """SPEC §2: of events sharing an id in a room, the first is kept. A's gift sent again two hours later in the
    same broadcast is dropped (counted twice, it would make A 榜一), in a recording in time order and in one with
    two other lines out of order (which replays on the sorted path), live and in replay alike (a room
    remembered half an hour to an hour of ids)."""
    camp = campaign('  - {name: thanks, when: host_says, phrases: ["感谢榜一"], coupon: c10, audience: top_gifters}')
    gift = ev("gift", 10, "a", value=100, id="g1")
    events = [ev("live_start", 0), gift, ev("gift", 20, "b", value=150, id="g2"),
              *[ev("online_count", t, count=5, id=f"n{t}") for t in range(900, 7_200, 900)],
              dict(gift, ts=7_210), ev("transcript", 7_220, text="感谢榜一", id="t1")]
    out_of_order = [*events, ev("heartbeat", 7_300, "v", id="h2"), ev("heartbeat", 7_250, "v", id="h1")]
    assert [user for _, user, *_ in outcomes(camp, events)] == ["b"]
    assert [user for _, user, *_ in outcomes(camp, out_of_order)] == ["b"]
    assert [d.request.user for d in apply_live(camp, events)[1]] == ["b"]


DAY_S = FORGET_AFTER_MS // 1000


@pytest.mark.parametrize(("broadcasts", "dropped"), [
    ([3_600], True),  # the next broadcast: the previous one's ids are still remembered
    ([1_000, 2_800, 4_600, 6_400], True),  # four more, half an hour apart, within the day: still remembered
    ([DAY_S + 100, 2 * DAY_S + 200], False),  # new ids a day on, then two days on: it forgot twice, so forgotten
])
def test_a_room_forgets_ids_only_a_day_after_whatever_the_broadcasts_live_and_in_replay(
        broadcasts: list[int], dropped: bool) -> None:
    camp = campaign(KOU1)
    first = ev("comment", 10, "u", text="扣1", id="c-1")
    events = [ev("live_start", 0), first, ev("live_end", 20)]
    for start in broadcasts:
        events += [ev("live_start", start, id=f"s{start}"), ev("live_end", start + 10)]
    events += [ev("live_start", broadcasts[-1] + 20), dict(first, ts=broadcasts[-1] + 30)]
    later = float(broadcasts[-1] + 30)
    expected = [10.0] if dropped else [10.0, later]
    assert [d.request.at / 1000 for d in apply_live(camp, events)[1]] == expected
    assert [ts for ts, *_ in outcomes(camp, events)] == expected


def test_a_retry_is_dropped_however_late_it_comes_within_its_broadcast() -> None:
    # a sender re-posts a whole broadcast hours later (--clock event): every event is a retry of one
    # applied, and none of them decides anything again
    camp = campaign(KOU1 + "\n" + DWELL)
    broadcast = [ev("live_start", 0, id="s"), *[dict(e, id=f"w{n}") for n, e in enumerate(watch("u", 1, 3 * 3_600))],
                 ev("comment", 3 * 3_600 + 5, "u", text="扣1", id="c"), ev("live_end", 3 * 3_600 + 9, id="e")]
    deployment, made = deploy_live(camp, broadcast)
    assert sorted(d.request.trigger for d in made) == ["kou1", "stay"]
    again = [d for e in broadcast for d in deployment.apply(parse_event(e))]
    assert again == []


def test_a_rooms_memory_of_ids_holds_a_day_or_two_not_its_whole_log() -> None:
    # five hours of heartbeats with ids, one a second, then two broadcasts a day apart: a room keeps every id of the
    # day going on, and of the one before, not all of them (so snapshots stop growing with the log)
    camp = campaign(KOU1)
    events = [ev("live_start", 0, id="s"), ev("join", 0, "u", id="j"),
              *[ev("heartbeat", t, "u", id=f"h{t}") for t in range(1, 5 * 3_600)]]
    deployment, _ = deploy_live(camp, events)
    assert len(deployment.recent_ids["r1"]) == len(events)
    deployment.apply(parse_event(ev("live_start", 6 * 3_600, id="s6")))
    assert len(deployment.recent_ids["r1"]) == len(events) + 1  # hours later, another broadcast: still remembered
    for start in (DAY_S + 10, 2 * DAY_S + 20):
        deployment.apply(parse_event(ev("live_start", start, id=f"s{start}")))
    assert len(deployment.recent_ids["r1"]) == 2  # the two broadcasts' starts
    deployment.apply(parse_event(events[-1]))  # forgotten: taken as new, and remembered again
    assert len(deployment.recent_ids["r1"]) == 3


# -- rooms the campaign does not list ---------------------------------------------------

def test_events_of_unlisted_rooms_are_ignored_not_rejected() -> None:
    camp = campaign(NEWCOMER + "\n" + PROBE)
    lines = to_lines([ev("live_start", 0, room="r9"), ev("join", 1, "u", room="r9"),
                      ev("transcript", 2, room="r9", text="发券"), ev("join", 3, "v")])
    result = replay(camp, lines)
    assert [(d.request.room, d.request.user) for d in result.decisions] == [("r1", "v")]
    assert result.rejected == []


def test_star_listens_to_every_room() -> None:
    camp = campaign(NEWCOMER, rooms='"*"')
    events = [ev("join", 1, "u", room="a"), ev("join", 2, "v", room="b")]
    assert room_outcomes(camp, events) == [("a", (1, "u", "newcomer", "c10")), ("b", (2, "v", "newcomer", "c10"))]


# -- where a replay stops ---------------------------------------------------------------

@pytest.mark.parametrize(("last_at", "fires"), [(299.999, False), (300, True)])
def test_replay_stops_at_the_last_event_and_later_timers_do_not_fire(last_at: float, fires: bool) -> None:
    events = by_ts([ev("live_start", 0), *watch("u", 0, 270), ev("join", last_at, "v")])
    assert [user for _, user, trigger, _ in outcomes(campaign(DWELL), events) if trigger == "stay"] == (
        ["u"] if fires else [])


TRAILING = {
    "unlisted room": [ev("join", 400, "x", room="r9")],
    "duplicate id": [ev("join", 400, "x", id="dup")],
    "off-air event": [ev("join", 400, "x", room="r2")],
    "off-air live_end": [ev("live_end", 400, room="r2")],
    "rejected line": ['{"type": "join", "room": "r1", "ts": 400}', "not json"],
}


@pytest.mark.parametrize("trailing", TRAILING.values(), ids=TRAILING.keys())
def test_events_that_are_not_applied_do_not_move_the_replay_clock(trailing: list[Any]) -> None:
    camp = campaign(DWELL, rooms='["r1", "r2"]')
    head = [ev("live_start", 0, room="r2"), ev("live_end", 1, room="r2"), ev("live_start", 0),
            ev("join", 0, "u", id="dup"), *watch("u", 0, 270)[1:]]
    assert outcomes(camp, [*by_ts(head), *trailing]) == []


def test_an_applied_event_in_another_room_fires_the_timer_first() -> None:
    camp = campaign(DWELL, rooms='["r1", "r2"]')
    events = by_ts([ev("live_start", 0), *watch("u", 0, 270), ev("join", 400, "x", room="r2")])
    assert room_outcomes(camp, events) == [("r1", (300, "u", "stay", "c20"))]


# -- ts is rounded half to even to the ms -----------------------------------------------

@pytest.mark.parametrize(("ts", "ms"), [
    (1_700_000_000.0005, 1_700_000_000_000), (1_700_000_000.0015, 1_700_000_000_002),
    (1_700_000_000.0025, 1_700_000_000_002), (1_700_000_000.00251, 1_700_000_000_003),
    (12.3455, 12_346), (0.0005, 0), (7, 7_000),
])
def test_ts_is_rounded_half_to_even_to_the_ms(ts: float, ms: int) -> None:
    decisions = run(campaign(NEWCOMER), [ev("join", ts, "u")])
    assert [d.request.at for d in decisions] == [ms]


@pytest.mark.parametrize(("probe_at", "present"), [(60.0025, True), (60.0035, False)])
def test_presence_compares_rounded_ms_exactly(probe_at: float, present: bool) -> None:
    # join at 0.0015 -> 2 ms; 60.0025 -> 60 002 ms (60 000 later: present); 60.0035 -> 60 004 ms
    events = [ev("live_start", 0), ev("join", 0.0015, "u"), ev("transcript", probe_at, text="发券")]
    assert len(outcomes(campaign(PROBE), events)) == (1 if present else 0)


def test_events_rounding_to_the_same_ms_keep_their_file_order() -> None:
    events = [ev("join", 10.0004, "u"), ev("live_start", 10.0001), ev("transcript", 20, text="发券")]
    # both are at 10 000 ms: the join comes first in the file, so the live_start ends its broadcast
    assert outcomes(campaign(PROBE), events) == []


# -- what a replay writes (SPEC §6) ------------------------------------------------------

def test_replay_writes_issued_suppressed_and_rejected_lines(tmp_path: Path) -> None:
    tail = """
limits: {per_user: 1}
experiments:
  - {name: e, trigger: probe, variants: [{name: everyone, coupon: c20}]}
"""
    camp = campaign(NEWCOMER + "\n" + PROBE, tail=tail)
    lines = ["", json.dumps(ev("live_start", 0)), "{not json", json.dumps(ev("join", 1.5, "u")), "   ",
             json.dumps(ev("join", 2, "")), json.dumps(ev("transcript", 3, text="发券"))]
    out = tmp_path / "out"
    write_outputs(replay(camp, lines), out)
    issued = [json.loads(line) for line in (out / "issued.jsonl").read_text(encoding="utf-8").splitlines()]
    suppressed = [json.loads(line) for line in (out / "suppressed.jsonl").read_text(encoding="utf-8").splitlines()]
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(issued) == 1 and issued[0]["coupon_id"].strip()
    assert {k: v for k, v in issued[0].items() if k != "coupon_id"} == {
        "ts": 1.5, "room": "r1", "user": "u", "trigger": "newcomer", "coupon": "c10", "expires_at": 901.5}
    assert suppressed == [{"ts": 3, "room": "r1", "user": "u", "trigger": "probe", "reason": "per_user_cap",
                           "experiment": "e", "variant": "everyone"}]
    assert [r["line"] for r in rejected] == [3, 6]
    assert "user" in rejected[1]["error"]


# -- coupon ids -------------------------------------------------------------------------

SCENARIO_TRIGGERS = "\n".join([
    NEWCOMER, DWELL, PROBE,
    "  - {name: flash, when: flash_sale, coupon: c30}",
    "  - {name: crowd, when: online_reached, count: 2, coupon: c20}",
])


def scenario() -> list[dict[str, Any]]:
    return by_ts([ev("live_start", 0), *watch("u", 0, 400), *watch("v", 5, 100),
                  ev("transcript", 10, text="发券"), ev("transcript", 10.5, text="发券"),
                  ev("flash_sale", 20, duration=30), ev("like", 25, "v"), ev("online_count", 30, count=2),
                  ev("live_start", 350), ev("join", 351, "v"), ev("transcript", 352, text="发券")])


def test_replay_is_deterministic_and_coupon_ids_are_unique() -> None:
    camp = campaign(SCENARIO_TRIGGERS)
    first, second = records(camp, scenario()), records(camp, scenario())
    assert first == second
    ids = [r["coupon_id"] for r in first if "coupon_id" in r]
    assert len(ids) == len(set(ids)) == 11  # newcomer 2, probe 2 + 2, flash 1, crowd 2, stay 1, probe 1


def test_live_application_with_clock_ticks_matches_the_replay() -> None:
    camp = campaign(SCENARIO_TRIGGERS)
    events = scenario()
    engine = Engine(camp, MemoryStore())
    live = []
    for data in events:
        event = parse_event(data)
        live.extend(engine.advance(event.ts - 1))  # the server clock reaches just before the event
        live.extend(engine.apply(event))
    assert [record(d) for d in live] == records(camp, events)


def test_reapplying_a_stream_to_the_same_store_never_issues_twice() -> None:
    camp = campaign(SCENARIO_TRIGGERS)
    store = MemoryStore()
    _, first = apply_live(camp, scenario(), store)
    coupons = {u: sorted(c.coupon_id for c in store.coupons_of(u)) for u in ("u", "v")}
    _, again = apply_live(camp, scenario(), store)  # a restart that re-applies the log
    assert {u: sorted(c.coupon_id for c in store.coupons_of(u)) for u in ("u", "v")} == coupons
    assert {d.request.coupon_id for d in again} <= {d.request.coupon_id for d in first}


# -- file order does not matter when timestamps are distinct ----------------------------

PROPERTY_CAMPAIGN = """
campaign: prop
rooms: ["r1", "r2"]
presence_timeout: 20s
seed: 5
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 12}
  c20: {title: twenty, kind: no_threshold, amount: 20, valid_for: 15m}
  pct: {title: pct, kind: percent, percent: 15, max_discount: 30, valid_for: 10m, stock: 6}
triggers:
  - {name: newcomer, when: first_visit, coupon: c10}
  - {name: stay, when: dwell, after: 30s, coupon: c20}
  - {name: crowd, when: online_reached, count: 3, source: present, coupon: pct}
  - {name: lucky, when: online_reached, count: 4, audience: lottery, winners: 2, coupon: c20}
  - {name: pass, when: host_says, phrases: ["发券"], coupon: c10, cooldown: 10s}
  - {name: talk, when: host_says, phrases: ["评论"], coupon: c20, audience: commenters, within: 15s}
  - {name: thanks, when: host_says, phrases: ["榜一"], coupon: pct, audience: top_gifters, top: 2}
  - {name: flash, when: flash_sale, coupon: c10}
  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c20}
limits: {per_user: 3, min_interval: 5s, budget: 400}
experiments:
  - {name: e, trigger: stay, variants: [{name: control, coupon: null}, {name: twenty, coupon: c20}]}
"""

USERS = ["a", "b", "c", "d", "e"]
event_shapes = st.one_of(
    st.tuples(st.sampled_from(["join", "heartbeat", "leave", "like", "follow"]), st.sampled_from(USERS)),
    st.tuples(st.just("comment"), st.sampled_from(USERS), st.sampled_from(["扣1", "hi"])),
    st.tuples(st.just("gift"), st.sampled_from(USERS), st.integers(0, 50)),
    st.tuples(st.just("order"), st.sampled_from(USERS)),
    st.tuples(st.just("transcript"), st.sampled_from(["发券", "发劝", "评论", "恭喜榜一", "你好"])),
    st.tuples(st.just("online_count"), st.integers(0, 6)),
    st.tuples(st.just("flash_sale"), st.integers(1, 40)),
    st.tuples(st.sampled_from(["live_start", "live_end"])),
)


def build(shape: tuple[Any, ...], room: str, ms: int, n: int) -> dict[str, Any]:
    kind, ts = shape[0], ms / 1000
    if kind in ("join", "heartbeat", "leave", "like", "follow"):
        return ev(kind, ts, shape[1], room)
    if kind == "comment":
        return ev(kind, ts, shape[1], room, text=shape[2])
    if kind == "gift":
        return ev(kind, ts, shape[1], room, value=shape[2])
    if kind == "order":
        return ev(kind, ts, shape[1], room, order_id=f"o{n}", amount=9.9)
    if kind == "transcript":
        return ev(kind, ts, room=room, text=shape[1])
    if kind == "online_count":
        return ev(kind, ts, room=room, count=shape[1])
    if kind == "flash_sale":
        return ev(kind, ts, room=room, duration=shape[1])
    return ev(kind, ts, room=room)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    shapes = draw(st.lists(event_shapes, min_size=1, max_size=60))
    rooms = draw(st.lists(st.sampled_from(["r1", "r2", "r9"]), min_size=len(shapes), max_size=len(shapes)))
    times = draw(st.lists(st.integers(0, 200_000), min_size=len(shapes), max_size=len(shapes), unique=True))
    events = [build(shape, room, ms, n) for n, (shape, room, ms) in enumerate(zip(shapes, rooms, times, strict=True))]
    return events, draw(st.permutations(events))


@settings(max_examples=50, deadline=None)
@given(streams())
def test_file_order_does_not_change_the_decisions_when_timestamps_are_distinct(
        stream: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    from livecoupon.campaign_file import parse_campaign

    events, shuffled = stream
    camp = parse_campaign(PROPERTY_CAMPAIGN)
    expected = records(camp, events)
    assert records(camp, shuffled) == expected
    assert records(camp, by_ts(events)) == expected  # in time order: replay streams instead of sorting
    # and what the live service decides applying them in ts order, up to the last event
    _, live = apply_live(camp, by_ts(events))
    assert [record(d) for d in live] == expected
    # the invariants no order can break
    issued = [r for r in expected if "coupon_id" in r]
    assert len({r["coupon_id"] for r in issued}) == len(issued)
    per_template = Counter(r["coupon"] for r in issued)
    assert per_template["c10"] <= 12 and per_template["pct"] <= 6
    assert 10 * per_template["c10"] + 20 * per_template["c20"] + 30 * per_template["pct"] <= 400
    assert all(r["room"] != "r9" for r in expected)
    assert json.dumps(expected)  # records are plain JSON


def test_comments_of_present_viewers_decide_as_applied_events() -> None:
    """Replay takes a present viewer's comment without an Event (Engine.comment): it must keep what apply keeps
    (presence, the latest comment for a commenters audience) and fire what apply fires, flash sales aside."""
    from livecoupon.campaign_file import parse_campaign

    camp = parse_campaign(PROPERTY_CAMPAIGN)
    events = by_ts([
        ev("live_start", 0, room="r1"), *watch("a", 1, 100, every=10), *watch("b", 2, 100, every=10),
        ev("comment", 20, "a", text="hi"), ev("comment", 21, "b", text="扣1"), ev("comment", 22, "a", text="扣1"),
        ev("transcript", 30, room="r1", text="评论"), ev("flash_sale", 40, room="r1", duration=10),
        ev("comment", 45, "b", text="hi"), ev("comment", 75, "a", text="扣1"), ev("comment", 95, "c", text="扣1")])
    _, live = apply_live(camp, events)
    assert [record(d) for d in live] == records(camp, events)
    made = {(r["user"], r["trigger"]) for r in records(camp, events)}
    assert {("a", "talk"), ("b", "talk"), ("a", "kou1"), ("b", "kou1"), ("b", "flash"), ("c", "kou1")} <= made


# -- recordings out of time order ------------------------------------------------------------

BAD_LINES = st.sampled_from(["", "  ", "{nope", '{"type": "join", "room": "r1"}', '{"type": "gift", "room": "r1", '
                             '"ts": 3, "user": "a", "value": 0.001}'])


@st.composite
def untidy_recordings(draw: st.DrawFn) -> list[str]:
    """Lines in any order, with ties in ts (by the ms and within one), repeated ids in and across rooms, blank and
    bad lines."""
    shapes = draw(st.lists(event_shapes, min_size=1, max_size=50))
    count = len(shapes)
    rooms = draw(st.lists(st.sampled_from(["r1", "r2", "r9"]), min_size=count, max_size=count))
    times = draw(st.lists(st.integers(0, 40).map(lambda k: 5_000 * k), min_size=count, max_size=count))
    ids = draw(st.lists(st.sampled_from([None, None, "m1", "m2", "m3"]), min_size=count, max_size=count))
    lines = [json.dumps(build(shape, room, ms, n) | ({"id": event_id} if event_id else {}), ensure_ascii=False)
             for n, (shape, room, ms, event_id) in enumerate(zip(shapes, rooms, times, ids, strict=True))]
    for at, bad in draw(st.lists(st.tuples(st.integers(0, count), BAD_LINES), max_size=3)):
        lines.insert(at, bad)
    return lines


Replayed = tuple[list[dict[str, Any]], list[tuple[int, str]], int]


def replayed_plainly(camp: Any, lines: list[str]) -> Replayed:
    """SPEC §2's order written plainly: every line read, later copies of an id in a room dropped (file order),
    the rest sorted by ts (ties: file order) and each applied as an event."""
    from livecoupon.engine.recordings import read_events

    events, rejected = read_events(lines)
    seen: set[tuple[str, str]] = set()
    kept = []
    for event in events:
        if event.id is not None:
            if (event.room, event.id) in seen:
                continue
            seen.add((event.room, event.id))
        kept.append(event)
    kept.sort(key=lambda e: e.ts)
    deployment = fresh_deployment(camp)
    made = [d for event in kept for d in deployment.apply(event)]
    return [record(d) for d in made], [(r.line, r.error) for r in rejected], len(kept)


def fresh_deployment(camp: Any) -> Any:
    from livecoupon.engine.campaigns import Deployment

    return Deployment([camp], MemoryStore(), dedup_ids=False)


def replayed(result: Any) -> Replayed:
    return [record(d) for d in result.decisions], [(r.line, r.error) for r in result.rejected], result.events


@settings(max_examples=150, deadline=None)
@given(untidy_recordings(), st.sampled_from([7, 64, 1 << 20]))
def test_a_recording_out_of_time_order_replays_as_the_rule_reads_it(tmp_path_factory: Any, lines: list[str],
                                                                    block: int) -> None:
    """From a list of lines and from a file read a block at a time: the same decisions, rejected lines and count
    as the rule, whether the recording is in time order (streamed) or not (read whole and sorted); and the sorted
    path alone, whatever the order."""
    from livecoupon.campaign_file import parse_campaign
    from livecoupon.engine.recordings import Recording
    from livecoupon.engine.replay import _sorted

    camp = parse_campaign(PROPERTY_CAMPAIGN)
    expected = replayed_plainly(camp, lines)
    path = tmp_path_factory.mktemp("recording") / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for source in (lines, Recording(path, block)):
        assert replayed(replay(camp, source)) == expected
        assert replayed(_sorted(fresh_deployment(camp), source)) == expected


def test_a_late_line_is_applied_in_its_place_and_a_tie_in_file_order(tmp_path: Path) -> None:
    from livecoupon.engine.recordings import Recording

    camp = campaign(NEWCOMER, rooms='["r1", "r2"]')
    lines = to_lines([ev("join", 10, "b", id="x"), ev("join", 20, "c"), ev("join", 20, "d", room="r2"),
                      ev("join", 5, "a"),  # late: applied first
                      ev("join", 30, "e", id="x"),  # a later copy of x: dropped
                      ev("join", 20, "f")])  # ties with c and d: after them
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")  # no end to the last line
    for source in (lines, Recording(path)):
        result = replay(camp, source)
        assert [(o[0], o[1]) for o in map(outcome, result.decisions)] == [
            (5, "a"), (10, "b"), (20, "c"), (20, "d"), (20, "f")]
        assert result.events == 5
