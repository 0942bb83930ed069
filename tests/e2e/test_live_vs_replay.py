"""A stream posted live to ``livecoupon serve`` and the same stream replayed decide the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from support.server import API_KEY, PLATFORM, Server
from support.streams import broadcast_stream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_live_decisions_and_coupon_ids_match_a_replay(tmp_path: Path) -> None:
    events = broadcast_stream(viewers=250, seconds=900, seed=11)
    with (Server(EXAMPLE, tmp_path / "live.db") as server,
          httpx.Client(base_url=server.url, timeout=30, headers=PLATFORM) as client):
        for start in range(0, len(events), 500):
            assert client.post("/v1/events", json=events[start:start + 500]).status_code == 200
        live = client.get("/v1/admin/decisions", headers={"X-API-Key": API_KEY}).json()["decisions"]

    stream = tmp_path / "events.jsonl"
    stream.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    cli = Path(sys.executable).with_name("livecoupon")
    done = subprocess.run([str(cli), "replay", str(stream), "--config", str(EXAMPLE), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    issued, suppressed = _lines(tmp_path / "out" / "issued.jsonl"), _lines(tmp_path / "out" / "suppressed.jsonl")

    assert {d["trigger"] for d in issued} >= {"newcomer", "dwell", "passphrase", "kou1"}
    replay_keys = {"ts", "room", "user", "trigger", "coupon", "coupon_id", "expires_at", "reason", "experiment",
                   "variant", "arm", "propensity"}
    live_issued = [{k: v for k, v in d.items() if k in replay_keys} for d in live if d["issued"]]
    live_suppressed = [{k: v for k, v in d.items() if k in replay_keys - {"coupon_id"}} for d in live
                       if not d["issued"]]
    assert live_issued == issued
    assert live_suppressed == suppressed
