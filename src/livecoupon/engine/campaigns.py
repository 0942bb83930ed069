"""Several campaigns in one deployment (docs/campaign.md, "Several campaigns").

Each campaign has an engine of its own, and the log reaches them in its order: an event goes to the
engines of the campaigns listening to its room (the others would ignore it), an operator command to
every engine (one addressed to another campaign changes nothing); for one entry the engines decide
one after the other, in the order of their campaign ids. So a replay of the log with one campaign's
file decides exactly what that campaign decided in the deployment, and a replay with every file
decides what the deployment did.

A campaign that joins a deployment whose log has begun is started by a ``start`` entry: it applies
the log from that entry on, as the campaigns of a new deployment apply it from its first entry.
Its first visits, caps, stock and budget are its own from the start (the store keys them by
campaign); the rooms it shares with others are new to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.commands import PublishCampaign, StartCampaign
from livecoupon.domain.decisions import Decision
from livecoupon.domain.events import Event, Facts, event_json
from livecoupon.engine.engine import NO_TIME, Engine
from livecoupon.engine.rooms import RecentIds, is_new
from livecoupon.store.port import ClaimsLedger


class DeploymentError(ValueError):
    """Campaign files that cannot run together in one deployment."""


def in_order(campaigns: Iterable[Campaign]) -> list[Campaign]:
    """A deployment's campaigns in the order they decide, refusing two files of one campaign."""
    ordered = sorted(campaigns, key=lambda c: c.campaign)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.campaign == after.campaign:
            raise DeploymentError(f"campaign {before.campaign!r} is configured twice (活动 id 重复)")
    if not ordered:
        raise DeploymentError("no campaign configured (未配置活动)")
    return ordered


LoggedBatch = tuple[list[dict[str, Any]], list[Decision]]  # a batch as logged, and the decisions it made


class Deployment:
    """The engines of a deployment's campaigns, fed one log.

    ``joining``: campaigns that wait for their ``start`` entry before applying anything (a replay
    finds them in the log; the service, in its roster). ``make``: each campaign's engine (explain's notes
    what it decides). ``dedup_ids``: an event whose id its room remembers is ignored (SPEC §2), in every
    campaign alike, and not logged; False where the caller drops them first (replay, as it reads).
    """

    def __init__(self, campaigns: Sequence[Campaign], store: ClaimsLedger, *, joining: Iterable[str] = (),
                 dedup_ids: bool = True, make: Callable[[Campaign], Engine] | None = None) -> None:
        self.campaigns = {c.campaign: c for c in in_order(campaigns)}  # the files configured, in order
        self._store = store
        self._make = make if make is not None else lambda c: Engine(c, self._store)
        waiting = set(joining)
        self.engines: dict[str, Engine] = {name: self._make(c) for name, c in self.campaigns.items()
                                           if name not in waiting}
        self.time = NO_TIME
        self.dedup_ids = dedup_ids
        self.recent_ids: dict[str, RecentIds] = {}  # room -> the ids it remembers (with dedup_ids; replay's own)
        self._listening: dict[str, list[Engine]] = {}  # room -> the engines an event of it reaches

    @property
    def store(self) -> ClaimsLedger:
        return self._store

    @store.setter
    def store(self, store: ClaimsLedger) -> None:
        """The claims ledger every engine decides through (a rebuild swaps in the recorded decisions)."""
        self._store = store
        for engine in self.engines.values():
            engine.store = store

    def engine(self, campaign: str) -> Engine | None:
        return self.engines.get(campaign)

    def apply(self, event: Event) -> list[Decision]:
        """Apply the event to the running campaigns it concerns, in campaign order; their decisions in that order."""
        return [] if self.repeated(event) else self.apply_new(event)

    def repeated(self, event: Event) -> bool:
        """Whether the event is to be ignored, repeating an id its room remembers (with ``dedup_ids``; an
        operator's command never is); if not, its id is remembered from now on (engine/rooms.py ``RecentIds``)."""
        return self.dedup_ids and not is_new(self.recent_ids, event)

    def apply_new(self, event: Event) -> list[Decision]:
        """:meth:`apply` for an event :meth:`repeated` has let through."""
        if event.ts > self.time:
            self.time = event.ts
        command = event.command
        if command is not None:
            if isinstance(command, StartCampaign):
                self.start(command.campaign)
            elif isinstance(command, PublishCampaign):
                self._listening = {}  # the rooms a campaign lists may change
            engines = list(self.engines.values())
        else:
            engines = self._reaching(event.room)
        if len(engines) == 1:
            return engines[0].apply(event)
        decisions: list[Decision] = []
        for engine in engines:
            made = engine.apply(event)
            if made:
                decisions.extend(made)
        return decisions

    def apply_logged(self, events: Sequence[Event], on_order: Callable[[Event], None]) -> LoggedBatch:
        """Apply events in order, never in the deployment's past: an event behind its time is applied at that
        time, and logged so. Each event applied as the log keeps it (:func:`event_json`: a repeat, ignored, is
        not logged), and the decisions made; ``on_order`` hears each ``order`` event just before it applies
        (the service's checkout).

        The live service's batch loop, here to run compiled: in the service it was ~2 µs an event."""
        logged: list[dict[str, Any]] = []
        decisions: list[Decision] = []
        for event in events:
            if event.ts < self.time:
                event.ts = self.time
            if self.repeated(event):
                continue
            logged.append(event_json(event))
            if event.type == "order":
                on_order(event)
            made = self.apply_new(event)
            if made:
                decisions.extend(made)
        return logged, decisions

    def touch(self, room: str, user: str, ts: int, facts: Facts | None = None) -> bool:
        """:meth:`Engine.touch` for a deployment: True if the event needed nothing more (it only refreshed a
        present viewer, or no campaign listens to its room); False: apply it."""
        engines = self._reaching(room)
        if len(engines) > 1 or (engines and not engines[0].touch(room, user, ts, facts)):
            return False
        if ts > self.time:
            self.time = ts
        return True

    def _reaching(self, room: str) -> list[Engine]:
        """The engines an event of ``room`` reaches: those whose campaign lists it, or had it on air before a
        publish took it out of the list (an engine would ignore it otherwise, its clock aside, which decides
        nothing). Found at the room's first event, kept until a publish or a start."""
        engines = self._listening.get(room)
        if engines is None:
            engines = self._listening[room] = [e for e in self.engines.values()
                                               if room in e.rooms or e.campaign.listens_to(room)]
        return engines

    def start(self, name: str) -> None:
        """Campaign ``name`` applies what follows (its ``start`` entry, or a log with nothing in it yet)."""
        campaign = self.campaigns.get(name)
        if campaign is None or name in self.engines:
            return  # not configured here (a replay of some of the files), or running already
        engine = self._make(campaign)
        engine.time = self.time
        self.engines[name] = engine
        self.engines = {n: self.engines[n] for n in self.campaigns if n in self.engines}  # campaign order
        self._listening = {}

    def next_timer_due(self) -> int | None:
        dues = [due for engine in self.engines.values() if (due := engine.next_timer_due()) is not None]
        return min(dues) if dues else None

    def restore(self, engines: dict[str, Engine], time: int, recent_ids: dict[str, RecentIds]) -> None:
        """Take the engines a snapshot held (those configured), the others waiting for their start."""
        self.engines = {name: engines[name] for name in self.campaigns if name in engines}
        for engine in self.engines.values():
            engine.store = self._store
        self.time = time
        self.recent_ids = recent_ids
        self._listening = {}


def started(events: Iterable[Event]) -> set[str]:
    """The campaigns a log starts with a ``start`` entry (they apply nothing before it)."""
    return {e.command.campaign for e in events if e.command is not None and type(e.command) is StartCampaign}
