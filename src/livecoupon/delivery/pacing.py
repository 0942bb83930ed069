"""When popups reach screens: a per-room rate limit that smooths bursts, and a quiet
period between two popups to one viewer. Nothing is dropped, only scheduled.

The room limit is a generic cell rate algorithm (virtual scheduling): each room keeps
a theoretical arrival time; a popup may go ``burst`` seconds ahead of it, and every
popup moves it on by ``1 / rate``. A 10,000-viewer milestone at 2,000/s therefore
shows the first 1,000 popups at once and the rest over the next ~4.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable
from typing import Any

from livecoupon.domain.campaign import DeliveryPolicy

Deliver = Callable[[str, str, dict[str, Any]], object]
BURST_SECONDS = 0.5
MIN_TICK = 0.005  # deliver overdue popups in 5 ms ticks; shorter timeouts make the loop spin (measured)
EPSILON = 1e-9  # float slack, so 1 / rate added n times does not push the n-th popup out


class CellRate:
    """A generic cell rate algorithm per key: ``rate`` cells a second, up to ``burst_s`` seconds'
    worth of them at once (the popups of a room; the requests to a coupon system)."""

    def __init__(self, rate: float, burst_s: float = BURST_SECONDS) -> None:
        self.rate = rate
        self.burst_s = burst_s
        self._tat: dict[str, float] = {}  # key -> theoretical arrival time of its next cell

    def schedule(self, key: str, at: float) -> float:
        """When a cell of ``key`` that wants to go at ``at`` may go; it is counted as going then."""
        tat = max(self._tat.get(key, at), at)
        self._tat[key] = tat + 1 / self.rate
        return max(at, tat - self.burst_s)


class Pacer:
    def __init__(self, policy: DeliveryPolicy, deliver: Deliver, now: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._deliver = deliver
        self._now = now
        self._user_next: dict[tuple[str, str], float] = {}
        self._rooms = CellRate(policy.room_rate) if policy.room_rate else None
        self._later: list[tuple[float, int, str, str, dict[str, Any]]] = []
        self._held: dict[tuple[str, str], set[str]] = {}  # (room, user) -> the coupons of their popups waiting
        self._seq = 0
        self._wake = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._later)

    def held_for(self, room: str, user: str) -> frozenset[str]:
        """The coupons whose popups to ``user`` in ``room`` wait their turn: they will reach the viewer's
        screens live, so a reconnecting viewer's backlog leaves them out (they are not missed)."""
        return frozenset(self._held.get((room, user), ()))

    def offer(self, room: str, user: str, message: dict[str, Any]) -> float:
        """Schedule one popup; returns the delay in seconds (0: delivered now)."""
        now = self._now()
        send_at = max(now, self._user_next.get((room, user), now))
        quiet = self.policy.quiet_period_ms / 1000
        if quiet:
            self._user_next[(room, user)] = send_at + quiet
        if self._rooms is not None:
            send_at = self._rooms.schedule(room, send_at)
        if send_at <= now + EPSILON:
            self._deliver(room, user, message)
            return 0.0
        self._seq += 1
        heapq.heappush(self._later, (send_at, self._seq, room, user, message))
        if "coupon_id" in message:
            self._held.setdefault((room, user), set()).add(message["coupon_id"])
        self._wake.set()
        if len(self._user_next) > 200_000:
            self._forget_before(now)
        return send_at - now

    def _release(self, room: str, user: str, message: dict[str, Any]) -> None:
        held = self._held.get((room, user))
        if held is not None:
            held.discard(message.get("coupon_id", ""))
            if not held:
                del self._held[(room, user)]

    def _forget_before(self, now: float) -> None:
        self._user_next = {k: t for k, t in self._user_next.items() if t > now}

    async def run(self) -> None:
        """Deliver scheduled popups on time; runs for the life of the app."""
        while True:
            now = self._now()
            while self._later and self._later[0][0] <= now:
                _, _, room, user, message = heapq.heappop(self._later)
                self._release(room, user, message)
                self._deliver(room, user, message)
            self._wake.clear()
            timeout = max(self._later[0][0] - now, MIN_TICK) if self._later else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
