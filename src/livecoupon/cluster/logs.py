"""A scaled-out deployment's logs read as one: for ``export``, ``explain`` and the metrics."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from typing import Any

from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import CAMPAIGN_WIDE
from livecoupon.store.relational import RelationalStore


def merged_log(store: RelationalStore, rooms: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Every partition's log as one, by event time, each partition's own order kept (ties: lower partition
    first). A replay of it makes each room's decisions as its partition made them (docs/scaling.md).
    ``rooms``, if given, learns which of several logs each room's events came from (for
    :func:`decision_order`)."""
    logs = sorted(store.log_names(), key=_log_order)
    if len(logs) <= 1:
        yield from store.events(log=logs[0] if logs else store.log)
        return
    tagged = ((((float(e["ts"]), index), e) for e in store.events(log=name)) for index, name in enumerate(logs))
    seen: set[str] = set()  # a campaign-wide command is in every partition's log: once here
    for (_, index), event in heapq.merge(*tagged, key=lambda pair: pair[0]):
        room = event["room"]
        if room == CAMPAIGN_WIDE:
            body = event.get("id") or json.dumps(event, sort_keys=True)
            if body in seen:
                continue
            seen.add(body)
        elif rooms is not None:
            rooms.setdefault(room, index)
        yield event


def decision_order(records: Iterable[DecisionRecord], rooms: dict[str, int]) -> list[DecisionRecord]:
    """The decisions in the order a replay of :func:`merged_log` makes them, given the ``rooms`` it learnt
    (none: one log, whose decision order is already a replay's)."""
    if not rooms:
        return list(records)
    return sorted(records, key=lambda r: (r.at, rooms.get(r.room, 0)))


def _log_order(name: str) -> tuple[int, str]:
    return (int(name[1:]), name) if name[:1] == "p" and name[1:].isdigit() else (-1, name)
