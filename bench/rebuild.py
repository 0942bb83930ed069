#!/usr/bin/env python3
"""Rebuilding a campaign's claim counters in Redis from PostgreSQL, against the number of decisions.

    .venv/bin/python bench/rebuild.py                        # 100,000 and 1,000,000 decisions
    .venv/bin/python bench/rebuild.py --sizes 100000 --reps 5

A deployment that claims through Redis (``--claims``, store/redis.py) counts a campaign's counters again
from its decisions whenever Redis lost them (a flush, a restart): claims wait meanwhile. For each size, a
fresh schema on the machine's PostgreSQL gets that many decisions of one campaign (``INSERT … SELECT`` from
``generate_series``, then ``ANALYZE`` and ``VACUUM`` as autovacuum would; set-up, not timed): 16 rooms, 4
broadcasts each, 3 triggers, 2 templates, users a third of the decisions (so most have 3 coupons), a device
key on half, 5% suppressed. Then, alternating, ``--reps`` times each:

- **baseline**: the recount as it was up to commit 75b491a, the same five ``GROUP BY`` scans at PostgreSQL's
  default ``work_mem`` of 4 MB (:func:`recount_five_scans`), and loading what they give into Redis;
- **now**: :func:`livecoupon.store.redis.recount` and the same load;

each timed as the query (PostgreSQL's side and the rows' transfer into Python), the load into Redis, and
the whole; plus ``RedisClaims.rebuild()`` itself (the fence, the recount, the load, the new epoch). Both
recounts must give the same counters, and Redis must hold them after the last load (``check``). Prints one
table; the schema and keys are dropped.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402

from livecoupon.store.postgres import PostgresStore  # noqa: E402
from livecoupon.store.redis import Recount, recount  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
CAMPAIGN = "bench-rebuild"


def recount_five_scans(db: psycopg.Connection[Any], campaign: str) -> Recount:
    """The rebuild's recount up to 75b491a: the same five scans at PostgreSQL's default ``work_mem``."""
    return recount(db, campaign, work_mem="4MB")


def fill(url: str, name: str, size: int) -> None:
    """``size`` decisions of the campaign (set-up, not timed)."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"SET search_path TO {name}")
        ids = [db.execute("INSERT INTO templates (campaign, name, title, kind, threshold, amount, percent_tenths, "
                          "max_discount, scope) VALUES (%s, %s, %s, 'no_threshold', 0, %s, 0, NULL, '{}') RETURNING id",
                          (CAMPAIGN, t, t, amount)).fetchone()[0]  # type: ignore[index]
               for t, amount in (("five", 500), ("ten", 1000))]
        users = max(1, size // 3)
        db.execute(
            "INSERT INTO decisions (coupon_id, campaign, room, broadcast, trigger, \"user\", template, template_id, "
            "at, reason, expires_at, state, device_key) SELECT 'c' || i, %s, 'room-' || (i %% 16), 1700000000000 + "
            "(i / 16 %% 4), 'trigger-' || (i %% 3), 'u' || ((i::bigint * 7919) %% %s), "
            "CASE WHEN i %% 2 = 0 THEN 'five' ELSE 'ten' END, "
            "CASE WHEN i %% 20 = 0 THEN NULL WHEN i %% 2 = 0 THEN %s ELSE %s END, 1700000000000 + i * 10, "
            "CASE WHEN i %% 20 = 0 THEN 'per_user_cap' END, 1700003600000 + i * 10, CASE WHEN i %% 20 <> 0 THEN "
            "'issued' END, CASE WHEN i %% 2 = 0 THEN 'grab' || chr(31) || 'd:' || (i %% %s) END "
            "FROM generate_series(1, %s) AS i", (CAMPAIGN, users, ids[0], ids[1], max(1, size // 4), size))
        db.execute("VACUUM ANALYZE decisions")


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def measure(url: str, name: str, claims: Any, how: Callable[[psycopg.Connection[Any], str], Recount],
            ) -> tuple[float, float, int, Recount]:
    """(query s, load s, fields loaded, the counters) for one recount and its load into Redis."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"SET search_path TO {name}")
        query_s, counts = timed(lambda: how(db, CAMPAIGN))
    fields = sum(len(part) for part in counts.hashes().values())
    load_s, _ = timed(lambda: claims.counters.load(CAMPAIGN, 10**6, counts))
    return query_s, load_s, fields, counts


def held(claims: Any) -> dict[str, dict[str, int]]:
    """What Redis holds for the campaign, by hash."""
    client = claims.counters.client
    return {name: {bytes(k).decode(): int(v) for k, v in client.hgetall(key).items()}
            for name, key in zip(("stock", "spent", "per_user", "devices", "last"), claims.counters.keys(CAMPAIGN)[1:],
                                 strict=True)}


def run_size(args: argparse.Namespace, size: int) -> list[list[str]]:
    name = f"lcb_rebuild_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(args.pg, name, claims=args.redis)
    try:
        started = time.perf_counter()
        fill(args.pg, name, size)
        print(f"  {size:,} decisions in {time.perf_counter() - started:.1f} s (set-up)", file=sys.stderr)
        claims = store.redis_claims()
        assert claims is not None
        series: dict[str, list[tuple[float, float, int]]] = {"baseline": [], "now": []}
        results: dict[str, Recount] = {}
        for rep in range(args.reps):
            order = [("baseline", recount_five_scans), ("now", recount)]
            for label, how in order if rep % 2 == 0 else order[::-1]:
                query_s, load_s, fields, counts = measure(args.pg, name, claims, how)
                series[label].append((query_s, load_s, fields))
                results[label] = counts
        rebuild_s = []
        for _ in range(args.reps):
            claims._forget(CAMPAIGN, miscounted=True)  # counted again at once, as after a flush
            rebuild_s.append(timed(lambda: claims.rebuild(CAMPAIGN))[0])
        same = results["baseline"].hashes() == results["now"].hashes() == held(claims)
        check = "ok (same counters, and in Redis)" if same else "DIFFERENT COUNTERS"
        rows = []
        for label in ("baseline", "now"):
            runs = series[label]
            query = statistics.median(q for q, _, _ in runs)
            load = statistics.median(load for _, load, _ in runs)
            total = statistics.median(q + load for q, load, _ in runs)
            rows.append([f"{size:,}", label, f"{runs[0][2]:,}", f"{query:.3f}", f"{load:.3f}", f"{total:.3f}",
                         f"{statistics.median(rebuild_s):.3f}" if label == "now" else "", check])
        return rows
    finally:
        store.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="decisions (default 100000,1000000)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each, alternating; medians (default 3)")
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--redis", default=REDIS_URL)
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with open("/proc/loadavg") as f:
        load_start = " ".join(f.read().split()[:3])
    with psycopg.connect(args.pg, autocommit=True) as db:
        version = db.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    rows = [row for size in (int(s) for s in args.sizes.split(",")) for row in run_size(args, size)]
    with open("/proc/loadavg") as f:
        load_end = " ".join(f.read().split()[:3])
    header = ["decisions", "recount", "fields", "query s", "load s", "recount + load s", "rebuild() s", "check"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"machine: nproc={len(__import__('os').sched_getaffinity(0))}  python={platform.python_version()}  "
          f"PostgreSQL {version}  code: {commit}  load average at start: {load_start}, at the end: {load_end}")
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    print("-" * len(line))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print("-" * len(line))
    print("note: medians of --reps runs, baseline and now alternating; query = the recount's SQL and its rows into "
          "Python; load = one MULTI into Redis; fields = hash fields loaded; rebuild() = RedisClaims.rebuild with the "
          "current code (fence, recount, load, epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
