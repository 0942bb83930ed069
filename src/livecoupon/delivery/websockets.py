"""The WebSocket hubs: viewers per (room, user), and operator/host consoles.

Every queue is bounded: a client that stops reading loses pushes, never the server's
memory. A viewer's coupon that did not fit is still in their account, unacknowledged,
and arrives as missed when they reconnect. A coupon counts as delivered (acknowledged) once
written to the viewer's socket, or, for a client that acknowledges its popups (``&ack=1``, the
bundled widget), once it says it showed it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

QUEUE_SIZE = 256  # pushes waiting for one viewer's socket
MAX_CONNECTIONS_PER_USER = 5
CONSOLE_QUEUE_SIZE = 10_000


class BadMessage(ValueError):
    """A viewer's message the socket cannot act on; ``words`` answer it (Chinese, then English)."""

    def __init__(self, words: str) -> None:
        super().__init__(words)
        self.words = words


def mute_seconds(message: dict[str, Any], longest_ms: int) -> float:
    """How long ``{"type": "mute", "minutes": n}`` holds popups back: n minutes, at most ``longest_ms``. A
    mute without ``minutes``, or with one that is not a positive number, is a :class:`BadMessage`."""
    minutes = message.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < math.inf:
        raise BadMessage("mute 须带 minutes（正数）/ a mute names its minutes, a positive number")
    return min(minutes * 60, longest_ms / 1000)


class Subscription:
    """One connected client: messages queue here until its socket sends them.

    ``acks``: the client acknowledges each popup it shows (``&ack=1``), and only an acknowledged coupon
    counts as delivered; otherwise a coupon counts as delivered once written to the socket (a client built
    from SPEC §6 alone never acks, and would see every coupon again on each reconnect).
    """

    def __init__(self, room: str, user: str, acks: bool = False) -> None:
        self.room = room
        self.user = user
        self.acks = acks
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.dropped = 0

    def offer(self, message: dict[str, Any]) -> bool:
        """Queue ``message`` unless the queue is full (the client stopped reading)."""
        if self.queue.full():
            self.dropped += 1
            return False
        self.queue.put_nowait(message)
        return True


class Hub:
    """Viewer connections per (room, user), and viewers' do-not-disturb.

    A muted viewer's coupons are not pushed; they stay unacknowledged and arrive as the
    backlog when the viewer unmutes or reconnects.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._subs: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._per_user: dict[str, int] = defaultdict(int)
        self._muted_until: dict[tuple[str, str], float] = {}
        self._now = now

    def subscribe(self, room: str, user: str, acks: bool = False) -> Subscription | None:
        """A new connection (``acks``: see :class:`Subscription`), or None when ``user`` already has the
        most allowed."""
        if self.connections_of(user) >= MAX_CONNECTIONS_PER_USER:
            return None
        sub = Subscription(room, user, acks)
        self._subs[(room, user)].add(sub)
        self._per_user[user] += 1
        return sub

    def connections_of(self, user: str) -> int:
        return self._per_user.get(user, 0)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get((sub.room, sub.user))
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[(sub.room, sub.user)]
        self._per_user[sub.user] -= 1
        if not self._per_user[sub.user]:
            del self._per_user[sub.user]

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
        return sum(1 for sub in subs if sub.offer(message))

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())


def held_notice(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "held", "coupon_id": message.get("coupon_id"), "title": message.get("title")}


class ConsoleHub:
    """Operator consoles get every message; a host console only its own room's."""

    def __init__(self) -> None:
        self._queues: dict[asyncio.Queue[dict[str, Any]], str | None] = {}

    def subscribe(self, room: str | None = None) -> asyncio.Queue[dict[str, Any]]:
        """A console's queue; with ``room``, only messages about that room (and none about others)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=CONSOLE_QUEUE_SIZE)
        self._queues[queue] = room
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.pop(queue, None)

    def broadcast(self, message: dict[str, Any]) -> None:
        about = message.get("room")
        for queue, room in self._queues.items():
            if room is not None and about != room:
                continue
            if not queue.full():  # a console that stopped reading loses feed lines, never blocks issuing
                queue.put_nowait(message)

    def tell_hosts(self, room: str, message: dict[str, Any]) -> None:
        """A message for the hosts' consoles of ``room`` alone (their room's counters: not the operators')."""
        for queue, watched in self._queues.items():
            if watched == room and not queue.full():
                queue.put_nowait(message)

    def __len__(self) -> int:
        return len(self._queues)

    @property
    def has_operators(self) -> bool:
        return any(room is None for room in self._queues.values())

    def host_rooms(self) -> set[str]:
        return {room for room in self._queues.values() if room is not None}
