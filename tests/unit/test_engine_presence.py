"""Presence, implied joins and broadcasts (SPEC §2), seen through the engine's decisions.

A ``host_says`` trigger with audience ``present`` and no cooldown is the probe: each
transcript "发券" issues to exactly the users present at its ``ts``, in the audience
order of SPEC §4 (join time, then user id).
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import campaign, ev, outcomes, room_outcomes

PROBE = '  - {name: probe, when: host_says, phrases: ["发券"], coupon: c10, cooldown: 0}'


def probe(t: float, room: str = "r1") -> dict[str, Any]:
    return ev("transcript", t, room=room, text="发券")


def audience(events: list[dict[str, Any]], *, head: str = "", rooms: str = '["r1"]') -> list[tuple[float, str]]:
    camp = campaign(PROBE, head=head, rooms=rooms)
    return [(t, user) for t, user, trigger, _ in outcomes(camp, events) if trigger == "probe"]


# -- the presence timeout ---------------------------------------------------------------

@pytest.mark.parametrize(("at", "present"), [(60, True), (60.001, False)])
def test_presence_timeout_boundary_after_join(at: float, present: bool) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), probe(at)]
    assert audience(events) == ([(at, "u")] if present else [])


@pytest.mark.parametrize(("at", "present"), [(110, True), (110.001, False)])
def test_presence_timeout_counts_from_latest_viewing_event(at: float, present: bool) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("heartbeat", 50, "u"), probe(at)]
    assert audience(events) == ([(at, "u")] if present else [])


@pytest.mark.parametrize(("at", "present"), [(90, True), (90.001, False)])
def test_presence_timeout_is_configurable(at: float, present: bool) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), probe(at)]
    assert audience(events, head="presence_timeout: 1m30s") == ([(at, "u")] if present else [])


def test_joined_at_the_same_ts_is_present_only_once_applied() -> None:
    events = [ev("live_start", 0), probe(10), ev("join", 10, "u"), ev("join", 10, "v"), probe(10.0)]
    # the first probe is applied before either join (ties: file order); cooldown is 0
    assert audience(events) == [(10, "u"), (10, "v")]


# -- implied joins ----------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "extra"), [
    ("join", {}), ("heartbeat", {}), ("comment", {"text": "hi"}), ("like", {}), ("like", {"count": 3}),
    ("follow", {}), ("gift", {"value": 1.5}),
])
def test_every_viewing_event_makes_its_user_present(kind: str, extra: dict[str, Any]) -> None:
    events = [ev("live_start", 0), ev(kind, 5, "u", **extra), probe(65)]
    assert audience(events) == [(65, "u")]


def test_an_order_is_not_a_viewing_event() -> None:
    events = [ev("live_start", 0), ev("order", 5, "u", order_id="o1", amount=10), probe(6),
              ev("join", 10, "v"), ev("order", 60, "v", order_id="o2", amount=10), probe(70.001)]
    assert audience(events) == []


def test_a_leave_ends_presence() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 1, "v"), ev("leave", 10, "u"), probe(20)]
    assert audience(events) == [(20, "v")]


def test_a_viewing_event_after_a_leave_is_a_new_join() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 5, "v"), ev("leave", 10, "u"),
              ev("comment", 15, "u", text="回来了"), probe(20)]
    assert audience(events) == [(20, "v"), (20, "u")]  # u's current join is at 15


@pytest.mark.parametrize(("back_at", "expected"), [
    (60, ["u", "v"]),  # 60 - 0 <= 60: still present, the join at 0 stands
    (60.001, ["v", "u"]),  # timed out: the heartbeat is a join at 60.001
])
def test_a_viewing_event_after_a_timeout_is_a_new_join(back_at: float, expected: list[str]) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 30, "v"), ev("heartbeat", back_at, "u"),
              probe(70)]
    assert audience(events) == [(70, user) for user in expected]


def test_a_join_from_a_present_user_keeps_the_join_time() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 10, "v"), ev("join", 20, "u"), probe(30)]
    assert audience(events) == [(30, "u"), (30, "v")]


def test_audience_order_is_join_time_then_user_id() -> None:
    events = [ev("live_start", 0), ev("join", 10, "b"), ev("join", 10, "a"), ev("join", 5, "c"),
              ev("join", 10, "B"), probe(30)]
    # ts order: c at 5, then b, a, B at 10 (ties by user id: "B" < "a" < "b")
    assert audience(events) == [(30, "c"), (30, "B"), (30, "a"), (30, "b")]


def test_activity_does_not_change_the_audience_order() -> None:
    events = [ev("live_start", 0), ev("join", 0, "z"), ev("join", 1, "a"), ev("heartbeat", 20, "z"),
              ev("comment", 25, "z", text="hi"), ev("like", 26, "z"), probe(30)]
    assert audience(events) == [(30, "z"), (30, "a")]


def test_a_leave_from_a_user_not_present_changes_nothing() -> None:
    events = [ev("live_start", 0), ev("leave", 1, "ghost"), ev("join", 2, "u"), ev("leave", 3, "v"),
              probe(10)]
    assert audience(events) == [(10, "u")]


def test_presence_is_per_room() -> None:
    events = [ev("live_start", 0, room="r1"), ev("live_start", 0, room="r2"),
              ev("join", 1, "u", room="r1"), ev("join", 2, "u", room="r2"), ev("join", 3, "v", room="r2"),
              ev("leave", 4, "u", room="r2"), probe(10, "r1"), probe(11, "r2")]
    assert audience(events, rooms='["r1", "r2"]') == [(10, "u"), (11, "v")]


# -- broadcasts -------------------------------------------------------------------------

def test_a_room_whose_first_event_is_not_live_start_begins_a_broadcast_there() -> None:
    events = [ev("join", 10, "u"), probe(20)]
    assert audience(events) == [(20, "u")]


def test_first_event_is_judged_in_ts_order_not_file_order() -> None:
    # In ts order the join at 5 comes first and begins a broadcast; the live_start at
    # 10 then ends it (u leaves) and begins another.
    events = [ev("live_start", 10), ev("join", 5, "u"), probe(20)]
    assert audience(events) == []


def test_live_start_ends_the_open_broadcast_and_every_viewer_leaves() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 50, "v"), ev("live_start", 100), probe(110),
              ev("heartbeat", 120, "v"), probe(130)]
    assert audience(events) == [(130, "v")]


def test_live_end_makes_every_viewer_leave() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("live_end", 10), ev("live_start", 20), probe(30)]
    assert audience(events) == []


def test_off_air_events_are_not_applied() -> None:
    events = [ev("live_start", 0), ev("live_end", 10), ev("join", 20, "u"), probe(21),
              ev("live_start", 40), ev("heartbeat", 41, "u"), probe(50)]
    assert audience(events) == [(50, "u")]


def test_a_live_end_off_air_changes_nothing() -> None:
    events = [ev("live_start", 0), ev("live_end", 10), ev("live_end", 20), ev("join", 30, "u"), probe(40)]
    assert audience(events) == []


def test_live_end_then_event_without_live_start_stays_off_air() -> None:
    camp = campaign('  - {name: newcomer, when: first_visit, coupon: c10}\n' + PROBE)
    events = [ev("live_start", 0), ev("live_end", 1), ev("join", 2, "u"), probe(3), ev("comment", 4, "v", text="x")]
    assert outcomes(camp, events) == []


def test_rooms_have_their_own_broadcasts() -> None:
    events = [ev("live_start", 0, room="r1"), ev("join", 1, "u", room="r1"), ev("join", 1, "v", room="r2"),
              ev("live_end", 2, room="r2"), probe(3, "r1"), probe(4, "r2")]
    camp = campaign(PROBE, rooms='["r1", "r2"]')
    assert room_outcomes(camp, events) == [("r1", (3, "u", "probe", "c10"))]
