"""Delivery-side frequency control: bursts are smoothed, never dropped; quiet periods hold."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from livecoupon.delivery.pacing import BURST_SECONDS, CellRate, Pacer
from livecoupon.delivery.websockets import Hub
from livecoupon.domain.campaign import DeliveryPolicy


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_goes_out_at_the_room_rate_after_the_allowance() -> None:
    clock, sent = Clock(), []
    pacer = Pacer(DeliveryPolicy(quiet_period_ms=0, room_rate=1000), lambda r, u, m: sent.append(u), clock)
    delays = [pacer.offer("room", f"u{i}", {}) for i in range(2000)]
    immediate = int(BURST_SECONDS * 1000) + 1
    assert len(sent) == immediate
    assert delays[immediate] == pytest.approx(0.001)
    assert delays[-1] == pytest.approx((2000 - 1) / 1000 - BURST_SECONDS)
    assert pacer.waiting == 2000 - immediate


def test_a_cell_rate_lets_a_burst_go_then_keeps_to_the_rate() -> None:
    """The ledger's pacing: 120 requests wanted at once, 40 a second with a tenth of a second's burst."""
    rate = CellRate(40, burst_s=0.1)
    go = [rate.schedule("app", 0.0) for _ in range(120)]
    assert go[:5] == [0.0] * 5  # the burst: this one and a tenth of a second's worth
    assert go == sorted(go) and go[-1] == pytest.approx(119 / 40 - 0.1)
    assert all(b - a == pytest.approx(1 / 40) for a, b in zip(go[4:], go[5:], strict=False))
    most = max(sum(1 for g in go if start <= g < start + 1) for start in go)
    assert most <= 40 + 4 + 1
    assert rate.schedule("other", 0.0) == 0.0  # keys are paced apart
    assert rate.schedule("app", 10.0) == 10.0  # after a quiet spell, at once again


def test_rooms_are_paced_independently() -> None:
    clock, sent = Clock(), []
    pacer = Pacer(DeliveryPolicy(quiet_period_ms=0, room_rate=10), lambda r, u, m: sent.append(r), clock)
    for i in range(20):
        pacer.offer("a", f"u{i}", {})
    assert pacer.offer("b", "x", {}) == 0.0
    assert sent.count("b") == 1


def test_a_viewer_waits_the_quiet_period_between_popups() -> None:
    clock, sent = Clock(), []
    pacer = Pacer(DeliveryPolicy(quiet_period_ms=3000, room_rate=None), lambda r, u, m: sent.append(m["n"]), clock)
    assert pacer.offer("room", "alice", {"n": 1}) == 0.0
    assert pacer.offer("room", "alice", {"n": 2}) == pytest.approx(3.0)
    assert pacer.offer("room", "alice", {"n": 3}) == pytest.approx(6.0)
    assert pacer.offer("room", "bob", {"n": 4}) == 0.0
    clock.t += 10
    assert pacer.offer("room", "alice", {"n": 5}) == pytest.approx(0.0)
    assert sent == [1, 4, 5]


def test_scheduled_popups_are_delivered_in_order_by_the_runner() -> None:
    sent: list[int] = []

    async def scenario() -> None:
        pacer = Pacer(DeliveryPolicy(quiet_period_ms=20, room_rate=None), lambda r, u, m: sent.append(m["n"]))
        runner = asyncio.create_task(pacer.run())
        for n in range(4):
            pacer.offer("room", "alice", {"n": n})
        await asyncio.sleep(0.2)
        runner.cancel()

    asyncio.run(scenario())
    assert sent == [0, 1, 2, 3]


def test_the_coupons_waiting_for_a_viewer_are_known_until_delivered() -> None:
    clock, sent, held = Clock(), [], []

    async def scenario() -> None:
        pacer = Pacer(DeliveryPolicy(quiet_period_ms=30, room_rate=None), lambda r, u, m: sent.append(m["coupon_id"]),
                      clock)
        for coupon_id in ("c1", "c2", "c3"):  # c1 at once, c2 at +30 ms, c3 at +60 ms
            pacer.offer("room", "alice", {"type": "coupon", "coupon_id": coupon_id})
        pacer.offer("room", "bob", {"type": "coupon", "coupon_id": "c4"})
        held.extend([pacer.held_for("room", "alice"), pacer.held_for("room", "bob"),
                     pacer.held_for("other", "alice")])
        clock.t += 0.045
        runner = asyncio.create_task(pacer.run())
        await asyncio.sleep(0)  # the runner's first round: c2 is due, c3 is not
        held.append(pacer.held_for("room", "alice"))
        clock.t += 0.1
        while pacer.waiting:  # the runner's next round comes after its tick
            await asyncio.sleep(0.005)
        held.append(pacer.held_for("room", "alice"))
        runner.cancel()

    asyncio.run(scenario())
    assert held == [frozenset({"c2", "c3"}), frozenset(), frozenset(), frozenset({"c3"}), frozenset()]
    assert sent == ["c1", "c4", "c2", "c3"]


def paced(usable: Callable[[list[str]], Awaitable[list[str]]], *offers: tuple[str, int]) -> tuple[list[str], int]:
    """Offer ``(coupon_id, expires_at_ms)`` popups to one viewer 10 ms apart; what reached them, and what waits."""
    sent: list[str] = []

    async def scenario() -> int:
        pacer = Pacer(DeliveryPolicy(quiet_period_ms=10, room_rate=None), lambda r, u, m: sent.append(m["coupon_id"]),
                      usable=usable)
        runner = asyncio.create_task(pacer.run())
        for coupon_id, expires in offers:
            pacer.offer("room", "alice", {"type": "coupon", "coupon_id": coupon_id, "expires_at_ms": expires})
        for _ in range(200):
            if len(sent) == len(offers) or not pacer.waiting:
                break
            await asyncio.sleep(0.005)
        runner.cancel()
        return pacer.waiting

    waiting = asyncio.run(scenario())
    return sent, waiting


def test_popups_held_back_go_soonest_to_expire_first_and_never_for_a_coupon_that_cannot_be_used() -> None:
    async def usable(coupon_ids: list[str]) -> list[str]:
        return [cid for cid in coupon_ids if cid != "used"]

    sent, waiting = paced(usable, ("first", 900), ("later", 500), ("used", 100), ("sooner", 200))
    assert sent == ["first", "sooner", "later"] and waiting == 0


def test_popups_keep_going_when_their_coupons_cannot_be_checked() -> None:
    async def failing(coupon_ids: list[str]) -> list[str]:
        raise ConnectionError("the store is away")

    sent, _ = paced(failing, ("a", 1), ("b", 2))
    assert sent == ["a", "b"]


def test_a_muted_viewer_gets_only_a_held_notice_until_the_mute_ends() -> None:
    clock = Clock()
    hub = Hub(clock)
    sub = hub.subscribe("room", "alice")
    hub.mute("room", "alice", 60)
    coupon = {"type": "coupon", "coupon_id": "c1", "title": "券", "amount": 10}
    hub.publish("room", "alice", coupon)
    assert sub.queue.get_nowait() == {"type": "held", "coupon_id": "c1", "title": "券"}
    clock.t += 61
    hub.publish("room", "alice", coupon | {"coupon_id": "c2"})
    assert sub.queue.get_nowait()["coupon_id"] == "c2"


def test_the_runner_stops_when_cancelled_as_a_popup_is_offered() -> None:
    """Cancelled in the loop turn its wake-up came in, the runner went on (3.11's wait_for returned the wake-up and
    dropped the cancellation) and waited for ever: the service's shutdown hung with it (seen in CI)."""
    clock = Clock()

    async def scenario() -> None:
        pacer = Pacer(DeliveryPolicy(quiet_period_ms=60_000), lambda r, u, m: None, clock)
        pacer.offer("room", "ann", {})  # the first goes out at once; the next ones wait their minutes
        pacer.offer("room", "ann", {})
        runner = asyncio.create_task(pacer.run())
        await asyncio.sleep(0.01)  # the runner waits for the next turn, or a wake-up before it
        pacer.offer("room", "ann", {})  # wakes it...
        runner.cancel()  # ...in the same loop turn
        await asyncio.wait({runner}, timeout=2)
        assert runner.cancelled(), "the runner went on after it was cancelled"

    asyncio.run(scenario())
