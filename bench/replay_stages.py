"""Where a replay's time goes, stage by stage, and what a replay split over two processes could gain.

Run from the repository root::

    .venv/bin/python bench/replay_stages.py                    # the mixed stream, 1,000,000 events (~1 minute)
    .venv/bin/python bench/replay_stages.py --file events.jsonl --config campaign.yaml

Each stage runs alone over the same lines, best of ``--repeat`` runs, with the collector paused as
replay pauses it; the loop driving a stage is plain Python, and the cost of that loop alone is
printed first and taken off every stage. The stages:

- read: the file into lines, a block at a time (``Recording``);
- decode: msgspec's typed decoding of each line alone (``decode_plain``);
- plain_fields: the fast path's whole reading of a line (decoding, checks, the fields as a tuple);
- dedup: each room's memory of ids (``RecentIds.first``) over every line's (room, id, ms);
- pack / unpack: what a reader process would hand a deciding one: a line's numbers and a handle for its
  user packed into bytes (``struct``), and unpacked again;
- replay(): the whole in-process replay (``livecoupon.engine.replay.replay``), the baseline;
- CLI whole process, and its start-up alone (a one-line recording).

Then the estimate of a replay split in two: one process reading (read, plain_fields, dedup, pack), the other
deciding (the rest of replay(), and unpack), each on a core of its own. Measured 2026-12-01 (AMD EPYC,
2 cores): the reader ~1.27 s and the decider ~1.28 s of a 2.45 s run, so ~1.48 s whole, 25-28x durable-rules,
short of the issue's 30x: docs/benchmarks.md, "eleventh pass". Built and timed whole process in the
twelfth pass: no faster than one process (the reading half with its packing alone takes as long), so this
estimate reads too high: it takes a stage's cost alone, where a real split pays its loops and copies too.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.streams import write_mixed_stream  # noqa: E402

from livecoupon.campaign_file import load_campaign  # noqa: E402
from livecoupon.compiled import is_compiled  # noqa: E402
from livecoupon.engine import replay as replay_module  # noqa: E402
from livecoupon.engine.lines import decode_plain  # noqa: E402
from livecoupon.engine.recordings import PlainFields, Recording, checked_event, plain_fields  # noqa: E402
from livecoupon.engine.replay import replay  # noqa: E402
from livecoupon.engine.rooms import RecentIds  # noqa: E402
from livecoupon.store.port import collector_paused  # noqa: E402

CAMPAIGN = ROOT / "bench" / "campaign.yaml"
PACKED = struct.Struct("<bqqqq")  # the type's code, ms, the user's handle, count, value


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with collector_paused():
            run()
        times.append(time.perf_counter() - started)
    return min(times)


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, help="a recording to read (default: bench's mixed stream, written)")
    parser.add_argument("--config", type=Path, default=CAMPAIGN)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="replay-stages-"))
    path = args.file
    if path is None:
        path = work / "mixed.jsonl"
        write_mixed_stream(path, args.events)
    recording = Recording(path)
    lines = [line for block in recording.blocks() for line in block]
    fields: list[PlainFields] = [plain_fields(line) for line in lines]
    keys = []  # each applied line's room, id and ms, as replay reads them
    for line, f in zip(lines, fields, strict=True):
        if f[0]:
            keys.append((f[1], f[3], f[2]))
        elif (event := checked_event(0, line, [])) is not None:
            keys.append((event.room, event.id, event.ts))
    plain = [f for f in fields if f[0]]

    def loop() -> None:
        for _ in lines:
            pass

    def decode() -> None:
        for line in lines:
            try:  # noqa: SIM105 - contextlib.suppress would cost more than the decoding it wraps
                decode_plain(line)
            except Exception:  # noqa: S110 - a line of another type: the checked path's (not timed here)
                pass

    def read_fields() -> None:
        for line in lines:
            plain_fields(line)

    def dedup() -> None:
        seen: dict[str, RecentIds] = {}
        for room, event_id, ms in keys:
            ids = seen.get(room)
            if ids is None:
                ids = seen[room] = RecentIds()
            if event_id is not None:
                ids.first(event_id, ms)

    packed = bytearray()

    def pack() -> None:
        packed.clear()
        handles: dict[str | None, int] = {}
        for kind, _, ms, _, user, count, _, value, _ in plain:
            handle = handles.get(user)
            if handle is None:
                handle = handles[user] = len(handles)
            packed.extend(PACKED.pack(len(kind), ms, handle, count or 0, value))

    def unpack() -> None:
        for _ in PACKED.iter_unpack(packed):
            pass

    campaign = load_campaign(args.config)
    overhead = best(args.repeat, loop)
    stages = {"read": best(args.repeat, lambda: list(recording.blocks())) + overhead,
              "decode": best(args.repeat, decode), "plain_fields": best(args.repeat, read_fields),
              "dedup": best(args.repeat, dedup), "pack": best(args.repeat, pack), "unpack": best(args.repeat, unpack),
              "replay()": best(args.repeat, lambda: replay(campaign, recording)) + overhead}
    stages = {name: seconds - overhead for name, seconds in stages.items()}
    cli = [str(ROOT / ".venv" / "bin" / "livecoupon"), "replay", str(path), "--config", str(args.config)]
    one = work / "one.jsonl"
    one.write_bytes(lines[0])
    whole = min(wall([*cli, "--out", str(work / "out")]) for _ in range(args.repeat))
    start_up = min(wall([*cli[:2], str(one), *cli[3:], "--out", str(work / "out-one")]) for _ in range(args.repeat))

    build = "compiled" if is_compiled(replay_module) else "pure"
    print(f"{len(lines):,} lines of {path.name}, {build} build, nproc {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}; the driving loop alone {overhead:.3f}s (taken off)")
    for name, seconds in stages.items():
        print(f"  {name:<14} {seconds:6.3f}s  {seconds / len(lines) * 1e9:5.0f} ns a line")
    print(f"  {'CLI whole':<14} {whole:6.3f}s  (start-up alone, a one-line recording: {start_up:.3f}s)")
    reader = stages["read"] + stages["plain_fields"] + stages["dedup"] + stages["pack"]
    decider = stages["replay()"] - stages["read"] - stages["plain_fields"] - stages["dedup"] + stages["unpack"]
    split = whole - stages["replay()"] + max(reader, decider)
    print(f"two processes: reader {reader:.3f}s, decider {decider:.3f}s: whole process ~{split:.3f}s "
          f"against {whole:.3f}s in one ({whole / split:.2f}x)")


if __name__ == "__main__":
    main()
