"""SIGKILL the service mid-stream: nothing acknowledged is lost, nothing is issued twice."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import httpx

from livecoupon.campaign_file import load_campaign
from livecoupon.engine.replay import replay
from livecoupon.store.sqlite import SqliteStore
from support.server import PLATFORM, Server
from support.streams import broadcast_stream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"


def _coupon_ids(db: Path) -> list[str]:
    store = SqliteStore(db)
    try:
        return [d.coupon_id for d in store.decisions("double11-live") if d.issued]
    finally:
        store.close()


def test_sigkill_mid_batch_loses_nothing_acknowledged_and_issues_nothing_twice(tmp_path: Path) -> None:
    events = broadcast_stream(viewers=400, seconds=900)
    batches = [events[i:i + 400] for i in range(0, 1200, 400)] + [events[1200:]]
    assert 5_000 < len(batches[3]) <= 10_000
    acknowledged: list[str] = []
    server = Server(EXAMPLE, tmp_path / "live.db").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=PLATFORM) as client:
            for batch in batches[:3]:
                answer = client.post("/v1/events", json=batch).json()
                acknowledged += [d["coupon_id"] for d in answer["decisions"] if d["issued"]]
            in_flight = threading.Thread(target=lambda: _post_quietly(server.url, batches[3]))
            in_flight.start()
            time.sleep(0.15)  # the big batch is being applied now
            server.kill()
            in_flight.join()
        assert acknowledged, "the first batches should have issued coupons"
        assert set(acknowledged) <= set(_coupon_ids(server.db))

        server.start()
        with httpx.Client(base_url=server.url, timeout=30, headers=PLATFORM) as client:
            for batch in batches[3:]:  # the sender retries the batch it never got an answer for
                assert client.post("/v1/events", json=batch).status_code == 200
    finally:
        server.stop()

    ids = _coupon_ids(server.db)
    assert len(ids) == len(set(ids))
    expected = replay(load_campaign(EXAMPLE), [json.dumps(e) for e in events])
    assert sorted(ids) == sorted(d.request.coupon_id for d in expected.decisions if d.issued)


def _post_quietly(url: str, batch: list[dict[str, object]]) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server is killed while this request is in flight
        httpx.post(f"{url}/v1/events", json=batch, timeout=30, headers=PLATFORM)
