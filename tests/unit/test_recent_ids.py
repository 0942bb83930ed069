"""A room's memory of event ids (engine/rooms.py ``RecentIds``) against the rule it documents, written plainly.

The rule: the room's time is the latest ``ts`` among the events it took as new; ids are remembered
in generations, a new one beginning at an event that brings the room's time half an hour
(``ID_MEMORY_MS``) past the current one's start; an id is a repeat while the generation it was
first seen in is the current one, or the one before if the current began less than an hour
after it; an event more than half an hour behind the room's time is dropped unseen.
"""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.engine.rooms import ID_MEMORY_MS, RecentIds

M = ID_MEMORY_MS


class Rule:
    """The rule over the whole history: every generation's start and where each id was last taken as new."""

    def __init__(self) -> None:
        self.starts = [-(2**62)]
        self.first_seen: dict[str, int] = {}  # id -> the generation it was last taken as new in
        self.time = -(2**62)

    def first(self, event_id: str, ts: int) -> bool:
        if ts < self.time - M:
            return False
        starts = [*self.starts, ts] if ts > self.time and ts >= self.starts[-1] + M else self.starts
        if self.remembers(event_id, starts):
            return False  # a repeat changes nothing, not even the room's time
        self.starts, self.time = starts, max(self.time, ts)
        self.first_seen[event_id] = len(starts) - 1
        return True

    def remembers(self, event_id: str, starts: list[int] | None = None) -> bool:
        starts = self.starts if starts is None else starts
        current = len(starts) - 1
        seen = self.first_seen.get(event_id)
        return seen == current or (seen == current - 1 and starts[current] < starts[seen] + 2 * M)

    def remembered(self) -> int:
        return sum(self.remembers(i) for i in self.first_seen)


# steps of the room's time around every bound of the rule, and back
steps = st.sampled_from([0, 1, -1, 1_000, M - 1, M, M + 1, 2 * M - 1, 2 * M, 2 * M + 1, -M, -M - 1, -M + 1, 5 * M])
events = st.lists(st.tuples(st.sampled_from("abcdefgh"), steps), max_size=60)


@settings(max_examples=500, deadline=None)
@given(events, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=10 * M))
def test_recent_ids_follow_the_rule(steps_: list[tuple[str, int]], snapshot_at: int, start: int) -> None:
    ids, rule = RecentIds(), Rule()
    ts = start
    for n, (event_id, step) in enumerate(steps_):
        if n == snapshot_at:  # a snapshot taken and restored here goes on alike
            ids = pickle.loads(pickle.dumps(ids))  # noqa: S301 - our own bytes
        ts += step
        assert ids.first(event_id, ts) == rule.first(event_id, ts), (n, event_id, ts)
        assert len(ids) == rule.remembered()
