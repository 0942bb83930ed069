"""Merchant webhooks scaled out, as real processes: one gateway and two workers over the machine's
PostgreSQL, a NATS of the test's own, and a merchant's receiver on loopback.

- a worker SIGKILLed mid-stream, with webhooks of its own still unsent (the merchant is slow then):
  every coupon issued reaches the merchant at least once, signed; the partitions' next owner sent
  what the dead worker still owed;
- a dead letter made by a worker while the receiver is down is listed through the gateway, and
  delivered by the gateway's retry once the receiver is back.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from livecoupon.cluster.partitions import partition_of
from livecoupon.delivery.webhooks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from support.cluster import Cluster, Nats, every_room_campaign, post_all, wait_logged
from support.credentials import OPERATOR
from support.receiver import Receiver
from support.streams import many_rooms
from support.waiting import wait_until

psycopg = pytest.importorskip("psycopg")
pytestmark = pytest.mark.timeout(240)
SECRET = "whsec-cluster"


def issued_ids(pg_url: str, name: str) -> set[str]:
    with psycopg.connect(pg_url) as db:
        return {row[0] for row in db.execute(f"SELECT coupon_id FROM {name}.decisions WHERE reason IS NULL")}


def undelivered(pg_url: str, name: str, partitions: list[int]) -> int:
    """Coupons of these partitions (of 8) whose webhook is not recorded delivered."""
    with psycopg.connect(pg_url) as db:
        rooms = db.execute(f"SELECT coupon_id, room FROM {name}.decisions WHERE reason IS NULL").fetchall()
        delivered = {row[0] for row in db.execute(
            "SELECT coupon_id FROM livecoupon_webhooks.delivered WHERE deployment = %s", (name,))}
    return sum(1 for cid, room in rooms if partition_of(room, 8) in partitions and cid not in delivered)


def test_every_coupon_reaches_the_merchant_across_a_worker_kill_and_a_dead_letter_is_retried_by_a_gateway(
        tmp_path: Path, pg_url: str) -> None:
    config = every_room_campaign(tmp_path)
    events = many_rooms(rooms=6, viewers=80)
    half = len(events) // 2
    up, slow = {"on": True}, {"s": 2.0}
    env = {"LIVECOUPON_WEBHOOK_URL": "", "LIVECOUPON_WEBHOOK_SECRET": SECRET,
           "LIVECOUPON_WEBHOOK_MAX_ATTEMPTS": "3", "LIVECOUPON_WEBHOOK_MAX_BACKOFF_S": "0.2"}
    with Receiver(lambda key, attempt: 200 if up["on"] else 503, lambda key, attempt: slow["s"]) as merchant:
        env["LIVECOUPON_WEBHOOK_URL"] = merchant.url
        with Nats(tmp_path / "nats") as nats, Cluster(config, tmp_path, pg_url, nats, "hooks", gateways=1,
                                                      env=env) as cluster:
            gateway = cluster.urls[0]
            with httpx.Client(headers=OPERATOR) as client:
                def held() -> list[int]:
                    partitions: list[int] = client.get(f"{cluster.workers[0].url}/v1/admin/health").json()[
                        "partitions"]
                    return partitions

                # (on a loaded machine the leases take a while: a worker holding nothing yet has nothing to lose)
                wait_until(lambda: bool(held()), "the first worker never took a partition", within=30)
                post_all(cluster.urls, events[:half])
                doomed = held()
            wait_until(lambda: undelivered(pg_url, "hooks", doomed) > 0, "the first worker sent everything at once",
                       within=30)
            cluster.workers[0].kill()  # SIGKILL mid-stream: its senders' queues and requests in flight die with it
            slow["s"] = 0.0
            post_all(cluster.urls, events[half:])
            wait_logged(pg_url, "hooks", len(events))
            issued = issued_ids(pg_url, "hooks")
            assert len(issued) > 50
            wait_until(lambda: issued <= set(merchant.accepted()),
                       f"{len(issued - set(merchant.accepted()))} of {len(issued)} coupons never reached the merchant",
                       within=90)
            assert set(merchant.accepted()) == issued, "a webhook for a coupon that was never issued"
            assert "merchant webhooks still owed, re-sent" in cluster.workers[1].log.read_text(errors="replace")
            for received in merchant.received[:20]:
                headers = {k.lower(): v for k, v in received.headers.items()}
                assert verify(received.body, headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()],
                              SECRET)
                assert headers[IDEMPOTENCY_HEADER.lower()] == received.key

            up["on"] = False  # the merchant goes down: a coupon issued now runs out of attempts
            with httpx.Client(headers=OPERATOR, timeout=30) as client:
                made = client.post(f"{gateway}/v1/admin/issue", json={
                    "template": "newcomer", "users": ["late-viewer"], "room": "room-2", "idempotency_key": "late-1"})
                assert made.status_code == 200, made.text
                [late] = set(issued_ids(pg_url, "hooks")) - issued

                def listed() -> list[str]:
                    answer = client.get(f"{gateway}/v1/admin/webhooks/dead-letters")
                    assert answer.status_code == 200, answer.text
                    return [d["coupon_id"] for d in answer.json()["dead_letters"]]

                wait_until(lambda: listed() == [late], "the dead letter is not listed by the gateway", within=90)
                [letter] = client.get(f"{gateway}/v1/admin/webhooks/dead-letters").json()["dead_letters"]
                assert letter["attempts"] == 3 and letter["last_error"] == "HTTP 503"
                assert late not in merchant.accepted()

                up["on"] = True
                retried = client.post(f"{gateway}/v1/admin/webhooks/dead-letters/retry")
                assert retried.status_code == 200 and retried.json() == {"requeued": 1}
                wait_until(lambda: late in merchant.accepted(), "the retried dead letter never arrived", within=90)
                wait_until(lambda: listed() == [], "a delivered dead letter is still listed", within=90)
