"""``livecoupon replay``: a recorded stream through a fresh engine on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision
from livecoupon.engine.campaigns import Deployment, started
from livecoupon.engine.engine import QUIET_TYPES
from livecoupon.engine.recordings import (
    Line,
    Recording,
    Rejected,
    checked_event,
    plain_event,
    plain_fields,
    read_for_replay,
    write_decisions,
    write_lines,
)
from livecoupon.engine.rooms import RecentIds, remembered_id
from livecoupon.store.memory import MemoryClaims
from livecoupon.store.port import collector_paused

_QUIET: Final = QUIET_TYPES  # a Final is a C static in the compiled build, not a look-up in the module's dict


@dataclass(slots=True)
class ReplayResult:
    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    events: int = 0  # events applied (after dropping duplicates and bad lines)
    _ids: set[str] = field(default_factory=set)

    def add(self, made: list[Decision]) -> None:
        """Decisions made by one event; one the store already knew (a repeated operator key) is not new."""
        ids = self._ids
        for d in made:
            coupon_id = d.request.coupon_id
            if coupon_id not in ids:
                ids.add(coupon_id)
                self.decisions.append(d)


def replay(campaign: Campaign | list[Campaign], lines: Iterable[Line] | Recording) -> ReplayResult:
    """Apply a recorded stream to fresh in-memory state, as SPEC §6 specifies; with several campaigns, as a
    deployment of them applies it (engine/campaigns.py: each event reaches the campaigns listening to its room,
    and a campaign the recording starts with a ``start`` entry applies nothing before it).

    A recording in time order, the usual case, is applied as it is read: no event list,
    and a present viewer's heartbeat never becomes an object. At the first line out of
    time order the run starts again on the sorted path. Its lines are text, or UTF-8 bytes
    as :func:`~livecoupon.engine.recordings.read_lines` reads them (faster: msgspec reads bytes as they are), or a
    :class:`~livecoupon.engine.recordings.Recording`, read a block at a time.
    """
    lines = lines if isinstance(lines, (list, Recording)) else list(lines)  # read again if it starts again
    campaigns = [campaign] if isinstance(campaign, Campaign) else campaign

    def fresh(joining: set[str]) -> Deployment:
        return Deployment(campaigns, MemoryClaims(), joining=joining, dedup_ids=False)

    with collector_paused():  # millions of short-lived objects, no garbage cycles among them
        # A recording is looked through for start entries only once one turns up (rare): a scan of
        # every line for them cost ~5% of a replay
        result = _streamed(fresh(set()), lines, set())
        if result is None:  # out of time order, or a campaign starts part-way
            joining = _joining(lines)
            result = (_streamed(fresh(joining), lines, joining) if joining else None) or _sorted(fresh(joining), lines)
        return result


def _joining(lines: list[Line] | Recording) -> set[str]:
    """The campaigns a recording starts part-way (its ``start`` entries), which apply nothing before them."""
    return started(e for line in lines if _mentions_start(line)
                   if (e := checked_event(0, line, [])) is not None)


def _mentions_start(line: Line) -> bool:
    return b'"start"' in line if isinstance(line, bytes) else '"start"' in line


def _streamed(deployment: Deployment, lines: list[Line] | Recording, joining: set[str]) -> ReplayResult | None:
    """One pass, applying as it reads; None if the recording turns out not to be in time order, or
    to start a campaign not in ``joining``."""
    if not isinstance(lines, Recording):
        return _stream(deployment, [lines], joining)
    blocks = lines.blocks()
    try:
        return _stream(deployment, blocks, joining)
    finally:
        blocks.close()  # if it stopped part-way, the file is closed now, not whenever the reader is collected


def _stream(deployment: Deployment, blocks: Iterable[list[bytes]] | list[list[Line]],
            joining: set[str]) -> ReplayResult | None:
    # deployment.touch and deployment.apply are called on it, not through local bound methods:
    # compiled, that is a direct C call rather than a Python call that parses its arguments
    result = ReplayResult()
    rejected = result.rejected
    # Each room's memory of ids is the deployment's (its own check is off: dedup_ids=False), kept with the rest
    # of its state: freed as _stream returned, the million ids of a long recording took 2% of the whole command
    # (`set_dealloc`, perf), where `livecoupon replay` freezes that state and ends with it
    seen = deployment.recent_ids
    last_ts = -(2**63)
    last_room: str | None = None
    last_ids = RecentIds()  # last_room's
    number = 0  # the line's, counted from 1
    for block in blocks:
        for index in range(len(block)):  # compiled, a C loop over the list (enumerate went through its iterator)
            line = block[index]
            number += 1
            fields = plain_fields(line)
            kind, room, ts, event_id, user, _, _, _, facts = fields  # unpacked in place, not sliced into a tuple
            if kind:  # a plain line (never an operator's entry: the room's memory takes it by its id)
                event = None
            else:
                event = checked_event(number, line, rejected)
                if event is None:
                    continue
                if event.command is not None and not started([event]) <= joining:
                    return None
                room, ts, event_id = event.room, event.ts, remembered_id(event)
            # Each line decodes its room anew; the previous line's string (most lines are of the same room) is
            # compared instead of hashed, and it is the one the look-ups downstream get, its hash already known
            if room == last_room:
                room = last_room
            elif event_id is not None:
                ids = seen.get(room)
                if ids is None:
                    ids = seen[room] = RecentIds()
                last_room, last_ids = room, ids
            if event_id is not None and not last_ids.first(event_id, ts):
                continue  # a later copy of an id is dropped, as the live engine drops it (SPEC §2)
            if ts < last_ts:
                return None
            last_ts = ts
            result.events += 1
            if event is None:
                if kind in _QUIET and deployment.touch(room, user, ts, facts):  # type: ignore[arg-type]
                    continue
                event = plain_event(fields)
                event.room = room  # the string whose hash is already known
            made = deployment.apply(event)
            if made:
                result.add(made)
    return result


def _sorted(deployment: Deployment, lines: list[Line] | Recording) -> ReplayResult:
    ordered, rejected = read_for_replay(lines)
    result = ReplayResult(rejected=rejected, events=len(ordered))
    for event in ordered:
        made = deployment.apply(event)
        if made:
            result.add(made)
    return result


def replay_to(campaign: Campaign | list[Campaign], lines: Iterable[Line] | Recording, out_dir: Path) -> ReplayResult:
    """:func:`replay`, then :func:`write_outputs`: ``livecoupon replay``'s whole job.

    The collector stays paused throughout: between the two it would scan every decision
    kept, again and again while the outputs are encoded (~5% of a 1,000,000-event run, measured).
    """
    with collector_paused():
        result = replay(campaign, lines)
        write_outputs(result, out_dir)
    return result


def write_outputs(result: ReplayResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_decisions([d.record() for d in result.decisions], out_dir)
    write_lines(out_dir / "rejected.jsonl", ({"line": r.line, "error": r.error} for r in result.rejected))
