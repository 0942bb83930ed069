"""The compiled build (mypyc) and the pure-Python build decide byte for byte the same.

Two long-lived replay workers, one importing the compiled modules as installed, one with
``LIVECOUPON_PURE=1`` (the same modules from their ``.py``), replay the same random streams;
their ``issued``, ``suppressed`` and ``rejected`` files must be equal. In a pure build there
is nothing to compare and the test says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_replay import PROPERTY_CAMPAIGN, streams

from livecoupon import compiled

WORKER = """
import sys
from pathlib import Path

from livecoupon.campaign_file import load_campaign
from livecoupon.compiled import is_compiled
from livecoupon.engine import replay
from livecoupon.engine.recordings import read_lines

print("compiled" if is_compiled(replay) else "pure", flush=True)
for request in sys.stdin:
    work = Path(request.strip())
    lines = read_lines(work / "events.jsonl")  # as livecoupon replay reads them
    replay.write_outputs(replay.replay(load_campaign(work / "campaign.yaml"), lines), work / sys.argv[1])
    print("done", flush=True)
"""
OUTPUTS = ("issued.jsonl", "suppressed.jsonl", "rejected.jsonl")


class Worker:
    def __init__(self, name: str, pure: bool) -> None:
        env = {**os.environ, compiled.PURE_ENV: "1" if pure else "0"}
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, name], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.build = self._answer()

    def _answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def replay(self, work: Path) -> dict[str, bytes]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{work}\n")
        self.proc.stdin.flush()
        assert self._answer() == "done"
        return {name: (work / self.name / name).read_bytes() for name in OUTPUTS}

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[Worker, Worker]]:
    pair = Worker("compiled", pure=False), Worker("pure", pure=True)
    try:
        yield pair
    finally:
        for worker in pair:
            worker.close()


def test_the_pure_worker_runs_the_sources(workers: tuple[Worker, Worker]) -> None:
    assert workers[1].build == "pure"


noise = st.sampled_from(['{"type": "join", "room": "r1"}', "not json", "", '{"type": "gift", "room": "r1", '
                         '"ts": 1, "user": "a", "value": 1.001}', '{"type": "comment", "room": "r1", "ts": 2, '
                         '"user": "b", "text": "\\ud800"}'])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(streams(), st.lists(st.tuples(st.integers(0, 60), noise), max_size=3), st.booleans())
def test_both_builds_decide_byte_for_byte_the_same(workers: tuple[Worker, Worker], tmp_path_factory: Any,
                                                   stream: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                                                   bad: list[tuple[int, str]], in_file_order: bool) -> None:
    fast, pure = workers
    if fast.build != "compiled":
        pytest.skip("a pure build (LIVECOUPON_PURE=1 at build time, or sources changed since): nothing to compare")
    events, shuffled = stream
    lines = [json.dumps(e, ensure_ascii=False) for e in (events if in_file_order else shuffled)]
    for at, line in bad:
        lines.insert(min(at, len(lines)), line)
    work = tmp_path_factory.mktemp("stream")
    (work / "campaign.yaml").write_text(PROPERTY_CAMPAIGN, encoding="utf-8")
    (work / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert fast.replay(work) == pure.replay(work)


def test_a_source_edited_after_the_build_runs_instead_of_its_compiled_module(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    source, extension = package / "mod.py", package / f"mod{compiled.importlib.machinery.EXTENSION_SUFFIXES[0]}"
    source.write_text("x = 1\n")
    extension.write_bytes(b"")
    now = time.time()
    os.utime(source, (now - 60, now - 60))
    os.utime(extension, (now - 30, now - 30))
    assert compiled.stale(["pkg.mod"], root=tmp_path) == []
    os.utime(source, (now, now))  # edited after the build
    assert compiled.stale(["pkg.mod"], root=tmp_path) == ["pkg.mod"]
    group = tmp_path / f"{compiled.GROUP}__mypyc{compiled.importlib.machinery.EXTENSION_SUFFIXES[0]}"
    group.write_bytes(b"")  # rebuilt: the code is in the group's library, the module's shim stays as it was
    assert compiled.stale(["pkg.mod"], root=tmp_path) == []


def test_livecoupon_pure_loads_every_compiled_module_from_its_source() -> None:
    probe = ("import importlib, livecoupon.compiled as c\n"
             "print(all(importlib.import_module(m).__file__.endswith('.py') for m in c.MODULES))")
    env = {**os.environ, compiled.PURE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True,
                          timeout=60)
    assert done.stdout.strip() == "True"


def test_the_engine_state_and_events_survive_a_snapshot_in_this_build() -> None:
    """Snapshots pickle rooms, viewers, flash sales, user facts and orders' events; compiled
    classes are rebuilt through their constructors (``__reduce__``), pure ones the same way."""
    from livecoupon.campaign_file import parse_campaign
    from livecoupon.domain.events import parse_event
    from livecoupon.engine import snapshots
    from livecoupon.engine.engine import Engine
    from livecoupon.store.memory import MemoryStore

    def engine_after(events: list[dict[str, Any]], store: MemoryStore) -> Engine:
        engine = Engine(parse_campaign(PROPERTY_CAMPAIGN), store)
        for data in events:
            engine.apply(parse_event(data))
        return engine

    head = [{"type": "live_start", "room": "r1", "ts": 0},
            {"type": "flash_sale", "room": "r1", "ts": 1, "duration": 60},
            {"type": "join", "room": "r1", "ts": 2, "user": "a", "device": "d1", "risk": 0.1},
            {"type": "gift", "room": "r1", "ts": 3, "user": "a", "value": 9.9},
            {"type": "comment", "room": "r1", "ts": 4, "user": "b", "text": "扣1"}]
    tail = [{"type": "heartbeat", "room": "r1", "ts": 20, "user": "a"},
            {"type": "join", "room": "r1", "ts": 25, "user": "c"}]
    store = MemoryStore()
    first = engine_after(head, store)
    order = parse_event({"type": "order", "room": "r1", "ts": 5, "user": "a", "order_id": "o1", "amount": 99})
    body = snapshots.dump(first, {"orders": [order]})
    restored = Engine(parse_campaign(PROPERTY_CAMPAIGN), store)
    extra = snapshots.load(restored, body)
    assert repr(extra["orders"]) == repr([order])
    def presence(engine: Engine) -> dict[str, tuple[int, int]]:
        return {u: (v.joined_at, v.last_seen) for u, v in engine.rooms["r1"].viewers.items()}

    assert presence(restored) == presence(first) == {"a": (2_000, 3_000), "b": (4_000, 4_000)}
    assert restored.rooms["r1"].sales == first.rooms["r1"].sales and restored.facts == first.facts
    never_stopped = engine_after(head, MemoryStore())
    for data in tail:
        assert [d.record() for d in restored.apply(parse_event(data))] == \
            [d.record() for d in never_stopped.apply(parse_event(data))]
