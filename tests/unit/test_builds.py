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

print("compiled" if is_compiled(replay) else "pure", flush=True)
for request in sys.stdin:
    work = Path(request.strip())
    lines = (work / "events.jsonl").read_text(encoding="utf-8").splitlines()
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


def test_livecoupon_pure_loads_every_compiled_module_from_its_source() -> None:
    probe = ("import importlib, livecoupon.compiled as c\n"
             "print(all(importlib.import_module(m).__file__.endswith('.py') for m in c.MODULES))")
    env = {**os.environ, compiled.PURE_ENV: "1"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True,
                          timeout=60)
    assert done.stdout.strip() == "True"
