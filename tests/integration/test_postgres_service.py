"""``serve --store postgresql://… --name N`` end to end: a restart, and ``export --store`` replaying exactly."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from livecoupon.store.postgres import PostgresStore, deployment_exists
from support.cluster import export_replays
from support.credentials import OPERATOR, PLATFORM
from support.server import Server
from support.streams import broadcast_stream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"


def test_serve_on_postgresql_restarts_and_exports_what_replays(tmp_path: Path, pg_url: str) -> None:
    name = f"svc_{uuid.uuid4().hex[:10]}"
    events = broadcast_stream(viewers=120, seconds=600, seed=5)
    server = Server(EXAMPLE, tmp_path / "unused.db", args=("--store", pg_url, "--name", name))
    try:
        with server, httpx.Client(base_url=server.url, timeout=30, headers=PLATFORM) as client:
            half = len(events) // 2
            for start in range(0, half, 400):
                assert client.post("/v1/events", json=events[start:min(start + 400, half)]).status_code == 200
            client.post("/v1/admin/triggers/dwell", json={"paused": True}, headers=OPERATOR)
            server.restart()
            for start in range(half, len(events), 400):
                assert client.post("/v1/events", json=events[start:start + 400]).status_code == 200
            live = client.get("/v1/admin/decisions", headers=OPERATOR).json()["decisions"]
        assert not (tmp_path / "unused.db").exists()
        export_replays(pg_url, name, EXAMPLE, tmp_path)
        exported = (tmp_path / "x" / "issued.jsonl").read_text().count("\n") + (
            tmp_path / "x" / "suppressed.jsonl").read_text().count("\n")
        assert exported == len(live) > 0
    finally:
        PostgresStore(pg_url, name).drop()


def test_export_of_a_deployment_the_store_does_not_hold_exits_2_and_makes_nothing(tmp_path: Path,
                                                                                    pg_url: str) -> None:
    """A mistyped --name wrote three empty files and exited 0, creating the deployment's schema on the way."""
    name = f"nosuch_{uuid.uuid4().hex[:10]}"
    done = subprocess.run([sys.executable, "-m", "livecoupon", "export", "--store", pg_url, "--name", name, "--out",
                           str(tmp_path / "x")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"no deployment named {name!r}" in " ".join(done.stderr.split())
    assert not (tmp_path / "x").exists()
    assert not deployment_exists(pg_url, name)
