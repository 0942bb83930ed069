"""A room's memory of event ids, applied alike by the live deployment, replay's fast path and its sorted path
(SPEC §2, §6): random streams of repeated ids, broadcasts starting with and without an id, rooms no campaign lists
and operator entries with ids (scaled out, every command has one), over steps across the rule's bounds."""

from __future__ import annotations

from typing import Any

from engine_fixtures import campaign, deploy_live, ev, record, to_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.engine.replay import replay
from livecoupon.engine.rooms import FORGET_AFTER_MS

KOU1 = '  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c10}\n' \
       '  - {name: thanks, when: host_says, phrases: ["感谢榜一"], coupon: c10, audience: top_gifters, cooldown: 0}'
GAP, DAY = 30 * 60, FORGET_AFTER_MS // 1000  # half an hour: a step between broadcasts
steps = st.sampled_from([0, 1, 5, 60, GAP - 1, GAP, GAP + 1, DAY - 1, DAY, DAY + 1])


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events in time order: comments, gifts and thanks (their decisions show which events were applied),
    broadcasts starting, operator entries, some repeating an id seen before (in its room or another)."""
    ts, events, ids = 0, [ev("live_start", 0, id="s0")], ["s0"]
    for n in range(draw(st.integers(min_value=1, max_value=25))):
        ts += draw(steps)
        room = draw(st.sampled_from(["r1", "r1", "r9"]))  # r9: no campaign lists it
        kind = draw(st.sampled_from(["comment", "gift", "thanks", "live_start", "live_start_no_id", "operator"]))
        event_id = draw(st.sampled_from(ids)) if ids and draw(st.booleans()) else f"e{n}"
        user = draw(st.sampled_from("abc"))
        if kind == "comment":
            event = ev("comment", ts, user, room, text="扣1", id=event_id)
        elif kind == "gift":
            event = ev("gift", ts, user, room, value=draw(st.sampled_from([1, 5])), id=event_id)
        elif kind == "thanks":
            event = ev("transcript", ts, room=room, text="感谢榜一", id=event_id)
        elif kind == "live_start":
            event = ev("live_start", ts, room=room, id=event_id)
        elif kind == "live_start_no_id":
            event = ev("live_start", ts, room=room)
        else:
            event = {"type": "operator", "room": room, "ts": ts, "action": "block", "users": ["nobody"],
                     "id": event_id}
        events.append(event)
        if "id" in event:
            ids.append(event["id"])
    return events


@settings(max_examples=300, deadline=None)
@given(streams())
def test_live_the_fast_path_and_the_sorted_path_keep_the_same_events(events: list[dict[str, Any]]) -> None:
    camp = campaign(KOU1)
    live = [record(d) for d in deploy_live(camp, events)[1]]
    fast = replay(camp, to_lines(events))
    last = events[-1]["ts"]
    # two lines of a room no campaign lists, the second out of time order: the recording replays sorted
    out_of_order = [*events, ev("heartbeat", last, "z", "r9", id="z1"), ev("heartbeat", last - 1, "z", "r9", id="z2")]
    slow = replay(camp, to_lines(out_of_order))
    assert [record(d) for d in fast.decisions] == live
    assert [record(d) for d in slow.decisions] == live


def test_an_id_is_remembered_through_any_number_of_broadcasts_within_a_day() -> None:
    """SPEC §2: an id already seen in the room is ignored. Three broadcasts half an hour apart, and the first one's
    comment sent again in the third: it was applied, issuing a coupon (a room forgot at each broadcast's start)."""
    camp = campaign(KOU1)
    events = [ev("live_start", 1000), ev("comment", 1001, "a", text="hi", id="X"),
              ev("live_start", 2800), ev("live_start", 4600), ev("comment", 4601, "a", text="扣1", id="X"),
              ev("live_start", 6400), ev("comment", 6401, "b", text="扣1", id="X")]
    assert replay(camp, to_lines(events)).decisions == []
    assert deploy_live(camp, events)[1] == []
