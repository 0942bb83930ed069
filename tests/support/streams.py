"""Small deterministic event streams for end-to-end tests."""

from __future__ import annotations

import random
from typing import Any

START = 1_700_000_000


def broadcast_stream(viewers: int = 300, seconds: int = 900, seed: int = 7,
                     room: str = "room-1") -> list[dict[str, Any]]:
    """A broadcast exercising every trigger of examples/campaign.yaml, in ts order."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = [{"type": "live_start", "room": room, "ts": START}]
    arrivals = sorted(rng.uniform(1, seconds * 0.6) for _ in range(viewers))
    for n, at in enumerate(arrivals):
        user = f"v{n:04d}"
        stay = rng.expovariate(1 / 400)
        events.append({"type": "join", "room": room, "ts": round(START + at, 3), "user": user})
        t = at + 20
        while t < min(at + stay, seconds):
            events.append({"type": "heartbeat", "room": room, "ts": round(START + t, 3), "user": user})
            roll = rng.random()
            if roll < 0.08:
                events.append({"type": "comment", "room": room, "ts": round(START + t + 1, 3), "user": user,
                               "text": rng.choice(["扣1", "好看", "主播好美", "扣 1！"])})
            elif roll < 0.11:
                events.append({"type": "gift", "room": room, "ts": round(START + t + 2, 3), "user": user,
                               "value": rng.choice([1, 9.9, 52, 520])})
            elif roll < 0.13:
                events.append({"type": "order", "room": room, "ts": round(START + t + 3, 3), "user": user,
                               "order_id": f"o-{user}-{int(t)}", "amount": rng.choice([59, 129, 299])})
            t += 20
        if t < seconds:
            events.append({"type": "leave", "room": room, "ts": round(START + t, 3), "user": user})
    for at, text in [(200, "宝宝们发劝啦"), (400, "恭喜榜一的宝宝"), (600, "宝宝们，发券啦")]:
        events.append({"type": "transcript", "room": room, "ts": START + at, "text": text})
    events.append({"type": "flash_sale", "room": room, "ts": START + 300, "duration": 120, "product": "sku-1001"})
    for at in range(30, seconds, 30):
        events.append({"type": "online_count", "room": room, "ts": START + at + 0.5, "count": at * 40})
    events.sort(key=lambda e: e["ts"])
    for i, e in enumerate(events):
        e["id"] = f"e{i}"
    return events


def many_rooms(rooms: int, viewers: int, seconds: int = 900) -> list[dict[str, Any]]:
    """Several broadcasts at once, each room with viewers of its own, merged in time order."""
    events = []
    for k in range(rooms):
        room = f"room-{k}"
        for e in broadcast_stream(viewers=viewers, seconds=seconds, seed=100 + k, room=room):
            if "user" in e:
                e["user"] = f"{room}:{e['user']}"
            if "order_id" in e:
                e["order_id"] = f"{room}:{e['order_id']}"
            events.append(e)
    events.sort(key=lambda e: e["ts"])
    return events
