"""Merchant webhooks: signing and verifying, the backoff schedule, the payload, and the sender
against a fake transport (no sockets)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from livecoupon.delivery.messages import coupon_message
from livecoupon.delivery.webhooks import (
    WebhookConfig,
    WebhookConfigError,
    WebhookSender,
    backoff_s,
    encode,
    issued_listener,
    payload_for,
    sign,
    verify,
)
from livecoupon.domain.campaign import Campaign
from livecoupon.domain.decisions import Decision, IssueRequest, Reason, coupon_id_for, coupon_of
from livecoupon.store.webhooks import MemoryWebhookOutcomes

SECRET = "whsec-test"
NOW = 1_731_283_200  # 2024-11-11T00:00:00Z
BODY = encode({"event": "coupon.issued", "coupon": {"coupon_id": "cp_1", "title": "观望鼓励券"}})


def issued(campaign: Campaign, user: str = "u1", at: int = NOW * 1000, trigger: str = "dwell") -> Decision:
    template = campaign.coupons["dwell10"]
    cid = coupon_id_for(campaign.campaign, "room-1", 0, trigger, str(at), user)
    request = IssueRequest(cid, campaign.campaign, "room-1", 0, trigger, user, template, at)
    return Decision(request, None, template.expires_at(at))


def config(**overrides: Any) -> WebhookConfig:
    settings: dict[str, Any] = {"url": "https://merchant.example/hooks", "secret": SECRET, "max_attempts": 3,
                                "initial_backoff_s": 0.001, "max_backoff_s": 0.002, "timeout_s": 1}
    return WebhookConfig(**(settings | overrides))


# -- signature ---------------------------------------------------------------------------------
def test_a_signature_verifies_with_its_body_timestamp_and_secret() -> None:
    signature = sign(BODY, str(NOW), SECRET)
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify(BODY, str(NOW), signature, SECRET, now=NOW)
    assert verify(BODY, str(NOW), signature.upper().replace("SHA256=", "sha256="), SECRET, now=NOW)


def test_the_timestamp_is_part_of_the_signed_material() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, str(NOW), SECRET) == f"sha256={expected}"


@pytest.mark.parametrize("body, timestamp, secret", [
    (BODY.replace(b"cp_1", b"cp_2"), str(NOW), SECRET),  # tampered body
    (BODY, str(NOW + 1), SECRET),  # tampered timestamp, still within tolerance
    (BODY, str(NOW), "another-secret"),
    (BODY, str(NOW), ""),
])
def test_tampering_or_the_wrong_secret_is_rejected(body: bytes, timestamp: str, secret: str) -> None:
    signature = sign(BODY, str(NOW), SECRET)
    assert not verify(body, timestamp, signature, secret, now=NOW)


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "1.5", "１２３", str(NOW) + "0" * 20])
def test_a_malformed_timestamp_is_rejected(timestamp: str) -> None:
    assert not verify(BODY, timestamp, sign(BODY, timestamp, SECRET), SECRET, now=NOW)


@pytest.mark.parametrize("signature", ["", "sha256=", "deadbeef", "sha1=" + "0" * 40, "sha256=签名"])
def test_a_malformed_signature_is_rejected(signature: str) -> None:
    assert not verify(BODY, str(NOW), signature, SECRET, now=NOW)


def test_an_old_or_far_future_timestamp_is_rejected_within_tolerance_accepted() -> None:
    signature = sign(BODY, str(NOW), SECRET)
    assert verify(BODY, str(NOW), signature, SECRET, now=NOW + 300)
    assert verify(BODY, str(NOW), signature, SECRET, now=NOW - 300)
    assert not verify(BODY, str(NOW), signature, SECRET, now=NOW + 301)
    assert not verify(BODY, str(NOW), signature, SECRET, now=NOW - 301)
    assert not verify(BODY, str(NOW), signature, SECRET, tolerance_s=10, now=NOW + 11)


# -- backoff -----------------------------------------------------------------------------------
def test_backoff_ceiling_doubles_from_the_initial_wait_up_to_the_maximum() -> None:
    almost_one = 1 - 1e-12
    ceilings = [backoff_s(n, WebhookConfig("https://m.example", SECRET), lambda: almost_one) for n in range(1, 11)]
    assert ceilings == pytest.approx([0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60])


def test_backoff_is_full_jitter_between_zero_and_the_ceiling() -> None:
    settings = WebhookConfig("https://m.example", SECRET, initial_backoff_s=1, max_backoff_s=30)
    assert backoff_s(3, settings, lambda: 0.0) == 0
    assert backoff_s(3, settings, lambda: 0.5) == 2
    rng = random.Random(7)
    for failures in range(1, 40):
        ceiling = min(30, 2 ** (failures - 1))
        waits = [backoff_s(failures, settings, rng.random) for _ in range(50)]
        assert all(0 <= w < ceiling for w in waits)
    assert backoff_s(10_000, settings, lambda: 0.5) == 15  # no overflow after many failures


def test_a_bad_setting_is_named() -> None:
    for overrides, field in [({"url": "ftp://x"}, "url"), ({"secret": ""}, "secret"), ({"max_attempts": 0},
                             "max_attempts"), ({"timeout_s": 0}, "timeout_s"), ({"max_in_flight": 0}, "max_in_flight"),
                             ({"initial_backoff_s": 5, "max_backoff_s": 1}, "max_backoff_s")]:
        with pytest.raises(WebhookConfigError) as caught:
            config(**overrides)
        assert caught.value.field == field and str(caught.value).startswith(f"webhook.{field}:")


# -- payload -----------------------------------------------------------------------------------
def test_the_payload_wraps_the_viewer_coupon_message(example_campaign: Campaign) -> None:
    decision = issued(example_campaign, user="u42")
    payload = payload_for(example_campaign, decision)
    assert payload == {
        "event": "coupon.issued", "campaign": "double11-live",
        "coupon": coupon_message(example_campaign, coupon_of(decision)),
        "user": "u42", "issued_at": "2024-11-11T00:00:00.000Z",
    }
    assert payload["coupon"]["coupon_id"] == decision.request.coupon_id
    assert payload_for(example_campaign, coupon_of(decision)) == payload
    message = coupon_message(example_campaign, coupon_of(decision))
    assert payload_for("double11-live", message, user="u42") == payload
    assert dt.datetime.fromisoformat(payload["issued_at"]).timestamp() == NOW
    assert json.loads(encode(payload)) == payload
    assert "观望鼓励券".encode() in encode(payload)  # UTF-8, not \u escapes


def test_a_suppressed_decision_has_no_payload(example_campaign: Campaign) -> None:
    suppressed = Decision(issued(example_campaign).request, Reason.OUT_OF_STOCK)
    with pytest.raises(ValueError, match="issued nothing"):
        payload_for(example_campaign, suppressed)


def test_a_coupon_message_needs_its_user_and_a_coupon_needs_the_campaign(example_campaign: Campaign) -> None:
    coupon = coupon_of(issued(example_campaign))
    with pytest.raises(ValueError, match="user="):
        payload_for("double11-live", coupon_message(example_campaign, coupon))
    with pytest.raises(TypeError, match="needs the Campaign"):
        payload_for("double11-live", coupon)


def test_a_payload_without_a_coupon_id_is_refused() -> None:
    async def scenario() -> None:
        sender = WebhookSender(config(), transport=httpx.MockTransport(lambda r: httpx.Response(200)))
        sender.start()
        try:
            with pytest.raises(ValueError, match="coupon_id"):
                sender.enqueue([{"event": "coupon.issued", "coupon": {}}])
        finally:
            await sender.stop()

    asyncio.run(scenario())


# -- the sender, against a fake transport ------------------------------------------------------
def test_headers_retries_and_the_listener(example_campaign: Campaign) -> None:
    seen: list[httpx.Request] = []

    def merchant(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        tries = sum(r.headers["Idempotency-Key"] == request.headers["Idempotency-Key"] for r in seen)
        return httpx.Response(200 if tries == 3 else 502)

    decisions = [issued(example_campaign, user=f"u{n}") for n in range(3)]
    decisions.append(Decision(issued(example_campaign, user="held-out").request, Reason.HOLDOUT))

    async def scenario() -> dict[str, int]:
        sender = WebhookSender(config(), transport=httpx.MockTransport(merchant), clock=lambda: NOW)
        sender.start()
        issued_listener(example_campaign, sender)(decisions)
        await asyncio.wait_for(sender.wait_idle(), 10)
        stats = sender.stats()
        await sender.stop()
        return stats

    assert asyncio.run(scenario()) == {"delivered": 3, "retries": 6, "dead": 0, "pending": 0}
    assert Counter(r.headers["Idempotency-Key"] for r in seen) == {d.request.coupon_id: 3 for d in decisions[:3]}
    for request in seen:
        body = request.content
        assert request.method == "POST" and str(request.url) == "https://merchant.example/hooks"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Livecoupon-Event"] == "coupon.issued"
        assert request.headers["X-Livecoupon-Timestamp"] == str(NOW)
        assert verify(body, str(NOW), request.headers["X-Livecoupon-Signature"], SECRET, now=NOW)
        assert json.loads(body)["coupon"]["coupon_id"] == request.headers["Idempotency-Key"]


def test_one_slow_receiver_does_not_stall_the_others(example_campaign: Campaign) -> None:
    slow_id = issued(example_campaign, user="slow").request.coupon_id
    in_flight, most = 0, 0

    async def scenario() -> None:
        nonlocal in_flight, most
        gate = asyncio.Event()

        async def merchant(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if request.headers["Idempotency-Key"] == slow_id:
                await gate.wait()
            await asyncio.sleep(0)
            in_flight -= 1
            return httpx.Response(204)

        sender = WebhookSender(config(max_in_flight=3), transport=httpx.MockTransport(merchant))
        sender.start()
        users = ["slow"] + [f"u{n}" for n in range(30)]
        sender.enqueue([payload_for(example_campaign, issued(example_campaign, user=u)) for u in users])
        for _ in range(1000):
            if sender.stats()["delivered"] == 30:
                break
            await asyncio.sleep(0.001)
        assert sender.stats() == {"delivered": 30, "retries": 0, "dead": 0, "pending": 1}
        gate.set()
        await asyncio.wait_for(sender.wait_idle(), 10)
        assert sender.stats()["delivered"] == 31
        await sender.stop()

    asyncio.run(scenario())
    assert most == 3


def test_a_pending_coupon_is_not_queued_twice(example_campaign: Campaign) -> None:
    calls: list[str] = []

    def merchant(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Idempotency-Key"])
        return httpx.Response(200)

    payload = payload_for(example_campaign, issued(example_campaign))

    async def scenario() -> None:
        sender = WebhookSender(config(), transport=httpx.MockTransport(merchant))
        sender.start()
        sender.enqueue([payload, payload])
        sender.enqueue([payload])
        await asyncio.wait_for(sender.wait_idle(), 10)
        await sender.stop()

    asyncio.run(scenario())
    assert calls == [payload["coupon"]["coupon_id"]]


def test_timeouts_and_errors_end_in_dead_letters_after_max_attempts(example_campaign: Campaign) -> None:
    async def merchant(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["user"] == "hangs":
            await asyncio.sleep(5)
        raise httpx.ConnectError("connection refused", request=request)

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, int]]:
        sender = WebhookSender(config(timeout_s=0.05), transport=httpx.MockTransport(merchant), clock=lambda: NOW)
        sender.start()
        sender.enqueue([payload_for(example_campaign, issued(example_campaign, user=u)) for u in ("hangs", "down")])
        await asyncio.wait_for(sender.wait_idle(), 10)
        result = sender.dead_letters(), sender.stats()
        await sender.stop()
        return result

    letters, stats = asyncio.run(scenario())
    assert stats == {"delivered": 0, "retries": 4, "dead": 2, "pending": 0}
    by_user = {letter["coupon_id"]: letter for letter in letters}
    hangs, down = (by_user[issued(example_campaign, user=u).request.coupon_id] for u in ("hangs", "down"))
    assert hangs["last_error"] == "TimeoutError" and hangs["attempts"] == 3
    assert down["last_error"] == "ConnectError: connection refused"
    assert down == {"coupon_id": down["coupon_id"], "url": "https://merchant.example/hooks", "attempts": 3,
                    "last_error": down["last_error"], "at": "2024-11-11T00:00:00.000Z"}


def test_stop_turns_what_is_pending_into_dead_letters(example_campaign: Campaign) -> None:
    async def scenario() -> list[dict[str, Any]]:
        slow = WebhookConfig("https://m.example/h", SECRET, initial_backoff_s=60, max_backoff_s=60)
        sender = WebhookSender(slow, transport=httpx.MockTransport(lambda r: httpx.Response(500)), rand=lambda: 0.5)
        sender.start()
        sender.enqueue([payload_for(example_campaign, issued(example_campaign))])
        while sender.stats()["retries"] == 0:
            await asyncio.sleep(0.001)
        assert sender.stats()["pending"] == 1 and sender.dead_letters() == []
        await sender.stop()
        with pytest.raises(RuntimeError, match="not running"):
            sender.enqueue([payload_for(example_campaign, issued(example_campaign))])
        return sender.dead_letters()

    [letter] = asyncio.run(scenario())
    assert letter["attempts"] == 1
    assert letter["last_error"] == "the sender stopped before delivery (HTTP 500)"


def test_stop_lets_a_request_in_flight_finish(example_campaign: Campaign) -> None:
    async def scenario() -> dict[str, int]:
        started = asyncio.Event()

        async def merchant(request: httpx.Request) -> httpx.Response:
            started.set()
            await asyncio.sleep(0.02)
            return httpx.Response(200)

        sender = WebhookSender(config(), transport=httpx.MockTransport(merchant))
        sender.start()
        sender.enqueue([payload_for(example_campaign, issued(example_campaign))])
        await asyncio.wait_for(started.wait(), 10)
        await sender.stop()
        return sender.stats()

    assert asyncio.run(scenario()) == {"delivered": 1, "retries": 0, "dead": 0, "pending": 0}


def test_owed_webhooks_start_at_the_first_enabled_position_and_skip_delivered_and_dead(
        example_campaign: Campaign, tmp_path: Path) -> None:
    decisions = [issued(example_campaign, user=f"u{n}") for n in range(4)]
    ids = [d.request.coupon_id for d in decisions]
    log = list(enumerate(ids))

    async def first_run() -> list[str]:
        sender = WebhookSender(config(max_attempts=1), transport=httpx.MockTransport(
            lambda r: httpx.Response(200 if r.headers["Idempotency-Key"] == ids[2] else 500)),
            store_path=tmp_path / "w.db")
        sender.start(log_position=1)  # u0 was issued before webhooks were on
        owed = sender.owed(log)
        issued_listener(example_campaign, sender)(decisions[1:3])  # u1 dies, u2 is delivered
        await asyncio.wait_for(sender.wait_idle(), 10)
        await sender.stop()
        return owed

    async def second_run() -> list[str]:
        sender = WebhookSender(config(), transport=httpx.MockTransport(lambda r: httpx.Response(200)),
                               store_path=tmp_path / "w.db")
        sender.start(log_position=4)  # the position recorded first stays
        owed = sender.owed(log)
        await sender.stop()
        return owed

    assert asyncio.run(first_run()) == ids[1:]
    assert asyncio.run(second_run()) == [ids[3]]


def test_a_sender_handing_its_log_over_leaves_what_is_pending_owed(example_campaign: Campaign) -> None:
    outcomes = MemoryWebhookOutcomes()
    decision = issued(example_campaign)
    ids = [(0, decision.request.coupon_id)]

    async def scenario() -> tuple[list[dict[str, Any]], list[str]]:
        slow = WebhookConfig("https://m.example/h", SECRET, initial_backoff_s=60, max_backoff_s=60)
        first = WebhookSender(slow, transport=httpx.MockTransport(lambda r: httpx.Response(500)), outcomes=outcomes,
                              rand=lambda: 0.5)
        first.start()
        first.enqueue([payload_for(example_campaign, decision)])
        while first.stats()["retries"] == 0:
            await asyncio.sleep(0.001)
        await first.stop(handing_over=True)  # the partition moves to another worker
        second = WebhookSender(config(), transport=httpx.MockTransport(lambda r: httpx.Response(200)),
                               outcomes=outcomes)
        await second.started(5)
        owed = await asyncio.to_thread(second.owed, ids)
        await second.stop()
        return first.dead_letters(), owed

    dead, owed = asyncio.run(scenario())
    assert dead == [] and owed == [decision.request.coupon_id]


def test_a_resending_sender_sends_nothing_new_and_retries_the_dead_letters_others_made(
        example_campaign: Campaign) -> None:
    outcomes = MemoryWebhookOutcomes()
    decision = issued(example_campaign)
    sent: list[str] = []

    def merchant(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(200)

    async def scenario() -> tuple[list[str], int, list[dict[str, Any]]]:
        gateway = WebhookSender(config(), transport=httpx.MockTransport(merchant), outcomes=outcomes,
                                resends_only=True)
        gateway.start()
        gateway.enqueue([payload_for(example_campaign, decision)])  # a worker's to send, not the gateway's
        owed = gateway.owed([(0, decision.request.coupon_id)])
        worker = WebhookSender(config(max_attempts=1), transport=httpx.MockTransport(lambda r: httpx.Response(503)),
                               outcomes=outcomes)
        worker.start()
        worker.enqueue([payload_for(example_campaign, decision)])
        await asyncio.wait_for(worker.wait_idle(), 10)
        await worker.stop()
        await gateway.refresh()
        listed = gateway.dead_letters()
        requeued = gateway.retry_dead_letters()
        await asyncio.wait_for(gateway.wait_idle(), 10)
        await gateway.refresh()
        assert gateway.dead_letters() == []
        await gateway.stop()
        return owed, requeued, listed

    owed, requeued, [listed] = asyncio.run(scenario())
    assert owed == [] and requeued == 1 and listed["coupon_id"] == decision.request.coupon_id
    assert sent == [decision.request.coupon_id]
    assert outcomes.settled([decision.request.coupon_id]) == {decision.request.coupon_id}
    assert outcomes.dead_letters() == []


def test_senders_sharing_slots_keep_their_requests_in_flight_within_them(example_campaign: Campaign) -> None:
    in_flight, most = 0, 0

    async def merchant(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return httpx.Response(200)

    async def scenario() -> int:
        slots = asyncio.Semaphore(3)  # a worker's, shared by its partitions' senders
        senders = [WebhookSender(config(max_in_flight=16), transport=httpx.MockTransport(merchant), slots=slots)
                   for _ in range(2)]
        for n, sender in enumerate(senders):
            sender.start()
            sender.enqueue([payload_for(example_campaign, issued(example_campaign, user=f"s{n}u{k}"))
                            for k in range(20)])
        for sender in senders:
            await asyncio.wait_for(sender.wait_idle(), 10)
            await sender.stop()
        return sum(sender.stats()["delivered"] for sender in senders)

    assert asyncio.run(scenario()) == 40
    assert most == 3
