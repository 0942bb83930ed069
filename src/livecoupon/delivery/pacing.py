"""When popups reach screens: a per-room rate limit that smooths bursts, and a quiet
period between two popups to one viewer. Nothing is dropped, only scheduled — but a popup held back
whose coupon expired or was used before its turn: that one is left to the viewer's coupon list.

The room limit is a generic cell rate algorithm (virtual scheduling): each room keeps
a theoretical arrival time; a popup may go ``burst`` seconds ahead of it, and every
popup moves it on by ``1 / rate``. A 10,000-viewer milestone at 2,000/s therefore
shows the first 1,000 popups at once and the rest over the next ~4.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from livecoupon.domain.campaign import DeliveryPolicy

Deliver = Callable[[str, str, dict[str, Any]], object]
Usable = Callable[[list[str]], Awaitable[Collection[str]]]  # of these coupon ids, those still usable now
log = logging.getLogger("livecoupon")
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
    """Schedules each viewer's popups (the quiet period, the room's rate). A popup held back goes out when a
    turn of its viewer's comes, only if its coupon can still be used then (``usable`` says which can): one
    that expired, or was reserved or redeemed meanwhile, is left to the viewer's coupon list. A viewer's
    popups waiting take their turns soonest to expire first, so fewer expire waiting."""

    def __init__(self, policy: DeliveryPolicy, deliver: Deliver, now: Callable[[], float] = time.monotonic,
                 usable: Usable | None = None) -> None:
        self.policy = policy
        self._deliver = deliver
        self._now = now
        self._usable = usable
        self._user_next: dict[tuple[str, str], float] = {}
        self._rooms = CellRate(policy.room_rate) if policy.room_rate else None
        self._turns: list[tuple[float, int, str, str]] = []  # (when, seq, room, user): a viewer's next popup may go
        self._waiting: dict[tuple[str, str], list[tuple[float, int, dict[str, Any]]]] = {}  # (room, user) -> a heap
        self._count = 0  # popups waiting, all viewers'
        self._seq = 0
        self._wake = asyncio.Event()

    @property
    def waiting(self) -> int:
        return self._count

    def held_for(self, room: str, user: str) -> frozenset[str]:
        """The coupons whose popups to ``user`` in ``room`` wait their turn: they will reach the viewer's
        screens live, so a reconnecting viewer's backlog leaves them out (they are not missed)."""
        return frozenset(m["coupon_id"] for _, _, m in self._waiting.get((room, user), ()) if "coupon_id" in m)

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
        heapq.heappush(self._turns, (send_at, self._seq, room, user))
        expires = float(message.get("expires_at_ms", math.inf))
        heapq.heappush(self._waiting.setdefault((room, user), []), (expires, self._seq, message))
        self._count += 1
        self._wake.set()
        if len(self._user_next) > 200_000:
            self._forget_before(now)
        return send_at - now

    def _forget_before(self, now: float) -> None:
        self._user_next = {k: t for k, t in self._user_next.items() if t > now}

    async def run(self) -> None:
        """Deliver scheduled popups on time; runs for the life of the app."""
        while True:
            now = self._now()
            due = []
            while self._turns and self._turns[0][0] <= now:
                _, _, room, user = heapq.heappop(self._turns)
                due.append((room, user))
            if due:
                await self._take_turns(due)
            self._wake.clear()
            timeout = max(self._turns[0][0] - self._now(), MIN_TICK) if self._turns else None
            # asyncio.timeout, not wait_for: wait_for took a wake-up arriving as the runner was cancelled, and the
            # runner went on (a shutdown waited for it for ever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _take_turns(self, due: list[tuple[str, str]]) -> None:
        """Each turn due delivers its viewer's waiting popup that expires first (a viewer whose popups were
        dropped has turns left over: they deliver nothing)."""
        if self._usable is not None:
            await self._drop_unusable(set(due))
        for key in due:
            waiting = self._waiting.get(key)
            if not waiting:
                continue
            _, _, message = heapq.heappop(waiting)
            self._count -= 1
            if not waiting:
                del self._waiting[key]
            self._deliver(*key, message)

    async def _drop_unusable(self, viewers: set[tuple[str, str]]) -> None:
        """Drop the waiting popups of ``viewers`` whose coupons can no longer be used."""
        assert self._usable is not None
        checked = {m["coupon_id"] for key in viewers for _, _, m in self._waiting.get(key, ()) if "coupon_id" in m}
        if not checked:
            return
        try:
            gone = checked - set(await self._usable(sorted(checked)))
        except Exception:  # popups keep going: a check that failed drops none
            log.exception("could not check the coupons of popups waiting")
            return
        for key in viewers:  # (popups offered during the check were not checked: they stay)
            waiting = self._waiting.get(key, [])
            kept = [w for w in waiting if w[2].get("coupon_id") not in gone]
            if len(kept) < len(waiting):
                self._count -= len(waiting) - len(kept)
                heapq.heapify(kept)
                if kept:
                    self._waiting[key] = kept
                else:
                    del self._waiting[key]
