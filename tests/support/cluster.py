"""A scaled-out deployment as real processes: a NATS server of the test's own, gateways and workers."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from support.environment import IN_CI
from support.server import PLATFORM, Server, free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"


class Nats:
    """``nats-server -js`` on a free loopback port, its JetStream files in ``store_dir`` (kept across restarts)."""

    def __init__(self, store_dir: Path) -> None:
        if not Path(NATS_SERVER).exists():
            if IN_CI:
                pytest.fail(f"nats-server is required in CI (looked for {NATS_SERVER})")
            pytest.skip("nats-server is not installed")
        self.store_dir, self.port = store_dir, free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nats:
        self.proc = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", str(self.store_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> Nats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


class Cluster:
    """``gateways`` and ``workers`` of deployment ``name``; gateway URLs in ``urls``."""

    def __init__(self, config: Path, tmp: Path, pg_url: str, nats: Nats, name: str, *, gateways: int = 2,
                 workers: int = 2, partitions: int = 8, clock: str = "event",
                 env: dict[str, str] | None = None) -> None:
        """``env``: more environment for every process (merchant webhooks, say)."""
        self.pg_url, self.name = pg_url, name
        common = ("--store", pg_url, "--name", name, "--bus", nats.url, "--partitions", str(partitions))
        self.gateways = [Server(config, tmp / f"gateway{i}.db", env, clock=clock, args=(*common, "--role", "gateway"))
                         for i in range(gateways)]
        self.workers = [Server(config, tmp / f"worker{i}.db", env, clock=clock, args=(*common, "--role", "worker"))
                        for i in range(workers)]

    @property
    def urls(self) -> list[str]:
        return [g.url for g in self.gateways]

    def __enter__(self) -> Cluster:
        for server in (*self.workers, *self.gateways):
            server.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for server in (*self.gateways, *self.workers):
            server.stop()


# -- what the cluster tests share -------------------------------------------------------------
def every_room_campaign(tmp: Path, extra: str = "") -> Path:
    """The example campaign for any room (``rooms: "*"``), ``extra`` appended, its dwell trigger with a fixed coupon
    instead of a learnt offer: scaled out, an offer's policy learns per partition (docs/scaling.md), where a replay
    of the merged log has one policy learn from every room, so its choices (and what follows them) may differ."""
    text = EXAMPLE.read_text(encoding="utf-8").replace('rooms: ["room-1"]', 'rooms: "*"')
    fixed = text.replace("offer: {arms: [null, dwell10, dwell20], explore: 0.1, plan: 60m}}", "coupon: dwell10}")
    text = fixed.replace("{name: policy, weight: 3, coupon: offer}", "{name: policy, weight: 3, coupon: dwell10}")
    assert "offer: {" not in text and "coupon: offer" not in text  # (the example changed: change this too)
    path = tmp / "campaign.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def logged(pg_url: str, name: str) -> int:
    """Events (not operator commands) in deployment ``name``'s logs."""
    import psycopg

    with psycopg.connect(pg_url) as db:
        row = db.execute(f"SELECT count(*) FROM {name}.events WHERE body NOT LIKE %s",
                         ('{"type":"operator"%',)).fetchone()
        return int(row[0])


def wait_logged(pg_url: str, name: str, expected: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while (count := logged(pg_url, name)) < expected:
        assert time.monotonic() < deadline, f"{count} of {expected} events applied"
        time.sleep(0.2)
    assert count == expected, f"{count} events in the logs for {expected} posted: some applied twice"


def post_all(urls: list[str], events: list[dict[str, Any]], size: int = 400) -> Counter[int]:
    """Post in batches, alternating gateways, retrying a batch elsewhere if a gateway is gone."""
    statuses: Counter[int] = Counter()
    with httpx.Client(timeout=30, headers=PLATFORM) as client:
        for n, start in enumerate(range(0, len(events), size)):
            batch = events[start:start + size]
            for attempt in range(len(urls) * 3):
                url = urls[(n + attempt) % len(urls)]
                try:
                    answer = client.post(f"{url}/v1/events", json=batch)
                except httpx.TransportError:
                    continue
                statuses[answer.status_code] += 1
                assert answer.status_code in (200, 202), answer.text
                assert answer.json()["accepted"] == len(batch)
                break
            else:
                raise AssertionError("no gateway took the batch")
    return statuses


def export_replays(pg_url: str, name: str, config: Path, work: Path) -> Path:
    """``livecoupon export`` of deployment ``name`` into ``work/x``, and a replay of its log with ``config``:
    both must have decided the same. The export's directory."""
    import sys

    from livecoupon.campaign_file import load_campaign
    from livecoupon.engine.replay import replay, write_outputs

    cli = Path(sys.executable).with_name("livecoupon")
    done = subprocess.run([str(cli), "export", "--store", pg_url, "--name", name, "--out", str(work / "x")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = (work / "x" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    write_outputs(replay(load_campaign(config), lines), work / "replay")
    for file in ("issued.jsonl", "suppressed.jsonl"):
        assert (work / "x" / file).read_text() == (work / "replay" / file).read_text(), file
    return work / "x"
