"""Publishing a campaign version: limits and schedule at once, triggers at each room's next broadcast,
the same decisions live, replayed and restored from a snapshot, and what a publish may not change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from engine_fixtures import COUPONS, by_ts, campaign, ev, outcomes, watch

from livecoupon.campaign_file import parse_campaign
from livecoupon.domain.campaign import with_history
from livecoupon.domain.commands import PublishCampaign, command_from_json
from livecoupon.domain.decisions import Decision
from livecoupon.domain.events import event_json, parse_event
from livecoupon.engine import snapshots
from livecoupon.engine.engine import Engine
from livecoupon.engine.explaining import explain
from livecoupon.engine.replay import replay
from livecoupon.errors import Refused
from livecoupon.service_layer import publishing
from livecoupon.store.memory import MemoryStore

V1_TRIGGERS = """
  - {name: say-a, when: comment, keywords: ["苹果"], coupon: c10}
  - {name: welcome, when: first_visit, coupon: c20}
"""
V2_TRIGGERS = """
  - {name: say-b, when: comment, keywords: ["香蕉"], coupon: c30}
  - {name: welcome, when: first_visit, coupon: c20}
"""


def source(triggers: str, *, rooms: str = '["r1", "r2"]', head: str = "", tail: str = "") -> str:
    return f"campaign: test-camp\nrooms: {rooms}\n{head}\n{COUPONS}\ntriggers:\n{triggers}\n{tail}\n"


def publish_event(text: str, version: int, ts: float, note: str = "") -> dict[str, Any]:
    return {"type": "operator", "room": "*", "ts": ts, "action": "publish", "version": version,
            "campaign": text} | ({"note": note} if note else {})


def apply_all(engine: Engine, events: list[dict[str, Any]]) -> list[Decision]:
    made: list[Decision] = []
    for raw in events:
        made.extend(engine.apply(parse_event(raw)))
    return made


def two_room_stream() -> list[dict[str, Any]]:
    """r1 is on air across the publish at t=100 and starts again at t=300; r2 starts after the publish."""
    return by_ts([
        ev("live_start", 0), *watch("u1", 10, 120), ev("comment", 50, "u1", text="苹果"),
        publish_event(source(V2_TRIGGERS), 2, 100),
        ev("comment", 110, "u1b", text="苹果"), ev("comment", 111, "u1c", text="香蕉"),
        ev("live_start", 150, room="r2"), ev("comment", 160, "u2", room="r2", text="苹果"),
        ev("comment", 161, "u3", room="r2", text="香蕉"),
        ev("live_end", 200), ev("live_start", 300), ev("comment", 310, "u4", text="苹果"),
        ev("comment", 311, "u5", text="香蕉"),
    ])


def test_a_room_on_air_keeps_its_version_and_takes_the_new_one_at_its_next_broadcast() -> None:
    v1 = parse_campaign(source(V1_TRIGGERS))
    got = [(o[1], o[2], o[3]) for o in outcomes(v1, two_room_stream())]
    assert ("u1", "say-a", "c10") in got
    assert ("u1b", "say-a", "c10") in got  # r1 was on air at the publish: still version 1
    assert not any(u == "u1c" and t == "say-b" for u, t, _ in got)
    assert ("u3", "say-b", "c30") in got  # r2's broadcast began after it: version 2
    assert not any(u == "u2" and t == "say-a" for u, t, _ in got)
    assert ("u5", "say-b", "c30") in got and not any(u == "u4" and t == "say-a" for u, t, _ in got)


def test_limits_hold_at_once_even_in_a_room_on_the_version_before() -> None:
    v1 = parse_campaign(source(V1_TRIGGERS))
    capped = source(V1_TRIGGERS, tail="limits: {per_user: 1}")
    stream = by_ts([ev("live_start", 0), *watch("u1", 10, 200), ev("comment", 20, "u1", text="苹果"),
                    publish_event(capped, 2, 100), *watch("u9", 150, 200), ev("comment", 160, "u9", text="苹果")])
    # u1: welcome + say-a before the publish (no cap then); u9 joins after: welcome issued, say-a capped
    got = outcomes(v1, stream)
    assert [(u, t, what) for _, u, t, what in got] == [
        ("u1", "welcome", "c20"), ("u1", "say-a", "c10"), ("u9", "welcome", "c20"), ("u9", "say-a", "per_user_cap")]


def test_the_schedule_holds_at_once_and_a_first_visit_counts_from_its_start() -> None:
    start = 1_700_000_100
    scheduled = source(V1_TRIGGERS, head=f"schedule: {{start: '{_iso(start)}', end: '{_iso(start + 100)}'}}")
    camp = parse_campaign(scheduled)
    stream = by_ts([ev("live_start", start - 50), *watch("early", start - 40, start + 50),
                    ev("comment", start - 30, "early", text="苹果"), ev("comment", start + 10, "early", text="苹果"),
                    *watch("late", start + 120, start + 150), ev("comment", start + 130, "late", text="苹果")])
    got = [(u, t) for _, u, t, _ in outcomes(camp, stream)]
    # early's first visit was before the start: it counts at their first join after it (none here);
    # their comment before the start fired nothing and did not use up the once-per-broadcast
    assert got == [("early", "say-a")]  # and nothing for "late": their comment came after the end
    rejoined = by_ts([*stream, ev("leave", start + 60, "early"), *watch("early", start + 70, start + 80)])
    assert [(u, t) for _, u, t, _ in outcomes(camp, rejoined)] == [("early", "say-a"), ("early", "welcome")]


def _iso(ts: int) -> str:
    import datetime as dt
    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=8))).isoformat()


def test_a_dwell_timer_due_outside_the_schedule_is_explained() -> None:
    start = 1_700_000_000
    text = source("  - {name: stay, when: dwell, after: 60s, coupon: c10}",
                  head=f"schedule: {{end: '{_iso(start + 30)}'}}")
    camp = parse_campaign(text)
    stream = [ev("live_start", start), *watch("u", start + 1, start + 90, every=20)]
    assert replay(camp, [json.dumps(e) for e in stream]).decisions == []
    notes = explain(camp, (parse_event(e) for e in stream), "u")
    assert [n["reason"] for n in notes] == ["off_schedule"]


def test_live_decisions_equal_the_replay_and_a_snapshot_taken_across_versions() -> None:
    v1 = parse_campaign(source(V1_TRIGGERS))
    stream = two_room_stream()
    live = Engine(v1, MemoryStore())
    made = apply_all(live, stream)
    assert [d.record() for d in made] == [d.record() for d in replay(v1, [json.dumps(e) for e in stream]).decisions]
    # snapshot right after r2 began on version 2 while r1 still runs version 1
    cut = next(i for i, e in enumerate(stream) if e["type"] == "live_start" and e["room"] == "r2") + 1
    store = MemoryStore()
    first = Engine(v1, store)
    before = apply_all(first, stream[:cut])
    assert {name: room.plan.version for name, room in first.rooms.items()} == {"r1": 1, "r2": 2}
    restored = Engine(v1, store)
    snapshots.load(restored, snapshots.dump(first))
    assert restored.campaign.triggers[0].name == "say-b" and restored.plan.version == 2
    after = apply_all(restored, stream[cut:])
    assert [d.record() for d in before + after] == [d.record() for d in made]


def test_the_publish_command_reads_back_from_the_log() -> None:
    text = source(V2_TRIGGERS)
    event = parse_event(publish_event(text, 3, 5, note="香蕉日"))
    command = event.command
    assert isinstance(command, PublishCampaign)
    assert (command.version, command.note, command.campaign.triggers[0].name) == (3, "香蕉日", "say-b")
    assert parse_event(event_json(event)).command == command


@pytest.mark.parametrize(("fields", "field"), [
    ({"version": 1}, "version"), ({"version": "2"}, "version"), ({"campaign": ""}, "campaign"),
    ({"campaign": "campaign: [1"}, "campaign"), ({"note": 5}, "note")])
def test_a_malformed_publish_in_a_log_names_its_field(fields: dict[str, Any], field: str) -> None:
    body = {"action": "publish", "version": 2, "campaign": source(V2_TRIGGERS)} | fields
    with pytest.raises(ValueError, match=f"^{field}: "):
        command_from_json(body)


def test_a_publish_of_another_campaign_in_a_replayed_file_changes_nothing() -> None:
    v1 = parse_campaign(source(V1_TRIGGERS))
    other = source(V2_TRIGGERS).replace("campaign: test-camp", "campaign: someone-else")
    stream = [ev("live_start", 0), publish_event(other, 2, 1), ev("live_start", 2), *watch("u", 3, 10),
              ev("comment", 4, "u", text="苹果")]
    assert [t for _, _, t, _ in outcomes(v1, stream)] == ["welcome", "say-a"]


def test_an_unchanged_offer_keeps_what_its_policy_learnt_and_a_changed_one_starts_afresh() -> None:
    offer = "  - {name: pick, when: dwell, after: 60s, offer: {arms: [null, c10, c20]}}"
    v1 = parse_campaign(source(offer))
    engine = Engine(v1, MemoryStore())
    learnt = engine.offers.policies["pick"]
    learnt.requests = 7
    engine.publish(PublishCampaign(2, source(offer, tail="limits: {per_user: 3}"),
                                   parse_campaign(source(offer, tail="limits: {per_user: 3}"))), 0)
    assert engine.offers.policies["pick"] is learnt
    changed = offer.replace("[null, c10, c20]", "[null, c10, c30]")
    engine.publish(PublishCampaign(3, source(changed), parse_campaign(source(changed))), 1)
    assert engine.offers.policies["pick"] is not learnt and engine.offers.policies["pick"].requests == 0


def test_reports_read_every_version_s_coupons_and_triggers() -> None:
    v1, v2 = parse_campaign(source(V1_TRIGGERS)), parse_campaign(source(V2_TRIGGERS).replace("  c10:", "  c11:"))
    merged = with_history([v1, v2])
    assert [t.name for t in merged.triggers] == ["say-b", "welcome", "say-a"]
    assert set(merged.coupons) == {"c10", "c11", "c20", "c30"} and merged.limits == v2.limits


def test_a_candidate_names_what_changed_and_when_it_takes_effect() -> None:
    current = parse_campaign(source(V1_TRIGGERS))
    text = source(V2_TRIGGERS, tail="limits: {budget: 500}")
    answer, command = publishing.prepare(text, 1, "换口令", 1, current, source(V1_TRIGGERS), ["r1"])
    assert command is not None and command.version == 2 and command.note == "换口令"
    assert answer["changes"]["triggers"] == {"added": ["say-b"], "removed": ["say-a"]}
    assert answer["changes"]["limits"] == ["budget"]
    assert answer["effect"]["at_once"] == ["limits.budget"] and answer["effect"]["rooms_waiting"] == ["r1"]
    timing = source(V1_TRIGGERS, head="presence_timeout: 90s\nschedule: {end: 2030-01-01T00:00:00+08:00}",
                    tail="limits: {min_interval: 10s}")
    timed, _ = publishing.prepare(timing, None, "", 1, current, None, [])
    assert timed["changes"]["limits"] == ["min_interval"]
    assert timed["changes"]["settings"] == ["presence_timeout", "schedule.end"]
    assert timed["effect"]["at_once"] == ["limits.min_interval", "schedule.end"]
    assert timed["effect"]["next_broadcast"] is True  # the presence timeout reaches rooms at their next broadcast
    assert any(line.startswith("+") and "香蕉" in line for line in answer["diff"])
    same, nothing = publishing.prepare(source(V1_TRIGGERS), None, "", 1, current, None, [])
    assert nothing is None and same["published"] is False


@pytest.mark.parametrize(("edit", "code"), [
    (lambda s: s.replace("campaign: test-camp", "campaign: renamed"), "campaign_fixed"),
    (lambda s: s + "delivery: {quiet_period: 10s}\n", "campaign_fixed"),
    (lambda s: s.replace("coupons:", "coupon:"), "campaign_invalid")])
def test_a_publish_refuses_what_only_a_restart_may_change(edit: Any, code: str) -> None:
    current = parse_campaign(source(V1_TRIGGERS))
    with pytest.raises(Refused) as caught:
        publishing.prepare(edit(source(V1_TRIGGERS)), None, "", 1, current, None, [])
    assert caught.value.code == code and caught.value.status == 409


def test_a_stale_base_version_is_refused() -> None:
    current = parse_campaign(source(V1_TRIGGERS))
    with pytest.raises(Refused) as caught:
        publishing.prepare(source(V2_TRIGGERS), 1, "", 2, current, None, [])
    assert caught.value.code == "version_conflict" and caught.value.status == 409


def test_a_trigger_published_later_never_fires_on_events_before_it() -> None:
    v1 = campaign("  - {name: welcome, when: first_visit, coupon: c20}", rooms='["r1"]')
    added = source("  - {name: welcome, when: first_visit, coupon: c20}\n"
                   "  - {name: say-a, when: comment, keywords: [\"苹果\"], coupon: c10}", rooms='["r1"]')
    stream = [ev("live_start", 0), *watch("u", 1, 30), ev("comment", 5, "u", text="苹果"), publish_event(added, 2, 40),
              ev("live_end", 50), ev("live_start", 60), *watch("u", 61, 70), ev("comment", 65, "u", text="苹果")]
    got = [(ts, t) for ts, _, t, _ in outcomes(v1, stream)]
    assert got == [(1, "welcome"), (65, "say-a")]


def test_explain_names_a_trigger_published_after_the_broadcast_began() -> None:
    """u1c said the new keyword in r1, still on version 1: the explanation says why nothing came, and the
    same words in the room's next broadcast issue the coupon."""
    v1 = parse_campaign(source(V1_TRIGGERS))
    stream = [*two_room_stream(), ev("comment", 312, "u1c", text="香蕉")]
    entries = explain(v1, (parse_event(e) for e in by_ts(stream)), "u1c")
    assert [(e["ts"], e["trigger"], e.get("reason") or e["outcome"]) for e in entries] == [
        (111, "say-b", "earlier_version"), (111, "welcome", "issued"), (312, "say-b", "issued")]
    assert entries[0]["why_zh"].startswith("该触发器在本场开播后才发布")
    # a trigger unchanged but moved in the file is the room's own: nothing to explain
    moved = source("  - {name: welcome, when: first_visit, coupon: c20}\n"
                   "  - {name: say-a, when: comment, keywords: [\"苹果\"], coupon: c10}")
    reordered = by_ts([ev("live_start", 0), *watch("x", 1, 30), publish_event(moved, 2, 5),
                       ev("comment", 10, "x", text="苹果")])
    assert [e.get("reason") or e["outcome"] for e in explain(v1, (parse_event(e) for e in reordered), "x")] == [
        "issued", "issued"]
