"""The service's time (SPEC §2): the machine's clock, or the stream's own time.

``wall`` (the default for ``serve``): the service's time is the machine's clock and no
event moves it. An event stamped more than 5 s ahead of it, or more than 10 minutes
behind it, is rejected; one within is applied, and logged, at the machine's time when it
arrives: its coupons are issued then, valid from then, and a viewer's watch time counts
from then. So a client with a wrong clock cannot expire coupons, lapse reservations or fire
timers early, ahead or behind (a join stamped 9 minutes late, applied at its stamp, set a
5-minute dwell timer already due). Timers fire when the machine's clock reaches them.

``event`` (simulations, tests, back-fills): the service's time is the ``ts`` of the
latest applied event, never moving back, and timers fire only as events arrive,
exactly as in replay.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from livecoupon.domain.events import EventError

AHEAD_MS = 5_000
BEHIND_MS = 10 * 60_000


class ClockMode(enum.StrEnum):
    WALL = "wall"
    EVENT = "event"


def wall_ms() -> int:
    return int(time.time() * 1000)


class ServiceClock:
    """``now()`` in integer ms; ``admit(ts)``: the time an event stamped ``ts`` is applied at, or
    :class:`EventError` for one the clock refuses. ``latest`` reads the engine's time (the latest
    applied event)."""

    def __init__(self, mode: ClockMode, latest: Callable[[], int | None],
                 wall: Callable[[], int] = wall_ms, ahead_now: bool = True) -> None:
        self.mode = mode
        self._latest = latest
        self._wall = wall
        # False: ``admit`` answers an event as stamped, for whoever applies it to bring it to the machine's time
        # (a gateway: the bus knows a retry by its events as sent, so they go on as sent)
        self._ahead_now = ahead_now

    @property
    def fires_timers(self) -> bool:
        """Whether timers fire as this clock ticks (wall), or only as events arrive (event)."""
        return self.mode is ClockMode.WALL

    @property
    def started(self) -> bool:
        """Whether the service's time is known: always on the machine's clock; on the event clock once an event
        of the stream has been applied (before, :meth:`now` reads the machine's clock, but no event was stamped so;
        the operator actions before the stream are at 0, which :meth:`stamp` gives them)."""
        return self.stamp() > 0

    def now(self) -> int:
        if self.mode is ClockMode.WALL:
            return self._wall()
        latest = self._latest()
        return latest if latest is not None else self._wall()

    def stamp(self) -> int:
        """The time an event the service makes itself (an operator's action, a paid order, a viewer's chat) is
        logged at: now; but on the event clock before any event, 0, the start of time, so that it applies before
        the stream's first event and moves no time. (Stamped with the machine's time, an operator's pause before a
        back-fill made that the stream's time: every event after it was applied then, no timer was ever due.)"""
        if self.mode is ClockMode.WALL:
            return self._wall()
        latest = self._latest()
        return latest if latest is not None and latest > 0 else 0

    def admit(self, ts: int) -> int:
        if self.mode is not ClockMode.WALL:
            return ts
        now = self._wall()
        if ts > now + AHEAD_MS:
            ahead, most = f"{(ts - now) / 1000:.3f}", AHEAD_MS // 1000
            raise EventError("ts", f"ts_in_future: 比服务的时间超前 {ahead} 秒（最多 {most} 秒） / "
                                   f"{ahead} s ahead of the service's time (at most {most} s)")
        if ts < now - BEHIND_MS:
            behind, most = f"{(now - ts) / 1000:.3f}", BEHIND_MS // 60_000
            raise EventError("ts", f"ts_too_old: 比服务的时间落后 {behind} 秒（最多 {most} 分钟） / "
                                   f"{behind} s behind the service's time (at most {most} minutes)")
        return now if self._ahead_now else ts
