"""What a claim of a trigger with its own budget costs as its coupons pile up: the share's
counter (``budget_shares``, one row) against summing the trigger's issued coupons (the
baseline, what every such claim ran before), in the same run, on SQLite and PostgreSQL.

Issues coupons of one budgeted trigger in batches, and after each step times one more claim
of it both ways. Run: .venv/bin/python bench/shares.py [--steps 1000,10000,40000] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import CouponKind, CouponTemplate, Terms
from livecoupon.domain.decisions import IssueRequest, coupon_id_for
from livecoupon.store.relational import TRIGGER_SHARE, RelationalStore
from livecoupon.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import cpu_model  # noqa: E402

ONE = CouponTemplate("one", "一元券", Terms(CouponKind.NO_THRESHOLD, amount=100), valid_for_ms=600_000)
BUDGET = 10**12  # never reached: only the reads are measured


def asking(start: int, n: int) -> list[IssueRequest]:
    return [replace(IssueRequest(coupon_id_for("c", "r", 1, "t", "", f"u{i}"), "c", "r", 1, "t", f"u{i}", ONE,
                                 1_000_000 + i), trigger_budget=BUDGET) for i in range(start, start + n)]


def best_ms(store: RelationalStore, query: tuple[str, tuple[object, ...]], repeat: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        with store.unit_of_work():
            store._run(*query).fetchone()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def measure(name: str, store: RelationalStore, steps: list[int]) -> None:
    issued = 0
    for step in steps:
        while issued < step:
            n = min(1_000, step - issued)
            store.issue(asking(issued, n), Limits())
            issued += n
        hint = store._hint("coupons_by_trigger")
        counter = store._share_spent("c", TRIGGER_SHARE + "t", "d.trigger=?", "t", hint)
        total = store._face_issued("c", "d.trigger=?", "t", hint)  # the baseline: what each claim read before
        print(f"{name:<10} {step:>8,} coupons   counter {best_ms(store, counter):7.3f} ms   "
              f"sum of the trigger's coupons {best_ms(store, total):7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="1000,10000,40000")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, load {os.getloadavg()[0]:.2f}; best of 20 reads each")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "shares.db")
        measure("SQLite", sqlite, steps)
        sqlite.close()
    if not args.no_pg:
        from livecoupon.store.postgres import PostgresStore

        pg = PostgresStore(os.environ.get("LIVECOUPON_PG", "postgresql://postgres@127.0.0.1:5432/test"),
                           f"bench_{uuid.uuid4().hex[:8]}")
        try:
            measure("PostgreSQL", pg, steps)
        finally:
            pg.drop()


if __name__ == "__main__":
    main()
