"""The simulated audience: reproducible by seed, and shaped like a live room."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from livecoupon.sim.audience import Broadcast, Shopper

START = 1_700_000_000


def run(broadcast: Broadcast) -> list[dict[str, Any]]:
    return [e for s in range(broadcast.seconds) for e in broadcast.events_at(s, START + s)]


def shop(seed: int, coupon: dict[str, Any]) -> list[Any]:
    """Every viewer of a fresh broadcast gets ``coupon`` 30 s after arriving; the rest shop organically."""
    broadcast = Broadcast("room-1", 400, 20, seed)
    shopper = Shopper(random.Random(seed + 1))
    outcomes: list[Any] = []
    for i, viewer in enumerate(broadcast.viewers):
        if i % 2:
            outcomes.append(shopper.on_coupon(viewer, coupon, viewer.arrives + 30))
        else:
            outcomes.append([shopper.organic(viewer, s) for s in range(viewer.arrives, viewer.leaves, 60)])
    return outcomes


TEN = {"kind": "no_threshold", "amount": 10.0, "threshold": 0.0}


def test_the_same_seed_gives_the_same_event_stream() -> None:
    first, second = run(Broadcast("room-1", 300, 10, 7)), run(Broadcast("room-1", 300, 10, 7))
    assert len(first) > 1000
    assert first == second


def test_another_seed_gives_another_stream() -> None:
    first, other = run(Broadcast("room-1", 300, 10, 7)), run(Broadcast("room-1", 300, 10, 8))
    assert first != other
    assert [e["user"] for e in first if e["type"] == "join"] != [e["user"] for e in other if e["type"] == "join"] \
        or [e["ts"] for e in first if e["type"] == "join"] != [e["ts"] for e in other if e["type"] == "join"]


def test_the_same_seed_gives_the_same_shopper_decisions() -> None:
    first, second = shop(3, TEN), shop(3, TEN)
    assert first == second
    assert any(o is not None for o in first[1::2])  # some coupon purchases happened
    assert first != shop(4, TEN)


def test_stream_is_well_formed() -> None:
    events = run(Broadcast("room-1", 200, 8, 1))
    assert events[0]["type"] == "live_start" and events[-1]["type"] == "live_end"
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    joined: set[str] = set()
    for e in events:
        if e["type"] == "join":
            assert e["user"] not in joined
            joined.add(e["user"])
        elif "user" in e:
            assert e["user"] in joined, e  # nobody acts before joining
    assert len(joined) == 200


def test_arrivals_surge_after_the_host_says_the_passphrase() -> None:
    before, after = [], []
    for seed in range(10):
        broadcast = Broadcast("room-1", 1500, 30, seed)
        cues = [c.second for c in broadcast.script if c.kind == "passphrase"]
        assert len(cues) >= 3
        arrivals = [v.arrives for v in broadcast.viewers]
        before.append(sum(1 for c in cues for a in arrivals if c - 180 <= a < c))
        after.append(sum(1 for c in cues for a in arrivals if c <= a < c + 180))
    assert statistics.mean(after) > 1.2 * statistics.mean(before)


def test_the_surge_is_visible_in_the_join_events() -> None:
    broadcast = Broadcast("room-1", 1500, 30, 5)
    cue = next(c.second for c in broadcast.script if c.kind == "passphrase")
    joins = [e["ts"] - START for e in run(broadcast) if e["type"] == "join"]
    assert sum(1 for t in joins if cue <= t < cue + 180) > sum(1 for t in joins if cue - 180 <= t < cue)


def test_watch_times_are_heavy_tailed() -> None:
    # a 4-hour broadcast, viewers arriving in its first hour: their stays are barely censored
    broadcast = Broadcast("room-1", 8000, 240, 11)
    stays = sorted(v.leaves - v.arrives for v in broadcast.viewers if v.arrives < 3600)
    assert len(stays) > 1000
    median = statistics.median(stays)
    p99 = stays[int(0.99 * len(stays))]
    assert 4 * 60 <= median <= 8 * 60  # the default median is 6 minutes
    # an exponential law with this median has mean/median 1.44 and p99/median 6.6
    assert statistics.mean(stays) / median > 1.5
    assert p99 / median > 8


@pytest.mark.parametrize("seed", [42, 1, 2])
def test_reported_online_count_crosses_ten_thousand_for_1500_viewers(seed: int) -> None:
    broadcast = Broadcast("room-1", 1500, 30, seed)
    counts = [e["count"] for e in run(broadcast) if e["type"] == "online_count"]
    assert counts and max(counts) >= 10_000
    assert counts[0] < 10_000  # it is crossed during the broadcast, not from the start


def test_bigger_coupons_sell_more() -> None:
    def buyers(amount: float) -> int:
        return sum(1 for seed in range(6) for o in shop(seed, TEN | {"amount": amount})[1::2] if o is not None)

    assert buyers(30.0) > buyers(5.0)
