"""``livecoupon export``: the service's log and decisions, as files a replay reproduces (SPEC §6)."""

from __future__ import annotations

from pathlib import Path

from livecoupon.cluster.logs import Places, decision_order, merged_log
from livecoupon.engine.recordings import write_decisions, write_lines
from livecoupon.store.relational import RelationalStore
from livecoupon.store.sqlite import SqliteStore


def export_store(source: str | Path | RelationalStore, out_dir: Path, campaign: str | None = None) -> dict[str, int]:
    """Write ``events.jsonl`` (every applied event and operator command, in the order applied),
    ``issued.jsonl`` and ``suppressed.jsonl`` of a store (a SQLite path, or an open store,
    closed afterwards); the counts written. A scaled-out deployment's partition logs are merged by
    event time (see cluster/logs.py). Safe while the service runs: one read
    transaction sees one consistent moment. ``campaign``: that campaign's decisions alone (the log
    stays whole: a replay of it with that campaign's file reproduces them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    store = source if isinstance(source, RelationalStore) else SqliteStore(source)
    try:
        with store.reading():
            known = store.roster()
            if campaign is not None and known and campaign not in known:
                raise ValueError(f"no campaign {campaign!r} in this deployment ({', '.join(sorted(known))})")
            places: Places = {}
            events = write_lines(out_dir / "events.jsonl", merged_log(store, places))
            issued, suppressed = write_decisions(decision_order(store.decisions(campaign), places), out_dir)
    finally:
        store.close()
    return {"events": events, "issued": issued, "suppressed": suppressed}
