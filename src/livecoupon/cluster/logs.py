"""A scaled-out deployment's logs read as one: for ``export``, ``explain`` and the metrics."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from typing import Any

from livecoupon.domain.decisions import DecisionRecord
from livecoupon.service_layer.service import CAMPAIGN_WIDE
from livecoupon.store.relational import RelationalStore


def merged_log(store: RelationalStore) -> Iterator[dict[str, Any]]:
    """Every partition's log as one, by event time, each partition's own order kept (ties: lower partition
    first). A replay of it makes each room's decisions as its partition made them (docs/scaling.md)."""
    logs = sorted(store.log_names(), key=_log_order)
    if len(logs) <= 1:
        yield from store.events(log=logs[0] if logs else store.log)
        return
    seen: set[str] = set()  # a campaign-wide command is in every partition's log: once here
    for event in heapq.merge(*(store.events(log=name) for name in logs), key=lambda e: float(e["ts"])):
        if event.get("room") == CAMPAIGN_WIDE:
            body = event.get("id") or json.dumps(event, sort_keys=True)
            if body in seen:
                continue
            seen.add(body)
        yield event


def decision_order(store: RelationalStore) -> list[DecisionRecord]:
    """The decisions in the order a replay of :func:`merged_log` makes them."""
    records = list(store.decisions())
    if len(store.log_names()) <= 1:
        return records  # one log: the order decided is the order a replay decides
    rooms: dict[str, int] = {}
    for index, name in enumerate(sorted(store.log_names(), key=_log_order)):
        for event in store.events(log=name):
            rooms.setdefault(event["room"], index)
    return sorted(records, key=lambda r: (r.at, rooms.get(r.room, 0)))


def _log_order(name: str) -> tuple[int, str]:
    return (int(name[1:]), name) if name[:1] == "p" and name[1:].isdigit() else (-1, name)
