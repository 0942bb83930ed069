"""How long a restart takes, against the length of the log: from the latest snapshot, and (the
baseline, in the same run) re-applying the whole log as the service did before snapshots.

For each size: a fresh SQLite store, a simulated broadcast posted through ``LiveService.submit``
in batches of 5,000 (the service snapshotting as it goes: at most every 20,000 entries), then
two restarts of a new ``LiveService`` on the same file: one with the snapshots, one after
deleting them. Prints the table; no assertion. Stops by itself.

    .venv/bin/python bench/restart.py             # 100,000 and 1,000,000 events
    .venv/bin/python bench/restart.py --quick     # 20,000 and 100,000
    .venv/bin/python bench/restart.py --sizes 10000000 --direct  # ~10 minutes, ~5 GiB of disk

``--direct`` writes the log without posting it: the service runs on a memory store whose log goes
straight into the file, then its decisions, counters, visits and one snapshot (20,000 entries
before the end) are written by the SQLite store's own code, as bench/cluster.py builds PostgreSQL's
logs; posting 10,000,000 events through SQLite one batch after another takes over half an hour
here. After each restart from the snapshot it times its parts alone: reading the snapshot,
unpickling it, reading every decision back (the single process does, for the consoles and metrics).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from streams import StreamSpec, broadcast_events  # noqa: E402
from tables import print_table  # noqa: E402

from livecoupon.campaign_file import load_campaign  # noqa: E402
from livecoupon.engine.clock import ClockMode  # noqa: E402
from livecoupon.service_layer.service import LiveService, SnapshotPolicy  # noqa: E402
from livecoupon.store.port import collector_paused  # noqa: E402
from livecoupon.store.sqlite import SqliteStore  # noqa: E402

CAMPAIGN = ROOT / "bench" / "campaign.yaml"
BATCH = 5_000


def batches(events: int) -> Iterator[list[dict[str, object]]]:
    """One simulated broadcast of about ``events`` events, ``BATCH`` at a time."""
    batch: list[dict[str, object]] = []
    for event in broadcast_events(StreamSpec.for_events(events), limit=events):
        batch.append(event)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build(db: Path, events: int) -> tuple[int, float]:
    """Post ``events`` events of one simulated broadcast; how many were logged, and the seconds it took."""
    service = LiveService(load_campaign(CAMPAIGN), SqliteStore(db), ClockMode.EVENT,
                          snapshot_policy=SnapshotPolicy(entries=20_000, seconds=0))
    service.rebuild()
    started = time.perf_counter()
    for batch in batches(events):
        service.submit(batch)
    took = time.perf_counter() - started
    logged = service.store.log_position()
    service.close()
    return logged, took


def write_state(store: Any, memory: Any, campaign: Any, snapshot: Any) -> list[Any]:
    """What a memory store holds after a built log (decisions, supply counters, visits) and ``snapshot``,
    written into ``store`` by its own code, in one transaction; the decisions."""
    from livecoupon.domain.decisions import IssueCounters

    made = list(memory._campaign_decisions[campaign.campaign])
    with store.unit_of_work():
        for start in range(0, len(made), 20_000):
            store._write_decisions(made[start:start + 20_000])
        store._write_decisions([], store._supply_moves(campaign.campaign, IssueCounters(),
                                                       memory._counters[campaign.campaign]))
        store._many("INSERT INTO visits VALUES (?, ?) ON CONFLICT DO NOTHING", sorted(memory._visited))
        store.save_snapshot(snapshot)
    return made


class LogElsewhere:
    """A MemoryStore (claims, ledger and snapshots in memory) whose log goes to ``write(position before,
    events)`` instead. It wraps the store rather than subclassing it: MemoryStore is compiled (mypyc), and an
    interpreted class cannot inherit from a compiled one."""

    def __init__(self, write: Callable[[int, list[dict[str, Any]]], None]) -> None:
        from livecoupon.store.memory import MemoryStore

        self.memory, self.position, self._write = MemoryStore(), 0, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    def append_events(self, logged: Iterable[dict[str, Any]]) -> None:
        batch = list(logged)
        self._write(self.position, batch)
        self.position += len(batch)

    def log_position(self) -> int:
        return self.position


def build_direct(db: Path, events: int, tail: int = 20_000) -> tuple[int, float]:
    """``build``'s log, decisions and state, written without posting (see the module's docstring)."""
    from livecoupon.engine import snapshots

    campaign = load_campaign(CAMPAIGN)
    store = SqliteStore(db)
    raw = sqlite3.connect(db)  # a transaction a batch (one of 10,000,000 rows would leave a 5 GB write-ahead log)
    raw.execute("PRAGMA synchronous=OFF")

    def into_the_file(position: int, logged: list[dict[str, Any]]) -> None:
        rows = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in logged]
        with raw:
            raw.executemany("INSERT INTO events (seq, body) VALUES (?, ?)",
                            [(position + n, body) for n, body in enumerate(rows, 1)])

    memory = LogElsewhere(into_the_file)
    service = LiveService(campaign, memory, ClockMode.EVENT, snapshot_policy=SnapshotPolicy(entries=2**62, seconds=0))
    service.rebuild()
    started = time.perf_counter()
    snapshot = None
    for batch in batches(events):
        service.submit(batch)
        if snapshot is None and memory.position >= events - tail:
            service.snapshot()
            snapshot = memory.latest_snapshot(snapshots.fingerprint(campaign))
    raw.close()
    assert snapshot is not None, "the stream was shorter than the tail"
    write_state(store, memory, campaign, snapshot)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file as a running service keeps it: log copied in
    store.close()
    took = time.perf_counter() - started
    service.close()
    return memory.position, took


def timed_parts(store: Any, campaign: Any) -> tuple[float, float, float, int, int]:
    """A restart's parts, each timed alone on ``store``: reading the latest snapshot, unpickling it into an
    engine, reading every decision back; and the event ids the snapshot keeps, the decisions read."""
    import gc

    from livecoupon.engine import snapshots
    from livecoupon.engine.campaigns import Deployment
    from livecoupon.service_layer.service import recorded

    gc.collect()
    started = time.perf_counter()
    snapshot = store.latest_snapshot(snapshots.fingerprint(campaign))
    read = time.perf_counter() - started
    deployment = Deployment([campaign], store)
    started = time.perf_counter()
    if snapshot is not None:  # (a log shorter than the service's snapshot interval has none)
        snapshots.load_deployment(deployment, snapshot.body)
    load = time.perf_counter() - started
    ids = sum(len(remembered) for remembered in deployment.recent_ids.values())
    del deployment, snapshot
    gc.collect()
    started = time.perf_counter()
    records, _ = recorded(store, [campaign.campaign])
    back = time.perf_counter() - started
    return read, load, back, ids, len(records)


def parts(db: Path) -> str:
    store = SqliteStore(db)
    read, load, back, ids, decisions = timed_parts(store, load_campaign(CAMPAIGN))
    store.close()
    return (f"snapshot read {read:.2f} s, unpickled {load:.2f} s ({ids:,} event ids), "
            f"{decisions:,} decisions read back {back:.2f} s")


def restart(db: Path) -> tuple[float, float, float, int]:
    """A new service on ``db`` started as the server starts it (``rebuild(behind=True)``): seconds until it
    decides, until its first batch (one join, on its writer thread) is answered while the decisions read
    back, until every decision is back; and how many log entries it re-applied."""
    started = time.perf_counter()
    service = LiveService(load_campaign(CAMPAIGN), SqliteStore(db), ClockMode.EVENT)
    with collector_paused():  # and what it built frozen, as api/runtime.py starts it
        applied = service.rebuild(behind=True)
        gc.freeze()
    ready = time.perf_counter() - started
    room = next(iter(service.engine().rooms))
    probe = [{"type": "join", "room": room, "ts": service.deployment.time / 1000, "user": "restart-probe"}]
    service._writer.submit(service.submit, probe).result()
    first = time.perf_counter() - started
    service.read_back.result()
    back = time.perf_counter() - started
    service.close()
    gc.unfreeze()
    return ready, first, back, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 and 100,000 events")
    parser.add_argument("--sizes", help="comma-separated event counts (default 100000,1000000)")
    parser.add_argument("--direct", action="store_true", help="write the logs without posting them (see above)")
    parser.add_argument("--whole-log-max", type=int, default=2_000_000,
                        help="skip the whole-log baseline for logs longer than this (default 2,000,000)")
    args = parser.parse_args()
    sizes = ((20_000, 100_000) if args.quick else
             tuple(int(n) for n in args.sizes.split(",")) if args.sizes else (100_000, 1_000_000))
    rows = []
    with tempfile.TemporaryDirectory(prefix="livecoupon-restart-") as work:
        for size in sizes:
            db = Path(work) / f"restart-{size}.db"
            logged, posted = (build_direct if args.direct else build)(db, size)
            with_snapshot, first, back, tail = restart(db)
            print(f"{logged:,} entries: {parts(db)}", flush=True)
            with sqlite3.connect(db) as raw:
                latest = raw.execute("SELECT length(body) FROM engine_snapshots ORDER BY position DESC LIMIT 1"
                                     ).fetchone()
                size_mib = latest[0] / 2**20 if latest else 0.0  # none: the log is shorter than the interval
                decisions = raw.execute("SELECT count(*) FROM decisions").fetchone()[0]
                raw.execute("DELETE FROM engine_snapshots")
            whole, _, _, applied = restart(db) if logged <= args.whole_log_max else (float("nan"), 0, 0, 0)
            baseline = ([f"{whole:.2f}", f"{applied:,}", f"{whole / with_snapshot:.1f}x"] if applied else
                        ["(skipped)", "", ""])
            rows.append(("restart", [f"{logged:,}", f"{posted:.1f}", f"{with_snapshot:.2f}", f"{first:.2f}",
                                     f"{back:.2f}", f"{tail:,}", f"{size_mib:.1f}", f"{decisions:,}", *baseline]))
            print(f"{logged:,} entries: deciding from the snapshot after {with_snapshot:.2f} s ({tail:,} re-applied, "
                  f"snapshot {size_mib:.1f} MiB), first batch answered {first:.2f} s, {decisions:,} decisions back "
                  f"{back:.2f} s, whole log "
                  + (f"{whole:.2f} s" if applied else "skipped"), flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table([f"machine: nproc={os.cpu_count()}  python={platform.python_version()}  "
                 f"sqlite={sqlite3.sqlite_version}  load average at the end: {load}"],
                ["log entries", "posting s", "from snapshot s", "1st batch s", "decisions back s", "re-applied",
                 "snapshot MiB", "decisions", "whole log s", "re-applied", "faster"],
                rows, ["from snapshot: deciding after the latest snapshot (at most 20,000 entries old) and the log "
                       "after it; 1st batch: a join answered, the decisions still reading back; decisions back: "
                       "every decision read back too (consoles, metrics); whole log: the baseline, every entry "
                       "re-applied (snapshots deleted), until it decides"],
                right={0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})


if __name__ == "__main__":
    main()
