"""What a personalised offer costs the engine: the same simulated broadcast replayed with its
trigger as an `offer` (the policy chooses, learns and paces) and with one fixed coupon (the
baseline), side by side in one run.

The audience is tests/integration/test_offer_simulation.py's (10,000 viewers, an hour, each
asks once with "扣1" after heartbeats; their orders follow as the ground truth says), so the
policy meets ~190 segments and learns as it would live. Prints events/s, decisions/s and the
cost per offer decision over the fixed coupon's.
Run: .venv/bin/python bench/offers.py [--repeat 3]  (~1 minute)
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests"), str(ROOT / "bench")]

import test_offer_simulation as sim  # noqa: E402
from processes import cpu_model, usable_cores  # noqa: E402

from livecoupon.domain.events import parse_event  # noqa: E402
from livecoupon.engine.engine import Engine  # noqa: E402
from livecoupon.store.memory import MemoryStore  # noqa: E402


def timed(arm: str, events: list[dict[str, object]]) -> tuple[float, int, int]:
    """Seconds to apply ``events`` (parsed beforehand) with the trigger as ``arm``; decisions; segments."""
    engine = Engine(sim.campaign(arm), MemoryStore())
    parsed = [parse_event(e) for e in events]
    gc.collect()
    started = time.perf_counter()
    made = sum(len(engine.apply(e)) for e in parsed)
    seconds = time.perf_counter() - started
    segments = sum(len(p.demand) for p in engine.offers.policies.values())
    return seconds, made, segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest is kept")
    args = parser.parse_args()
    people = sim.askers(1)
    # the orders the truth says a fixed 20-yuan coupon brings, so both sides apply the same lines
    events = [event for _, event, _ in sim.stream(people)]
    events += [{"type": "order", "room": sim.ROOM, "ts": sim.START + a.asks + a.delay, "user": a.viewer.user,
                "order_id": f"order-{a.viewer.user}", "amount": a.pays(20.0)} for a in people if a.pays(20.0)]
    events.sort(key=lambda e: float(e["ts"]))  # type: ignore[arg-type]
    print(f"machine: nproc {os.cpu_count()} (usable {usable_cores()}), {cpu_model()}, "
          f"CPython {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    print(f"{len(events):,} events, {len(people):,} viewers asking once; fastest of {args.repeat}\n")
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.repeat):
        for arm in ("c20", "offer"):
            run = timed(arm, events)
            if arm not in best or run[0] < best[arm][0]:
                best[arm] = run
    print(f"{'trigger':<28}{'seconds':>9}{'events/s':>12}{'decisions':>11}{'segments':>10}")
    for arm, label in (("c20", "fixed coupon c20 (baseline)"), ("offer", "offer [c10, c20, null]")):
        seconds, made, segments = best[arm]
        print(f"{label:<28}{seconds:>9.3f}{len(events) / seconds:>12,.0f}{made:>11,}{segments:>10}")
    fixed, offer = best["c20"], best["offer"]
    extra = (offer[0] - fixed[0]) / max(1, offer[1]) * 1e6
    print(f"\nan offer decision costs {extra:.1f} µs more than a fixed coupon's "
          f"({offer[1] / (offer[0] - fixed[0]):,.0f} choices/s of policy work on top); "
          f"offer replay at {fixed[0] / offer[0]:.2f}x the baseline's speed")


if __name__ == "__main__":
    main()
