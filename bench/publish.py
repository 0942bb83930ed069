"""What publishing a campaign version costs: the publish call against a pause (the baseline operator
command, same run), and replaying a log with versions published in it against the same log without.

One ``LiveService`` on a SQLite file with ``--rooms`` rooms on air, each with ``--viewers`` viewers
present; then ``--rounds`` publishes alternating two files (bench/campaign.yaml with a lower budget
and an extra comment trigger, and back), each timed, beside as many pause+resume pairs. Then the
log is replayed twice: as logged (its publishes switch rooms' versions at their next broadcast)
and with the publishes left out. Prints the table; no assertion. Stops by itself.

    .venv/bin/python bench/publish.py                 # 1,000 rooms x 20 viewers, 20 rounds
    .venv/bin/python bench/publish.py --rooms 100     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from a checkout without an installed package
    sys.path.append(str(ROOT / "src"))

from tables import print_table  # noqa: E402

from livecoupon.campaign_file import parse_campaign  # noqa: E402
from livecoupon.engine.clock import ClockMode  # noqa: E402
from livecoupon.engine.replay import replay  # noqa: E402
from livecoupon.service_layer.service import LiveService  # noqa: E402
from livecoupon.store.sqlite import SqliteStore  # noqa: E402

CAMPAIGN = ROOT / "bench" / "campaign.yaml"
T0 = 1_731_326_400


def edited(text: str) -> str:
    """The other version: a lower budget (at once) and one comment trigger more (next broadcast)."""
    extra = '\n  - {name: bench-extra, when: comment, keywords: ["加购"], coupon: newcomer}\n'
    changed = text.replace("\ntriggers:\n", "\ntriggers:" + extra, 1)
    assert changed != text, "bench/campaign.yaml has no triggers: key"
    return changed


def populate(service: LiveService, rooms: int, viewers: int) -> None:
    batch: list[dict[str, object]] = []
    for r in range(rooms):
        room = f"room-{r}"
        batch.append({"type": "live_start", "room": room, "ts": T0})
        batch += [{"type": "join", "room": room, "ts": T0 + 1, "user": f"u{r}-{v}"} for v in range(viewers)]
        if len(batch) >= 5_000:
            service.submit(batch)
            batch = []
    service.submit(batch)


def timed(fn: object, *args: object) -> float:
    started = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=1_000)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    text = CAMPAIGN.read_text(encoding="utf-8").replace('rooms: ["bench-room-1"]', 'rooms: "*"')
    versions = (edited(text), text)
    campaign = parse_campaign(text)
    trigger = campaign.triggers[0].name
    with tempfile.TemporaryDirectory(prefix="livecoupon-publish-") as work:
        service = LiveService(campaign, SqliteStore(Path(work) / "p.db"), ClockMode.EVENT, source=text)
        service.rebuild()
        populate(service, args.rooms, args.viewers)
        publishes, pauses = [], []
        for n in range(args.rounds):
            publishes.append(timed(service.publish, versions[n % 2]))
            pauses.append(timed(service.pause, trigger, True) + timed(service.pause, trigger, False))
            # every room starts a new broadcast, so the next version reaches them all
            service.submit([{"type": e, "room": f"room-{r}", "ts": T0 + 10 + 2 * n + (e == "live_start")}
                            for r in range(args.rooms) for e in ("live_end", "live_start")])
        lines = [json.dumps(e, ensure_ascii=False) for e in service.logged()]
        service.close()
    without = [line for line in lines if '"action":"publish"' not in line]
    replays = {"with": float("inf"), "without": float("inf")}
    for _ in range(3):  # alternated, the fastest of each
        for label, stream in (("without", without), ("with", lines)):
            started = time.perf_counter()
            replay(campaign, stream)
            replays[label] = min(replays[label], time.perf_counter() - started)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        ("call", ["publish (parse, diff, log, apply)", f"{statistics.median(publishes):.1f}",
                  f"{max(publishes):.1f}", f"{len(publishes)}"]),
        ("call", ["pause + resume (baseline)", f"{statistics.median(pauses):.1f}", f"{max(pauses):.1f}",
                  f"{len(pauses)}"]),
        ("replay", [f"replay, {len(lines):,} lines with {args.rounds} publishes", f"{replays['with'] * 1000:.0f}",
                    "", "3"]),
        ("replay", ["replay, the same without them (baseline)", f"{replays['without'] * 1000:.0f}", "", "3"]),
    ]
    print_table([f"machine: nproc={os.cpu_count()}  python={platform.python_version()}  sqlite={sqlite3.sqlite_version}"
                 f"  load average at the end: {load}",
                 f"{args.rooms:,} rooms on air, {args.viewers} viewers each"],
                ["", "median ms", "max ms", "calls"], rows,
                ["publish: LiveService.publish on the writer's thread, SQLite commit included; replay: the whole "
                 "log in process: its rows are the fastest of 3 runs, the two alternated"], right={1, 2, 3})


if __name__ == "__main__":
    main()
