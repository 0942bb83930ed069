"""A scaled-out deployment's logs read as one: for ``export``, ``explain`` and the metrics."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from typing import Any

from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.events import CAMPAIGN_WIDE
from livecoupon.store.relational import RelationalStore

Places = dict[tuple[str, int], int]  # (room, ms) -> where the merged log first holds an entry of the room at that time


def merged_log(store: RelationalStore, places: Places | None = None) -> Iterator[dict[str, Any]]:
    """Every partition's log as one, by event time, each partition's own order kept; entries of one time in several
    logs in the order they were written (the database's sequence: of two rounds that claimed the same limits, the
    one that took the campaign's lock first), so an operator's command comes after the event it followed, and of
    two manual issues competing for the last coupon the first applied comes first. A replay of it makes each room's
    decisions as its partition made them (docs/scaling.md). ``places``, if given, learns where each room's entries
    of each time first come (for :func:`decision_order`)."""
    logs = sorted(store.log_names(), key=_log_order)
    if len(logs) <= 1:
        yield from store.events(log=logs[0] if logs else store.log)
        return
    tagged = ((((float(e["ts"]), seq), e) for seq, e in store.sequenced(log=name)) for name in logs)
    seen: set[str] = set()  # a campaign-wide command is in every partition's log: once here
    for place, ((ts, _), event) in enumerate(heapq.merge(*tagged, key=lambda pair: pair[0])):
        room = event["room"]
        if room == CAMPAIGN_WIDE:
            body = event.get("id") or json.dumps(event, sort_keys=True)
            if body in seen:
                continue
            seen.add(body)
        if places is not None:
            places.setdefault((room, round(ts * 1000)), place)
        yield event


def decision_order(records: Iterable[DecisionRecord], places: Places) -> list[DecisionRecord]:
    """The decisions in the order a replay of :func:`merged_log` makes them, given the ``places`` it learnt (none:
    one log, whose decision order is already a replay's): by time, then those of timers (no entry of their room at
    their time: a timer fires before the entry that reaches it), then by where their room's entry of that time is."""
    if not places:
        return list(records)
    return sorted(records, key=lambda r: (r.at, places.get((r.room, r.at), -1)))


def _log_order(name: str) -> tuple[int, str]:
    return (int(name[1:]), name) if name[:1] == "p" and name[1:].isdigit() else (-1, name)
