"""Group commit of checkout calls on a real SQLite file: calls that queue behind the writer run in one
transaction, a call that refuses before writing leaving the rest standing, and every caller gets exactly the
answer it would have got alone."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livecoupon.campaign_file import load_campaign
from livecoupon.domain.orders import Order, OrderState
from livecoupon.domain.pricing import CartLine
from livecoupon.engine.clock import ClockMode
from livecoupon.errors import Malformed
from livecoupon.service_layer.service import LiveService
from livecoupon.store.sqlite import SqliteStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
T0_MS = 1_700_000_000_000
CART = [CartLine("sku-1", "dress", 12_000, 1)]
BUYERS = [f"buyer-{i:03d}" for i in range(40)]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    live = LiveService(load_campaign(EXAMPLE), SqliteStore(tmp_path / "groups.db"), ClockMode.WALL,
                       wall=lambda: T0_MS)
    yield live
    live.close()


def coupons_for(service: LiveService, users: list[str]) -> dict[str, str]:
    made = service.issue_manually("dwell10", users, "room-1", "grant")
    return {d.request.user: d.request.coupon_id for d in made if d.issued}


async def in_one_group(service: LiveService, calls: list[Awaitable[Any]]) -> list[Any]:
    """Hold the writer thread until every call has queued behind it, so they all run as one group."""
    gate = threading.Event()
    held = asyncio.ensure_future(service.call(gate.wait))
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0.05)  # every task has queued its call
    gate.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)


def create(service: LiveService, order_id: str, user: str, coupon_id: str | None, key: str) -> Awaitable[Any]:
    return service.checkout_in_group(service.checkout.create_order, order_id, user, CART, coupon_id, key,
                                     "platform:", None)


def pay(service: LiveService, order_id: str, key: str) -> Awaitable[Any]:
    return service.checkout_in_group(service.checkout.pay, order_id, key, "platform:", None)


def test_a_group_answers_each_call_as_alone_and_commits_them_all(service: LiveService, tmp_path: Path) -> None:
    coupons = coupons_for(service, BUYERS)

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        created = await in_one_group(service, [create(service, f"o-{u}", u, coupons[u], f"c-{u}") for u in BUYERS])
        paid = await in_one_group(service, [pay(service, f"o-{u}", f"p-{u}") for u in BUYERS])
        again = await in_one_group(service, [pay(service, f"o-{u}", f"p-{u}") for u in BUYERS[:5]])
        return created, paid, again

    created, paid, again = asyncio.run(run())
    assert [(status, body["discount"]) for status, body in created] == [(201, 10.0)] * len(BUYERS)
    assert [(status, body["state"]) for status, body in paid] == [(200, "paid")] * len(BUYERS)
    assert again == paid[:5]  # the idempotent repeat: the first answers, not a second payment
    reopened = SqliteStore(tmp_path / "groups.db")
    try:
        assert {reopened.order(f"o-{u}").state for u in BUYERS} == {OrderState.PAID}  # type: ignore[union-attr]
        assert {c.state.value for u in BUYERS for c in reopened.coupons_of(u)} == {"redeemed"}
    finally:
        reopened.close()
    assert sum(1 for e in service.orders if e.user in BUYERS) == len(BUYERS)  # each paid order counted once


def test_two_orders_racing_for_one_coupon_in_one_group_exactly_one_wins(service: LiveService) -> None:
    coupon = coupons_for(service, ["ana"])["ana"]
    answers = asyncio.run(in_one_group(service, [create(service, f"o-{i}", "ana", coupon, f"k-{i}")
                                                 for i in range(6)]))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409, 409, 409, 409, 409]
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"coupon_reserved"}


def test_a_call_refused_by_raising_leaves_the_rest_of_its_group_committed(service: LiveService) -> None:
    coupons = coupons_for(service, BUYERS[:3])
    first = asyncio.run(in_one_group(service, [create(service, "o-x", BUYERS[0], coupons[BUYERS[0]], "k")]))
    assert first[0][0] == 201
    answers = asyncio.run(in_one_group(service, [
        create(service, "o-y", BUYERS[1], coupons[BUYERS[1]], "k-1"),
        create(service, "o-x", BUYERS[0], None, "k"),  # the same key for another request: raised, not answered
        create(service, "o-z", BUYERS[2], coupons[BUYERS[2]], "k-2"),
    ]))
    assert answers[0][0] == 201 and answers[2][0] == 201
    assert isinstance(answers[1], Malformed) and answers[1].code == "idempotency_key_reused"
    assert service.store.order("o-y") is not None and service.store.order("o-z") is not None


def test_a_call_that_fails_unexpectedly_rolls_back_alone_and_its_group_is_run_again(service: LiveService) -> None:
    coupons = coupons_for(service, BUYERS[:2])

    def half_written() -> None:
        service.store.insert_order(Order("o-broken", "who", tuple(CART), None, 12_000, 0, 12_000,
                                         OrderState.CREATED, T0_MS, None, None))
        raise RuntimeError("a fault after a write")

    answers = asyncio.run(in_one_group(service, [
        create(service, "o-1", BUYERS[0], coupons[BUYERS[0]], "k-1"),
        service.checkout_in_group(half_written),
        create(service, "o-2", BUYERS[1], coupons[BUYERS[1]], "k-2"),
    ]))
    assert answers[0][0] == 201 and answers[2][0] == 201
    assert isinstance(answers[1], RuntimeError)
    assert service.store.order("o-broken") is None
    assert service.store.order("o-1") is not None and service.store.order("o-2") is not None


def test_a_call_refusing_after_a_write_spoils_its_group_which_runs_again_one_by_one(service: LiveService) -> None:
    coupons = coupons_for(service, BUYERS[:2])
    statements: list[str] = []

    def written_then_refused() -> None:
        service.store.insert_order(Order("o-half", "who", tuple(CART), None, 12_000, 0, 12_000,
                                         OrderState.CREATED, T0_MS, None, None))
        raise Malformed("late_refusal", "refused after a write", "order_id")

    def counted() -> None:  # on the writer thread, where the group's statements run
        service.store._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]

    async def run() -> list[Any]:
        await service.call(counted)
        return await in_one_group(service, [
            create(service, "o-1", BUYERS[0], coupons[BUYERS[0]], "k-1"),
            service.checkout_in_group(written_then_refused),
            create(service, "o-2", BUYERS[1], coupons[BUYERS[1]], "k-2"),
        ])

    answers = asyncio.run(run())
    assert answers[0][0] == 201 and answers[2][0] == 201
    assert isinstance(answers[1], Malformed) and answers[1].code == "late_refusal"
    assert service.store.order("o-half") is None  # undone: neither in the group nor alone did it commit
    assert service.store.order("o-1") is not None and service.store.order("o-2") is not None
    assert not any("SAVEPOINT" in s for s in statements)  # no savepoint: the group rolled back, then one by one
    assert sum(s.startswith("ROLLBACK") for s in statements) == 2  # the group, then the refusing call alone


@pytest.fixture
def pg_service(pg_url: str) -> Iterator[LiveService]:
    from livecoupon.store.postgres import PostgresStore

    store = PostgresStore(pg_url, f"t_{uuid.uuid4().hex[:12]}")
    live = LiveService(load_campaign(EXAMPLE), store, ClockMode.WALL, wall=lambda: T0_MS)
    yield live
    live.close()
    store.drop()


def test_on_postgresql_a_group_answers_each_call_as_alone_and_a_late_refusal_is_undone_alone(
        pg_service: LiveService) -> None:
    service = pg_service
    coupons = coupons_for(service, BUYERS[:4])

    def written_then_refused() -> None:
        service.store.insert_order(Order("o-half", "who", tuple(CART), None, 12_000, 0, 12_000,
                                         OrderState.CREATED, T0_MS, None, None))
        raise Malformed("late_refusal", "refused after a write", "order_id")

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        created = await in_one_group(service, [
            *(create(service, f"o-{u}", u, coupons[u], f"c-{u}") for u in BUYERS[:3]),
            create(service, "o-rival", BUYERS[0], coupons[BUYERS[0]], "c-rival"),  # the same coupon: refused
            service.checkout_in_group(written_then_refused)])
        paid = await in_one_group(service, [pay(service, f"o-{u}", f"p-{u}") for u in BUYERS[:3]])
        again = await in_one_group(service, [pay(service, f"o-{u}", f"p-{u}") for u in BUYERS[:3]])
        return created, paid, again

    created, paid, again = asyncio.run(run())
    assert [status for status, _ in created[:3]] == [201] * 3
    assert created[3][0] == 409 and created[3][1]["error"]["code"] == "coupon_reserved"
    assert isinstance(created[4], Malformed) and service.store.order("o-half") is None  # its savepoint undone
    assert [(status, body["state"]) for status, body in paid] == [(200, "paid")] * 3
    assert again == paid
    assert {c.state.value for u in BUYERS[:3] for c in service.store.coupons_of(u)} == {"redeemed"}
    assert service.store.coupons_of(BUYERS[3])[0].state.value == "issued"
