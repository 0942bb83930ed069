"""One published version of a campaign, as the engine looks its triggers up.

A room runs one version for a whole broadcast: the version in force when the broadcast began.
A version published while a room is on air reaches that room at its next ``live_start``
(docs/campaign.md, "Publishing"), so the once-per sets, timers and firing counts a broadcast
keeps by trigger index always mean the triggers they were counted for.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from livecoupon.domain.campaign import Campaign, Experiment, Trigger, When
from livecoupon.engine.phrases import KeywordMatcher, PhraseMatcher


class Plan:
    """A version's triggers by ``when`` (those not paused, in file order) and their matchers."""

    def __init__(self, version: int, campaign: Campaign, listening: bool = True) -> None:
        """``listening=False``: the version does not name the room, and fires nothing in it."""
        self.version = version
        self.campaign = campaign
        self.listening = listening
        triggers = campaign.triggers if listening else ()
        self.triggers = triggers
        self.dwell = [t for t in triggers if t.when is When.DWELL]
        self.phrases = {t.index: PhraseMatcher(t.phrases) for t in triggers if t.when is When.HOST_SAYS}
        self.keywords = {t.index: KeywordMatcher(t.keywords) for t in triggers if t.when is When.COMMENT}
        self.experiments: dict[str, Experiment] = {e.trigger: e for e in campaign.experiments}
        self.starts_at = campaign.starts_at  # the schedule, which every viewer's event asks: see scheduled
        self.ends_at = campaign.ends_at
        self.by_when: dict[When, list[Trigger]] = {}
        self.paused_by_when: dict[When, list[Trigger]] = {}
        self.index(frozenset())

    def scheduled(self, at: int) -> bool:
        """``Campaign.scheduled`` for this version. Compiled, the engine's call at every viewer's event is a C
        call reading C attributes, not a call into the uncompiled campaign's method."""
        return (self.starts_at is None or at >= self.starts_at) and (self.ends_at is None or at < self.ends_at)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # snapshots rebuild the matchers
        return Plan, (self.version, self.campaign, self.listening)

    def index(self, paused: Set[str]) -> None:
        """Index the triggers by ``when``, those ``paused`` apart (after a pause, a resume, a restore)."""
        self.by_when = {when: [] for when in When}
        self.paused_by_when = {when: [] for when in When}
        for trigger in self.triggers:
            (self.paused_by_when if trigger.name in paused else self.by_when)[trigger.when].append(trigger)

    def silent(self) -> Plan:
        """This version for a room it does not name: the room is tracked, nothing fires in it."""
        return Plan(self.version, self.campaign, listening=False)
