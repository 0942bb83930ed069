"""Merchant webhooks against a real HTTP receiver on loopback, with dead letters in a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livecoupon.delivery.webhooks import WebhookConfig, WebhookSender, payload_for, verify
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, IssueRequest, coupon_id_for
from livecoupon.store.sqlite import SqliteStore
from support.receiver import Policy, Receiver
from support.server import free_port

SECRET = "whsec-integration"
@pytest.fixture
def receiver_factory() -> Iterator[Callable[[Policy], Receiver]]:
    started: list[Receiver] = []

    def start(policy: Policy) -> Receiver:
        started.append(Receiver(policy).__enter__())
        return started[-1]

    yield start
    for receiver in started:
        receiver.__exit__()


def fast(url: str, max_attempts: int = 5) -> WebhookConfig:
    return WebhookConfig(url, SECRET, max_attempts=max_attempts, initial_backoff_s=0.01, max_backoff_s=0.05,
                         timeout_s=5)


def payloads(campaign: Campaign, users: list[str]) -> list[dict[str, Any]]:
    template, at = campaign.coupons["newcomer"], 1_731_283_200_000
    made = []
    for user in users:
        cid = coupon_id_for(campaign.campaign, "room-1", at, "newcomer", user, user)
        request = IssueRequest(cid, campaign.campaign, "room-1", at, "newcomer", user, template, at)
        made.append(payload_for(campaign, Decision(request, None, template.expires_at(at))))
    return made


async def run_until_idle(sender: WebhookSender, work: Callable[[WebhookSender], object]) -> dict[str, int]:
    sender.start()
    try:
        work(sender)
        await asyncio.wait_for(sender.wait_idle(), 60)
        return sender.stats()
    finally:
        await sender.stop()


def dead_letters_in(path: Path) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        sender = WebhookSender(fast("http://127.0.0.1:9/unused"), store_path=path)
        sender.start()
        await sender.stop()
        return sender.dead_letters()

    return asyncio.run(read())


def test_every_coupon_is_delivered_once_signed_with_one_key_across_retries(
        example_campaign: Campaign, receiver_factory: Callable[[Policy], Receiver]) -> None:
    receiver = receiver_factory(lambda key, attempt: 500 if attempt <= 2 else 200)
    sent = payloads(example_campaign, [f"viewer-{n}" for n in range(40)])
    from_writer = threading.Thread  # enqueue from another thread, as the service's writer does

    def hand_over(sender: WebhookSender) -> None:
        thread = from_writer(target=sender.enqueue, args=(sent,))
        thread.start()
        thread.join()

    stats = asyncio.run(run_until_idle(WebhookSender(fast(receiver.url)), hand_over))

    assert stats == {"delivered": 40, "retries": 80, "dead": 0, "pending": 0}
    ids = [p["coupon"]["coupon_id"] for p in sent]
    assert receiver.accepted() == Counter(ids)  # each exactly once
    assert Counter(r.key for r in receiver.received) == {cid: 3 for cid in ids}
    by_id = {p["coupon"]["coupon_id"]: p for p in sent}
    for r in receiver.received:
        headers = {k.lower(): v for k, v in r.headers.items()}
        assert headers["content-type"] == "application/json"
        assert headers["x-livecoupon-event"] == "coupon.issued"
        assert verify(r.body, headers["x-livecoupon-timestamp"], headers["x-livecoupon-signature"], SECRET)
        assert json.loads(r.body) == by_id[r.key]
    assert all(len({r.body for r in receiver.received if r.key == cid}) == 1 for cid in ids)


def test_dead_letters_survive_a_restart_and_are_delivered_once_the_receiver_recovers(
        example_campaign: Campaign, receiver_factory: Callable[[Policy], Receiver], tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    store = SqliteStore(db)  # the dead letters share the service's file
    healthy = False
    receiver = receiver_factory(lambda key, attempt: 200 if healthy else 503)
    sent = payloads(example_campaign, ["a", "b", "c"])
    ids = sorted(p["coupon"]["coupon_id"] for p in sent)

    stats = asyncio.run(run_until_idle(WebhookSender(fast(receiver.url, max_attempts=3), store_path=db),
                                       lambda sender: sender.enqueue(sent)))
    assert stats == {"delivered": 0, "retries": 6, "dead": 3, "pending": 0}
    assert Counter(r.key for r in receiver.received) == {cid: 3 for cid in ids}

    letters = dead_letters_in(db)  # a new sender on the same file
    assert sorted(letter["coupon_id"] for letter in letters) == ids
    for letter in letters:
        assert letter["url"] == receiver.url and letter["attempts"] == 3 and letter["last_error"] == "HTTP 503"
        assert letter["at"].endswith("Z")

    healthy = True
    retried: list[int] = []
    stats = asyncio.run(run_until_idle(WebhookSender(fast(receiver.url), store_path=db),
                                       lambda sender: retried.append(sender.retry_dead_letters())))
    assert retried == [3]
    assert stats == {"delivered": 3, "retries": 0, "dead": 0, "pending": 0}
    assert receiver.accepted() == Counter(ids)
    assert dead_letters_in(db) == []
    store.close()
    check = sqlite3.connect(db)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert check.execute("SELECT count(*) FROM webhook_dead_letters").fetchone() == (0,)
    finally:
        check.close()


def test_a_receiver_that_is_down_ends_in_dead_letters_kept_on_disk(example_campaign: Campaign,
                                                                    tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    nobody = f"http://127.0.0.1:{free_port()}/hooks"
    stats = asyncio.run(run_until_idle(WebhookSender(fast(nobody, max_attempts=2), store_path=db),
                                       lambda sender: sender.enqueue(payloads(example_campaign, ["z"]))))
    assert stats["dead"] == 1
    [letter] = dead_letters_in(db)
    assert letter["attempts"] == 2 and letter["last_error"].startswith("ConnectError")


def test_deliveries_pending_at_shutdown_are_kept_and_delivered_after_a_restart(
        example_campaign: Campaign, receiver_factory: Callable[[Policy], Receiver], tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    healthy = False
    receiver = receiver_factory(lambda key, attempt: 200 if healthy else 500)
    patient = WebhookConfig(receiver.url, SECRET, initial_backoff_s=30, max_backoff_s=30)

    async def interrupted() -> None:
        sender = WebhookSender(patient, store_path=db, rand=lambda: 0.9)
        sender.start()
        sender.enqueue(payloads(example_campaign, ["x", "y"]))
        while sender.stats()["retries"] < 2:  # both are waiting out a 27 s backoff
            await asyncio.sleep(0.005)
        await sender.stop()

    asyncio.run(interrupted())
    letters = dead_letters_in(db)
    assert len(letters) == 2
    assert all(letter["last_error"] == "the sender stopped before delivery (HTTP 500)" for letter in letters)

    healthy = True
    stats = asyncio.run(run_until_idle(WebhookSender(fast(receiver.url), store_path=db),
                                       lambda sender: sender.retry_dead_letters()))
    assert stats["delivered"] == 2 and dead_letters_in(db) == []
    assert sum(receiver.accepted().values()) == 2
