"""``livecoupon replay`` in process: what it leaves behind for the rest of the process."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from livecoupon.cli import app

CAMPAIGN = Path(__file__).resolve().parents[2] / "bench" / "campaign.yaml"


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the command freezes what it made (its process ends with it); the test process goes on


def test_the_replay_command_leaves_the_collector_running(tmp_path: Path, unfrozen: None) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [
        {"type": "live_start", "room": "bench-room-1", "ts": 1},
        {"type": "join", "room": "bench-room-1", "ts": 2, "user": "u"}]) + "\n", encoding="utf-8")
    assert gc.isenabled()
    run = CliRunner().invoke(app, ["replay", str(events), "--config", str(CAMPAIGN), "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # the engines' state, which no collection need traverse again
    assert (tmp_path / "out" / "issued.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_a_recording_that_is_gone_is_refused_and_nothing_written(tmp_path: Path, unfrozen: None) -> None:
    run = CliRunner().invoke(app, ["replay", str(tmp_path / "events.jsonl"), "--config", str(CAMPAIGN), "--out",
                                   str(tmp_path / "out")])
    assert run.exit_code == 2, run.output
    assert "无法读取事件文件 / cannot read events file" in run.output
    assert "No such file" in run.output
    assert not (tmp_path / "out").exists()


def test_an_event_with_bytes_that_are_not_utf8_far_into_the_file_is_rejected_and_the_rest_replayed(tmp_path: Path,
                                                                                     unfrozen: None) -> None:
    """SPEC §2: a bad event never stops the others (found only as it is replayed, thousands of lines in)."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type": "live_start", "room": "bench-room-1", "ts": 1}\n' * 3_000
                       + b'{"type": "join", "room": "bench-room-1", "ts": 2, "user": "\xe6\x89"}\n'
                       + b'{"type": "join", "room": "bench-room-1", "ts": 3, "user": "u"}\n')
    run = CliRunner().invoke(app, ["replay", str(events), "--config", str(CAMPAIGN), "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text(encoding="utf-8")
                .splitlines()]
    assert [r["line"] for r in rejected] == [3_001]
    assert rejected[0]["error"].startswith("user: 不是有效的 Unicode")
    issued = [json.loads(line) for line in (tmp_path / "out" / "issued.jsonl").read_text(encoding="utf-8")
              .splitlines()]
    assert [i["user"] for i in issued] == ["u"]  # the newcomer's coupon of the join after it
