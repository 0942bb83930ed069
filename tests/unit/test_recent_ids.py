"""A room's memory of event ids (engine/rooms.py ``RecentIds``) against the rule it documents, written plainly.

The rule: a room forgets at any new id a day (``FORGET_AFTER_MS``) after it last forgot, or once it took ``COUNT``
ids since (here 4: ``FORGET_COUNT``'s role), whatever the broadcasts; each time it forgets the ids first seen before
the time it last forgot. So an id is a repeat while it was taken as new since the time before last that the room
forgot; the event that makes it forget counts as seen after it.
"""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.engine.rooms import FORGET_AFTER_MS, RecentIds

DAY = FORGET_AFTER_MS
M = 30 * 60_000  # half an hour: a step between broadcasts
COUNT = 4


class Rule:
    """The rule over the whole history: when the room forgot, and when each id was last taken as new."""

    def __init__(self) -> None:
        self.forgot = [-(2**62)]  # the room's time at each forgetting
        self.taken: dict[str, int] = {}  # id -> how many times the room had forgotten when it was last taken as new

    def remembers(self, event_id: str) -> bool:
        taken = self.taken.get(event_id)
        return taken is not None and taken >= len(self.forgot) - 2

    def first(self, event_id: str, ts: int) -> bool:
        if self.remembers(event_id):
            return False  # a repeat changes nothing
        taken_since = sum(taken == len(self.forgot) - 1 for taken in self.taken.values())
        if taken_since >= COUNT or ts >= self.forgot[-1] + DAY:
            self.forgot.append(ts)
        self.taken[event_id] = len(self.forgot) - 1
        return True

    def remembered(self) -> int:
        return sum(self.remembers(i) for i in self.taken)


# steps of the room's time around every bound of the rule, and back
steps = st.sampled_from([0, 1, -1, 1_000, M - 1, M, M + 1, -M, DAY - 1, DAY, DAY + 1, -DAY, 5 * M])
# an event with an id, or without one
steps_of = st.lists(st.tuples(st.sampled_from([*"abcdefgh", None]), steps), max_size=60)


@settings(max_examples=800, deadline=None)
@given(steps_of, st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=10 * M))
def test_recent_ids_follow_the_rule(steps_: list[tuple[str | None, int]], snapshot_at: int, start: int) -> None:
    ids, rule = RecentIds(count=COUNT), Rule()
    ts = start
    for n, (event_id, step) in enumerate(steps_):
        if n == snapshot_at:  # a snapshot taken and restored here goes on alike
            ids = pickle.loads(pickle.dumps(ids))  # noqa: S301 - our own bytes
        ts += step
        new = event_id is None or ids.first(event_id, ts)  # as the deployment and replay call it
        assert new == (event_id is None or rule.first(event_id, ts)), (n, event_id, ts)
        assert len(ids) == rule.remembered(), n
