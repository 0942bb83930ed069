"""The WebSocket hub: which viewer is connected to which room, and pushing to them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any


class Subscription:
    """One connected viewer: messages queue here until the socket sends them."""

    def __init__(self, room: str, user: str) -> None:
        self.room = room
        self.user = user
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()


class Hub:
    """Keeps subscriptions per (room, user). Publish never blocks on a slow socket."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], set[Subscription]] = defaultdict(set)

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

    def publish(self, room: str, user: str, message: dict[str, Any]) -> int:
        """Queue ``message`` for every connection of ``user`` in ``room``; how many got it."""
        subs = self._subs.get((room, user), ())
        for sub in subs:
            sub.queue.put_nowait(message)
        return len(subs)

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subs.values())
