"""A room's memory of event ids (engine/rooms.py ``RecentIds``) against structures with one look-up an event.

Run from the repository root::

    .venv/bin/python bench/recent_ids.py                  # the mixed stream's 1,000,000 events, ~1 minute
    .venv/bin/python bench/recent_ids.py --events 200000 --repeat 5

Each structure answers ``first(id, ts)`` for every event of ``StreamSpec.mixed`` (one room, four
hours, a generation of ids every half hour): the installed ``RecentIds`` (compiled with the
engine where built), two sets, ``in older`` then ``add`` to the newer; and, compiled by mypyc
in a module written to a temporary folder and built there, one set of both generations and a
list of the newer's ids, the set rebuilt from the list at each new generation, and one dict
of id -> its generation's stamp, the older generation's ids copied at each new one.
Printed: each one's best time of ``--repeat`` runs and whether it answered as ``RecentIds``.
Alone, the look-ups are cache hits; in a replay they are misses (callers' data in between), so a
replay's whole-process time is the measure that decides (docs/benchmarks.md, seventh pass).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.streams import StreamSpec, broadcast_events  # noqa: E402

from livecoupon.engine.rooms import RecentIds  # noqa: E402

VARIANTS = '''
from __future__ import annotations
from typing import Final

M: Final = 30 * 60_000
NEVER: Final = -(2**62)


class SetAndList:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.newer: list[str] = []
        self.since = NEVER
        self.latest = NEVER

    def first(self, event_id: str, ts: int) -> bool:
        if ts > self.latest:
            self.latest = ts
            if ts >= self.since + M:
                self.ids = set(self.newer) if ts < self.since + 2 * M else set()
                self.newer = []
                self.since = ts
        elif ts < self.latest - M:
            return False
        ids = self.ids
        known = len(ids)
        ids.add(event_id)
        if len(ids) == known:
            return False
        self.newer.append(event_id)
        return True


class Stamps:
    def __init__(self) -> None:
        self.ids: dict[str, object] = {}
        self.stamp: object = object()
        self.since = NEVER
        self.latest = NEVER

    def first(self, event_id: str, ts: int) -> bool:
        if ts > self.latest:
            self.latest = ts
            if ts >= self.since + M:
                stamp = self.stamp
                self.ids = {k: s for k, s in self.ids.items() if s is stamp} if ts < self.since + 2 * M else {}
                self.stamp = object()
                self.since = ts
        elif ts < self.latest - M:
            return False
        ids = self.ids
        known = len(ids)
        ids.setdefault(event_id, self.stamp)
        return len(ids) != known


def answers(memory: object, events: list[tuple[str, int]]) -> list[bool]:
    first = memory.first  # type: ignore[attr-defined]
    return [first(e, t) for e, t in events]
'''


def compiled_variants(folder: Path) -> Any:
    (folder / "recent_id_variants.py").write_text(VARIANTS, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "mypyc", "recent_id_variants.py"], cwd=folder, check=True,
                   capture_output=True)
    sys.path.insert(0, str(folder))
    return importlib.import_module("recent_id_variants")


def best_of(repeat: int, run: Callable[[], list[bool]]) -> tuple[float, list[bool]]:
    best, answers = float("inf"), []
    for _ in range(repeat):
        started = time.perf_counter()
        answers = run()
        best = min(best, time.perf_counter() - started)
    return best, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events = [(e["id"], round(e["ts"] * 1000)) for e in broadcast_events(StreamSpec.mixed(args.events))
              if isinstance(e.get("id"), str) and isinstance(e.get("ts"), (int, float))]
    with tempfile.TemporaryDirectory() as folder:
        variants = compiled_variants(Path(folder))
        kinds: dict[str, Callable[[], object]] = {
            "two sets (RecentIds)": RecentIds, "one set + list": variants.SetAndList,
            "dict of stamps": variants.Stamps}
        expected: list[bool] | None = None
        print(f"{len(events):,} events with an id, best of {args.repeat}")
        for name, kind in kinds.items():
            seconds, got = best_of(args.repeat, lambda kind=kind: variants.answers(kind(), events))
            expected = got if expected is None else expected
            print(f"  {name:<22} {seconds * 1000:7.1f} ms  {'same answers' if got == expected else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
