"""Checkout's writer thread alone: create + pay pairs through the group runner (``LiveService._run_group``), in
one thread, on a fresh SQLite file, without HTTP and without an event loop; its CPU a pair and its SQL
statements a pair (counted in a run of their own: the count's callback costs time).

Each tree runs in a process of its own (its ``src`` first on the path), the trees alternating round by round, so
a tree from before a change is measured beside this one in the same run:

    .venv/bin/python bench/checkout_writer.py --before /tmp/before [--pairs 3000] [--group 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def measure(pairs: int, group: int, count: bool) -> dict[str, float]:
    """In this process: ``pairs`` create + pay pairs, ``group // 2`` creates then as many pays a group."""
    import livecoupon
    from livecoupon.campaign_file import load_campaign
    from livecoupon.domain.pricing import CartLine
    from livecoupon.engine.clock import ClockMode
    from livecoupon.service_layer.service import GroupedCall, LiveService
    from livecoupon.store.sqlite import SqliteStore

    class Loop:  # what the runner hands each group's answers to
        outcomes: Any = None

        def call_soon_threadsafe(self, settle: Any, outcomes: Any) -> None:
            self.outcomes = outcomes

    store = SqliteStore(Path(tempfile.mkdtemp()) / "writer.db")
    assert Path(livecoupon.__file__).is_relative_to(Path.cwd()), "the tree's own src/ first on the path"
    live = LiveService(load_campaign(Path.cwd() / "examples" / "campaign.yaml"), store, ClockMode.WALL)
    live.rebuild()
    users = [f"buyer-{i:06d}" for i in range(pairs)]
    coupons = {d.request.user: d.request.coupon_id for start in range(0, pairs, 2_000)
               for d in live.issue_manually("dwell10", users[start:start + 2_000], "room-1", f"grant-{start}")
               if d.issued}
    cart, checkout, loop, statements = [CartLine("sku-1", "dress", 12_000, 1)], live.checkout, Loop(), [0]
    if count:
        store._db.set_trace_callback(lambda _: statements.__setitem__(0, statements[0] + 1))

    def run(calls: list[tuple[Any, tuple[Any, ...]]]) -> None:
        live._grouped = [GroupedCall(act, args, None) for act, args in calls]  # type: ignore[arg-type]
        live._run_group(loop)  # type: ignore[arg-type]
        failed = [outcome for _, outcome in loop.outcomes if isinstance(outcome, BaseException)]
        assert not failed, failed

    half = max(group // 2, 1)
    wall, cpu = time.perf_counter(), time.thread_time()
    for start in range(0, pairs, half):
        some = users[start:start + half]
        run([(checkout.create_order, (f"o-{u}", u, cart, coupons[u], f"c-{u}", "platform:", None)) for u in some])
        run([(checkout.pay, (f"o-{u}", f"p-{u}", "platform:", None)) for u in some])
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    live.close()
    return {"cpu_us": cpu / pairs * 1e6, "wall_us": wall / pairs * 1e6, "statements": statements[0] / pairs}


def in_process(src: Path, pairs: int, group: int, count: bool) -> dict[str, float]:
    """``measure`` in a process of its own, in the tree of ``src`` (its examples/ beside it)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, __file__, "--child", str(pairs), str(group), str(int(count))], env=env,
                         check=True, capture_output=True, text=True, cwd=src.parent).stdout
    answer: dict[str, float] = json.loads(out.splitlines()[-1])
    return answer


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        pairs, group, count = (int(a) for a in sys.argv[2:5])
        print(json.dumps(measure(pairs, group, bool(count))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ours", type=Path, default=ROOT, help="the tree measured (with src/); this one by default")
    p.add_argument("--before", type=Path, help="a tree (with src/ and examples/) to measure beside it")
    p.add_argument("--pairs", type=int, default=3_000)
    p.add_argument("--group", type=int, default=12, help="calls a group (half creates, then as many pays)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    trees = [("ours", args.ours / "src"), *([("before", args.before / "src")] if args.before else [])]
    for name, src in trees:
        counted = in_process(src, 600, args.group, count=True)
        print(f"{name:6} {counted['statements']:.2f} statements a pair")
    for r in range(args.rounds):
        for name, src in trees if r % 2 == 0 else trees[::-1]:
            got = in_process(src, args.pairs, args.group, count=False)
            print(f"{name:6} round {r + 1}: {got['cpu_us']:5.0f} µs of CPU a pair ({got['wall_us']:5.0f} wall)  "
                  f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
