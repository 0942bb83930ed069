"""A scaled-out deployment's partition logs read as one (cluster/logs.py), as export writes them: entries of one
time in several logs come in the order they were written, not by partition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livecoupon.cluster.logs import Places, decision_order, merged_log
from livecoupon.domain.records import DecisionRecord
from livecoupon.store.sqlite import SqliteStore

T = 1_700_000_000


def written(store: SqliteStore, log: str, *entries: dict[str, Any]) -> None:
    store.log = log  # the partition a worker writes as
    with store.unit_of_work():
        store.append_events(list(entries))


def test_entries_of_one_time_come_as_written_and_a_campaign_wide_command_once_after_what_preceded_it(
        tmp_path: Path) -> None:
    """What an audit found exported otherwise (ties went to the lower partition): a stock-1 manual issue applied
    for bob (room r2, partition p11) before alice's (r1, p1) replayed to alice; a pause sent after a comment at its
    time replayed before it (a coupon the deployment issued never issued)."""
    store = SqliteStore(tmp_path / "logs.db")
    bob = {"type": "operator", "room": "r2", "ts": T + 50, "id": "k-bob", "action": "issue", "users": ["bob"]}
    alice = {"type": "operator", "room": "r1", "ts": T + 50, "id": "k-alice", "action": "issue", "users": ["alice"]}
    comment = {"type": "comment", "room": "r2", "ts": T + 100, "user": "carol", "text": "扣1"}
    pause = {"type": "operator", "room": "*", "ts": T + 100, "id": "pause-1", "action": "pause", "trigger": "kou"}
    written(store, "p1", {"type": "live_start", "room": "r1", "ts": T})
    written(store, "p11", {"type": "live_start", "room": "r2", "ts": T}, bob)
    written(store, "p1", alice)
    written(store, "p11", comment)
    written(store, "p1", pause, {"type": "join", "room": "r1", "ts": T + 101, "user": "dan"})
    written(store, "p11", pause)
    places: Places = {}
    merged = list(merged_log(store, places))
    assert [e.get("id") or e["type"] for e in merged] == [
        "live_start", "live_start", "k-bob", "k-alice", "comment", "pause-1", "join"]
    records = [DecisionRecord(f"c-{user}", room, T * 1000, "manual", user, (T + 50) * 1000, "man", None, 0)
               for user, room in (("alice", "r1"), ("bob", "r2"))]  # as the store lists them: by partition
    assert [r.user for r in decision_order(records, places)] == ["bob", "alice"]
    store.close()
