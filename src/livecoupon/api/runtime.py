"""What the routes share: the service and the delivery side around it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Header, Request

from livecoupon.delivery.console import LiveStats, announcements, decision_line
from livecoupon.delivery.messages import coupon_message
from livecoupon.delivery.pacing import Pacer
from livecoupon.delivery.webhooks import payload_for
from livecoupon.delivery.websockets import ConsoleHub, Hub
from livecoupon.domain.decisions import Decision, DecisionRecord, coupon_of
from livecoupon.errors import Unauthorized
from livecoupon.service import LiveService

log = logging.getLogger("livecoupon")
TICK_SECONDS = 0.02
ACK_FLUSH_SECONDS = 0.025  # acks are written together: one transaction, not one per popup
STATS_SECONDS = 1.0
GC_THRESHOLDS = (20_000, 20, 20)  # with 10,000 sockets open, Python's default (700, 10, 10) stalls ~1 s (measured)
FEED_LINES_PER_BATCH = 200  # a 100,000-viewer firing is one announcement, not 100,000 feed lines


class WebhookPort(Protocol):
    """What the runtime needs of the merchant-webhook sender (delivery/webhooks.py)."""

    def enqueue(self, payloads: list[dict[str, Any]]) -> None: ...

    def dead_letters(self) -> list[dict[str, Any]]: ...

    def retry_dead_letters(self) -> int: ...

    def owed(self, issued: Iterable[tuple[int, str]]) -> list[str]: ...

    def start(self, log_position: int = 0) -> Any: ...

    async def stop(self) -> None: ...


@dataclass
class Runtime:
    service: LiveService
    api_key: str
    webhooks: WebhookPort | None = None
    hub: Hub = field(default_factory=Hub)
    consoles: ConsoleHub = field(default_factory=ConsoleHub)
    pacer: Pacer = field(init=False)
    stats: LiveStats = field(init=False)
    pending_acks: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pacer = Pacer(self.service.campaign.delivery, self.hub.publish)
        self.stats = LiveStats(self.service.campaign)

    # -- on the event loop ---------------------------------------------------------------
    def on_decisions(self, decisions: list[Decision]) -> None:
        """Committed decisions: counters, popups (paced), console lines, webhooks."""
        campaign = self.service.campaign
        self.stats.add(d.record() for d in decisions)
        issued = [coupon_of(d) for d in decisions if d.issued]
        for coupon in issued:
            self.pacer.offer(coupon.room, coupon.user, coupon_message(campaign, coupon))
        if len(self.consoles):
            for d in decisions[:FEED_LINES_PER_BATCH]:
                self.consoles.broadcast(decision_line(d))
            for line in announcements(campaign, decisions):
                self.consoles.broadcast(line)
        if self.webhooks is not None and issued:
            self.webhooks.enqueue([payload_for(campaign, c) for c in issued])

    async def stats_message(self) -> dict[str, Any]:
        service = self.service
        totals = await service.call(service.store.totals, service.campaign.campaign)
        rooms = await service.call(service.room_summary)
        dead = len(self.webhooks.dead_letters()) if self.webhooks is not None else 0
        return self.stats.snapshot(totals, rooms, set(service.engine.paused), service.clock.now(), dead)

    def check_key(self, given: str | None) -> None:
        if not given or not secrets.compare_digest(given.encode(), self.api_key.encode()):
            raise Unauthorized("unauthorized", "a valid X-API-Key header is required", "X-API-Key")

    # -- background tasks -----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        service = self.service
        loop = asyncio.get_running_loop()
        service.listeners.append(lambda made: loop.call_soon_threadsafe(self.on_decisions, made))
        await service.call(service.rebuild)
        records = await service.call(lambda: list(service.store.decisions(service.campaign.campaign)))
        self.stats.add(records)
        gc.collect()
        gc.freeze()  # what start-up built lives as long as the process: keep it out of every collection
        gc.set_threshold(*GC_THRESHOLDS)
        if self.webhooks is not None:
            await self._start_webhooks(self.webhooks, records)
        tasks = [asyncio.create_task(t) for t in (self._tick(), self.pacer.run(), self._stats_feed(),
                                                  self._flush_acks())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.webhooks is not None:
                await self.webhooks.stop()

    async def _tick(self) -> None:
        service = self.service
        while True:
            await asyncio.sleep(TICK_SECONDS)
            due = service.engine.next_timer_due()
            if due is not None and due <= service.clock.now():
                await service.call(service.tick)

    async def _start_webhooks(self, webhooks: WebhookPort, records: list[DecisionRecord]) -> None:
        """Start the sender, then owe it every coupon it never delivered — those of a crash too."""
        service = self.service
        started = webhooks.start(len(records))
        if asyncio.iscoroutine(started):
            await started
        owed = webhooks.owed((position, r.coupon_id) for position, r in enumerate(records) if r.issued)
        if owed:
            coupons = await service.call(lambda: [service.store.coupon(cid) for cid in owed])
            webhooks.enqueue([payload_for(service.campaign, c) for c in coupons if c is not None])
            log.info("re-sending %d merchant webhooks not delivered before the restart", len(owed))

    def acknowledge(self, coupon_id: str, user: str) -> None:
        self.pending_acks.append((coupon_id, user))

    async def flush_acks(self) -> None:
        """Write the acks received so far (before any backlog is read, so none is resent)."""
        if self.pending_acks:
            acks, self.pending_acks = self.pending_acks, []
            service = self.service
            await service.call(service.store.acknowledge, acks, service.clock.now())

    async def _flush_acks(self) -> None:
        while True:
            await asyncio.sleep(ACK_FLUSH_SECONDS)
            await self.flush_acks()

    async def _stats_feed(self) -> None:
        while True:
            await asyncio.sleep(STATS_SECONDS)
            if len(self.consoles):
                self.consoles.broadcast(await self.stats_message())


async def cancel_quietly(task: asyncio.Task[None]) -> None:
    """Stop a socket's sender task; whatever it was doing no longer matters."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def operator(request: Request, x_api_key: Annotated[str | None, Header()] = None,
             authorization: Annotated[str | None, Header()] = None) -> None:
    """Dependency guarding the operator endpoints."""
    given = x_api_key or (authorization or "").removeprefix("Bearer ").strip() or None
    runtime_of(request).check_key(given)


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def attach(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
