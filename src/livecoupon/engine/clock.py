"""The live service's clock: event time that keeps ticking in real time.

Live, timers fire "when the server clock reaches their due time". Platforms stamp
events with their own clock, so the service's clock is anchored to the event times it
sees and advances with the wall clock from the latest anchor. For a platform on real
time it is the wall clock; for a recorded stream posted quickly it follows the
stream's own time and never runs ahead of it, so a timer cannot fire before an
earlier event has arrived. Before the first event it is the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class EventClock:
    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._anchor: tuple[int, int] | None = None  # (event ms, wall ms when it was seen)

    def _wall_ms(self) -> int:
        return int(self._wall() * 1000)

    def now(self) -> int:
        wall = self._wall_ms()
        if self._anchor is None:
            return wall
        event_ms, seen_at = self._anchor
        return event_ms + (wall - seen_at)

    def observe(self, ts: int) -> None:
        """An event stamped ``ts`` arrived: the clock follows it, and never goes back after."""
        if self._anchor is None or ts > self.now():
            self._anchor = (ts, self._wall_ms())
