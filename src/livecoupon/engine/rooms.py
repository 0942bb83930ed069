"""What the engine remembers about one live room: its broadcast and its viewers."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any, Final

import msgspec

from livecoupon.domain.events import Event
from livecoupon.engine.plans import Plan

Rebuild = tuple[Any, tuple[Any, ...]]  # what __reduce__ returns: a constructor and its arguments


def by_fields(state: Any) -> Rebuild:
    """How snapshots (pickle) rebuild a dataclass of the engine's state: by its constructor.

    Compiled (mypyc), such a class can be neither created empty nor filled field by field, as
    pickle does by default; a constructor call works in both builds."""
    return type(state), tuple(getattr(state, f.name) for f in fields(state))


# called as a function, for every event of a present viewer: compiled, ``viewers.move_to_end(user)`` looks the
# method up each time (~2x the cost)
_move_to_end: Final = OrderedDict.move_to_end
# Final: compiled, C constants, not look-ups in the module's dict at every event with an id (~130 instructions)
FORGET_AFTER_MS: Final = 24 * 3_600_000  # a room forgets ids at a new id this long after it last did
# ... or at a new id once it has taken this many since it last forgot: a hot room's set of ids stays under the size
# whose growth stalls a batch for long (CPython doubles a set and copies it: ~0.1 s at 2.5 M, ~0.3 s at 3.3 M)
FORGET_COUNT: Final = 2_000_000
_NEVER: Final = -(2**62)


_encode_ids: Final = msgspec.msgpack.Encoder().encode
_decode_ids: Final = msgspec.msgpack.Decoder(set[str]).decode


class RecentIds:
    """The platform message ids a room has seen, so a repeated event is dropped (SPEC §2: of events sharing an
    id in a room, the first is kept).

    A room forgets in two steps. At a new id a day after it last forgot, or once it has taken :data:`FORGET_COUNT`
    ids since, it forgets the ids it had set aside the time before and sets aside those it holds. So an id is
    remembered for a day and for two million new ids of the room at least, whatever the broadcasts: a repeat within
    a day (in a room of less than two million events a day) is caught however late it comes, while the memory, and
    the snapshots holding it, stop growing with the log (they kept every id a room ever saw: 119 MiB at 10 million
    entries). Replay, a restart from the log and the live service apply the same rule to the same events in the
    same order (an operator's entries take no part), so they decide alike; an event dropped changes nothing, so a
    log without the repeats (the service logs only what it applied) decides as one with them. (A room also forgot
    at each broadcast's start half an hour after it last had: a retry of the broadcast before last went through.)
    """

    __slots__ = ("newer", "older", "since", "count")

    def __init__(self, newer: bytes | None = None, older: bytes | None = None, since: int = _NEVER,
                 count: int = FORGET_COUNT) -> None:
        """Empty, or as a snapshot kept it (each generation's ids as msgpack). ``count``: ids taken before it
        forgets (:data:`FORGET_COUNT`; tests take fewer)."""
        self.newer: set[str] = set() if newer is None else _decode_ids(newer)
        self.older: set[str] = set() if older is None else _decode_ids(older)
        self.since = since  # the room's time when it last forgot: the ts of the event then
        self.count = count

    def __reduce__(self) -> Rebuild:
        # Its ids as msgpack: a snapshot is written while events wait, and pickle took 4x as long over a set of
        # strings (2,000,000 ids: 0.56 s against 0.13 s, read back 0.24 s against 0.18 s)
        return RecentIds, (_encode_ids(self.newer), _encode_ids(self.older), self.since, self.count)

    def __len__(self) -> int:
        return len(self.newer) + len(self.older)

    def first(self, event_id: str, ts: int) -> bool:
        """Whether the event is new (its id is remembered from now on); False for a repeat, which changes
        nothing (the log keeps only the events applied, SPEC §6, and replaying it decides as the service did
        with the repeats)."""
        if event_id in self.older:
            return False
        ids = self.newer
        known = len(ids)
        ids.add(event_id)  # one look-up in a set of up to millions of ids, not two (`in`, then `add`)
        if len(ids) == known:
            return False
        if known >= self.count or ts >= self.since + FORGET_AFTER_MS:
            self._forget(ts, event_id)
        return True

    def _forget(self, ts: int, event_id: str) -> None:
        self.older, self.newer, self.since = self.newer, set(), ts  # the ids from before the last time go
        self.older.discard(event_id)  # the event that made it forget is of the new generation
        self.newer.add(event_id)


def remembered_id(event: Event) -> str | None:
    """The id a room's memory takes ``event`` by: its own; none for an operator's entry, which is never a repeat and
    takes no part (scaled out, every command has an id, one per copy of it)."""
    return event.id if event.command is None else None


def is_new(memory: dict[str, RecentIds], event: Event) -> bool:
    """Whether ``event`` is new to its room's memory of ids (``memory``: each room's, made as rooms come), as the
    live deployment and replay's sorted path read it; False: a repeat, dropped (SPEC §2)."""
    event_id = remembered_id(event)
    if event_id is None:
        return True
    ids = memory.get(event.room)
    if ids is None:
        ids = memory[event.room] = RecentIds()
    return ids.first(event_id, event.ts)


class Viewer:
    """A viewer present in the room: when they joined and when they were last seen."""

    __slots__ = ("joined_at", "last_seen")

    def __init__(self, joined_at: int, last_seen: int | None = None) -> None:
        self.joined_at = joined_at
        self.last_seen = joined_at if last_seen is None else last_seen

    def __reduce__(self) -> Rebuild:
        return Viewer, (self.joined_at, self.last_seen)


@dataclass(slots=True)
class FlashSale:
    number: int  # its place among this broadcast's sales
    starts: int
    ends: int
    served: set[str] = field(default_factory=set)

    def __reduce__(self) -> Rebuild:
        return by_fields(self)


@dataclass(slots=True)
class Room:
    """State of one room. Per-broadcast parts are reset by :meth:`begin_broadcast`."""

    name: str
    timeout: int
    plan: Plan  # the campaign version this broadcast runs (taken at its start)
    broadcast: int | None = None  # start time (ms) of the open broadcast; None when off air
    seen_any: bool = False
    # Present viewers, least recently active first, so timeouts are found at the front.
    viewers: OrderedDict[str, Viewer] = field(default_factory=OrderedDict)
    last_order: dict[str, int] = field(default_factory=dict)  # user -> latest order ts in this room
    last_comment: dict[str, int] = field(default_factory=dict)
    gifts: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (total fen, when reached)
    decided: dict[int, set[str]] = field(default_factory=dict)  # trigger index -> users (once per broadcast)
    fired: set[int] = field(default_factory=set)  # online_reached triggers fired this broadcast
    last_fired: dict[int, int] = field(default_factory=dict)  # host_says trigger -> last firing ts
    firings: dict[int, int] = field(default_factory=dict)  # trigger -> firings this broadcast
    sales: list[FlashSale] = field(default_factory=list)
    sales_started: int = 0
    sweep_due: int = 0  # no viewer can have timed out before this time
    named: int = _NEVER  # the latest broadcast's name (its ``broadcast``), kept off air

    def __reduce__(self) -> Rebuild:
        return by_fields(self)

    @property
    def on_air(self) -> bool:
        return self.broadcast is not None

    def begin_broadcast(self, at: int, plan: Plan) -> None:
        self.end_broadcast()
        # A broadcast is named by its start (ms), and its coupon ids carry the name; one begun in the same ms as
        # the broadcast before (a restart within a second, stamped in whole seconds) is named a ms on, or its
        # decisions would be the earlier one's (the same ids, so answered as made already and lost)
        self.broadcast = self.named = at if at > self.named else self.named + 1
        self.plan = plan
        self.timeout = plan.campaign.presence_timeout_ms
        self.last_comment.clear()
        self.gifts.clear()
        self.decided.clear()
        self.fired.clear()
        self.last_fired.clear()
        self.firings.clear()
        self.sales_started = 0

    def end_broadcast(self) -> None:
        self.broadcast = None
        self.viewers.clear()
        self.sales.clear()

    def expire(self, now: int) -> None:
        """Drop viewers whose last activity is more than ``timeout`` before ``now``.

        Viewers are kept least recently active first, so the sweep stops at the first
        one still present, and nothing needs sweeping until that one could time out.
        """
        viewers, horizon = self.viewers, now - self.timeout
        while viewers:
            user, viewer = next(iter(viewers.items()))
            if viewer.last_seen >= horizon:
                self.sweep_due = viewer.last_seen + self.timeout + 1
                return
            del viewers[user]
        self.sweep_due = now + self.timeout + 1

    def see_again(self, user: str, at: int) -> bool:
        """A viewer already present is seen again at ``at`` (True); False if not present."""
        if at >= self.sweep_due:
            self.expire(at)
        viewer = self.viewers.get(user)
        if viewer is None or at - viewer.last_seen > self.timeout:
            return False
        if at > viewer.last_seen:
            viewer.last_seen = at
        _move_to_end(self.viewers, user)
        return True

    def present(self, user: str, at: int) -> Viewer | None:
        viewer = self.viewers.get(user)
        if viewer is None or at - viewer.last_seen > self.timeout:
            return None
        return viewer

    def present_users(self, at: int) -> list[str]:
        """Present users in ascending order of their current join (ties: user id)."""
        horizon = at - self.timeout
        present = [(v.joined_at, u) for u, v in self.viewers.items() if v.last_seen >= horizon]
        present.sort()
        return [u for _, u in present]

    def join_order(self, users: list[str]) -> list[str]:
        return sorted(users, key=lambda u: (self.viewers[u].joined_at, u))

    def decided_for(self, trigger: int) -> set[str]:
        users = self.decided.get(trigger)
        if users is None:
            users = self.decided[trigger] = set()
        return users

    def next_firing(self, trigger: int) -> int:
        n = self.firings.get(trigger, 0)
        self.firings[trigger] = n + 1
        return n
