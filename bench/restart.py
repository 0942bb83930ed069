"""How long a restart takes, against the length of the log: from the latest snapshot, and (the
baseline, in the same run) re-applying the whole log as the service did before snapshots.

For each size: a fresh SQLite store, a simulated broadcast posted through ``LiveService.submit``
in batches of 5,000 (the service snapshotting as it goes: at most every 20,000 entries), then
two restarts of a new ``LiveService`` on the same file: one with the snapshots, one after
deleting them. Prints the table; no assertion. Stops by itself.

    .venv/bin/python bench/restart.py             # 100,000 and 1,000,000 events
    .venv/bin/python bench/restart.py --quick     # 20,000 and 100,000
    .venv/bin/python bench/restart.py --sizes 1000000,10000000   # ~15 minutes, ~6 GiB of disk
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from streams import StreamSpec, broadcast_events  # noqa: E402
from tables import print_table  # noqa: E402

from livecoupon.campaign_file import load_campaign  # noqa: E402
from livecoupon.engine.clock import ClockMode  # noqa: E402
from livecoupon.service_layer.service import LiveService, SnapshotPolicy  # noqa: E402
from livecoupon.store.sqlite import SqliteStore  # noqa: E402

CAMPAIGN = ROOT / "bench" / "campaign.yaml"
BATCH = 5_000


def build(db: Path, events: int) -> tuple[int, float]:
    """Post ``events`` events of one simulated broadcast; how many were logged, and the seconds it took."""
    service = LiveService(load_campaign(CAMPAIGN), SqliteStore(db), ClockMode.EVENT,
                          snapshot_policy=SnapshotPolicy(entries=20_000, seconds=0))
    service.rebuild()
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    for event in broadcast_events(StreamSpec.for_events(events), limit=events):
        batch.append(event)
        if len(batch) == BATCH:
            service.submit(batch)
            batch = []
    if batch:
        service.submit(batch)
    took = time.perf_counter() - started
    logged = service.store.log_position()
    service.close()
    return logged, took


def restart(db: Path) -> tuple[float, int]:
    """Seconds until a new service on ``db`` is ready, and how many log entries it re-applied."""
    started = time.perf_counter()
    service = LiveService(load_campaign(CAMPAIGN), SqliteStore(db), ClockMode.EVENT)
    applied = service.rebuild()
    took = time.perf_counter() - started
    service.close()
    return took, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 and 100,000 events")
    parser.add_argument("--sizes", help="comma-separated event counts (default 100000,1000000)")
    args = parser.parse_args()
    sizes = ((20_000, 100_000) if args.quick else
             tuple(int(n) for n in args.sizes.split(",")) if args.sizes else (100_000, 1_000_000))
    rows = []
    with tempfile.TemporaryDirectory(prefix="livecoupon-restart-") as work:
        for size in sizes:
            db = Path(work) / f"restart-{size}.db"
            logged, posted = build(db, size)
            with_snapshot, tail = restart(db)
            with sqlite3.connect(db) as raw:
                size_mib = raw.execute("SELECT length(body) FROM engine_snapshots ORDER BY position DESC LIMIT 1"
                                       ).fetchone()[0] / 2**20
                decisions = raw.execute("SELECT count(*) FROM decisions").fetchone()[0]
                raw.execute("DELETE FROM engine_snapshots")
            whole, applied = restart(db)
            rows.append(("restart", [f"{logged:,}", f"{posted:.1f}", f"{with_snapshot:.2f}", f"{tail:,}",
                                     f"{size_mib:.1f}", f"{decisions:,}", f"{whole:.2f}", f"{applied:,}",
                                     f"{whole / with_snapshot:.1f}x"]))
            print(f"{logged:,} entries: snapshot {with_snapshot:.2f} s ({tail:,} re-applied, snapshot "
                  f"{size_mib:.1f} MiB, {decisions:,} decisions read back), whole log {whole:.2f} s", flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table([f"machine: nproc={os.cpu_count()}  python={platform.python_version()}  "
                 f"sqlite={sqlite3.sqlite_version}  load average at the end: {load}"],
                ["log entries", "posting s", "from snapshot s", "re-applied", "snapshot MiB", "decisions",
                 "whole log s", "re-applied", "faster"],
                rows, ["from snapshot: the latest snapshot (at most 20,000 entries old) plus the log after it; "
                       "whole log: the baseline, every entry re-applied (snapshots deleted)"],
                right={0, 1, 2, 3, 4, 5, 6, 7, 8})


if __name__ == "__main__":
    main()
