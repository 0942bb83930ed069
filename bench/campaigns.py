"""Several campaigns in one deployment: what the per-event cost becomes as campaigns are added.

Run from the repository root::

    .venv/bin/python bench/campaigns.py                      # 300,000 events over 200 rooms
    .venv/bin/python bench/campaigns.py --events 100000 --counts 1 10 50

One stream of room events (joins, heartbeats, likes, comments, transcripts, orders over ``--rooms`` rooms, each
viewer in one room) is replayed in process (``livecoupon.engine.replay.replay``, the path of ``livecoupon
replay --config FOLDER``) by deployments of 1, 10, 100… campaigns that split the rooms between them (each campaign
lists its share: a platform's shops). The baseline, printed beside each figure, is the same stream through one
campaign listing every room: the same rooms, triggers and decisions, in one engine. Each run is the fastest of
``--repeat``; the decisions of every deployment are counted, and the count is the same in each (every campaign has
the same triggers), which checks that nothing was skipped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere

from livecoupon.campaign_file import parse_campaign  # noqa: E402
from livecoupon.domain.campaign import Campaign  # noqa: E402
from livecoupon.engine.replay import replay  # noqa: E402

START = 1_731_326_400.0
CAMPAIGN = """
campaign: {name}
rooms: {rooms}
presence_timeout: 60s
coupons:
  c10: {{title: 十元券, kind: no_threshold, amount: 10, valid_for: 1h}}
  c20: {{title: 满99减20, kind: threshold, threshold: 99, amount: 20, valid_for: 1h}}
triggers:
  - {{name: newcomer, when: first_visit, coupon: c10}}
  - {{name: dwell, when: dwell, after: 5m, coupon: c20}}
  - {{name: kou1, when: comment, keywords: [扣1], coupon: c10}}
  - {{name: say, when: host_says, phrases: [发券啦], coupon: c20, cooldown: 60s}}
limits: {{per_user: 3, min_interval: 30s}}
"""


def stream(events: int, rooms: int, seed: int = 11) -> list[str]:
    """Room events in time order: each room on air, viewers (each of one room) joining, watching, talking."""
    rng = random.Random(seed)
    names = [f"room-{n}" for n in range(rooms)]
    lines = [json.dumps({"type": "live_start", "room": r, "ts": START}) for r in names]
    viewers = [(f"u{n}", names[n % rooms]) for n in range(rooms * 10)]
    ts, n = START, 0
    while len(lines) < events:
        ts += rng.choice((0.0, 0.002, 0.005, 0.01))  # each viewer heard from every ~20 s: present
        user, room = rng.choice(viewers)
        kind = rng.choices(("join", "heartbeat", "like", "comment", "transcript", "order"), (2, 60, 20, 12, 0.2, 1))[0]
        n += 1
        event: dict[str, object] = {"type": kind, "room": room, "ts": round(ts, 3), "id": f"e{n}"}
        if kind == "transcript":
            event["text"] = rng.choice(("宝宝们发券啦", "今天的福利", "欢迎新来的朋友"))
        else:
            event["user"] = user
        if kind == "comment":
            event["text"] = rng.choice(("扣1", "好看", "多少钱", "扣1扣1"))
        elif kind == "order":
            event.update(order_id=f"o{n}", amount=rng.choice((59, 129.9)))
        lines.append(json.dumps(event, ensure_ascii=False))
    return lines


def deployment(count: int, rooms: int) -> list[Campaign]:
    """``count`` campaigns, the rooms dealt between them."""
    names = [f"room-{n}" for n in range(rooms)]
    return [parse_campaign(CAMPAIGN.format(name=f"shop-{i}", rooms=json.dumps(names[i::count])))
            for i in range(count)]


def timed(campaigns: list[Campaign], lines: list[str], repeat: int) -> tuple[float, int]:
    """The fastest of ``repeat`` replays (seconds) and the decisions made."""
    best, decisions = float("inf"), 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = replay(campaigns, lines)
        best = min(best, time.perf_counter() - started)
        decisions = len(result.decisions)
    return best, decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 10, 100, 200])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = stream(args.events, args.rooms)
    print(f"{len(lines):,} events over {args.rooms} rooms; load average {os.getloadavg()[0]:.1f}; "
          f"{os.cpu_count()} cores; fastest of {args.repeat}")
    print(f"{'campaigns':>10} {'seconds':>8} {'events/s':>10} {'baseline s':>11} {'baseline ev/s':>14} "
          f"{'ratio':>6} {'decisions':>10}")
    for count in args.counts:
        # the baseline in the same run, alternating with the deployment: one campaign listing every room
        base, base_made = timed(deployment(1, args.rooms), lines, args.repeat)
        took, made = timed(deployment(count, args.rooms), lines, args.repeat)
        assert made == base_made, f"{count} campaigns made {made} decisions, one campaign {base_made}"
        print(f"{count:>10} {took:>8.2f} {len(lines) / took:>10,.0f} {base:>11.2f} {len(lines) / base:>14,.0f} "
              f"{base / took:>6.2f} {made:>10,}")


if __name__ == "__main__":
    main()
