"""A gateway starting serves at once and reads the decisions made before back behind (GatewayService.rebuild):
the workers' pushes heard meanwhile wait for them, so a repeat is never announced and a new decision is,
once, in the order heard. Real PostgreSQL and a NATS server of the test's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from livecoupon.campaign_file import load_campaign
from livecoupon.cluster import wire
from livecoupon.cluster.bus import Bus
from livecoupon.cluster.gateway import GatewayService
from livecoupon.cluster.partitions import Subjects
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.engine.clock import ClockMode
from livecoupon.service_layer.service import LiveService
from livecoupon.store.memory import MemoryStore
from livecoupon.store.postgres import PostgresStore
from support.apps import EXAMPLE
from support.cluster import Nats
from support.reading import HeldBack

T0 = 1_764_000_000.0
NAME = "gwback"


class HeldBackPostgres(HeldBack, PostgresStore):
    """The PostgreSQL store, its reading back held (support/reading.py): what 490,000 decisions do to it."""


def _joins(service: LiveService, users: list[str], at: float) -> list[DecisionRecord]:
    made = service.submit([{"type": "live_start", "room": "room-1", "ts": at}]
                          + [{"type": "join", "room": "room-1", "ts": at + 1 + n, "user": u}
                             for n, u in enumerate(users)]).decisions
    return [d.record() for d in made]


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_pushes_heard_while_the_decisions_read_back_wait_and_only_new_ones_are_announced(
        tmp_path: Path, pg_url: str) -> None:
    campaign = load_campaign(EXAMPLE)
    first_life = LiveService(campaign, PostgresStore(pg_url, NAME), ClockMode.EVENT)  # decisions made before
    first_life.rebuild()
    before = _joins(first_life, [f"v{n}" for n in range(5)], T0)
    first_life.close()
    elsewhere = LiveService(campaign, MemoryStore(), ClockMode.EVENT)  # what a worker decides after the start
    new, newer = _joins(elsewhere, ["late", "later"], T0 + 60)[:2]
    assert {new.coupon_id, newer.coupon_id}.isdisjoint(r.coupon_id for r in before)

    async def scenario(nats_url: str) -> None:
        store = HeldBackPostgres(pg_url, NAME)
        bus, worker = Bus(nats_url, Subjects(NAME)), Bus(nats_url, Subjects(NAME))
        await bus.connect()
        await worker.connect()
        gateway = GatewayService(campaign, store, bus, ClockMode.EVENT)
        announced: list[Decision] = []
        gateway.listeners.append(announced.extend)

        async def push(*records: DecisionRecord) -> None:
            await worker.tell(worker.subjects.push, wire.encode(wire.Push(records=list(records))))

        try:
            async with gateway.listening():
                await gateway.call(gateway.rebuild, True)  # returns with the decisions still to read
                assert not gateway.read_back.done()
                await push(before[0], new)  # a repeat (a worker re-deciding after a failover), and a new one
                await _until(lambda: len(gateway._held or ()) == 1, "the push to be heard")
                assert announced == []  # not yet: it cannot tell the repeat from the new one

                store.release.set()
                earlier = await asyncio.wrap_future(gateway.read_back)
                assert [r.coupon_id for r in earlier[campaign.campaign]] == [r.coupon_id for r in before]
                await _until(lambda: len(announced) >= 1, "the held push to be taken")
                await push(new, before[1], newer)  # heard after: taken at once, known ones dropped
                await _until(lambda: len(announced) >= 2, "the later push")
                assert [d.request.coupon_id for d in announced] == [new.coupon_id, newer.coupon_id]
                assert gateway._held is None
        finally:
            store.release.set()
            await worker.close()
            await bus.close()
            gateway.close()

    with Nats(tmp_path / "nats") as nats:
        asyncio.run(scenario(nats.url))
