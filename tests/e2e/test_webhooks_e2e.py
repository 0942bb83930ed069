"""``livecoupon serve`` with merchant webhooks configured: an issued coupon reaches the merchant, signed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from livecoupon.delivery.webhooks import verify
from support.receiver import Receiver
from support.server import API_KEY, PLATFORM, Server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
SECRET = "merchant-secret"


def test_an_issued_coupon_is_posted_to_the_merchant_after_a_failed_attempt(tmp_path: Path) -> None:
    with Receiver(lambda key, attempt: 503 if attempt == 1 else 200) as merchant:
        env = {"LIVECOUPON_WEBHOOK_URL": merchant.url, "LIVECOUPON_WEBHOOK_SECRET": SECRET}
        with Server(EXAMPLE, tmp_path / "w.db", env) as server:
            events = [{"type": "live_start", "room": "room-1", "ts": 1_700_000_000},
                      {"type": "join", "room": "room-1", "ts": 1_700_000_001, "user": "alice"}]
            [decision] = httpx.post(f"{server.url}/v1/events", json=events, headers=PLATFORM).json()["decisions"]
            deadline = time.monotonic() + 15
            while not merchant.accepted() and time.monotonic() < deadline:
                time.sleep(0.05)
            dead = httpx.get(f"{server.url}/v1/admin/webhooks/dead-letters", headers={"X-API-Key": API_KEY}).json()
    assert merchant.accepted() == {decision["coupon_id"]: 1}
    first, second = merchant.received
    assert (first.status, second.status) == (503, 200) and first.key == second.key == decision["coupon_id"]
    headers = {k.lower(): v for k, v in second.headers.items()}
    assert verify(second.body, headers["x-livecoupon-timestamp"], headers["x-livecoupon-signature"], SECRET)
    payload = json.loads(second.body)
    assert payload["event"] == "coupon.issued" and payload["user"] == "alice"
    assert payload["coupon"]["title"] == "新人专享券"
    assert dead == {"dead_letters": []}


@pytest.mark.parametrize("stopped", ["killed", "stopped"])
def test_webhooks_pending_when_the_service_stops_are_sent_after_the_restart(tmp_path: Path, stopped: str) -> None:
    # kill -9, or SIGTERM (the lifespan's shutdown runs: what is pending stays owed, as after a crash, not dead)
    merchant_up = {"now": False}
    with Receiver(lambda key, attempt: 200 if merchant_up["now"] else 503) as merchant:
        env = {"LIVECOUPON_WEBHOOK_URL": merchant.url, "LIVECOUPON_WEBHOOK_SECRET": SECRET}
        server = Server(EXAMPLE, tmp_path / "restart.db", env).start()
        try:
            events = [{"type": "live_start", "room": "room-1", "ts": 1_700_000_000}] + [
                {"type": "join", "room": "room-1", "ts": 1_700_000_001, "user": u} for u in ("a", "b", "c")]
            answer = httpx.post(f"{server.url}/v1/events", json=events, headers=PLATFORM).json()
            issued = {d["coupon_id"] for d in answer["decisions"]}
            deadline = time.monotonic() + 15
            while {r.key for r in merchant.received} != issued and time.monotonic() < deadline:
                time.sleep(0.05)  # every coupon tried once, and refused: all three are pending
            server.kill() if stopped == "killed" else server.stop()
            merchant_up["now"] = True
            server.start()
            deadline = time.monotonic() + 15
            while set(merchant.accepted()) != issued and time.monotonic() < deadline:
                time.sleep(0.05)
            dead = httpx.get(f"{server.url}/v1/admin/webhooks/dead-letters", headers={"X-API-Key": API_KEY}).json()
        finally:
            server.stop()
    assert len(issued) == 3 and merchant.accepted() == {cid: 1 for cid in issued}
    assert dead == {"dead_letters": []}
