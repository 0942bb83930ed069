"""An operator's manual issues by idempotency key in the engine (SPEC §5: the same key always gets the same
answer): a repeat gets the first use's coupons, whoever is present now and in whatever broadcast; another
request under the key decides nothing; snapshots keep the keys."""

from __future__ import annotations

from typing import Any

import pytest
from engine_fixtures import apply_live, campaign, ev, run

from livecoupon.domain.decisions import MANUAL, Decision
from livecoupon.domain.events import parse_event
from livecoupon.engine import snapshots
from livecoupon.engine.engine import Engine
from livecoupon.store.memory import MemoryStore

SAY = "  - {name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 0s}\n"


def issue(ts: float, users: list[str], key: str = "k1", template: str = "c30", room: str = "r1") -> dict[str, Any]:
    return {"type": "operator", "room": room, "ts": ts, "action": "issue", "template": template, "users": users,
            "key": key}


def present(ts: float, key: str = "k2", template: str = "c10", room: str = "r1") -> dict[str, Any]:
    return {"type": "operator", "room": room, "ts": ts, "action": "issue_present", "template": template, "key": key}


def answer(made: list[Decision]) -> list[tuple[str, str, str | None]]:
    return [(d.request.coupon_id, d.request.user, d.reason.value if d.reason else None) for d in made]


def manual_decisions(store: MemoryStore) -> list[tuple[str, str]]:
    return [(r.coupon_id, r.user) for r in store.decisions("test-camp", MANUAL)]


def apply(engine: Engine, data: dict[str, Any]) -> list[Decision]:
    return engine.apply(parse_event(data))


def test_a_repeated_key_gets_the_first_coupons_again_even_in_a_later_broadcast() -> None:
    store = MemoryStore()
    engine, first = apply_live(campaign(SAY, rooms='["r1", "r2"]'),
                               [ev("live_start", 0), ev("join", 1, "a"), issue(3, ["a", "b"])], store)
    assert [(u, why) for _, u, why in answer(first)] == [("a", None), ("b", None)]
    assert answer(apply(engine, issue(4, ["a", "b", "a"]))) == answer(first)  # a repeated name is one user
    apply(engine, ev("live_start", 10))
    assert answer(apply(engine, issue(11, ["a", "b"]))) == answer(first)
    assert manual_decisions(store) == [(cid, u) for cid, u, _ in answer(first)]


@pytest.mark.parametrize("other", [
    issue(5, ["a"]), issue(5, ["b", "a"]), issue(5, ["a", "b", "c"]), issue(5, ["a", "b"], template="c20"),
    issue(5, ["a", "b"], room="r2"), present(5, key="k1", template="c30"),
], ids=["fewer-users", "other-order", "more-users", "other-template", "other-room", "send-to-present"])
def test_a_key_used_for_another_request_decides_nothing(other: dict[str, Any]) -> None:
    store = MemoryStore()
    engine, first = apply_live(campaign(SAY, rooms='["r1", "r2"]'),
                               [ev("live_start", 0), ev("live_start", 0, room="r2"), ev("join", 1, "a"),
                                ev("join", 1, "c"), issue(3, ["a", "b"])], store)
    assert apply(engine, other) == []
    assert manual_decisions(store) == [(cid, u) for cid, u, _ in answer(first)]
    assert answer(apply(engine, issue(6, ["a", "b"]))) == answer(first)  # the first request still gets its answer


def test_send_to_everyone_present_retried_reaches_those_present_the_first_time() -> None:
    store = MemoryStore()
    engine, first = apply_live(campaign(SAY), [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b"),
                                               present(3)], store)
    assert [u for _, u, _ in answer(first)] == ["a", "b"]
    for data in (ev("leave", 4, "a"), ev("join", 5, "c")):
        apply(engine, data)
    assert answer(apply(engine, present(6))) == answer(first)
    assert apply(engine, present(7, template="c20")) == []
    assert [u for _, u in manual_decisions(store)] == ["a", "b"]


def test_send_to_present_off_air_leaves_its_key_unused() -> None:
    engine, made = apply_live(campaign(SAY), [ev("live_start", 0), ev("join", 1, "a"), ev("live_end", 2),
                                              present(3)])
    assert made == [] and engine.manual_issues == {}
    for data in (ev("live_start", 4), ev("join", 5, "b")):
        apply(engine, data)
    assert [u for _, u, _ in answer(apply(engine, present(6)))] == ["b"]


def test_replay_decides_a_repeated_key_once() -> None:
    events = [ev("live_start", 0), ev("join", 1, "a"), present(2), ev("join", 3, "b"), present(4),
              issue(5, ["a"], key="k2"), ev("live_start", 6), issue(7, ["a", "z"]), issue(8, ["a", "z"])]
    assert [(d.request.user, d.request.at) for d in run(campaign(SAY), events)] == [("a", 2_000), ("a", 7_000),
                                                                                    ("z", 7_000)]


def test_a_snapshot_keeps_the_keys_and_whom_they_reached() -> None:
    camp = campaign(SAY)
    store = MemoryStore()
    engine, _ = apply_live(camp, [ev("live_start", 0), ev("join", 1, "a"), ev("join", 2, "b")], store)
    first_present, first_issue = apply(engine, present(3)), apply(engine, issue(3, ["z", "a"]))
    restored = Engine(camp, store)
    snapshots.load(restored, snapshots.dump(engine))
    assert restored.manual_issues == engine.manual_issues
    for data in (ev("leave", 4, "a"), ev("join", 5, "c"), ev("live_start", 6)):
        apply(restored, data)
    assert answer(apply(restored, present(7))) == answer(first_present)
    assert answer(apply(restored, issue(7, ["z", "a"]))) == answer(first_issue)
    assert apply(restored, issue(8, ["z"])) == [] and apply(restored, present(8, template="c30")) == []
    assert len(manual_decisions(store)) == 4
