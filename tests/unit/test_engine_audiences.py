"""Triggers that reach an audience (SPEC §4): online_reached (present and lottery) and
host_says (phrase matching, cooldown, present / commenters / top_gifters)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from engine_fixtures import CAMPAIGN, campaign, ev, outcomes, run

MILESTONE = "  - {name: milestone, when: online_reached, count: 100, coupon: c10}"
PASS = '  - {name: pass, when: host_says, phrases: ["宝宝们发券啦"], coupon: c10}'


def joins(*users: str, at: float = 1) -> list[dict[str, Any]]:
    return [ev("join", at + i, user) for i, user in enumerate(users)]


# -- online_reached, reported -----------------------------------------------------------

def test_online_reached_fires_at_the_first_report_reaching_count_for_every_present_user() -> None:
    events = [ev("live_start", 0), ev("join", 5, "v"), ev("join", 2, "u"), ev("online_count", 10, count=99),
              ev("online_count", 20, count=100), ev("join", 25, "w"), ev("online_count", 30, count=5000)]
    assert outcomes(campaign(MILESTONE), sorted(events, key=lambda e: e["ts"])) == [
        (20, "u", "milestone", "c10"), (20, "v", "milestone", "c10")]


def test_online_reached_once_per_broadcast_and_again_in_the_next() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("online_count", 10, count=100),
              ev("online_count", 20, count=100), ev("live_start", 40), ev("join", 41, "w"),
              ev("online_count", 50, count=150)]
    assert outcomes(campaign(MILESTONE), events) == [(10, "u", "milestone", "c10"), (50, "w", "milestone", "c10")]


def test_online_reached_firing_that_reaches_nobody_uses_up_the_broadcast() -> None:
    events = [ev("live_start", 0), ev("online_count", 10, count=100), ev("join", 20, "u"),
              ev("online_count", 30, count=100)]
    assert outcomes(campaign(MILESTONE), events) == []


def test_online_reached_reported_ignores_the_present_count() -> None:
    triggers = "  - {name: milestone, when: online_reached, count: 2, coupon: c10}"
    events = [ev("live_start", 0), *joins("a", "b", "c"), ev("online_count", 10, count=1)]
    assert outcomes(campaign(triggers), events) == []


# -- online_reached, source: present ----------------------------------------------------

PRESENT2 = "  - {name: crowd, when: online_reached, count: 2, source: present, coupon: c20}"


def test_online_reached_present_fires_at_the_join_that_reaches_count() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("online_count", 5, count=1000),
              ev("comment", 10, "v", text="hi"), ev("join", 20, "w")]
    assert outcomes(campaign(PRESENT2), events) == [(10, "u", "crowd", "c20"), (10, "v", "crowd", "c20")]


@pytest.mark.parametrize(("second_at", "expected"), [
    (60, [(60, "u"), (60, "v")]),  # u is still present at 60
    (60.001, [(60.002, "v"), (60.002, "w")]),  # u timed out: the count reaches 2 only with w
])
def test_online_reached_present_counts_only_present_users(second_at: float, expected: list[tuple[float, str]]) -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", second_at, "v"), ev("join", 60.002, "w")]
    assert [(t, user) for t, user, _, _ in outcomes(campaign(PRESENT2), events)] == expected


def test_online_reached_present_not_checked_on_activity_of_present_users() -> None:
    events = [ev("live_start", 0), ev("join", 0, "u"), ev("join", 10, "v"), ev("leave", 20, "v"),
              ev("heartbeat", 30, "u"), ev("join", 40, "v")]
    triggers = "  - {name: crowd, when: online_reached, count: 2, source: present, coupon: c20}"
    assert outcomes(campaign(triggers), events) == [(10, "u", "crowd", "c20"), (10, "v", "crowd", "c20")]


# -- lottery ----------------------------------------------------------------------------

LOTTERY = "  - {name: lucky, when: online_reached, count: 3, audience: lottery, winners: 2, coupon: c10}"
USERS = ["u1", "u2", "u3", "u4", "u5", "u6"]


def expected_draw(seed: int, trigger: str, ms: int, eligible: list[str], winners: int) -> list[str]:
    """SPEC §4: random.Random(f"{seed}:{campaign}:{trigger}:{ts}").sample(sorted(eligible), k)."""
    rng = random.Random(f"{seed}:{CAMPAIGN}:{trigger}:{ms / 1000!r}")
    return rng.sample(sorted(eligible), min(winners, len(eligible)))


@pytest.mark.parametrize(("seed", "ts"), [(42, 1_700_000_100.5), (7, 1_700_000_100), (0, 12.345)])
def test_lottery_draw_is_reproducible_from_seed_campaign_trigger_and_ts(seed: int, ts: float) -> None:
    camp = campaign(LOTTERY, head=f"seed: {seed}")
    events = [ev("live_start", ts - 10), *[ev("join", ts - 9 + i, u) for i, u in enumerate(reversed(USERS))],
              ev("online_count", ts, count=3)]
    ms = round(ts * 1000)
    winners = expected_draw(seed, "lucky", ms, USERS, 2)
    assert outcomes(camp, events) == [(ms / 1000, user, "lucky", "c10") for user in winners]


def test_lottery_firing_time_is_the_repr_of_ms_over_1000() -> None:
    # the trigger fires at 100 s exactly: the seed string ends in "100.0", not "100"
    camp = campaign(LOTTERY, head="seed: 42")
    events = [ev("live_start", 0), *joins(*USERS, at=50), ev("online_count", 100, count=3)]
    expected = expected_draw(42, "lucky", 100_000, USERS, 2)
    wrong = random.Random(f"42:{CAMPAIGN}:lucky:100").sample(sorted(USERS), 2)
    assert expected != wrong  # the scenario tells the two apart
    assert [user for _, user, _, _ in outcomes(camp, events)] == expected


def test_lottery_draws_only_among_users_who_pass_the_caps() -> None:
    triggers = '  - {name: kou1, when: comment, keywords: ["扣1"], coupon: c20}\n' + LOTTERY.replace(
        "winners: 2", "winners: 3")
    camp = campaign(triggers, head="seed: 42", tail="limits: {per_user: 1}")
    commenters = ["u2", "u4", "u5", "u6"]
    events = [ev("live_start", 0), *joins(*USERS),
              *[ev("comment", 10 + i, u, text="扣1") for i, u in enumerate(commenters)],
              ev("online_count", 30, count=3)]
    eligible = ["u1", "u3"]
    winners = expected_draw(42, "lucky", 30_000, eligible, 3)
    assert sorted(winners) == eligible  # k = min(3, 2)
    got = outcomes(camp, events)
    assert got[:4] == [(10 + i, u, "kou1", "c20") for i, u in enumerate(commenters)]
    # users failing the caps are no decision: not suppressed, not written
    assert got[4:] == [(30, user, "lucky", "c10") for user in winners]


def test_lottery_winners_go_through_stock_in_the_order_drawn() -> None:
    coupons = """
coupons:
  c10: {title: ten, kind: no_threshold, amount: 10, valid_for: 15m, stock: 1}
"""
    camp = campaign(LOTTERY, head="seed: 3", coupons=coupons)
    events = [ev("live_start", 0), *joins(*USERS), ev("online_count", 50, count=3)]
    first, second = expected_draw(3, "lucky", 50_000, USERS, 2)
    assert outcomes(camp, events) == [(50, first, "lucky", "c10"), (50, second, "lucky", "out_of_stock")]


def test_lottery_winners_past_their_devices_share_in_the_draw_are_no_decision() -> None:
    """Each of two accounts on one phone passes step 2 alone (no device has a coupon of a lottery before its draw), so
    both may be drawn: the first drawn wins, the second is no decision and written nowhere (SPEC §4: a lottery's lines
    never carry a step 2 reason; it was suppressed as device_cap), and nobody is drawn in their place."""
    camp = campaign(LOTTERY.replace("winners: 2", "winners: 6 , per_device: 2"), head="seed: 5")
    phones = {"u1": "A", "u2": "A", "u3": "A", "u4": "B", "u5": "B", "u6": "C"}
    events = [ev("live_start", 0), *[ev("join", 1, u, device=d) for u, d in phones.items()],
              ev("online_count", 30, count=3)]
    drawn = expected_draw(5, "lucky", 30_000, USERS, 6)
    first_two_of_a = [u for u in drawn if phones[u] == "A"][:2]
    expected = [u for u in drawn if phones[u] != "A" or u in first_two_of_a]
    assert outcomes(camp, events) == [(30, user, "lucky", "c10") for user in expected]
    assert len(expected) == 5


def test_lottery_draws_among_present_users_only() -> None:
    camp = campaign(LOTTERY, head="seed: 42")
    events = [ev("live_start", 0), *joins(*USERS), ev("leave", 10, "u1"), ev("leave", 10, "u2"),
              ev("online_count", 20, count=3)]
    winners = expected_draw(42, "lucky", 20_000, USERS[2:], 2)
    assert [user for _, user, _, _ in outcomes(camp, events)] == winners


# -- host_says: matching ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "fires"), [
    ("宝宝们发券啦", True),
    ("好的，宝宝们，发券啦！！", True),
    ("宝 宝 们 发 券 啦", True),
    ("宝宝们发劝啦", True),  # speech-recognition homophone: same toneless pinyin
    ("宝宝们发劝了啦", False),  # not a contiguous run
    ("宝宝们发钱啦", False),  # qian ≠ quan
    ("宝宝们", False),
])
def test_host_says_matches_normalised_text_or_toneless_pinyin(text: str, fires: bool) -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 5, text=text)]
    assert outcomes(campaign(PASS), events) == ([(5, "u", "pass", "c10")] if fires else [])


@pytest.mark.parametrize(("text", "fires"), [
    ("ＨＥＬＬＯ，发 券!!", True),  # NFKC then lower case
    ("hello发劝", True),
    ("发quan", False),  # 'hello' is missing
    ("hello faquan", False),  # 'faquan' is one token, not 'fa' 'quan'
    ("hi hello发券", True),
])
def test_host_says_pinyin_compares_token_by_token(text: str, fires: bool) -> None:
    triggers = '  - {name: pass, when: host_says, phrases: ["Hello 发券"], coupon: c10}'
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 5, text=text)]
    assert outcomes(campaign(triggers), events) == ([(5, "u", "pass", "c10")] if fires else [])


def test_host_says_a_non_chinese_run_is_one_pinyin_token() -> None:
    # lazy_pinyin("发quan") == ["fa", "quan"]: the run "quan" is one token equal to 券's pinyin
    triggers = '  - {name: pass, when: host_says, phrases: ["发券"], coupon: c10}'
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 5, text="发quan"),
              ev("transcript", 70, text="faquan")]
    assert outcomes(campaign(triggers), events) == [(5, "u", "pass", "c10")]


def test_host_says_ignores_comments() -> None:
    events = [ev("live_start", 0), ev("comment", 1, "u", text="宝宝们发券啦")]
    assert outcomes(campaign(PASS), events) == []


# -- host_says: cooldown ----------------------------------------------------------------

def test_host_says_cooldown_defaults_to_60s_counted_from_the_last_firing() -> None:
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 10, text="宝宝们发券啦"),
              ev("transcript", 40, text="宝宝们发券啦"), ev("heartbeat", 50, "u"),
              ev("transcript", 69.999, text="宝宝们发券啦"),
              ev("transcript", 70, text="宝宝们发券啦"), ev("transcript", 100, text="宝宝们发券啦")]
    decisions = run(campaign(PASS), events)
    assert [(d.request.at, d.request.user) for d in decisions] == [(10_000, "u"), (70_000, "u")]
    assert decisions[0].request.coupon_id != decisions[1].request.coupon_id  # once per user per firing


def test_host_says_firing_that_reaches_nobody_starts_the_cooldown() -> None:
    events = [ev("live_start", 0), ev("transcript", 0, text="宝宝们发券啦"), ev("join", 1, "u"),
              ev("transcript", 59.999, text="宝宝们发券啦"), ev("transcript", 60, text="宝宝们发券啦")]
    assert outcomes(campaign(PASS), events) == [(60, "u", "pass", "c10")]


def test_host_says_cooldown_is_configurable() -> None:
    triggers = '  - {name: pass, when: host_says, phrases: ["发券"], coupon: c10, cooldown: 5m}'
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 10, text="发券"),
              ev("heartbeat", 40, "u"), ev("transcript", 60, text="发券"),
              *[ev("heartbeat", t, "u") for t in range(70, 320, 30)],
              ev("transcript", 309.999, text="发券"), ev("transcript", 310, text="发券")]
    events.sort(key=lambda e: e["ts"])
    assert outcomes(campaign(triggers), events) == [(10, "u", "pass", "c10"), (310, "u", "pass", "c10")]


def test_host_says_cooldown_is_per_room_and_restarts_at_live_start() -> None:
    events = [ev("live_start", 0), ev("live_start", 0, room="r2"), ev("join", 1, "u"), ev("join", 1, "v", room="r2"),
              ev("transcript", 10, text="宝宝们发券啦"), ev("transcript", 11, room="r2", text="宝宝们发券啦"),
              ev("live_start", 20), ev("join", 21, "u"), ev("transcript", 22, text="宝宝们发券啦"),
              ev("transcript", 23, room="r2", text="宝宝们发券啦")]
    camp = campaign(PASS, rooms='["r1", "r2"]')
    assert outcomes(camp, events) == [(10, "u", "pass", "c10"), (11, "v", "pass", "c10"), (22, "u", "pass", "c10")]


def test_host_says_triggers_have_their_own_cooldowns() -> None:
    triggers = PASS + '\n  - {name: other, when: host_says, phrases: ["恭喜"], coupon: c20}'
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("transcript", 10, text="宝宝们发券啦"),
              ev("transcript", 20, text="恭喜恭喜"), ev("transcript", 30, text="恭喜！宝宝们发券啦")]
    assert outcomes(campaign(triggers), events) == [(10, "u", "pass", "c10"), (20, "u", "other", "c20")]


def test_host_says_one_transcript_fires_several_triggers_in_file_order() -> None:
    triggers = '  - {name: b, when: host_says, phrases: ["恭喜"], coupon: c20}\n' + PASS
    events = [ev("live_start", 0), ev("join", 1, "u"), ev("join", 2, "v"),
              ev("transcript", 10, text="宝宝们发券啦恭喜")]
    assert outcomes(campaign(triggers), events) == [
        (10, "u", "b", "c20"), (10, "v", "b", "c20"), (10, "u", "pass", "c10"), (10, "v", "pass", "c10")]


# -- host_says: audiences ---------------------------------------------------------------

COMMENTERS = ('  - {name: talk, when: host_says, phrases: ["发券"], coupon: c10, audience: commenters,'
              ' cooldown: 0}')


def commenters_scenario() -> list[dict[str, Any]]:
    return [ev("live_start", 0),
            ev("join", 1, "v"), ev("join", 2, "y"), ev("join", 3, "z"),
            ev("comment", 5, "w", text="too early"),
            ev("comment", 9.999, "y", text="just outside"),
            ev("comment", 10, "u", text="at t - within"),
            ev("comment", 20, "x", text="then left"),
            ev("heartbeat", 30, "w"), ev("comment", 40, "v", text="b"),
            ev("heartbeat", 50, "u"), ev("leave", 50, "x"),
            ev("heartbeat", 60, "w"), ev("heartbeat", 60, "y"), ev("heartbeat", 60, "z"),
            ev("comment", 70, "z", text="same ms, applied before"),
            ev("transcript", 70, text="发券"),
            ev("comment", 70, "q", text="same ms, applied after")]


def test_host_says_commenters_are_present_users_who_commented_within_60s_in_join_order() -> None:
    got = outcomes(campaign(COMMENTERS), commenters_scenario())
    assert got == [(70, "v", "talk", "c10"), (70, "z", "talk", "c10"), (70, "u", "talk", "c10")]


def test_host_says_commenters_within_is_configurable() -> None:
    triggers = COMMENTERS.replace("cooldown: 0", "cooldown: 0, within: 30s")
    got = outcomes(campaign(triggers), commenters_scenario())
    assert got == [(70, "v", "talk", "c10"), (70, "z", "talk", "c10")]


def test_host_says_commenters_only_count_this_broadcast() -> None:
    events = [ev("live_start", 0), ev("comment", 10, "u", text="a"), ev("live_start", 20), ev("join", 21, "u"),
              ev("transcript", 30, text="发券")]
    assert outcomes(campaign(COMMENTERS), events) == []


TOP = ('  - {name: thanks, when: host_says, phrases: ["恭喜榜一"], coupon: c30, audience: top_gifters,'
       ' cooldown: 0, top: TOP}')


def gifts_scenario() -> list[dict[str, Any]]:
    return [ev("live_start", 0), ev("gift", 1, "a", value=10), ev("gift", 2, "b", value=20),
            ev("gift", 3, "c", value=5), ev("gift", 4, "a", value=10), ev("join", 5, "d"), ev("leave", 6, "c"),
            ev("transcript", 10, text="恭喜榜一的宝宝"), ev("gift", 10, "d", value=100)]


@pytest.mark.parametrize(("top", "expected"), [
    (None, ["b"]),  # default top 1
    (2, ["b", "a"]),  # a reached 20 after b did: b ranks first
    (5, ["b", "a", "c"]),  # c left but still ranks; d gave nothing (before the transcript): not ranked
])
def test_host_says_top_gifters_rank_by_total_then_who_reached_it_first(top: int | None,
                                                                       expected: list[str]) -> None:
    triggers = TOP.replace(", top: TOP", "") if top is None else TOP.replace("TOP", str(top))
    got = outcomes(campaign(triggers), gifts_scenario())
    assert got == [(10, user, "thanks", "c30") for user in expected]


def test_host_says_top_gifters_tie_is_not_moved_by_a_zero_gift() -> None:
    events = [ev("live_start", 0), ev("gift", 1, "a", value=10), ev("gift", 2, "b", value=10),
              ev("gift", 3, "a", value=0), ev("transcript", 10, text="恭喜榜一")]
    assert outcomes(campaign(TOP.replace("TOP", "1")), events) == [(10, "a", "thanks", "c30")]


def test_host_says_top_gifters_tie_goes_to_who_reached_the_total_first() -> None:
    events = [ev("live_start", 0), ev("gift", 1, "b", value=5), ev("gift", 2, "a", value=10),
              ev("gift", 3, "b", value=5), ev("gift", 3, "c", value=9.99), ev("transcript", 10, text="恭喜榜一")]
    got = outcomes(campaign(TOP.replace("TOP", "3")), events)
    assert got == [(10, "a", "thanks", "c30"), (10, "b", "thanks", "c30"), (10, "c", "thanks", "c30")]


def test_host_says_top_gifters_are_decided_in_rank_order() -> None:
    coupons = """
coupons:
  c30: {title: thirty, kind: threshold, threshold: 99, amount: 30, valid_for: 1h, stock: 1}
"""
    got = outcomes(campaign(TOP.replace("TOP", "2"), coupons=coupons), gifts_scenario())
    assert got == [(10, "b", "thanks", "c30"), (10, "a", "thanks", "out_of_stock")]


def test_host_says_top_gifters_totals_are_per_broadcast() -> None:
    events = [ev("live_start", 0), ev("gift", 1, "a", value=100), ev("live_end", 2), ev("gift", 3, "b", value=50),
              ev("live_start", 4), ev("gift", 5, "c", value=1), ev("transcript", 10, text="恭喜榜一")]
    assert outcomes(campaign(TOP.replace("TOP", "3")), events) == [(10, "c", "thanks", "c30")]


def test_host_says_present_audience_is_every_present_user_in_join_order() -> None:
    events = [ev("live_start", 0), ev("join", 3, "b"), ev("like", 1, "c"), ev("join", 2, "a"),
              ev("leave", 4, "a"), ev("transcript", 10, text="宝宝们发券啦")]
    events.sort(key=lambda e: e["ts"])
    assert outcomes(campaign(PASS), events) == [(10, "c", "pass", "c10"), (10, "b", "pass", "c10")]
