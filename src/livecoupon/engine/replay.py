"""``livecoupon replay``: a recorded stream through a fresh engine on a simulated clock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

import orjson

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.domain.events import Event, EventError, parse_event
from livecoupon.engine.engine import Engine
from livecoupon.store.memory import MemoryStore
from livecoupon.store.port import BIG_BATCH, Store, collector_paused


@dataclass(slots=True)
class Rejected:
    line: int
    error: str


@dataclass(slots=True)
class ReplayResult:
    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    events: int = 0  # events applied (after dropping duplicates and bad lines)


def read_events(lines: Iterable[str]) -> tuple[list[Event], list[Rejected]]:
    """Parse a JSON-lines stream, every valid event in file order; blank lines are
    skipped but still counted."""
    events: list[Event] = []
    rejected: list[Rejected] = []
    append = events.append
    for number, line in enumerate(lines, start=1):
        event = _parse_line(number, line, rejected)
        if event is not None:
            append(event)
    return events, rejected


def read_for_replay(lines: Iterable[str]) -> tuple[list[Event], list[Rejected]]:
    """The events in replay order (SPEC §2): later copies of an ``id`` in a room dropped
    (file order decides), then sorted by ``ts``, ties in file order.

    One pass over the file does all of it; a recording already in time order, the usual
    case, is never sorted. The valid common case stays inline: this is replay's hot loop.
    """
    events: list[Event] = []
    rejected: list[Rejected] = []
    append, loads, parse = events.append, orjson.loads, parse_event
    seen: dict[str, set[str]] = {}
    last_ts, in_order = -(2**63), True
    for number, line in enumerate(lines, start=1):
        try:
            event = parse(loads(line))
        except (orjson.JSONDecodeError, EventError):
            checked = _parse_line(number, line, rejected)
            if checked is None:
                continue
            event = checked
        if event.id is not None:
            ids = seen.get(event.room)
            if ids is None:
                ids = seen[event.room] = set()
            elif event.id in ids:
                continue
            ids.add(event.id)
        if event.ts < last_ts:
            in_order = False
        last_ts = event.ts
        append(event)
    if not in_order:
        events.sort(key=attrgetter("ts"))
    return events, rejected


def _parse_line(number: int, line: str, rejected: list[Rejected]) -> Event | None:
    """One line, or None (blank, or rejected with the reason appended to ``rejected``)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        if not line.strip():
            return None
        try:  # the standard parser also reads NaN and huge integers, so validation can name the field
            data = json.loads(line)
        except ValueError as exc:
            rejected.append(Rejected(number, f"not valid JSON: {exc}"))
            return None
    try:
        return parse_event(data)
    except EventError as exc:
        rejected.append(Rejected(number, str(exc)))
        return None


def replay(campaign: Campaign, lines: Iterable[str], store: Store | None = None) -> ReplayResult:
    with collector_paused(BIG_BATCH + 1):  # millions of live event objects, no garbage cycles among them
        return _replay(campaign, lines, store)


def _replay(campaign: Campaign, lines: Iterable[str], store: Store | None) -> ReplayResult:
    ordered, rejected = read_for_replay(lines)
    engine = Engine(campaign, store if store is not None else MemoryStore(), dedup_ids=False)
    result = ReplayResult(rejected=rejected, events=len(ordered))
    decisions = result.decisions
    apply = engine.apply
    for event in ordered:
        made = apply(event)
        if made:
            decisions.extend(made)
    return result


def _seconds(ms: int) -> int | float:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def decision_json(d: DecisionRecord) -> dict[str, Any]:
    """One line of ``issued.jsonl`` or ``suppressed.jsonl`` (SPEC §6)."""
    record: dict[str, Any] = {"ts": _seconds(d.at), "room": d.room, "user": d.user, "trigger": d.trigger}
    if d.reason is None:
        assert d.expires_at is not None
        record.update(coupon=d.template, coupon_id=d.coupon_id, expires_at=_seconds(d.expires_at))
    else:
        record["reason"] = d.reason.value
    if d.experiment is not None:
        record.update(experiment=d.experiment, variant=d.variant)
    return record


def _write_lines(path: Path, records: Iterator[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


def write_outputs(result: ReplayResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = [d.record() for d in result.decisions]
    _write_lines(out_dir / "issued.jsonl", (decision_json(r) for r in records if r.issued))
    _write_lines(out_dir / "suppressed.jsonl", (decision_json(r) for r in records if not r.issued))
    _write_lines(out_dir / "rejected.jsonl", ({"line": r.line, "error": r.error} for r in result.rejected))


def open_events(path: Path) -> IO[str]:
    return path.open("r", encoding="utf-8")
