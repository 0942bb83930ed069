"""The WebSocket hubs: viewers per (room, user), and operator/host consoles."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class Subscription:
    """One connected client: messages queue here until its socket sends them."""

    def __init__(self, room: str, user: str) -> None:
        self.room = room
        self.user = user
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()


class Hub:
    """Viewer connections per (room, user), and viewers' do-not-disturb.

    A muted viewer's coupons are not pushed; they stay unacknowledged and arrive as the
    backlog when the viewer unmutes or reconnects.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._subs: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._muted_until: dict[tuple[str, str], float] = {}
        self._now = now

    def subscribe(self, room: str, user: str) -> Subscription:
        sub = Subscription(room, user)
        self._subs[(room, user)].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get((sub.room, sub.user))
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[(sub.room, sub.user)]

    def mute(self, room: str, user: str, seconds: float) -> None:
        self._muted_until[(room, user)] = self._now() + seconds

    def unmute(self, room: str, user: str) -> None:
        self._muted_until.pop((room, user), None)

    def is_muted(self, room: str, user: str) -> bool:
        until = self._muted_until.get((room, user))
        if until is None:
            return False
        if until <= self._now():
            del self._muted_until[(room, user)]
            return False
        return True

    def publish(self, room: str, user: str, message: dict[str, Any]) -> int:
        """Queue ``message`` for every connection of ``user`` in ``room``; how many got it.

        A muted viewer gets only a ``held`` notice (the widget counts them on a badge);
        the coupon itself comes when they unmute or reconnect.
        """
        if self.is_muted(room, user):
            message = held_notice(message)
        subs = self._subs.get((room, user), ())
        for sub in subs:
            sub.queue.put_nowait(message)
        return len(subs)

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())


def held_notice(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "held", "coupon_id": message.get("coupon_id"), "title": message.get("title")}


class ConsoleHub:
    """Operator and host consoles: every one of them gets every message."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)

    def broadcast(self, message: dict[str, Any]) -> None:
        for queue in self._queues:
            if not queue.full():  # a console that stopped reading loses feed lines, never blocks issuing
                queue.put_nowait(message)

    def __len__(self) -> int:
        return len(self._queues)
