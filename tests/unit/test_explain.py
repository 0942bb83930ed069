"""``explain``: every decision for a user and every firing that reached them silently, in words."""

from __future__ import annotations

from typing import Any

from engine_fixtures import by_ts, campaign, ev, watch

from livecoupon.domain.decisions import Reason, Silence
from livecoupon.domain.events import parse_event
from livecoupon.engine.explaining import REASON_WORDS, SILENCE_WORDS, explain


def why(camp_triggers: str, events: list[dict[str, Any]], user: str, **kw: str) -> list[tuple[float, str, str]]:
    entries = explain(campaign(camp_triggers, **kw), [parse_event(e) for e in by_ts(events)], user)
    assert all(e["why"] for e in entries)
    return [(e["ts"], e["trigger"], e.get("reason") or e["outcome"]) for e in entries]


def op(ts: float, action: str, **fields: object) -> dict[str, object]:
    return {"type": "operator", "room": "*", "ts": ts, "action": action, **fields}


SAY = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c10, cooldown: 60s}\n"


def test_issued_and_suppressed_decisions_with_their_reasons() -> None:
    triggers = "  - {name: newcomer, when: first_visit, coupon: c10}\n" + SAY
    events = [ev("live_start", 0), *watch("u", 1, 100), ev("transcript", 50, text="发券啦")]
    assert why(triggers, events, "u", tail="limits: {per_user: 1}") == [
        (1, "newcomer", "issued"), (50, "say", "per_user_cap")]


def test_cooldown_not_present_and_off_air_are_explained() -> None:
    events = [ev("live_start", 0), *watch("u", 1, 40), ev("transcript", 30, text="发券啦"),
              ev("transcript", 35, text="发券啦"), ev("transcript", 200, text="发券啦"), ev("live_end", 300),
              ev("join", 310, "u")]
    assert why(SAY, events, "u") == [(30, "say", "issued"), (35, "say", "cooldown"), (200, "say", "not_present"),
                                     (310, None, "off_air")]


def test_a_paused_trigger_is_explained_where_it_would_have_fired() -> None:
    kou = "  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}\n"
    events = [ev("live_start", 0), ev("join", 1, "u"), op(2, "pause", trigger="kou1"),
              ev("comment", 3, "u", text="扣1"), op(4, "resume", trigger="kou1"), ev("comment", 5, "u", text="扣1")]
    assert why(kou, events, "u") == [(3, "kou1", "paused"), (5, "kou1", "issued")]


def test_entries_at_one_moment_are_listed_in_the_order_they_were_decided() -> None:
    """A paused trigger's silence and a decision of the same event: the newcomer's (its implied join, decided first,
    SPEC §2) came after kou1's silence, every note of an event having been listed before its decisions."""
    triggers = ("  - {name: newcomer, when: first_visit, coupon: c10}\n"
                "  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}\n"
                "  - {name: late, when: comment, keywords: [扣], coupon: c10}\n")
    events = [ev("live_start", 0), op(1, "pause", trigger="kou1"), ev("comment", 3, "u", text="扣1")]
    assert why(triggers, events, "u") == [(3, "newcomer", "issued"), (3, "kou1", "paused"), (3, "late", "issued")]


def test_dwell_interrupted_and_ordered_during_dwell() -> None:
    dwell = "  - {name: dwell, when: dwell, after: 60s, coupon: c10}\n"
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("leave", 30, "u"), ev("join", 100, "u"),
              ev("order", 120, "u", order_id="o1", amount=10), ev("heartbeat", 150, "u"), ev("heartbeat", 165, "u")]
    assert why(dwell, events, "u") == [(61, "dwell", "dwell_interrupted"), (160, "dwell", "ordered_during_dwell")]


def test_lottery_losers_and_audience_outsiders_are_told_why() -> None:
    lottery = "  - {name: lucky, when: online_reached, count: 3, coupon: c10, audience: lottery, winners: 1}\n"
    events = [ev("live_start", 0), *(ev("join", 1, u) for u in ("a", "b", "c")), ev("online_count", 2, count=3)]
    outcomes = {user: why(lottery, events, user) for user in ("a", "b", "c")}
    assert sorted(o[0][2] for o in outcomes.values()) == ["issued", "not_drawn", "not_drawn"]
    shared = [ev("live_start", 0), *(ev("join", 1, u, device="phone") for u in ("a", "b", "c")),
              ev("online_count", 2, count=3)]
    one_a_phone = lottery.replace("winners: 1", "winners: 3, per_device: 1")
    outcomes = {user: why(one_a_phone, shared, user) for user in ("a", "b", "c")}
    assert sorted(o[0][2] for o in outcomes.values()) == ["device_drawn", "device_drawn", "issued"]
    top = "  - {name: thanks, when: host_says, phrases: [恭喜榜一], coupon: c30, audience: top_gifters}\n"
    gifts = [ev("live_start", 0), ev("gift", 1, "rich", value=100), ev("gift", 2, "u", value=1),
             ev("transcript", 3, text="恭喜榜一")]
    assert why(top, gifts, "u") == [(3, "thanks", "not_a_top_gifter")]


def test_a_user_never_in_the_room_has_nothing_to_explain() -> None:
    events = [ev("live_start", 0), ev("join", 1, "other"), ev("transcript", 2, text="发券啦")]
    assert why(SAY, events, "stranger") == []


def test_with_the_decisions_as_made_the_replay_only_tells_the_silences() -> None:
    """Scaled out, where rooms competed for shared limits the partitions decided otherwise than a replay of the
    merged log: explain told a newcomer coupon the user never got. Given the decisions as made, those are told."""
    from livecoupon.domain.decisions import Decision, IssueRequest

    triggers = "  - {name: newcomer, when: first_visit, coupon: c10}\n" + SAY
    camp = campaign(triggers, rooms='["r1", "r3"]')
    events = [ev("live_start", 0), ev("live_start", 0, room="r3"), ev("join", 1, "u"), ev("join", 3, "u", room="r3"),
              ev("leave", 4, "u"), ev("leave", 4, "u", room="r3"), ev("transcript", 10, text="发券啦")]
    log = [parse_event(e) for e in by_ts(events)]
    replayed = [(e["ts"], e["trigger"], e.get("reason") or e["outcome"]) for e in explain(camp, log, "u")]
    assert replayed == [(1, "newcomer", "issued"), (10, "say", "not_present")]
    made = Decision(IssueRequest("cp_r3", camp.campaign, "r3", 0, "newcomer", "u", camp.coupons["c10"], 3_000),
                    Reason.DEVICE_CAP)  # the r3 partition claimed the first visit first: another account's device
    told = [(e["ts"], e["room"], e["trigger"], e.get("reason") or e["outcome"])
            for e in explain(camp, log, "u", recorded=[made])]
    assert told == [(3, "r3", "newcomer", "device_cap"), (10, "r1", "say", "not_present")]


def test_every_reason_and_silence_has_words() -> None:
    assert set(REASON_WORDS) == set(Reason) and set(SILENCE_WORDS) == set(Silence)
