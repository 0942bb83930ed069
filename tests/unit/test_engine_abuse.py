"""SPEC v4 step 2 and operator commands in the engine: risk, per_device, the blocklist, pause."""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import apply_live, by_ts, campaign, ev, outcomes, record, records, watch
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.campaign_file import CampaignError
from livecoupon.domain.events import parse_event

NEWCOMER = "  - {name: newcomer, when: first_visit, coupon: c10, per_device: 1}\n"
SAY = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s}\n"


def say(ts: float) -> dict[str, object]:
    return ev("transcript", ts, text="宝宝们发券啦")


def op(ts: float, action: str, **fields: object) -> dict[str, object]:
    return {"type": "operator", "room": "*", "ts": ts, "action": action, **fields}


# -- per_device ---------------------------------------------------------------------------------

def test_a_thousand_accounts_on_one_device_get_one_newcomer_coupon() -> None:
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0)] + [ev("join", 1 + i / 1000, f"farm-{i}", device="phone-1") for i in range(1000)]
    result = outcomes(camp, events)
    assert result[0] == (1, "farm-0", "newcomer", "c10")
    assert {r[3] for r in result[1:]} == {"device_cap"} and len(result) == 1000


def test_first_visit_device_cap_holds_forever_across_broadcasts_and_rooms() -> None:
    camp = campaign(NEWCOMER, rooms='["r1", "r2"]')
    events = [ev("live_start", 0), ev("join", 1, "a", device="d"), ev("live_start", 10),
              ev("live_start", 10, room="r2"), ev("join", 11, "b", room="r2", device="d")]
    assert outcomes(camp, events) == [(1, "a", "newcomer", "c10"), (11, "b", "newcomer", "device_cap")]


def test_other_triggers_cap_per_device_per_broadcast() -> None:
    triggers = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s, per_device: 2}\n"
    camp = campaign(triggers)
    viewers = [watch(u, 1, 30) for u in ("a", "b", "c")]
    events = by_ts([ev("live_start", 0), *sum(viewers, []), say(10), ev("live_start", 40), *watch("c", 41, 50),
                    say(50)])
    for e in events:
        if e.get("user") is not None:
            e["device"] = "shared"
    assert outcomes(camp, events) == [(10, "a", "say", "c20"), (10, "b", "say", "c20"),
                                      (10, "c", "say", "device_cap"), (50, "c", "say", "c20")]


def test_a_user_without_a_device_is_a_device_of_their_own() -> None:
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b"), ev("join", 3, "c", device="u:a")]
    assert [r[3] for r in outcomes(camp, events)] == ["c10", "c10", "c10"]


def test_an_empty_device_is_one_not_known_not_one_device_shared_by_all() -> None:
    """A platform may send "" where it knows no device (SPEC §2: given when it knows it): capping every such viewer
    together would give one newcomer coupon among all of them."""
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0), ev("join", 1, "erin", device=""), ev("join", 2, "fay", device="", ip=""),
              ev("join", 3, "gus", device="d"), ev("heartbeat", 4, "gus", device=""), ev("join", 5, "hal", device="d")]
    assert [r[3] for r in outcomes(camp, events)] == ["c10", "c10", "c10", "device_cap"]  # "" kept gus's "d"


def test_the_latest_device_given_wins() -> None:
    triggers = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s, per_device: 1}\n"
    camp = campaign(triggers)
    events = [ev("live_start", 0), ev("join", 1, "a", device="d1"), ev("join", 2, "b", device="d1"),
              ev("heartbeat", 3, "b", device="d2"), say(4)]
    assert outcomes(camp, events) == [(4, "a", "say", "c20"), (4, "b", "say", "c20")]


# -- risk and the order of step 2 ----------------------------------------------------------------

def test_users_above_max_risk_get_nothing_and_risk_comes_first() -> None:
    camp = campaign(NEWCOMER + SAY, tail="limits: {max_risk: 0.8, per_user: 1}")
    events = [ev("live_start", 0), ev("join", 1, "bot", risk=0.9, device="d"), ev("join", 2, "ok", risk=0.8),
              ev("join", 3, "late", device="d")]
    assert outcomes(camp, events) == [(1, "bot", "newcomer", "risk"), (2, "ok", "newcomer", "c10"),
                                      (3, "late", "newcomer", "c10")]


@pytest.mark.parametrize("opening", [[], [ev("live_start", 0.5)]])
def test_the_event_that_opens_a_broadcast_is_decided_with_what_it_says_of_its_user(
        opening: list[dict[str, object]]) -> None:
    """Without a live_start, a room's first event begins its broadcast (SPEC §2) and is applied with its own
    device and risk, as any other: it was decided with none."""
    camp = campaign(NEWCOMER, rooms='["r1", "r2"]', tail="limits: {max_risk: 0.5}")
    events = [ev("join", 0, "a", device="d"), *[{**e, "room": "r2"} for e in opening],
              ev("join", 1, "b", room="r2", device="d"), ev("join", 2, "c", room="r2", risk=0.99)]
    assert outcomes(camp, events) == [(0, "a", "newcomer", "c10"), (1, "b", "newcomer", "device_cap"),
                                      (2, "c", "newcomer", "risk")]
    fresh = [{**ev("comment", 0, "bot", room="r2", text="hi"), "risk": 0.99}]
    assert outcomes(camp, fresh) == [(0, "bot", "newcomer", "risk")]


def test_a_risk_lowered_later_lets_the_next_firing_through() -> None:
    camp = campaign(SAY, tail="limits: {max_risk: 0.5}")
    events = [ev("live_start", 0), ev("join", 1, "u", risk=0.9), say(2), ev("heartbeat", 3, "u", risk=0.1), say(4)]
    assert outcomes(camp, events) == [(2, "u", "say", "risk"), (4, "u", "say", "c20")]


def test_device_cap_is_checked_before_per_user() -> None:
    triggers = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s, per_device: 1}\n"
    camp = campaign(triggers, tail="limits: {per_user: 1}")
    events = [ev("live_start", 0), ev("join", 1, "a", device="d"), say(2), say(3)]
    assert outcomes(camp, events) == [(2, "a", "say", "c20"), (3, "a", "say", "device_cap")]


@pytest.mark.parametrize(("tail", "error"), [
    ("limits: {max_risk: 1.5}", "limits.max_risk: 必须在 0 到 1 之间 / must be in [0, 1]"),
    ("limits: {max_risk: true}", "limits.max_risk"),
])
def test_max_risk_is_validated(tail: str, error: str) -> None:
    with pytest.raises(CampaignError) as info:
        campaign(SAY, tail=tail)
    assert any(error in line for line in info.value.errors)


def test_per_device_is_validated() -> None:
    with pytest.raises(CampaignError) as info:
        campaign("  - {name: n, when: first_visit, coupon: c10, per_device: 0}\n")
    assert info.value.errors == ["triggers[0].per_device: 至少为 1 / must be ≥ 1"]


# -- operator commands in the stream --------------------------------------------------------------

def test_a_paused_trigger_decides_nothing_and_uses_up_nothing() -> None:
    kou = "  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}\n"
    camp = campaign(kou)
    events = [ev("live_start", 0), ev("join", 1, "u"), op(2, "pause", trigger="kou1"),
              ev("comment", 3, "u", text="扣1"), op(4, "resume", trigger="kou1"), ev("comment", 5, "u", text="扣1")]
    assert outcomes(camp, events) == [(5, "u", "kou1", "c20")]


def test_a_milestone_paused_when_crossed_fires_at_the_next_count_after_resume() -> None:
    milestone = "  - {name: m, when: online_reached, count: 2, coupon: c10}\n"
    camp = campaign(milestone)
    events = [ev("live_start", 0), ev("join", 1, "a"), op(2, "pause", trigger="m"), ev("online_count", 3, count=5),
              op(4, "resume", trigger="m"), ev("online_count", 5, count=5)]
    assert outcomes(camp, events) == [(5, "a", "m", "c10")]


def test_a_dwell_timer_due_while_paused_is_skipped_but_resumed_before_due_fires() -> None:
    dwell = "  - {name: dwell, when: dwell, after: 60s, coupon: c10}\n"
    camp = campaign(dwell)
    events = by_ts([ev("live_start", 0), *watch("a", 1, 120), *watch("b", 50, 120),
                    op(10, "pause", trigger="dwell"), op(70, "resume", trigger="dwell")])
    assert outcomes(camp, events) == [(110, "b", "dwell", "c10")]


def test_manual_issue_and_send_to_present_are_decided_where_they_stand() -> None:
    camp = campaign(SAY, tail="limits: {per_user: 1}")
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b"),
              {"type": "operator", "room": "r1", "ts": 3, "action": "issue", "template": "c30", "users": ["a", "z"],
               "key": "k1"},
              {"type": "operator", "room": "r1", "ts": 4, "action": "issue_present", "template": "c10", "key": "k2"}]
    assert outcomes(camp, events) == [(3, "a", "manual", "c30"), (3, "z", "manual", "c30"),
                                      (4, "a", "manual", "per_user_cap"), (4, "b", "manual", "c10")]


def test_blocked_users_and_devices_are_decided_blocked_until_unblocked() -> None:
    camp = campaign(SAY)
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("join", 1, "b", device="farm"), ev("join", 1, "c"),
              op(2, "block", users=["a"], devices=["farm"]), say(3), op(4, "unblock", users=["a"]), say(5)]
    assert outcomes(camp, events) == [(3, "a", "say", "blocked"), (3, "b", "say", "blocked"), (3, "c", "say", "c20"),
                                      (5, "a", "say", "c20"), (5, "b", "say", "blocked"), (5, "c", "say", "c20")]


def test_a_clock_mark_fires_the_timers_due_by_then_and_nothing_else() -> None:
    dwell = "  - {name: dwell, when: dwell, after: 60s, coupon: c10}\n"
    camp = campaign(dwell)
    events = [ev("live_start", 0), ev("join", 1, "a"), ev("heartbeat", 30, "a"), ev("heartbeat", 59, "a")]
    assert outcomes(camp, events) == []  # replay stops at its last event
    assert outcomes(camp, [*events, op(61, "clock")]) == [(61, "a", "dwell", "c10")]


def test_off_air_rooms_do_not_learn_devices() -> None:
    camp = campaign(NEWCOMER)
    events = [ev("live_start", 0), ev("live_end", 1), ev("join", 2, "x", device="d"), ev("live_start", 3),
              ev("join", 4, "a", device="d"), ev("join", 5, "x")]
    assert outcomes(camp, events) == [(4, "a", "newcomer", "c10"), (5, "x", "newcomer", "c10")]


# -- budget shares (extensions): a trigger's own budget, each room's --------------------------------------------------

def test_a_trigger_stops_at_its_own_budget_while_others_go_on() -> None:
    triggers = ("  - {name: newcomer, when: first_visit, coupon: c10, budget: 30}\n"
                "  - {name: kou1, when: comment, keywords: [扣1], coupon: c20}\n")
    camp = campaign(triggers, tail="limits: {budget: 1000}")
    events = [ev("live_start", 0)] + [ev("join", i, f"u{i}") for i in range(1, 5)] + [
        ev("comment", 9, "u4", text="扣1")]
    assert [o[2:] for o in outcomes(camp, events)] == [("newcomer", "c10")] * 3 + [
        ("newcomer", "over_budget"), ("kou1", "c20")]


def test_each_room_has_its_own_budget() -> None:
    camp = campaign("  - {name: newcomer, when: first_visit, coupon: c10}\n", rooms='["r1", "r2"]',
                    tail="limits: {room_budget: 20}")
    events = [ev("live_start", 0), ev("live_start", 0, room="r2")] + [
        ev("join", i, f"a{i}") for i in range(1, 4)] + [ev("join", 5, "b1", room="r2")]
    assert [(o[1], o[3]) for o in outcomes(camp, events)] == [("a1", "c10"), ("a2", "c10"), ("a3", "over_budget"),
                                                              ("b1", "c10")]


@pytest.mark.parametrize(("trigger_budget", "room_budget", "error"), [
    ("budget: 0", "room_budget: 10", "triggers[0].budget: 必须大于 0 / must be > 0"),
    ("budget: 10", "room_budget: 0", "limits.room_budget: 必须大于 0 / must be > 0"),
    ("budget: 10", "room_budget: -1", "limits.room_budget: 不能为负数 / must not be negative"),
])
def test_budgets_must_be_positive(trigger_budget: str, room_budget: str, error: str) -> None:
    with pytest.raises(CampaignError) as info:
        campaign(f"  - {{name: n, when: first_visit, coupon: c10, {trigger_budget}}}\n",
                 tail=f"limits: {{{room_budget}}}")
    assert info.value.errors == [error]


# -- facts on any event, replayed as applied ---------------------------------------------------

FACT_KINDS = st.sampled_from(["join", "heartbeat", "heartbeat", "like", "follow", "leave", "comment", "say"])


@st.composite
def viewers_with_facts(draw: st.DrawFn) -> list[dict[str, object]]:
    events: list[dict[str, object]] = [ev("live_start", 0)]
    ts = 0
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(FACT_KINDS)
        ts += draw(st.sampled_from([1, 5, 40]))
        if kind == "say":
            events.append(say(ts))
            continue
        event = ev(kind, ts, draw(st.sampled_from(["a", "b", "c"])), **({"text": "扣1"} if kind == "comment" else {}))
        for name, choices in (("device", [None, "d1", "d2"]), ("ip", [None, "10.0.0.1"]), ("risk", [None, 0.1, 0.9]),
                              ("profile", [None, {"level": 1}, {"level": 2, "city": "杭州"}])):
            value = draw(st.sampled_from(choices))
            if value is not None:
                event[name] = value
        events.append(event)
    return events


@settings(max_examples=150, deadline=None)
@given(viewers_with_facts())
def test_a_viewer_s_facts_decide_in_replay_as_the_live_engine_applies_them(events: list[dict[str, object]]) -> None:
    """Replay refreshes a present viewer without an event, their device, ip and risk learned there too."""
    triggers = ("  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s, per_device: 1}\n"
                + NEWCOMER)
    camp = campaign(triggers, tail="limits: {max_risk: 0.5}")
    _, live = apply_live(camp, events)
    assert records(camp, events) == [record(d) for d in live]


class ToldElsewhere:
    """Claims whose users' devices another room told (scaled out, the PostgreSQL store fills them so): the port's
    calls on a memory store, each request filled with what was told elsewhere."""

    def __init__(self, devices: dict[str, str]) -> None:
        from livecoupon.store.memory import MemoryStore

        self.claims, self.devices = MemoryStore(), devices

    def __getattr__(self, name: str) -> object:
        return getattr(self.claims, name)

    def _told(self, requests: Any) -> list[Any]:
        from livecoupon.domain.decisions import learnt_elsewhere

        return [learnt_elsewhere(r, self.devices.get(r.user), None) for r in requests]

    def passing_caps(self, requests: Any, limits: Any) -> Any:
        return self.claims.passing_caps(self._told(requests), limits)

    def issue(self, requests: Any, limits: Any) -> Any:
        return self.claims.issue(self._told(requests), limits)


def test_a_lotterys_winners_are_capped_by_the_devices_other_rooms_told() -> None:
    """Its winners were capped by the devices the room knew: ten accounts on one phone told elsewhere were all drawn
    distinct, and the claims then wrote device_cap lines for nine, a step-2 reason no lottery line carries."""
    from livecoupon.engine.campaigns import Deployment

    camp = campaign("  - {name: lucky, when: online_reached, count: 10, coupon: c10, audience: lottery, winners: 5,"
                    " per_device: 1}\n")
    farm = [f"farm-{i}" for i in range(10)]
    deployment = Deployment([camp], ToldElsewhere(dict.fromkeys(farm, "phone-1")))  # type: ignore[arg-type]
    made = []
    for data in [ev("live_start", 0), *(ev("join", 1, u) for u in farm), ev("online_count", 2, count=10)]:
        made.extend(deployment.apply(parse_event(data)))
    lucky = [d for d in made if d.request.trigger == "lucky"]
    assert len(lucky) == 1 and lucky[0].issued, [(d.request.user, d.reason) for d in lucky]
