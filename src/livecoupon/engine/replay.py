"""``livecoupon replay``: a recorded stream through a fresh engine on a simulated clock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.engine.engine import Engine
from livecoupon.engine.recordings import Rejected, read_for_replay
from livecoupon.store.memory import MemoryStore
from livecoupon.store.port import BIG_BATCH, Store, collector_paused


@dataclass(slots=True)
class ReplayResult:
    decisions: list[Decision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    events: int = 0  # events applied (after dropping duplicates and bad lines)


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
